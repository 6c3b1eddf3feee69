"""Verified results -> a signed PDF report in a job; corrections -> amended versions.

Jobs run in their own transactions, so these tests commit their data in a fresh
organisation (``committing_session``) and then run the pending jobs.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from nidaan.config import Settings
from nidaan.events.models import OutboxEvent
from nidaan.kit.jobs import run_pending_jobs
from nidaan.kit.storage import get_object_store
from nidaan.reports.models import Report
from nidaan.reports.service import reports_service
from nidaan.results.service import results_service
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import bearer_for, create_organisation, create_user
from tests.fixtures.results import enter_and_verify, make_lab, place_order, principal_of

pytestmark = pytest.mark.usefixtures("job_app_open")


@dataclass
class World:
    organisation_id: Any
    order_id: Any
    results: dict[str, Any]
    headers: dict[str, str]
    lab: Any


async def verified_order(committing_session: Any, *, language: str = "en") -> World:
    async with committing_session() as session:
        organisation = await create_organisation(session, name="Sanjeevani Diagnostics")
        organisation.address = "12, 4th Cross, Jayanagar, Bengaluru 560011"
        organisation.phone = "+91 80 4123 5678"
        organisation.accreditation = "NABL accredited (ISO 15189:2022), certificate MC-5820"
        lab = await make_lab(session, organisation)
        hb = await create_catalog_test(
            session,
            organisation,
            code="HB",
            name="Haemoglobin",
            department="Haematology",
            unit="g/dL",
            method="Photometric",
            ranges=[{"low": 12, "high": 15}],
        )
        glu = await create_catalog_test(
            session,
            organisation,
            code="GLU",
            name="Glucose, fasting",
            unit="mg/dL",
            ranges=[{"low": 70, "high": 99}],
        )
        patient = await create_patient(
            session, organisation, full_name="Sunita Sharma", preferred_language=language
        )
        placed = await place_order(session, lab, patient, [hb, glu])
        results = {
            "HB": await enter_and_verify(session, lab, placed["HB"], "10.8"),
            "GLU": await enter_and_verify(session, lab, placed["GLU"], "126"),
        }
        return World(organisation.id, placed.order.id, results, lab.headers("front"), lab)


async def correct_and_verify(committing_session: Any, world: World, code: str, value: str) -> None:
    async with committing_session() as session:
        corrected = await results_service.correct(
            session,
            principal_of(world.lab.users["path"]),
            world.results[code].id,
            value,
            None,
            "Re-run on a fresh sample; the first was haemolysed.",
        )
        await results_service.verify(session, principal_of(world.lab.users["path2"]), corrected.id)
        world.results[code] = corrected


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


async def test_report_is_issued_amended_and_verifiable(
    client: httpx.AsyncClient, settings: Settings, committing_session: Any
) -> None:
    world = await verified_order(committing_session)
    not_yet = await client.get(f"/api/v1/orders/{world.order_id}/report", headers=world.headers)
    assert not_yet.status_code == 404
    assert not_yet.json()["code"] == "report_not_ready"

    await run_pending_jobs(settings)

    first = await client.get(f"/api/v1/orders/{world.order_id}/report", headers=world.headers)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/pdf"
    assert first.content.startswith(b"%PDF")
    text = text_of(first.content)
    for expected in (
        "Sanjeevani Diagnostics",
        "Sunita Sharma",
        "Haemoglobin",
        "10.8",
        "g/dL",
        "12.0 - 15.0",
        "Dr. Meera Iyer",
        "MD (Pathology)",
        "Page 1 of 1",
        "End of report",
        "NABL accredited",
    ):
        assert expected in text, expected
    assert "AMENDED" not in text
    assert "FINAL REPORT" in text

    async with committing_session() as session:
        reports = list(
            await session.scalars(select(Report).where(Report.order_id == world.order_id))
        )
        finalized = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(
                OutboxEvent.organisation_id == world.organisation_id,
                OutboxEvent.name == "report.finalized",
            )
        )
    assert len(reports) == 1
    assert finalized == 1
    v1 = reports[0]
    assert (v1.report_version, v1.is_current, v1.amended) == (1, True, False)
    assert v1.sha256 == hashlib.sha256(first.content).hexdigest()
    assert v1.page_count == 1
    assert v1.size_bytes == len(first.content)
    assert re.fullmatch(r"RPT-\d{4}-\d{6}", v1.report_number)

    # The same events again (a redelivery, a second worker) issue nothing new.
    async with committing_session() as session:
        again = await reports_service.on_results_verified(
            session,
            world.organisation_id,
            world.order_id,
            department=None,
            amended=False,
            reason=None,
        )
    assert again is not None
    assert again.id == v1.id

    await correct_and_verify(committing_session, world, "HB", "11.6")
    await run_pending_jobs(settings)

    versions = await client.get(f"/api/v1/orders/{world.order_id}/reports", headers=world.headers)
    assert versions.status_code == 200
    items = versions.json()["items"]
    assert [(i["report_version"], i["is_current"], i["amended"]) for i in items] == [
        (2, True, True),
        (1, False, False),
    ]
    v2 = items[0]
    assert v2["supersedes_id"] == str(v1.id)
    assert v2["amendment_reason"] == "Re-run on a fresh sample; the first was haemolysed."

    current = await client.get(f"/api/v1/orders/{world.order_id}/report", headers=world.headers)
    amended_text = text_of(current.content)
    assert "CORRECTED REPORT" in amended_text  # a printed result was corrected
    assert "What changed: Haemoglobin: result corrected" in amended_text
    assert f"replaces report {v1.report_number} (version 1)" in amended_text
    assert "11.6" in amended_text
    assert "haemolysed" in amended_text

    old = await client.get(f"/api/v1/reports/{v1.id}/pdf", headers=world.headers)
    assert old.status_code == 200
    assert old.content == first.content

    # Public verification: no login, initials only, superseded for v1.
    verify_v1 = await client.get(
        f"/verify/{v1.verification_code}", headers={"Accept": "application/json"}
    )
    assert verify_v1.status_code == 200, verify_v1.text
    body = verify_v1.json()
    assert body["lab_name"] == "Sanjeevani Diagnostics"
    assert body["patient_initials"] == "S. S."
    assert body["sha256"] == v1.sha256
    assert (body["status"], body["is_current"]) == ("superseded", False)
    assert body["superseded_by"] == v2["report_number"]
    assert "Sunita" not in verify_v1.text

    page = await client.get(f"/verify/{v1.verification_code}")
    assert page.headers["content-type"].startswith("text/html")
    assert "SUPERSEDED" in page.text
    assert v1.sha256 in page.text
    assert "Sunita" not in page.text
    async with committing_session() as session:
        v2_row = await session.get(Report, uuid.UUID(v2["id"]))
    current_page = await client.get(
        f"/verify/{v2_row.verification_code}", headers={"Accept": "application/json"}
    )
    assert current_page.json()["status"] == "current"
    assert (await client.get("/verify/not-a-real-code")).status_code == 404
    missing = await client.get("/verify/not-a-real-code", headers={"Accept": "application/json"})
    assert missing.json()["code"] == "report_not_found"


async def test_reports_are_tenant_scoped_and_integrity_checked(
    client: httpx.AsyncClient, settings: Settings, committing_session: Any
) -> None:
    world = await verified_order(committing_session, language="hi")
    await run_pending_jobs(settings)
    async with committing_session() as session:
        report = await session.scalar(select(Report).where(Report.order_id == world.order_id))
        stranger_org = await create_organisation(session)
        stranger = await create_user(session, stranger_org, roles=("admin",))
    assert report is not None
    assert report.language == "hi"
    theirs = bearer_for(stranger)
    for path in (
        f"/api/v1/orders/{world.order_id}/report",
        f"/api/v1/orders/{world.order_id}/reports",
        f"/api/v1/reports/{report.id}/pdf",
    ):
        response = await client.get(path, headers=theirs)
        assert response.status_code == 404, path
        assert response.json()["code"] in {"not_found", "report_not_found"}

    # A PDF changed on disk is refused rather than served.
    store = get_object_store(settings)
    original = await store.get(report.storage_key)
    await store.put(report.storage_key, original + b"%tampered", "application/pdf")
    try:
        tampered = await client.get(f"/api/v1/reports/{report.id}/pdf", headers=world.headers)
        assert tampered.status_code == 500
        assert tampered.json()["code"] == "report_integrity_failed"
    finally:
        await store.put(report.storage_key, original, "application/pdf")


async def test_signed_file_urls_serve_until_tampered_or_expired(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    store = get_object_store(settings)
    await store.put("tests/signed/hello.pdf", b"%PDF-1.7 hello", "application/pdf")
    url = urlsplit(store.presigned_url("tests/signed/hello.pdf", expires_in=60))
    ok = await client.get(f"{url.path}?{url.query}")
    assert ok.status_code == 200
    assert ok.content == b"%PDF-1.7 hello"
    assert ok.headers["content-type"] == "application/pdf"
    assert ok.headers["content-disposition"].startswith("attachment")
    bad = await client.get(f"{url.path}?{url.query.replace('signature=', 'signature=x')}")
    assert bad.status_code == 404
    expired = re.sub(r"expires=\d+", "expires=1000", url.query)
    assert (await client.get(f"{url.path}?{expired}")).status_code == 404
    traversal = await client.get("/files/..%2F..%2Fetc%2Fpasswd?expires=9999999999&signature=x")
    assert traversal.status_code == 404
