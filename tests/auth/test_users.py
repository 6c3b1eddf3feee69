"""User administration: audited changes, encrypted mobile with blind-index search, branch limits."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.auth.models import User
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_branch, create_user

NEW_USER = {
    "email": "Priya.Nair@Example.com",
    "full_name": "Priya Nair",
    "password": "a-long-enough-password",
    "roles": ["technician"],
    "mobile": "+91 98765-43210",
}


async def test_create_user_is_audited_with_request_id_and_no_secrets(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))

    response = await client.post(
        "/api/v1/users",
        json=NEW_USER,
        headers={**bearer_for(admin), "X-Request-ID": "req-create-user-1"},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "priya.nair@example.com"
    assert body["mobile_masked"] == "+91******3210"
    assert response.headers["x-request-id"] == "req-create-user-1"
    entry = await session.scalar(select(AuditLog).where(AuditLog.entity_id == body["id"]))
    assert entry is not None
    assert (entry.action, entry.actor_id, entry.request_id) == (
        "user.created",
        admin.id,
        "req-create-user-1",
    )
    assert entry.changes["after"]["mobile"] == "[redacted]"
    assert "password" not in str(entry.changes) or "a-long-enough-password" not in str(
        entry.changes
    )
    assert "9876543210" not in str(entry.changes)


async def test_mobile_is_encrypted_at_rest_and_searchable_by_blind_index(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    created = (await client.post("/api/v1/users", json=NEW_USER, headers=bearer_for(admin))).json()

    raw = (
        await session.execute(
            text("SELECT mobile_encrypted, mobile_index FROM users WHERE id = :id"),
            {"id": created["id"]},
        )
    ).one()
    assert raw.mobile_encrypted.startswith("v1.")
    assert "9876543210" not in raw.mobile_encrypted
    assert "9876543210" not in raw.mobile_index
    user = await session.get(User, created["id"])
    assert user is not None
    assert user.mobile == "+919876543210"

    found = await client.get(
        "/api/v1/users", params={"mobile": "09876543210"}, headers=bearer_for(admin)
    )
    assert [u["id"] for u in found.json()["items"]] == [created["id"]]
    none = await client.get(
        "/api/v1/users", params={"mobile": "9876500000"}, headers=bearer_for(admin)
    )
    assert none.json()["items"] == []
    bad = await client.get("/api/v1/users", params={"mobile": "12"}, headers=bearer_for(admin))
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_input"


async def test_duplicate_email_is_409_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    assert (
        await client.post("/api/v1/users", json=NEW_USER, headers=bearer_for(admin))
    ).status_code == 201
    before = await session.scalar(
        select(func.count()).where(AuditLog.organisation_id == organisation.id)
    )

    again = await client.post(
        "/api/v1/users", json={**NEW_USER, "full_name": "Other"}, headers=bearer_for(admin)
    )

    assert again.status_code == 409
    assert again.json()["code"] == "email_taken"
    after = await session.scalar(
        select(func.count()).where(AuditLog.organisation_id == organisation.id)
    )
    assert before == after
    assert after >= 1  # the first creation was audited


async def test_update_roles_and_branch_limits_with_before_after_audit(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    branch = await create_branch(session, organisation, code="CC9")
    user = await create_user(session, organisation, roles=("technician",))

    response = await client.patch(
        f"/api/v1/users/{user.id}",
        json={"roles": ["technician", "pathologist"], "branch_ids": [str(branch.id)]},
        headers=bearer_for(admin),
    )

    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["pathologist", "technician"]
    assert response.json()["branch_ids"] == [str(branch.id)]
    me = await client.get("/api/v1/auth/me", headers=bearer_for(user))
    assert me.json()["branch_ids"] == [str(branch.id)]
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(user.id), AuditLog.action == "user.updated"
        )
    )
    assert entry is not None
    assert entry.changes["before"] == {"roles": ["technician"], "branch_ids": []}
    assert entry.changes["after"] == {
        "roles": ["pathologist", "technician"],
        "branch_ids": [str(branch.id)],
    }


async def test_admin_cannot_lock_themselves_out(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    for change in ({"is_active": False}, {"roles": ["technician"]}):
        response = await client.patch(
            f"/api/v1/users/{admin.id}", json=change, headers=bearer_for(admin)
        )
        assert response.status_code == 422


async def test_branch_of_another_organisation_cannot_be_assigned(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    foreign = await create_branch(session, other_organisation)
    response = await client.post(
        "/api/v1/users",
        json={**NEW_USER, "branch_ids": [str(foreign.id)]},
        headers=bearer_for(admin),
    )
    assert response.status_code == 422
    assert response.json()["unknown"] == [str(foreign.id)]
