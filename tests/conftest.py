"""Test harness: a real PostgreSQL, one migrated database per xdist worker, and per-test rollback.

The server is the embedded one (pgserver, under var/test) unless NIDAAN_TEST_DATABASE_URL
points at another PostgreSQL whose user may create databases.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ["NIDAAN_MODE"] = "test"
os.environ.setdefault("NIDAAN_DATA_DIR", str(ROOT / "var" / "test"))
# Cheap password hashing keeps the suite fast; production uses Argon2id's defaults.
os.environ.setdefault("NIDAAN_ARGON2_TIME_COST", "1")
os.environ.setdefault("NIDAAN_ARGON2_MEMORY_KIB", "1024")
os.environ.pop("NIDAAN_DATABASE_URL", None)
os.environ.pop("NIDAAN_MIGRATION_DATABASE_URL", None)

import psycopg  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from nidaan.config import Settings, get_settings, reset_settings  # noqa: E402
from nidaan.kit import db  # noqa: E402
from nidaan.kit.embedded import to_psycopg_url  # noqa: E402

pytest_plugins = ["tests.fixtures.objects"]

# Speed is measured in benchmarks/, never asserted: Hypothesis's per-example deadline would
# turn a busy CI machine into flaky failures, so it is off for every property test.
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile("nidaan", deadline=None)
hypothesis_settings.load_profile("nidaan")


def pytest_configure(config: pytest.Config) -> None:
    """The controller starts the embedded server once; xdist workers inherit its URL."""
    if hasattr(config, "workerinput"):
        return
    # Databases are named per run, so two test runs on one server never drop each other's.
    os.environ.setdefault("NIDAAN_TEST_RUN", str(os.getpid()))
    if os.environ.get("NIDAAN_TEST_DATABASE_URL"):
        return
    from nidaan.kit.embedded import embedded_server

    server = embedded_server(Path(os.environ["NIDAAN_DATA_DIR"]) / "pgdata")
    os.environ["NIDAAN_TEST_DATABASE_URL"] = server.get_uri("postgres")


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


#: The tests connect as production does: an unprivileged application role, with the
#: server's admin user owning the schema (it runs the migrations and grants).
APP_ROLE = "nidaan_app"
APP_PASSWORD = "nidaan-app-test"  # a local test server's role


@pytest.fixture(scope="session")
def database_url(worker_id: str) -> Iterator[str]:
    """A freshly migrated database for this xdist worker; the process is pointed at it
    (as the application role; the owner's URL is NIDAAN_MIGRATION_DATABASE_URL)."""
    admin_url = _libpq(to_psycopg_url(os.environ["NIDAAN_TEST_DATABASE_URL"]))
    name = f"nidaan_test_{os.environ.get('NIDAAN_TEST_RUN', os.getpid())}_{worker_id}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(
            f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
    owner_url = _database_in(to_psycopg_url(os.environ["NIDAAN_TEST_DATABASE_URL"]), name)
    url = _as_role(owner_url, APP_ROLE, APP_PASSWORD)
    os.environ["NIDAAN_DATABASE_URL"] = url
    os.environ["NIDAAN_MIGRATION_DATABASE_URL"] = owner_url
    reset_settings()
    db.configure(url)
    from nidaan import migrate

    migrate.upgrade(get_settings())
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_role(url: str, role: str, password: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(username=role, password=password).render_as_string(hide_password=False)


def _database_in(url: str, name: str) -> str:
    """Swap the database name in a URL, keeping host, socket and credentials."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def scratch_database(database_url: str, worker_id: str) -> Iterator[str]:
    """An empty database of its own (for CLI and end-to-end tests), dropped afterwards."""
    admin_url = _libpq(to_psycopg_url(os.environ["NIDAAN_TEST_DATABASE_URL"]))
    name = f"nidaan_scratch_{os.environ.get('NIDAAN_TEST_RUN', os.getpid())}_{worker_id}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _database_in(to_psycopg_url(os.environ["NIDAAN_TEST_DATABASE_URL"]), name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: The settings object of this worker's session (set by the ``settings`` fixture).
_session_settings: list[Settings] = []


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    _session_settings[:] = [get_settings()]
    return _session_settings[0]


@pytest.fixture(autouse=True)
def _one_settings_object() -> Iterator[None]:
    """Tests monkeypatch the session's settings object and the code reads ``get_settings()``:
    a test that reloads settings (a CLI ``--port``, a new environment variable) must not leave
    the rest of this worker's tests reading another object."""
    yield
    if _session_settings and get_settings() is not _session_settings[0]:
        reset_settings(_session_settings[0])


@pytest.fixture(scope="session")
def superuser_conninfo(database_url: str) -> str:
    """libpq URL of the test database as a superuser (to bypass triggers when tampering)."""
    return _libpq(os.environ["NIDAAN_MIGRATION_DATABASE_URL"])


@pytest.fixture
async def session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session whose every commit is a savepoint inside a transaction rolled back at the end."""
    engine = db.get_engine(settings)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        test_session = AsyncSession(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield test_session
        finally:
            await test_session.close()
            await transaction.rollback()


@pytest.fixture
def committing_session(settings: Settings):  # type: ignore[no-untyped-def]
    """Factory of real, committing transactions (use a fresh organisation; data stays)."""
    return lambda: db.session_scope(settings)


@pytest.fixture
async def app(settings: Settings, session: AsyncSession):  # type: ignore[no-untyped-def]
    from nidaan.deps import get_session
    from nidaan.main import create_app

    application = create_app(settings)

    async def _test_session() -> AsyncIterator[AsyncSession]:
        # Like the real dependency, a failed request changes nothing: each request runs in
        # a savepoint that is released on success and rolled back on error.
        request_transaction = await session.begin_nested()
        try:
            yield session
        except BaseException:
            await request_transaction.rollback()
            raise
        else:
            # After-commit work (audit chaining) needs committed data; in a rolled-back
            # test it is done by the tests that need it (audit_service.flush).
            await request_transaction.commit()

    application.dependency_overrides[get_session] = _test_session
    return application


@pytest.fixture
async def client(app):  # type: ignore[no-untyped-def]
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
