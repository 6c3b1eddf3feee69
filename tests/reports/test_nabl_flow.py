"""The NABL report elements end to end: from the lab's own data, through the real services
and the job queue, to the text of the issued PDF; and the versions' statuses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from nidaan.auth.service import auth_service
from nidaan.config import Settings
from nidaan.kit.jobs import run_pending_jobs
from nidaan.reports.models import Report
from nidaan.reports.sample import signature_png
from nidaan.reports.service import reports_service
from nidaan.results.service import results_service
from nidaan.samples.service import samples_service
from nidaan.tenancy.enums import BranchKind
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_branch, create_organisation
from tests.fixtures.results import enter_and_verify, make_lab, place_order, principal_of
from tests.reports.pdf_text import pdftotext, words
from tests.reports.test_nabl_report import _images_on

pytestmark = pytest.mark.usefixtures("job_app_open")


@dataclass
class Day:
    organisation_id: uuid.UUID
    order_id: uuid.UUID
    lab: Any
    placed: Any
    results: dict[str, Any]


async def received_order(committing_session: Any) -> Day:
    """An order collected at a collection centre and received, lipaemic, at the lab."""
    async with committing_session() as session:
        organisation = await create_organisation(session, name="Sanjeevani Diagnostics")
        organisation.accreditation = "NABL accredited (ISO 15189:2022), certificate MC-5820"
        lab = await make_lab(session, organisation)
        lab.branch.name = "Sanjeevani central laboratory"
        centre = await create_branch(session, organisation, kind=BranchKind.COLLECTION_CENTRE)
        centre.name = "Kothrud collection centre"
        pathologist = lab.users["path"]
        pathologist.registration_number = "MMC 2009/04/1234"
        await auth_service.set_signature(
            session,
            principal_of(lab.users["admin"]),
            pathologist.id,
            signature_png(pathologist.full_name),
            "image/png",
        )
        plt = await create_catalog_test(
            session,
            organisation,
            code="PLT",
            name="Platelet count",
            department="Haematology",
            unit="10^3/uL",
            method="Electrical impedance",
            ranges=[{"low": 150, "high": 410}],
        )
        potassium = await create_catalog_test(
            session,
            organisation,
            code="K",
            name="Potassium",
            unit="mmol/L",
            method="ISE, indirect",
            ranges=[{"low": "3.5", "high": "5.1"}],
        )
        vitamin_d = await create_catalog_test(
            session,
            organisation,
            code="VITD",
            name="Vitamin D, 25-hydroxy",
            department="Serology",
            unit="ng/mL",
            method="LC-MS/MS",
            accredited=False,
            referral_lab="Metropolis Healthcare, Mumbai",
        )
        patient = await create_patient(session, organisation, full_name="Asha Verma")
        from nidaan.samples.enums import SampleStatus

        placed = await place_order(
            session, lab, patient, [plt, potassium, vitamin_d], sample_status=SampleStatus.COLLECTED
        )
        placed.sample.collected_at_branch_id = centre.id
        await session.flush()
        await samples_service.receive(
            session,
            principal_of(lab.users["tech"]),
            placed.sample.id,
            branch_id=lab.branch.id,
            condition=["lipaemic"],
            remarks="Mildly lipaemic; accepted.",
        )
        return Day(organisation.id, placed.order.id, lab, placed, {})


async def current_text(client: httpx.AsyncClient, day: Day) -> list[str]:
    response = await client.get(
        f"/api/v1/orders/{day.order_id}/report", headers=day.lab.headers("front")
    )
    assert response.status_code == 200, response.text
    return [words(page) for page in pdftotext(response.content, layout=True)]


async def versions(committing_session: Any, day: Day) -> list[Report]:
    async with committing_session() as session:
        return list(
            await session.scalars(
                select(Report)
                .where(Report.order_id == day.order_id)
                .order_by(Report.report_version)
            )
        )


async def test_provisional_then_final_then_corrected_with_every_nabl_element(
    client: httpx.AsyncClient, settings: Settings, committing_session: Any
) -> None:
    day = await received_order(committing_session)
    async with committing_session() as session:
        day.results["PLT"] = await enter_and_verify(session, day.lab, day.placed["PLT"], "238")
        day.results["K"] = await enter_and_verify(session, day.lab, day.placed["K"], "6.9")
    await run_pending_jobs(settings)
    assert await versions(committing_session, day) == []  # not complete: no report by itself

    # A pathologist asks for a provisional report while vitamin D is at the referral lab.
    asked = await client.post(
        f"/api/v1/orders/{day.order_id}/reports/provisional", headers=day.lab.headers("path")
    )
    assert asked.status_code == 202, asked.text
    assert asked.json()["pending_tests"] == ["Vitamin D, 25-hydroxy"]
    async with committing_session() as session:  # the request's event, committed
        await reports_service.request_provisional(
            session, principal_of(day.lab.users["path"]), day.order_id
        )
    await run_pending_jobs(settings)
    [v1] = await versions(committing_session, day)
    assert (v1.status, v1.amended, v1.report_version) == ("provisional", False, 1)
    pages = await current_text(client, day)
    everything = " ".join(pages)
    for page in pages:
        assert "PROVISIONAL REPORT · Version 1" in page
    assert "Tests pending: Vitamin D, 25-hydroxy" in everything
    assert "Collected at: Kothrud collection centre" in everything
    assert "Tested at: Sanjeevani central laboratory" in everything
    assert "Lipaemic" in everything
    assert "Mildly lipaemic; accepted." in everything
    assert "Platelet count 238.0 10³/µL 150.0 - 410.0" in everything
    assert "Method: Electrical impedance" in everything
    assert "Dr. Meera Iyer MD (Pathology) Reg. No. MMC 2009/04/1234" in everything
    issued = await client.get(
        f"/api/v1/orders/{day.order_id}/report", headers=day.lab.headers("front")
    )
    assert _images_on(issued.content) == 1  # her uploaded signature, printed from the store
    assert "NABL accredited" in everything

    async with committing_session() as session:
        day.results["VITD"] = await enter_and_verify(session, day.lab, day.placed["VITD"], "18")
    await run_pending_jobs(settings)
    v1, v2 = await versions(committing_session, day)
    assert (v2.status, v2.amended, v2.supersedes_id) == ("final", False, v1.id)
    pages = await current_text(client, day)
    everything = " ".join(pages)
    assert all("FINAL REPORT · Version 2" in page for page in pages)
    assert f"This final report replaces provisional report {v1.report_number}" in everything
    assert "Vitamin D, 25-hydroxy * 18" in everything
    assert "Referred test, performed at Metropolis Healthcare, Mumbai" in everything
    assert "* Not in NABL scope" in everything
    assert "Tests pending" not in everything

    async with committing_session() as session:
        corrected = await results_service.correct(
            session,
            principal_of(day.lab.users["path"]),
            day.results["K"].id,
            "4.8",
            None,
            "Re-run on a fresh sample; the first was haemolysed.",
        )
        await results_service.verify(session, principal_of(day.lab.users["path2"]), corrected.id)
    await run_pending_jobs(settings)
    *_, v3 = await versions(committing_session, day)
    assert (v3.status, v3.amended, v3.changes) == ("corrected", True, "Potassium: corrected")
    assert v3.amendment_reason == "Re-run on a fresh sample; the first was haemolysed."
    pages = await current_text(client, day)
    everything = " ".join(pages)
    assert all("CORRECTED REPORT · Version 3" in page for page in pages)
    assert "What changed: Potassium: result corrected" in everything
    assert "Why: Re-run on a fresh sample; the first was haemolysed." in everything
    listed = await client.get(
        f"/api/v1/orders/{day.order_id}/reports", headers=day.lab.headers("front")
    )
    assert [(i["report_version"], i["status"]) for i in listed.json()["items"]] == [
        (3, "corrected"),
        (2, "final"),
        (1, "provisional"),
    ]


async def test_provisional_request_refusals(
    client: httpx.AsyncClient, settings: Settings, committing_session: Any
) -> None:
    day = await received_order(committing_session)
    nothing_verified = await client.post(
        f"/api/v1/orders/{day.order_id}/reports/provisional", headers=day.lab.headers("path")
    )
    assert (nothing_verified.status_code, nothing_verified.json()["code"]) == (
        404,
        "report_not_ready",
    )
    async with committing_session() as session:
        for code, value in (("PLT", "238"), ("K", "4.1"), ("VITD", "31")):
            await enter_and_verify(session, day.lab, day.placed[code], value)
    complete = await client.post(
        f"/api/v1/orders/{day.order_id}/reports/provisional", headers=day.lab.headers("path")
    )
    assert (complete.status_code, complete.json()["code"]) == (409, "report_nothing_pending")
    await run_pending_jobs(settings)
    [final] = await versions(committing_session, day)
    assert final.status == "final"
