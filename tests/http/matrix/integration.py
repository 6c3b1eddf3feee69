"""Role matrix of the analyzer integration endpoints (instruments, messages, exceptions)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.schemas import InstrumentCreate
from nidaan.integration.service import integration_service
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import create_branch
from tests.fixtures.orders import system_principal
from tests.http.matrix.base import Case

ADMIN = frozenset({Role.ADMIN})
READERS = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST})
RESOLVERS = frozenset({Role.TECHNICIAN, Role.PATHOLOGIST})

CASES = [
    Case("GET", "/api/v1/instruments", READERS),
    Case(
        "POST",
        "/api/v1/instruments",
        ADMIN,
        {
            "name": "Analyzer {n}",
            "driver": "generic-hl7",
            "transport": "tcp-server",
            "port": 2575,
            "branch_id": "{branch_id}",
        },
    ),
    Case("GET", "/api/v1/instruments/{instrument_id}", READERS),
    Case("PATCH", "/api/v1/instruments/{instrument_id}", ADMIN, {"version": 1, "enabled": False}),
    Case("GET", "/api/v1/instruments/{instrument_id}/status", READERS),
    Case("GET", "/api/v1/instruments/{instrument_id}/messages", READERS),
    Case("GET", "/api/v1/integration/exceptions", READERS),
    Case(
        "POST",
        "/api/v1/integration/exceptions/{exception_id}/resolve",
        RESOLVERS,
        {"action": "discard", "note": "QC sample"},
    ),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A lab with an instrument and one open exception (a result for an unknown tube)."""
    branch = await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB)
    instrument, _ = await integration_service.create_instrument(
        session,
        system_principal(organisation),
        InstrumentCreate(
            name="Matrix analyzer",
            driver="generic-astm",
            transport="tcp-server",
            port=4000,
            branch_id=branch.id,
        ),
    )
    report = await integration_service.ingest_results(
        session,
        organisation.id,
        instrument,
        InstrumentMessage("M1", "ASTM-R", [InstrumentResult("UNKNOWN-1", "1", "5")], "H|"),
    )
    return {
        "branch_id": str(branch.id),
        "instrument_id": str(instrument.id),
        "exception_id": str(report.exceptions[0].id),
    }
