"""Role matrix of the sync REST reads (the protocol itself is GraphQL, tested in tests/sync)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.kit.ids import new_id
from nidaan.sync.models import SyncConflict
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_patient
from tests.http.matrix.base import Case

REVIEWERS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST, Role.AUDITOR})

CASES = [
    Case("GET", "/api/v1/sync/conflicts", REVIEWERS),
    Case("GET", "/api/v1/sync/conflicts/{conflict_id}", REVIEWERS),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    patient = await create_patient(session, organisation)
    conflict = SyncConflict(
        organisation_id=organisation.id,
        entity="patient",
        entity_id=patient.id,
        field="full_name",
        kind="LWW_REVIEW",
        status="OPEN",
        server_value="Asha Verma",
        client_value="Aasha Varma",
        op_id=new_id(),
    )
    session.add(conflict)
    await session.flush()
    return {"conflict_id": str(conflict.id)}
