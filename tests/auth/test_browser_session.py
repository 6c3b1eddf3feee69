"""Browser sessions for the web app: refresh token in an httpOnly cookie, CSRF, logout, limits."""

from __future__ import annotations

from datetime import timedelta
from http.cookies import SimpleCookie

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth import cookies
from nidaan.auth.models import RefreshToken
from nidaan.config import Settings
from nidaan.kit.time import utcnow
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import TEST_PASSWORD, create_user

SESSION = "/api/v1/auth/session"


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str | bool]]:
    """Every Set-Cookie of a response: name -> attributes (lower-case keys) and value."""
    found: dict[str, dict[str, str | bool]] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            attributes: dict[str, str | bool] = {"value": morsel.value}
            attributes.update({k: v for k, v in morsel.items() if v})
            found[name] = attributes
    return found


async def browser_login(client: httpx.AsyncClient, email: str, **headers: str) -> httpx.Response:
    return await client.post(
        SESSION, json={"email": email, "password": TEST_PASSWORD}, headers=headers
    )


def csrf_header(client: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies.get(cookies.CSRF_COOKIE, "")}


async def test_login_keeps_the_refresh_token_out_of_reach_of_scripts(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation, settings: Settings
) -> None:
    user = await create_user(session, organisation, roles=("front_desk",))

    response = await browser_login(client, user.email, origin="http://testserver")

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "idle_minutes", "user"}
    assert body["idle_minutes"] == settings.web_idle_minutes
    assert body["user"]["email"] == user.email
    assert body["user"]["roles"] == ["front_desk"]
    assert response.headers["cache-control"] == "no-store"
    jar = set_cookies(response)
    refresh = jar[cookies.REFRESH_COOKIE]
    assert refresh["httponly"] is True
    assert refresh["samesite"] == "strict"
    assert refresh["path"] == SESSION
    assert "secure" not in refresh  # plain HTTP here; see the HTTPS test
    assert int(str(refresh["max-age"])) == settings.web_session_idle_hours * 3600
    csrf = jar[cookies.CSRF_COOKIE]
    assert "httponly" not in csrf
    assert csrf["samesite"] == "strict"
    assert csrf["value"] == cookies.csrf_token(settings, str(refresh["value"]))
    stored = await session.scalar(select(RefreshToken).where(RefreshToken.user_id == user.id))
    assert stored is not None
    lifetime = stored.expires_at - stored.created_at
    assert lifetime == timedelta(hours=settings.web_session_idle_hours)
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200


async def test_cookies_are_secure_over_https(
    app: FastAPI, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://lab.example") as https:
        response = await browser_login(https, user.email)
    jar = set_cookies(response)
    assert jar[cookies.REFRESH_COOKIE]["secure"] is True
    assert jar[cookies.CSRF_COOKIE]["secure"] is True


async def test_refresh_needs_the_csrf_token_and_rotates_the_cookie(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    await browser_login(client, user.email)
    first = client.cookies.get(cookies.REFRESH_COOKIE, path=SESSION)

    missing = await client.post(f"{SESSION}/refresh")
    wrong = await client.post(f"{SESSION}/refresh", headers={"X-CSRF-Token": "0" * 43})
    assert (missing.status_code, missing.json()["code"]) == (403, "csrf_failed")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "csrf_failed")

    refreshed = await client.post(f"{SESSION}/refresh", headers=csrf_header(client))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["access_token"]
    second = client.cookies.get(cookies.REFRESH_COOKIE, path=SESSION)
    assert second
    assert second != first


async def test_a_replayed_session_cookie_ends_the_session(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation, settings: Settings
) -> None:
    user = await create_user(session, organisation)
    await browser_login(client, user.email)
    stolen = client.cookies.get(cookies.REFRESH_COOKIE, path=SESSION)
    assert stolen is not None
    ok = await client.post(f"{SESSION}/refresh", headers=csrf_header(client))
    assert ok.status_code == 200

    replay = await client.post(
        f"{SESSION}/refresh",
        headers={
            "Cookie": f"{cookies.REFRESH_COOKIE}={stolen}",
            "X-CSRF-Token": cookies.csrf_token(settings, stolen),
        },
    )
    assert (replay.status_code, replay.json()["code"]) == (401, "invalid_refresh_token")
    # The legitimate holder's newer token belongs to the revoked family too.
    rows = (
        await session.scalars(select(RefreshToken).where(RefreshToken.user_id == user.id))
    ).all()
    assert rows
    assert all(r.revoked_at is not None for r in rows)


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site", "origin": "http://testserver"},
    ],
)
async def test_cross_site_requests_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    headers: dict[str, str],
) -> None:
    user = await create_user(session, organisation)
    login = await browser_login(client, user.email, **headers)
    assert (login.status_code, login.json()["code"]) == (403, "csrf_failed")
    assert cookies.REFRESH_COOKIE not in set_cookies(login)

    await browser_login(client, user.email)
    for action in ("refresh", "logout"):
        answer = await client.post(
            f"{SESSION}/{action}", headers={**csrf_header(client), **headers}
        )
        assert (answer.status_code, answer.json()["code"]) == (403, "csrf_failed"), action
    # Nothing was revoked by the refused logout.
    assert (await client.post(f"{SESSION}/refresh", headers=csrf_header(client))).status_code == 200


