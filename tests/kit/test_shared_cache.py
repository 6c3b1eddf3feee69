"""The shared cache: memory and Redis behave alike, and a change made through one process is
seen by another at once (two real processes against one database and one Redis).

The Redis tests use the machine's Redis (NIDAAN_TEST_REDIS_URL, default 127.0.0.1:6379) and
skip, saying so, when it is not reachable.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from nidaan.auth.principal import Principal
from nidaan.billing.configuration import billing_configuration
from nidaan.billing.enums import RateListKind
from nidaan.billing.schemas import RateListCreate, RateListItemIn, RateListUpdate
from nidaan.config import Settings, get_settings, reset_settings
from nidaan.kit import cache as cache_module
from nidaan.kit.cache import Cache, MemoryCache, RedisCache
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.objects import bearer_for, create_organisation, create_user

REDIS_URL = os.environ.get("NIDAAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_reachable() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        return True
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(
    not _redis_reachable(), reason=f"Redis is not reachable at {REDIS_URL}"
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    made: Cache = MemoryCache() if request.param == "memory" else RedisCache(REDIS_URL)
    yield made
    await made.close()


# ---- the port ------------------------------------------------------------------------


async def test_entries_expire_and_generations_count(cache: Cache) -> None:
    family = f"test:{uuid.uuid4()}"
    assert await cache.generation(family) == 0
    await cache.set(f"{family}:0:a", "1", ttl=60)
    await cache.set(f"{family}:0:short", "2", ttl=0.05)
    assert await cache.get(f"{family}:0:a") == "1"
    await asyncio.sleep(0.1)
    assert await cache.get(f"{family}:0:short") is None
    assert await cache.bump(family) == 1
    assert await cache.bump(family) == 2
    assert await cache.generation(family) == 2


@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("set"), st.sampled_from("abc"), st.text(max_size=8)),
            st.tuples(st.just("bump"), st.just(""), st.just("")),
            st.tuples(st.just("get"), st.sampled_from("abc"), st.just("")),
        ),
        max_size=30,
    )
)
@hypothesis_settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_a_bump_hides_every_older_entry(
    cache: Cache, ops: list[tuple[str, str, str]]
) -> None:
    """Whatever the interleaving, a read sees exactly what was stored since the last bump."""
    family = f"prop:{uuid.uuid4()}"
    model: dict[str, str] = {}
    for op, key, value in ops:
        generation = await cache.generation(family)
        if op == "set":
            await cache.set(f"{family}:{generation}:{key}", value, ttl=60)
            model[key] = value
        elif op == "bump":
            await cache.bump(family)
            model.clear()
        else:
            assert await cache.get(f"{family}:{generation}:{key}") == model.get(key)


async def test_an_unreachable_redis_is_a_miss_not_an_error() -> None:
    dead = RedisCache("redis://127.0.0.1:1/0")
    try:
        assert await dead.get("anything") is None
        await dead.set("anything", "x", ttl=1)  # logged, not raised
    finally:
        await dead.close()


# ---- two processes -------------------------------------------------------------------

READER = """
import asyncio, sys, uuid
from decimal import Decimal
from nidaan.billing import pricing
from nidaan.config import get_settings
from nidaan.kit import db

async def main():
    settings = get_settings()
    organisation_id, test_id = uuid.UUID(sys.argv[1]), uuid.UUID(sys.argv[2])
    for _ in sys.stdin:
        async with db.session_scope(settings) as session:
            book = await pricing.price_book(session, organisation_id, None)
        print(book.price("test", test_id, Decimal("-1")), flush=True)

asyncio.run(main())
"""


@pytest.fixture
async def redis_settings(settings: Settings) -> AsyncIterator[Settings]:
    """This process configured with NIDAAN_REDIS_URL (as a second API process would be)."""
    os.environ["NIDAAN_REDIS_URL"] = REDIS_URL
    reset_settings()
    try:
        yield get_settings()
    finally:
        os.environ.pop("NIDAAN_REDIS_URL", None)
        reset_settings(settings)
        await cache_module.close_caches()


class Child:
    """Another process running ``script`` against the same database and the same Redis:
    each line written to it is one request, each line it prints one answer."""

    def __init__(self, script: str, *args: str) -> None:
        env = {**os.environ, "NIDAAN_REDIS_URL": REDIS_URL}
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def ask(self, line: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, "the other process ended"
        return answer.strip()

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


class Reader(Child):
    """Another process pricing an organisation's test from its default rate list."""

    def __init__(self, organisation_id: uuid.UUID, test_id: uuid.UUID) -> None:
        super().__init__(READER, str(organisation_id), str(test_id))

    def price(self) -> Decimal:
        return Decimal(self.ask("price"))


