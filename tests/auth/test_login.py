"""Login, refresh rotation, logout and throttling through the real HTTP API."""

from __future__ import annotations

import httpx
import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.models import RefreshToken
from nidaan.config import Settings
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import TEST_PASSWORD, create_user


async def login(
    client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD
) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


async def test_login_returns_short_lived_jwt_and_refresh_token(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation, settings: Settings
) -> None:
    user = await create_user(session, organisation, roles=("technician", "pathologist"))

    response = await login(client, user.email.upper())  # e-mail is case-insensitive

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_minutes * 60
    claims = jwt.decode(
        body["access_token"], settings.jwt_secret(), algorithms=["HS256"], issuer="nidaan"
    )
    assert claims["sub"] == str(user.id)
    assert claims["org"] == str(organisation.id)
    assert claims["roles"] == ["pathologist", "technician"]
    assert claims["exp"] - claims["iat"] == settings.access_token_minutes * 60
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["label"] == user.email
    stored = await session.scalar(select(RefreshToken).where(RefreshToken.user_id == user.id))
    assert stored is not None
    assert body["refresh_token"] not in stored.token_hash


async def test_wrong_password_is_a_problem_document(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)

    response = await login(client, user.email, "wrong-password")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_credentials"
    assert problem["status"] == 401
    assert problem["type"].endswith("/invalid-credentials")
    assert "access_token" not in problem


async def test_unknown_user_and_inactive_user_get_the_same_answer(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    inactive = await create_user(session, organisation, is_active=False)
    unknown = await login(client, "nobody@example.com")
    disabled = await login(client, inactive.email)
    assert unknown.status_code == disabled.status_code == 401
    assert unknown.json()["detail"] == disabled.json()["detail"]


async def test_repeated_failures_are_throttled_even_for_the_right_password(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation, settings: Settings
) -> None:
    user = await create_user(session, organisation)
    for _ in range(settings.login_max_failures):
        assert (await login(client, user.email, "guess-guess")).status_code == 401

    response = await login(client, user.email)

    assert response.status_code == 429
    assert response.json()["code"] == "too_many_login_attempts"
    assert int(response.headers["retry-after"]) == settings.login_lockout_minutes * 60


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    first = (await login(client, user.email)).json()

    second = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]

    # The spent token comes back (stolen copy): refused, and the new one dies with it.
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_refresh_token"
    after = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert after.status_code == 401


async def test_logout_revokes_the_refresh_token(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    tokens = (await login(client, user.email)).json()

    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    ).status_code == 204

    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 401


async def test_missing_garbage_and_forged_tokens_are_401(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    forged = jwt.encode(
        {
            "sub": str(user.id),
            "org": str(organisation.id),
            "iss": "nidaan",
            "exp": 9999999999,
            "typ": "access",
        },
        "not-our-secret-not-our-secret-not-our-secret",
        algorithm="HS256",
    )
    for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": f"Bearer {forged}"}):
        response = await client.get("/api/v1/auth/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_deactivated_user_loses_access_immediately(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    victim = await create_user(session, organisation, roles=("technician",))
    victim_tokens = (await login(client, victim.email)).json()
    admin_token = (await login(client, admin.email)).json()["access_token"]

    response = await client.patch(
        f"/api/v1/users/{victim.id}",
        json={"is_active": False},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 200

    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {victim_tokens['access_token']}"}
    )
    assert me.status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": victim_tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
