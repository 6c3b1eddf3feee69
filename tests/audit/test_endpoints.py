"""Happy paths of the audit API (the lead's role-matrix tests cover who may call it)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user


async def test_auditor_lists_entries_and_verifies_own_organisation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    auditor = await create_user(session, organisation, roles=("auditor",))
    for org in (organisation, other_organisation):
        for i in range(3):
            await audit_service.record(
                session,
                organisation_id=org.id,
                actor=SYSTEM_ACTOR,
                action="sample.received",
                entity_type="sample",
                entity_id=f"s-{i}",
                after={"status": "received"},
            )
    headers = bearer_for(auditor)

    response = await client.get(
        "/api/v1/audit/entries",
        params={"entity_type": "sample", "entity_id": "s-1", "limit": 5},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pagination"] == {"total_count": 1, "page": 1, "limit": 5, "max_page": 1}
    (item,) = body["items"]
    assert item["organisation_id"] == str(organisation.id)
    assert (item["action"], item["entity_id"]) == ("sample.received", "s-1")
    assert item["changes"] == {"before": {}, "after": {"status": "received"}}

    response = await client.post("/api/v1/audit/verify", headers=headers)
    assert response.status_code == 200, response.text
    verified = response.json()
    assert verified["ok"] is True
    assert verified["organisations_checked"] == 1
    assert verified["first_broken"] is None
    assert verified["entries_checked"] >= 3  # plus whatever creating the user recorded


async def test_non_auditor_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    technician = await create_user(session, organisation, roles=("technician",))
    response = await client.get("/api/v1/audit/entries", headers=bearer_for(technician))
    assert response.status_code == 403
