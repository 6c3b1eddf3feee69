"""Role matrix of the reports endpoints (PDFs and versions; /verify/{code} is public)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.config import get_settings
from nidaan.kit.ids import new_id
from nidaan.kit.storage import get_object_store
from nidaan.kit.time import utcnow
from nidaan.reports.models import Report
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_branch
from tests.fixtures.results import Lab, place_order
from tests.http.matrix.base import Case

READERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR})

CASES = [
    # 404 report_not_ready is a normal answer while an order has no report yet.
    Case("GET", "/api/v1/orders/{order_id}/report", READERS, ok_statuses=(200, 404)),
    Case("GET", "/api/v1/orders/{order_id}/reports", READERS),
    Case("GET", "/api/v1/reports/{report_id}/pdf", READERS, ok_statuses=(200, 404)),
    # The matrix order has no verified result: 404 report_not_ready once past the role check.
    Case(
        "POST",
        "/api/v1/orders/{order_id}/reports/provisional",
        frozenset({Role.PATHOLOGIST}),
        ok_statuses=(404,),
    ),
    # Resend the report's message: 201 queued, or 409 when the patient has not agreed to
    # the channel (a normal answer past the role check).
    Case(
        "POST",
        "/api/v1/reports/{report_id}/notifications",
        frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST}),
        body={"channel": "whatsapp"},
        ok_statuses=(201, 409),
    ),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An order with an issued report (a stored stand-in PDF; rendering is tested elsewhere)."""
    lab = Lab(organisation, await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB))
    test = await create_catalog_test(session, organisation)
    patient = await create_patient(session, organisation)
    placed = await place_order(session, lab, patient, [test])
    data = b"%PDF-1.7 role matrix stand-in"
    report_id = new_id()
    key = f"reports/{organisation.id}/{placed.order.id}/{report_id}--matrix.pdf"
    await get_object_store(get_settings()).put(key, data, "application/pdf")
    session.add(
        Report(
            id=report_id,
            organisation_id=organisation.id,
            order_id=placed.order.id,
            report_number=f"RPT-M-{report_id.hex[-8:]}",
            report_version=1,
            is_current=True,
            amended=False,
            language="en",
            storage_key=key,
            sha256=hashlib.sha256(data).hexdigest(),
            page_count=1,
            size_bytes=len(data),
            verification_code=secrets.token_urlsafe(16),
            created_at=utcnow(),
        )
    )
    await session.flush()
    return {"order_id": str(placed.order.id), "report_id": str(report_id)}