async def test_logout_revokes_and_clears_the_cookies(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation, settings: Settings
) -> None:
    user = await create_user(session, organisation)
    await browser_login(client, user.email)
    token = client.cookies.get(cookies.REFRESH_COOKIE, path=SESSION)
    assert token is not None

    out = await client.post(f"{SESSION}/logout", headers=csrf_header(client))

    assert out.status_code == 204
    jar = set_cookies(out)
    assert jar[cookies.REFRESH_COOKIE]["max-age"] == "0"
    assert jar[cookies.CSRF_COOKIE]["max-age"] == "0"
    again = await client.post(
        f"{SESSION}/refresh",
        headers={
            "Cookie": f"{cookies.REFRESH_COOKIE}={token}",
            "X-CSRF-Token": cookies.csrf_token(settings, token),
        },
    )
    assert again.status_code == 401
    # Logging out twice (a second tab) is harmless.
    assert (await client.post(f"{SESSION}/logout")).status_code == 204


async def test_a_session_ends_after_its_maximum_age_however_often_refreshed(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation, settings: Settings
) -> None:
    user = await create_user(session, organisation)
    await browser_login(client, user.email)
    assert (await client.post(f"{SESSION}/refresh", headers=csrf_header(client))).status_code == 200
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.used_at.is_not(None))
        .values(created_at=utcnow() - timedelta(hours=settings.web_session_max_hours, minutes=1))
    )

    late = await client.post(f"{SESSION}/refresh", headers=csrf_header(client))

    assert (late.status_code, late.json()["code"]) == (401, "invalid_refresh_token")


async def test_wrong_password_sets_no_cookie(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    user = await create_user(session, organisation)
    response = await client.post(SESSION, json={"email": user.email, "password": "nope-nope"})
    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")
    assert set_cookies(response) == {}


async def test_refresh_without_a_session_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{SESSION}/refresh", headers={"X-CSRF-Token": "x"})
    assert (response.status_code, response.json()["code"]) == (401, "invalid_refresh_token")


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=st.from_regex(r"[a-z]{1,10}\.[a-z]{2,5}(:[0-9]{2,5})?", fullmatch=True),
    other=st.from_regex(r"[a-z]{1,10}\.[a-z]{2,5}(:[0-9]{2,5})?", fullmatch=True),
)
def test_origin_check_accepts_only_our_own_host(scheme: str, host: str, other: str) -> None:
    assert cookies.same_origin(f"{scheme}://{host}", "same-origin", host)
    assert cookies.same_origin(None, None, host)
    assert cookies.same_origin(f"{scheme}://{other}", None, host) is (other == host)
    assert not cookies.same_origin(f"{scheme}://{host}", "cross-site", host)
