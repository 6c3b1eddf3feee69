"""A reported order to map: lab, patient (with ABHA), two verified results, a report row."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import get_settings
from nidaan.kit.ids import new_id
from nidaan.kit.storage import get_object_store
from nidaan.kit.time import utcnow
from nidaan.reports.models import Report
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.results import Lab, enter_and_verify, make_lab, place_order

PDF = b"%PDF-1.7 stand-in report for FHIR tests"


@dataclass
class Reported:
    lab: Lab
    patient: Any
    order: Any
    report: Report
    results: dict[str, Any]


async def reported_order(
    session: AsyncSession,
    organisation: Organisation,
    *,
    patient: Any = None,
    lab: Lab | None = None,
    abha_number: str | None = "91-1234-5678-9012",
    abha_address: str | None = "sunita.sharma@sbx",
    with_report: bool = True,
) -> Reported:
    lab = lab or await make_lab(session, organisation)
    hb = await create_catalog_test(
        session,
        organisation,
        code=f"HB{new_id().hex[-4:]}",
        name="Haemoglobin",
        loinc="718-7",
        department="Haematology",
        unit="g/dL",
        specimen_type="whole_blood",
        ranges=[{"low": 12, "high": 15}],
    )
    glu = await create_catalog_test(
        session,
        organisation,
        code=f"GL{new_id().hex[-4:]}",
        name="Glucose, fasting",
        loinc="1558-6",
        unit="mg/dL",
        ranges=[{"low": 70, "high": 99}],
    )
    if patient is None:
        patient = await create_patient(
            session,
            organisation,
            full_name="Sunita Sharma",
            sex="female",
            mobile="9876543210",
            abha_number=abha_number,
            abha_address=abha_address,
        )
    placed = await place_order(session, lab, patient, [hb, glu])
    results = {
        "HB": await enter_and_verify(session, lab, placed[hb.code], "10.8"),
        "GLU": await enter_and_verify(session, lab, placed[glu.code], "126"),
    }
    report = None
    if with_report:
        report_id = new_id()
        key = f"reports/{organisation.id}/{placed.order.id}/{report_id}--fhir.pdf"
        await get_object_store(get_settings()).put(key, PDF, "application/pdf")
        report = Report(
            id=report_id,
            organisation_id=organisation.id,
            order_id=placed.order.id,
            report_number=f"RPT-T-{report_id.hex[-8:]}",
            report_version=1,
            is_current=True,
            amended=False,
            language="en",
            storage_key=key,
            sha256=hashlib.sha256(PDF).hexdigest(),
            page_count=1,
            size_bytes=len(PDF),
            verification_code=secrets.token_urlsafe(16),
            created_at=utcnow(),
        )
        session.add(report)
        await session.flush()
    return Reported(lab, patient, placed.order, report, results)  # type: ignore[arg-type]
