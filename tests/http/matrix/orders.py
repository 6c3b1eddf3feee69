"""Role matrix of the orders endpoints (and the sample label/reject endpoints they serve)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.http.matrix.base import ALL, Case
from tests.http.matrix.samples import lab_context

ORDER_WRITERS = frozenset({Role.ADMIN, Role.FRONT_DESK})
REJECTERS = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST, Role.PHLEBOTOMIST})

CASES = [
    Case(
        "POST",
        "/api/v1/orders",
        ORDER_WRITERS,
        {"patient_id": "{patient_id}", "branch_id": "{centre_id}", "items": ["GLU", "ALT"]},
    ),
    Case("GET", "/api/v1/orders", ALL),
    Case("GET", "/api/v1/orders/{order_id}", ALL),
    Case("POST", "/api/v1/orders/{order_id}/tests", ORDER_WRITERS, {"items": ["UREA"]}),
    Case(
        "POST",
        "/api/v1/orders/{order_id}/tests/{order_test_id}/cancel",
        ORDER_WRITERS,
        {"reason": "Patient declined"},
    ),
    Case("GET", "/api/v1/orders/{order_id}/labels", ALL),
    Case("GET", "/api/v1/samples/{accession}/label", ALL),
    Case("POST", "/api/v1/samples/{accession}/reject", REJECTERS, {"reason": "haemolysed"}),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return await lab_context(session, organisation)
