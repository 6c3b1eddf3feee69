"""One organisation never sees another's rows: 404 by id, absent from lists."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_branch, create_user


async def test_other_organisations_records_are_invisible(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    ours = await create_user(session, organisation, roles=("admin",))
    theirs = await create_user(session, other_organisation, roles=("admin",))
    their_branch = await create_branch(session, other_organisation, code="THEIRS")
    our_branch = await create_branch(session, organisation, code="OURS")
    their_key = (
        await client.post(
            "/api/v1/api-keys",
            json={"name": "theirs", "roles": ["technician"]},
            headers=bearer_for(theirs),
        )
    ).json()
    await audit_service.record(
        session,
        organisation_id=other_organisation.id,
        actor=SYSTEM_ACTOR,
        action="secret.thing",
        entity_type="sample",
        entity_id="their-sample",
    )
    headers = bearer_for(ours)

    for path in (f"/api/v1/users/{theirs.id}", f"/api/v1/branches/{their_branch.id}"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    for method, path, body in (
        ("PATCH", f"/api/v1/users/{theirs.id}", {"full_name": "Hijacked"}),
        ("PATCH", f"/api/v1/branches/{their_branch.id}", {"name": "Hijacked"}),
        ("DELETE", f"/api/v1/api-keys/{their_key['id']}", None),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 404, path
    # The foreign key still works for its owner: nothing changed.
    assert (
        await client.get("/api/v1/auth/me", headers={"X-API-Key": their_key["key"]})
    ).status_code == 200

    users = (await client.get("/api/v1/users", params={"limit": 100}, headers=headers)).json()
    assert {u["organisation_id"] for u in users["items"]} == {str(organisation.id)}
    branches = (await client.get("/api/v1/branches", params={"limit": 100}, headers=headers)).json()
    assert [b["id"] for b in branches["items"]] == [str(our_branch.id)]
    keys = (await client.get("/api/v1/api-keys", headers=headers)).json()
    assert keys["items"] == []
    audit = (
        await client.get("/api/v1/audit/entries", params={"limit": 100}, headers=headers)
    ).json()
    assert all(e["organisation_id"] == str(organisation.id) for e in audit["items"])
    assert "their-sample" not in {e["entity_id"] for e in audit["items"]}
    organisation_view = (await client.get("/api/v1/organisation", headers=headers)).json()
    assert organisation_view["id"] == str(organisation.id)
