"""Finding 5: disabling an organisation or a user, a password change and logout end what
is outstanding at the next request; "organisation disabled" never confirms a password."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.tenancy.models import Organisation
from nidaan.tenancy.service import tenancy_service
from tests.fixtures.objects import TEST_PASSWORD, create_user


async def _login(client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD) -> dict:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_disabling_the_organisation_ends_tokens_refresh_and_api_keys(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    tokens = await _login(client, admin.email)
    key = await client.post(
        "/api/v1/api-keys", json={"name": "agent", "roles": ["technician"]}, headers=_bearer(tokens)
    )
    api_key = {"X-API-Key": key.json()["key"]}
    assert (await client.get("/api/v1/auth/me", headers=api_key)).status_code == 200

    await tenancy_service.set_organisation_active(
        session, organisation, active=False, actor=SYSTEM_ACTOR
    )

    assert (await client.get("/api/v1/auth/me", headers=_bearer(tokens))).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=api_key)).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401

    await tenancy_service.set_organisation_active(
        session, organisation, active=True, actor=SYSTEM_ACTOR
    )
    assert (await client.get("/api/v1/auth/me", headers=_bearer(tokens))).status_code == 200


async def test_disabled_organisation_login_does_not_confirm_the_password(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    await tenancy_service.set_organisation_active(
        session, organisation, active=False, actor=SYSTEM_ACTOR
    )
    right = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": TEST_PASSWORD}
    )
    wrong = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": "not-the-password"}
    )
    unknown = await client.post(
        "/api/v1/auth/token", data={"username": "nobody@example.com", "password": "whatever-1"}
    )
    assert right.status_code == wrong.status_code == unknown.status_code == 401
    bodies = [
        {k: v for k, v in r.json().items() if k != "instance"} for r in (right, wrong, unknown)
    ]
    assert bodies[0] == bodies[1] == bodies[2]
    assert "organisation" not in right.text.lower()


async def test_password_change_ends_existing_access_tokens(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    victim = await create_user(session, organisation, roles=("technician",))
    stolen = await _login(client, victim.email)
    admin_tokens = await _login(client, admin.email)

    changed = await client.patch(
        f"/api/v1/users/{victim.id}",
        json={"password": "a-brand-new-password"},
        headers=_bearer(admin_tokens),
    )
    assert changed.status_code == 200

    assert (await client.get("/api/v1/auth/me", headers=_bearer(stolen))).status_code == 401
    fresh = await _login(client, victim.email, "a-brand-new-password")
    assert (await client.get("/api/v1/auth/me", headers=_bearer(fresh))).status_code == 200


async def test_logout_ends_that_logins_access_token_only(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    laptop = await _login(client, user.email)
    phone = await _login(client, user.email)
    rotated = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    ).json()

    out = await client.post("/api/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert out.status_code == 204

    # Both access tokens of the laptop's login (before and after rotation) are dead ...
    assert (await client.get("/api/v1/auth/me", headers=_bearer(laptop))).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=_bearer(rotated))).status_code == 401
    # ... the phone's login is not.
    assert (await client.get("/api/v1/auth/me", headers=_bearer(phone))).status_code == 200


async def test_deactivated_user_tokens_stop_even_after_reactivation(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    victim = await create_user(session, organisation, roles=("technician",))
    old = await _login(client, victim.email)
    admin_tokens = await _login(client, admin.email)
    for active in (False, True):
        response = await client.patch(
            f"/api/v1/users/{victim.id}", json={"is_active": active}, headers=_bearer(admin_tokens)
        )
        assert response.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=_bearer(old))).status_code == 401
