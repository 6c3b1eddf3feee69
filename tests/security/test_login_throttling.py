"""Finding 10: password spraying from one client address is throttled across accounts, in
process by default and through Redis when configured; admins are told of every lock-out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from nidaan.audit.models import AuditLog
from nidaan.config import Settings
from nidaan.events.models import OutboxEvent
from nidaan.kit.rate_limit import MemoryWindowCounter, RedisWindowCounter, client_key
from tests.fixtures.objects import TEST_PASSWORD, create_organisation, create_user

REDIS_URL = "redis://127.0.0.1:6379/15"


def _client(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _spray(client: httpx.AsyncClient, count: int) -> list[int]:
    statuses = []
    for i in range(count):
        response = await client.post(
            "/api/v1/auth/token",
            data={"username": f"spray-{i}-{uuid.uuid4().hex[:6]}@example.com", "password": "x"},
        )
        statuses.append(response.status_code)
    return statuses


async def test_thirty_usernames_from_one_address_are_locked_out_after_the_limit(
    app: FastAPI, settings: Settings, committing_session
) -> None:  # type: ignore[no-untyped-def]
    async with committing_session() as session:
        organisation = await create_organisation(session)
        victim = await create_user(session, organisation)
    limit = settings.login_client_max_failures
    async with _client(app, "203.0.113.7") as attacker, _client(app, "198.51.100.9") as desk:
        statuses = await _spray(attacker, limit - 1)
        # The last allowed failure targets a real account of the lab: its admins are told.
        last = await attacker.post(
            "/api/v1/auth/token", data={"username": victim.email, "password": "wrong-guess"}
        )
        statuses += [last.status_code, *await _spray(attacker, 30 - limit)]
        assert statuses[:limit] == [401] * limit
        assert set(statuses[limit:]) == {429}
        # Locked out even with the right password, before any password is checked ...
        right = await attacker.post(
            "/api/v1/auth/token", data={"username": victim.email, "password": TEST_PASSWORD}
        )
        assert right.status_code == 429
        assert right.json()["code"] == "too_many_login_attempts"
        assert int(right.headers["retry-after"]) == settings.login_client_window_minutes * 60
        # ... while another address of the lab logs in normally.
        ok = await desk.post(
            "/api/v1/auth/token", data={"username": victim.email, "password": TEST_PASSWORD}
        )
        assert ok.status_code == 200

    async with committing_session() as session:
        notices = list(
            await session.scalars(
                select(AuditLog).where(
                    AuditLog.organisation_id == organisation.id,
                    AuditLog.action == "auth.login_locked_out",
                )
            )
        )
        events = list(
            await session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.organisation_id == organisation.id,
                    OutboxEvent.name == "auth.login_locked_out",
                )
            )
        )
    assert len(notices) == 1
    assert notices[0].changes["after"]["kind"] == "client_address"
    assert notices[0].changes["after"]["client_address"] == "203.0.113.7"
    assert len(events) == 1
    assert events[0].payload["kind"] == "client_address"
    assert events[0].payload["failures"] == limit


async def test_account_lockout_is_announced_to_its_organisation(
    app: FastAPI, settings: Settings, committing_session
) -> None:  # type: ignore[no-untyped-def]
    async with committing_session() as session:
        organisation = await create_organisation(session)
        victim = await create_user(session, organisation)
    async with _client(app, "192.0.2.44") as guesser:
        for _ in range(settings.login_max_failures + 2):
            await guesser.post(
                "/api/v1/auth/token", data={"username": victim.email, "password": "nope-nope"}
            )
    async with committing_session() as session:
        events = list(
            await session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.organisation_id == organisation.id,
                    OutboxEvent.name == "auth.login_locked_out",
                )
            )
        )
    assert [e.payload["kind"] for e in events] == ["account"]
    assert events[0].payload["user_id"] == str(victim.id)


@given(st.ip_addresses(v=6))
def test_ipv6_addresses_of_one_line_share_a_key(address) -> None:  # type: ignore[no-untyped-def]
    key = client_key(str(address))
    sibling = address.exploded[:19] + ":ffff:ffff:ffff:ffff"
    if address.ipv4_mapped is None:
        assert client_key(sibling) == key
        assert key.endswith("/64")


def test_ipv4_keys_are_exact() -> None:
    assert client_key("10.0.0.1") != client_key("10.0.0.2")
    assert client_key("::ffff:10.0.0.1") == client_key("10.0.0.1")
    assert client_key(None) == "unknown"


async def test_memory_counter_forgets_after_the_window() -> None:
    counter = MemoryWindowCounter(0.2)
    assert [await counter.hit("a") for _ in range(3)] == [1, 2, 3]
    assert await counter.count("b") == 0
    await asyncio.sleep(0.25)
    assert await counter.count("a") == 0
    assert await counter.hit("a") == 1


@pytest.fixture
async def redis_counter() -> AsyncIterator[RedisWindowCounter]:
    import redis.asyncio as redis

    probe = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await probe.ping()
    except (OSError, redis.RedisError) as exc:
        pytest.skip(
            f"no Redis at {REDIS_URL} ({type(exc).__name__}); the Redis counter is untested"
        )
    finally:
        await probe.aclose()
    counter = RedisWindowCounter(REDIS_URL, 60, prefix=f"nidaan-test:{uuid.uuid4().hex}:")
    yield counter
    await counter.close()


async def test_redis_counter_is_shared_and_exact_under_concurrency(
    redis_counter: RedisWindowCounter,
) -> None:
    other_process = RedisWindowCounter(REDIS_URL, 1.0, prefix=redis_counter.prefix)
    redis_counter.window_ms = 1000
    try:
        counts = await asyncio.gather(
            *(c.hit("10.1.1.1") for c in [redis_counter, other_process] * 10)
        )
        assert sorted(counts) == list(range(1, 21))  # every hit saw a distinct count
        assert await other_process.count("10.1.1.1") == 20
        assert await redis_counter.count("10.1.1.2") == 0
        await asyncio.sleep(1.1)
        assert await redis_counter.count("10.1.1.1") == 0
    finally:
        await other_process.close()


async def test_login_throttle_uses_redis_when_configured(
    redis_counter: RedisWindowCounter, app: FastAPI, settings: Settings
) -> None:
    from nidaan.main import create_app

    # Two API processes sharing one Redis: failures on either count for both.
    second = create_app(settings)
    app.state.login_failures = redis_counter
    second.state.login_failures = RedisWindowCounter(REDIS_URL, 60, prefix=redis_counter.prefix)
    half = settings.login_client_max_failures // 2
    try:
        async with _client(app, "203.0.113.99") as a, _client(second, "203.0.113.99") as b:
            assert await _spray(a, half) == [401] * half
            rest = settings.login_client_max_failures - half
            assert await _spray(b, rest) == [401] * rest
            assert await _spray(a, 1) == [429]
            assert await _spray(b, 1) == [429]
    finally:
        await second.state.login_failures.close()
