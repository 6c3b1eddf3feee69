"""Role matrix of the quality-control endpoints."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.integration.schemas import InstrumentCreate
from nidaan.integration.service import integration_service
from nidaan.kit.time import utcnow
from nidaan.qc.schemas import LotCreate, MaterialCreate
from nidaan.qc.service import qc_service
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.objects import create_branch
from tests.fixtures.orders import system_principal
from tests.http.matrix.base import Case

READERS = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR})
CONFIGURERS = frozenset({Role.ADMIN, Role.PATHOLOGIST})
BENCH = frozenset({Role.TECHNICIAN, Role.PATHOLOGIST})

CASES = [
    Case("GET", "/api/v1/qc/materials", READERS),
    Case("POST", "/api/v1/qc/materials", CONFIGURERS, {"name": "Control {n}", "level": "1"}),
    Case("GET", "/api/v1/qc/lots", READERS),
    Case(
        "POST",
        "/api/v1/qc/lots",
        CONFIGURERS,
        {
            "material_id": "{material_id}",
            "lot_number": "L{n}",
            "expires_on": "{expires_on}",
            "instrument_id": "{instrument_id}",
            "test_id": "{test_id}",
            "control_id": "QC-{n}",
            "target_source": "established",
        },
    ),
    Case("GET", "/api/v1/qc/lots/{lot_id}", READERS),
    Case("POST", "/api/v1/qc/lots/{lot_id}/expire", CONFIGURERS),
    Case("GET", "/api/v1/qc/rules/{test_id}", READERS),
    Case("PUT", "/api/v1/qc/rules/{test_id}", CONFIGURERS, {"rules": {"10x": "off"}}),
    Case("GET", "/api/v1/qc/results", READERS),
    Case("POST", "/api/v1/qc/results", BENCH, {"lot_id": "{lot_id}", "value": "101"}),
    Case("GET", "/api/v1/qc/unmatched", READERS),
    Case("GET", "/api/v1/qc/violations", READERS),
    Case("GET", "/api/v1/qc/violations/{violation_id}", READERS),
    Case(
        "POST",
        "/api/v1/qc/violations/{violation_id}/corrective-actions",
        BENCH,
        {"action": "recalibration", "note": "Recalibrated"},
    ),
    Case("GET", "/api/v1/qc/status", READERS),
    Case("GET", "/api/v1/qc/charts/{lot_id}.svg", READERS),
    Case("GET", "/api/v1/qc/charts/{lot_id}.png", READERS),
    Case("GET", "/api/v1/qc/summary/{month}.csv", READERS),
    Case("GET", "/api/v1/qc/summary/{month}.pdf", READERS),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An analyzer with a glucose control lot whose one result broke 1-3s."""
    branch = await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB)
    caller = system_principal(organisation)
    test = await create_catalog_test(session, organisation)
    instrument, _ = await integration_service.create_instrument(
        session,
        caller,
        InstrumentCreate(
            name="QC analyzer",
            driver="generic-astm",
            transport="tcp-server",
            port=5100,
            branch_id=branch.id,
        ),
    )
    material = await qc_service.create_material(
        session, caller, MaterialCreate(name="Matrix control", level="1")
    )
    lot = await qc_service.create_lot(
        session,
        caller,
        LotCreate(
            material_id=material.id,
            lot_number="M1",
            expires_on=date.today() + timedelta(days=30),
            instrument_id=instrument.id,
            test_id=test.id,
            control_id="QCM",
            target_source="manufacturer",
            mean=Decimal("100"),
            sd=Decimal("4"),
        ),
    )
    recorded = await qc_service.record_manual(session, caller, lot.id, Decimal("114"), None)
    return {
        "material_id": str(material.id),
        "expires_on": (date.today() + timedelta(days=60)).isoformat(),
        "instrument_id": str(instrument.id),
        "test_id": str(test.id),
        "lot_id": str(lot.id),
        "violation_id": str(recorded.violations[-1].id),
        "month": utcnow().strftime("%Y-%m"),
    }
