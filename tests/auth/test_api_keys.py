"""API keys: shown once, stored hashed, usable as bearer or X-API-Key, revocable."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.auth.models import ApiKey
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user


async def test_api_key_lifecycle(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    headers = bearer_for(admin)

    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "Sync agent CC1", "roles": ["front_desk", "phlebotomist"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["key"]
    assert secret.startswith("nid_" + body["prefix"] + "_")

    row = await session.scalar(select(ApiKey).where(ApiKey.id == body["id"]))
    assert row is not None
    assert secret not in row.key_hash
    assert row.key_hash != secret

    listed = await client.get("/api/v1/api-keys", headers=headers)
    assert [k["id"] for k in listed.json()["items"]] == [body["id"]]
    assert "key" not in listed.json()["items"][0]  # never shown again

    for auth in ({"X-API-Key": secret}, {"Authorization": f"Bearer {secret}"}):
        me = await client.get("/api/v1/auth/me", headers=auth)
        assert me.status_code == 200, me.text
        assert me.json()["kind"] == "api_key"
        assert me.json()["roles"] == ["front_desk", "phlebotomist"]

    # A key carries only its roles: it cannot administer users.
    assert (await client.get("/api/v1/users", headers={"X-API-Key": secret})).status_code == 403

    revoked = await client.delete(f"/api/v1/api-keys/{body['id']}", headers=headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await client.get("/api/v1/auth/me", headers={"X-API-Key": secret})).status_code == 401

    actions = list(
        await session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == body["id"]).order_by(AuditLog.id)
        )
    )
    assert actions == ["api_key.created", "api_key.revoked"]


async def test_api_keys_cannot_be_admin_and_wrong_secret_fails(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    headers = bearer_for(await create_user(session, organisation, roles=("admin",)))
    refused = await client.post(
        "/api/v1/api-keys", json={"name": "x", "roles": ["admin"]}, headers=headers
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "validation_error"

    body = (
        await client.post(
            "/api/v1/api-keys", json={"name": "x", "roles": ["technician"]}, headers=headers
        )
    ).json()
    tampered = body["key"][:-2] + ("AA" if not body["key"].endswith("AA") else "BB")
    assert (await client.get("/api/v1/auth/me", headers={"X-API-Key": tampered})).status_code == 401