@needs_redis
async def test_a_price_change_in_one_process_is_seen_by_another_at_once(
    redis_settings: Settings, committing_session, superuser_conninfo: str
) -> None:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        test = await create_catalog_test(session, organisation, code="GLU", price=Decimal("150"))
        user = await create_user(session, organisation, roles=("admin",))
        caller = Principal(
            kind="user",
            id=user.id,
            organisation_id=organisation.id,
            roles=frozenset({"admin"}),
            label=user.email,
        )
        rate_list = await billing_configuration.create_rate_list(
            session,
            caller,
            RateListCreate(
                code="STD",
                name="Standard",
                kind=RateListKind.DEFAULT,
                items=[RateListItemIn(code="GLU", price=Decimal("140"))],
            ),
        )

    reader = Reader(organisation.id, test.id)
    try:
        assert reader.price() == Decimal("140.00")
        # The reader's answer now comes from Redis: a change behind the service's back (raw
        # SQL, no invalidation) is not seen until the entry expires...
        with psycopg.connect(superuser_conninfo, autocommit=True) as conn:
            conn.execute(
                "UPDATE rate_list_items SET price = 1 WHERE rate_list_id = %s", (rate_list.id,)
            )
        assert reader.price() == Decimal("140.00")
        # ... while a change through the service (this process) is seen by the reader at once.
        async with committing_session() as session:
            await billing_configuration.update_rate_list(
                session,
                caller,
                rate_list.id,
                RateListUpdate(items=[RateListItemIn(code="GLU", price=Decimal("120"))]),
            )
        assert reader.price() == Decimal("120.00")
        # A list made inactive stops pricing (the catalogue's price applies) at once too.
        async with committing_session() as session:
            await billing_configuration.update_rate_list(
                session, caller, rate_list.id, RateListUpdate(is_active=False)
            )
        assert reader.price() == Decimal("-1")
    finally:
        reader.stop()


@needs_redis
async def test_an_uncommitted_change_is_never_shared(
    redis_settings: Settings, committing_session
) -> None:
    """A transaction that changed the prices reads its own rows and caches nothing; its
    rollback leaves the shared entry as it was."""
    from nidaan.billing import pricing

    async with committing_session() as session:
        organisation = await create_organisation(session)
        test = await create_catalog_test(session, organisation, code="TSH", price=Decimal("450"))
        user = await create_user(session, organisation, roles=("admin",))
        caller = Principal(
            kind="user",
            id=user.id,
            organisation_id=organisation.id,
            roles=frozenset({"admin"}),
            label=user.email,
        )
        rate_list = await billing_configuration.create_rate_list(
            session,
            caller,
            RateListCreate(
                code="STD",
                name="Standard",
                kind=RateListKind.DEFAULT,
                items=[RateListItemIn(code="TSH", price=Decimal("400"))],
            ),
        )
    reader = Reader(organisation.id, test.id)
    try:
        assert reader.price() == Decimal("400.00")

        async def change_then_fail() -> None:
            async with committing_session() as session:
                await billing_configuration.update_rate_list(
                    session,
                    caller,
                    rate_list.id,
                    RateListUpdate(items=[RateListItemIn(code="TSH", price=Decimal("5"))]),
                )
                book = await pricing.price_book(session, organisation.id, None)
                assert book.price("test", test.id, Decimal("-1")) == Decimal("5.00")
                raise RuntimeError("roll back")

        with pytest.raises(RuntimeError, match="roll back"):
            await change_then_fail()
        assert reader.price() == Decimal("400.00")
        async with committing_session() as session:
            stored = await session.scalar(
                text("SELECT price FROM rate_list_items WHERE rate_list_id = :id"),
                {"id": rate_list.id},
            )
        assert stored == Decimal("400.00")
    finally:
        reader.stop()


