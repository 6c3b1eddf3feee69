"""Role matrix of the catalogue endpoints: every role reads, only admins change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_panel, create_reference_range
from tests.http.matrix.base import ALL, Case

ADMIN = frozenset({Role.ADMIN})

CASES = [
    Case("GET", "/api/v1/catalog/tests", ALL),
    Case("GET", "/api/v1/catalog/tests/{test_id}", ALL),
    Case(
        "POST",
        "/api/v1/catalog/tests",
        ADMIN,
        {
            "code": "N{n}",
            "name": "New test",
            "department": "Biochemistry",
            "specimen_type": "serum",
            "container": "sst_yellow",
            "result_type": "numeric",
            "unit": "mg/dL",
        },
    ),
    Case("PATCH", "/api/v1/catalog/tests/{test_id}", ADMIN, {"version": 1, "name": "Renamed"}),
    Case(
        "POST",
        "/api/v1/catalog/tests/{test_id}/ranges",
        ADMIN,
        {"low": "1", "high": "5", "sex": "female"},
    ),
    Case("DELETE", "/api/v1/catalog/tests/{test_id}/ranges/{range_id}", ADMIN),
    Case("GET", "/api/v1/catalog/panels", ALL),
    Case("GET", "/api/v1/catalog/panels/{panel_id}", ALL),
    Case(
        "POST",
        "/api/v1/catalog/panels",
        ADMIN,
        {"code": "PN{n}", "name": "New panel", "price": "300", "tests": ["MTX"]},
    ),
    Case("PATCH", "/api/v1/catalog/panels/{panel_id}", ADMIN, {"version": 1, "price": "350"}),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    test = await create_catalog_test(session, organisation, code="MTX")
    band = await create_reference_range(session, test)
    panel = await create_panel(session, organisation, [test])
    return {
        "test_id": str(test.id),
        "test_code": test.code,
        "range_id": str(band.id),
        "panel_id": str(panel.id),
    }
