"""Fixtures for sync tests: an organisation with a lab, two collection centres and users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import Settings
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Branch, Organisation
from tests.fixtures.objects import (
    bearer_for,
    create_branch,
    create_organisation,
    create_user,
)

SYNC = """
mutation Sync($clientId: ID!, $cursor: String, $ops: [SyncOpInput!], $schema: Int! = 2,
              $branchId: ID, $pullLimit: Int) {
  syncPendingOperations(clientId: $clientId, protocolVersion: 1, schemaVersion: $schema,
                        cursor: $cursor, ops: $ops, branchId: $branchId, pullLimit: $pullLimit) {
    results { opId status reason conflictId expectedSeq entityId }
    changes { seq entity entityId deleted data }
    cursor hasMore reset upgradeRequired clockSuspect serverHlc serverTime
    conflicts { id entity field kind status serverValue clientValue clientChangedBy }
  }
}
"""


@dataclass
class SyncLab:
    organisation: Organisation
    lab: Branch
    cc1: Branch
    cc2: Branch
    desk1: dict[str, str]
    desk2: dict[str, str]
    admin: dict[str, str]
    pathologist: dict[str, str]
    technician: dict[str, str]
    auditor: dict[str, str]


@pytest.fixture
async def live_app(settings: Settings):  # type: ignore[no-untyped-def]
    """The real app on real, committing sessions: sync commits its push before pulling, and
    concurrency between devices needs real transactions. Tests use a fresh organisation."""
    from nidaan.main import create_app

    return create_app(settings, run_worker=False, run_interfaces=False)


@pytest.fixture
async def live_client(live_app):  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=live_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def sync_lab(committing_session: Any) -> SyncLab:
    async with committing_session() as session:
        return await _build_lab(session)


async def _build_lab(session: AsyncSession) -> SyncLab:
    organisation = await create_organisation(session)
    lab = await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB)
    cc1 = await create_branch(session, organisation)
    cc2 = await create_branch(session, organisation)

    async def user(*roles: str, branches: list[Branch] | None = None) -> dict[str, str]:
        return bearer_for(
            await create_user(session, organisation, roles=roles, branches=branches or [])
        )

    return SyncLab(
        organisation=organisation,
        lab=lab,
        cc1=cc1,
        cc2=cc2,
        desk1=await user("front_desk", branches=[cc1]),
        desk2=await user("front_desk", branches=[cc1, cc2]),
        admin=await user("admin"),
        pathologist=await user("pathologist"),
        technician=await user("technician"),
        auditor=await user("auditor"),
    )


async def gql(client: Any, headers: dict[str, str], query: str, **variables: Any) -> Any:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


class Device:
    """A bare protocol speaker (no local store): numbered ops, a clock, a cursor."""

    def __init__(self, client: Any, headers: dict[str, str], branch_id: Any = None) -> None:
        from nidaan.kit.ids import new_id
        from nidaan.sync.hlc import Clock

        self.client = client
        self.headers = headers
        self.id = str(new_id())
        self.clock = Clock(self.id)
        self.seq = 0
        self.cursor: str | None = None
        self.branch_id = str(branch_id) if branch_id else None
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def op(
        self, entity: str, entity_id: Any, operation: str, data: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        from nidaan.kit.ids import new_id

        self.seq += 1
        return {
            "opId": str(new_id()),
            "clientSeq": self.seq,
            "entity": entity,
            "entityId": str(entity_id),
            "operation": operation,
            "data": data,
            "hlc": str(self.clock.tick()),
            **extra,
        }

    async def sync(self, *ops: dict[str, Any], schema: int = 2) -> dict[str, Any]:
        body = await gql(
            self.client,
            self.headers,
            SYNC,
            clientId=self.id,
            cursor=self.cursor,
            ops=list(ops),
            branchId=self.branch_id,
            schema=schema,
        )
        assert "errors" not in body, body
        result = body["data"]["syncPendingOperations"]
        for change in result["changes"]:
            self.rows[(change["entity"], change["entityId"])] = change
        if result["reset"]:
            self.cursor = None  # start over (a real client also drops its synced rows)
        elif result["cursor"] is not None:
            self.cursor = result["cursor"]
        if result["hasMore"] and not result["reset"]:
            await self.sync()  # pull the rest; the caller wants this call's op results
        return result

    def row(self, entity: str, entity_id: Any) -> dict[str, Any]:
        return self.rows[(entity, str(entity_id))]