AUTHENTICATOR = """
import asyncio, sys
from nidaan.auth.errors import NotAuthenticated
from nidaan.auth.service import auth_service
from nidaan.config import get_settings
from nidaan.kit import db

async def main():
    settings = get_settings()
    for token in sys.stdin:
        async with db.session_scope(settings) as session:
            try:
                principal = await auth_service.authenticate(session, settings, token.strip())
                print("ok", principal.id, flush=True)
            except NotAuthenticated:
                print("refused", flush=True)

asyncio.run(main())
"""


@needs_redis
async def test_a_revocation_in_one_process_is_seen_by_another_at_once(
    redis_settings: Settings, committing_session
) -> None:
    """Ending a user's sessions through one process refuses their access token in another
    on its very next request (the check reads the database on every request, see
    docs/operations.md: revocation is deliberately not cached)."""
    from nidaan.auth.service import auth_service
    from nidaan.auth.tokens import issue_access_token

    async with committing_session() as session:
        organisation = await create_organisation(session)
        user = await create_user(session, organisation, roles=("admin",))
    token = issue_access_token(redis_settings, user)
    other = Child(AUTHENTICATOR)
    try:
        assert other.ask(token).split() == ["ok", str(user.id)]
        async with committing_session() as session:
            await auth_service.end_all_sessions(session, await session.merge(user))
        assert other.ask(token) == "refused"
    finally:
        other.stop()


# ---- two real API servers --------------------------------------------------------------

NIDAAN = str(Path(sys.executable).parent / "nidaan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``nidaan serve --role api`` on a port of its own, on the test database and Redis."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [NIDAAN, "serve", "--role", "api", "--port", str(self.port)],
            env={**os.environ, "NIDAAN_REDIS_URL": REDIS_URL},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, "the server exited"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@pytest.fixture
def two_servers(redis_settings: Settings) -> Iterator[tuple[Server, Server]]:
    servers = (Server(), Server())
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@needs_redis
async def test_a_catalogue_change_through_one_server_is_seen_by_the_other_at_once(
    two_servers: tuple[Server, Server], committing_session, superuser_conninfo: str
) -> None:
    first, second = two_servers
    async with committing_session() as session:
        organisation = await create_organisation(session)
        test = await create_catalog_test(session, organisation, code="GLU", price=Decimal("150"))
        user = await create_user(session, organisation, roles=("admin",))
        other_org = await create_organisation(session)
        stranger = await create_user(session, other_org, roles=("admin",))
    headers = bearer_for(user)

    async with httpx.AsyncClient(headers=headers, timeout=30) as http:

        async def prices(server: Server, auth: dict[str, str] | None = None) -> dict[str, str]:
            response = await http.get(f"{server.url}/api/v1/catalog/tests", headers=auth)
            assert response.status_code == 200, response.text
            return {t["code"]: t["price"] for t in response.json()["items"]}

        assert await prices(second) == {"GLU": "150.00"}  # cached in Redis now
        # Served from the cache: a change behind the service's back is not seen (until
        # the entry expires) by either server ...
        with psycopg.connect(superuser_conninfo, autocommit=True) as conn:
            conn.execute("UPDATE catalog_tests SET price = 1 WHERE id = %s", (test.id,))
        assert await prices(second) == {"GLU": "150.00"}
        assert await prices(first) == {"GLU": "150.00"}
        # ... while a change through the API of one is seen by the other at once.
        listed = await http.get(f"{first.url}/api/v1/catalog/tests/{test.id}")
        changed = await http.patch(
            f"{first.url}/api/v1/catalog/tests/{test.id}",
            json={"version": listed.json()["version"], "price": "175"},
        )
        assert changed.status_code == 200, changed.text
        assert await prices(second) == {"GLU": "175.00"}
        assert await prices(first) == {"GLU": "175.00"}
        # The cache is per organisation: another lab sees its own (empty) catalogue.
        assert await prices(second, bearer_for(stranger)) == {}
