"""Engine and sessions: one request or job is one transaction, and only the edge commits.

Services receive an ``AsyncSession`` and ``flush()``; the API dependency and the job
runner commit or roll back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
import structlog
from sqlalchemy import (
    ColumnElement,
    Integer,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from nidaan.config import Settings
from nidaan.kit import tracing
from nidaan.kit.embedded import OWNER_ROLE, embedded_database_url, to_psycopg_url

_log = structlog.get_logger("nidaan.db")
T = TypeVar("T")
_engine: AsyncEngine | None = None
_autonomous_engines: dict[str, AsyncEngine] = {}
_sessionmaker: async_sessionmaker[AsyncSession] | None = None
_url: str | None = None


def database_url(settings: Settings, *, create: bool = True) -> str:
    """The SQLAlchemy URL the application connects with: the configured one, or the
    embedded server's (as its unprivileged application role).

    ``create=False``: never initialise an embedded cluster or database that is not there
    (``EmbeddedDatabaseMissing``); commands that only read use it.
    """
    global _url
    if _url is None:
        if settings.database_url:
            _url = to_psycopg_url(settings.database_url)
        else:
            _url = embedded_database_url(settings.data_dir / "pgdata", create=create)
    return _url


def migration_url(settings: Settings) -> str:
    """The URL of the role that owns the schema and runs migrations: the configured
    ``NIDAAN_MIGRATION_DATABASE_URL`` (else the application's own URL), or the embedded
    server's superuser."""
    if settings.database_url:
        return to_psycopg_url(settings.migration_database_url or settings.database_url)
    return embedded_database_url(settings.data_dir / "pgdata", role=OWNER_ROLE)


def configure(url: str) -> None:
    """Point this process at ``url`` (tests and CLI use it before anything connects)."""
    global _url, _engine, _sessionmaker
    _url = url
    _engine = None
    _sessionmaker = None


def get_engine(settings: Settings) -> AsyncEngine:
    global _engine
    if _engine is None:
        # hide_parameters: a failed statement's error (and so its log line) never carries the
        # values bound to it (mobile numbers, names), only the SQL text. No pre-ping: it is
        # a round trip on every checkout (every request); a connection the server dropped
        # fails its statement once, and that disconnect error makes the pool discard every
        # connection opened before it, so the next checkout connects afresh.
        _engine = create_async_engine(
            database_url(settings), pool_pre_ping=False, pool_size=10, hide_parameters=True
        )
        tracing.instrument_engine(_engine)
    return _engine


def engines() -> dict[str, AsyncEngine]:
    """The engines this process has opened, by pool name (for the pool metrics)."""
    found = {"main": _engine} if _engine is not None else {}
    for index, engine in enumerate(_autonomous_engines.values()):
        found[f"autonomous{index or ''}"] = engine
    return found


def sync_engine(settings: Settings, *, owner: bool = False) -> Engine:
    """A synchronous engine, for Alembic (``owner``: as the schema owner) and CLI work."""
    return create_engine(
        migration_url(settings) if owner else database_url(settings), hide_parameters=True
    )


def get_sessionmaker(settings: Settings) -> async_sessionmaker[AsyncSession]:
    global _sessionmaker
    if _sessionmaker is None:
        _sessionmaker = async_sessionmaker(get_engine(settings), expire_on_commit=False)
    return _sessionmaker


# ---- work done right after commit ---------------------------------------------------
#
# Some follow-up work must see the committed data and must not hold locks inside the
# business transaction, e.g. chaining the audit entries the transaction wrote. Writers
# register a hook; ``commit()`` runs the hooks after COMMIT. A hook's failure is logged, not
# raised (the business change is committed); such work must also be caught up later by a
# periodic job, so nothing depends on a hook having run.

AfterCommitHook = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "nidaan.after_commit_hooks"
TRANSACTION_STATE = "nidaan.transaction_state"


def add_after_commit_hook(session: AsyncSession, key: str, hook: AfterCommitHook) -> None:
    """Run ``hook`` once after this transaction commits (idempotent per ``key``)."""
    session.info.setdefault(_AFTER_COMMIT, {}).setdefault(key, hook)


def transaction_state(session: AsyncSession, key: str, factory: Callable[[], Any]) -> Any:
    """Per-transaction scratch state, dropped at commit or rollback."""
    return session.info.setdefault(TRANSACTION_STATE, {}).setdefault(key, factory())


ACTOR_LABEL = "nidaan.actor_label"

# ---- rows changed by set-based SQL ------------------------------------------------------
#
# Change capture (sync) sees ORM flushes. A service that updates many rows with one UPDATE
# (and sets the new values on the loaded objects itself) reports them here instead.

BulkChangeListener = Callable[[Session, Sequence[Any], Sequence[str]], None]
_BULK_CHANGE_LISTENERS: list[BulkChangeListener] = []


def on_bulk_change(listener: BulkChangeListener) -> BulkChangeListener:
    _BULK_CHANGE_LISTENERS.append(listener)
    return listener


def note_bulk_change(session: AsyncSession, rows: Sequence[Any], fields: Sequence[str]) -> None:
    """``rows`` (loaded ORM objects) had ``fields`` changed by set-based SQL."""
    for listener in _BULK_CHANGE_LISTENERS:
        listener(session.sync_session, rows, fields)


def any_of(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column = ANY(:array)``: ``column IN (...)`` with one parameter.

    An ``IN`` list is one parameter per value, so each list length is another statement
    for the driver to parse (psycopg caches only short texts) and for the server to plan;
    with an array the text is the same for every call (and can be prepared). Use it on hot
    paths that look up a batch of keys.
    """
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


async def set_on_locked_rows(session: AsyncSession, rows: Sequence[Any], **values: Any) -> None:
    """Set ``values`` on ``rows`` (ORM objects of one versioned model, already locked by the
    caller) with one UPDATE instead of one per row.

    The lock makes the ORM's per-row version check pointless; each row's version still moves
    on by one and ``updated_at`` is stamped, the loaded objects get the new values, and change
    capture is told (``note_bulk_change``).
    """
    if not rows:
        return
    table = type(rows[0]).__table__
    found = await session.execute(
        update(table)
        .where(any_of(table.c.id, [row.id for row in rows]))
        .values(**values, version=table.c.version + 1, updated_at=func.now())
        .returning(table.c.id, table.c.version, table.c.updated_at)
        # The rows get their new values below; the ORM's own synchronisation would evaluate
        # the WHERE clause against every object in the session (thousands in an analyzer
        # batch) for nothing.
        .execution_options(synchronize_session=False)
    )
    moved = {row.id: row for row in found}
    for row in rows:
        for name, value in values.items():
            set_committed_value(row, name, value)
        set_committed_value(row, "version", moved[row.id].version)
        set_committed_value(row, "updated_at", moved[row.id].updated_at)
    note_bulk_change(session, rows, (*values, "version", "updated_at"))


async def set_if(session: AsyncSession, row: Any, expected: dict[str, Any], **values: Any) -> bool:
    """Set ``values`` on ``row`` (a loaded ORM object of a versioned model) with one
    ``UPDATE .. WHERE <expected> RETURNING``, if its columns still hold ``expected``.

    A compare-and-set instead of lock, re-read and write: a row another transaction changed
    first is left alone (the UPDATE waits for that transaction, then finds the condition
    false) and False is returned. As ``set_on_locked_rows``: the version moves on by one,
    ``updated_at`` is stamped, the object gets the new values and change capture is told.
    """
    table = type(row).__table__
    condition = [table.c.id == row.id, *(table.c[k] == v for k, v in expected.items())]
    moved = (
        await session.execute(
            update(table)
            .where(*condition)
            .values(**values, version=table.c.version + 1, updated_at=func.now())
            .returning(table.c.version, table.c.updated_at)
        )
    ).one_or_none()
    if moved is None:
        return False
    for name, value in values.items():
        set_committed_value(row, name, value)
    set_committed_value(row, "version", moved.version)
    set_committed_value(row, "updated_at", moved.updated_at)
    note_bulk_change(session, [row], (*values, "version", "updated_at"))
    return True


@dataclass(frozen=True)
class SetIf(Generic[T]):
    """A ``set_if`` planned on a loaded row, with what to make of it once it held (e.g. its
    audit entry, built from the row's new values): see ``set_if_each``."""

    row: Any
    expected: dict[str, Any]
    values: dict[str, Any]
    applied: Callable[[], T]


async def set_if_each(session: AsyncSession, changes: Sequence[SetIf[T]]) -> list[T]:
    """``set_if`` for several rows in one statement (one data-modifying CTE per row) instead
    of one round trip each; ``applied()`` of each change that held, in the given order.

    Each UPDATE is still a compare-and-set on its own row (it waits for a transaction that
    changed the row first, then re-checks ``expected``).
    """
    if not changes:
        return []
    parts = []
    for n, change in enumerate(changes):
        table = type(change.row).__table__
        moved = (
            update(table)
            .where(
                table.c.id == change.row.id,
                *(table.c[k] == v for k, v in change.expected.items()),
            )
            .values(**change.values, version=table.c.version + 1, updated_at=func.now())
            .returning(literal(n, Integer).label("n"), table.c.version, table.c.updated_at)
            .cte(f"set_if_{n}")
        )
        parts.append(select(moved.c.n, moved.c.version, moved.c.updated_at))
    statement = parts[0] if len(parts) == 1 else union_all(*parts)
    held = {row.n: row for row in await session.execute(statement)}
    done = []
    for n, change in enumerate(changes):
        if n not in held:
            continue
        for name, value in change.values.items():
            set_committed_value(change.row, name, value)
        set_committed_value(change.row, "version", held[n].version)
        set_committed_value(change.row, "updated_at", held[n].updated_at)
        note_bulk_change(session, [change.row], (*change.values, "version", "updated_at"))
        done.append(change.applied())
    return done


async def insert_together(session: AsyncSession, rows: Sequence[Any]) -> None:
    """Insert new ORM objects of several tables with one statement, where a flush sends one
    INSERT per table (an order's tubes and its tests): one data-modifying CTE per table, in
    the order the tables first appear in ``rows`` (foreign keys are checked at the end of
    the statement, so children may refer to parents of the same call).

    Columns an object leaves unset get their column default; server defaults are read back
    (only ``now()`` ones are supported: the statement returns the transaction's ``now()``).
    The objects (transient: not added to the session) are then persistent and clean in the
    session, as if flushed, and change capture is told (``note_bulk_change``).
    """
    if not rows:
        return
    await session.flush()  # what they refer to, pending in the session, goes first
    groups: dict[Table, list[dict[str, Any]]] = {}
    stamped: list[tuple[Any, list[str]]] = []
    for row in rows:
        if not inspect(row).transient:
            raise ValueError(f"{row!r} is already in a session")
        mapper = inspect(type(row))
        values: dict[str, Any] = {}
        server_side: list[str] = []
        for attr in mapper.column_attrs:
            (column,) = attr.columns
            if attr.key in row.__dict__:
                values[column.name] = row.__dict__[attr.key]
            elif mapper.version_id_col is not None and column is mapper.version_id_col:
                values[column.name] = 1  # as the ORM's INSERT does
            elif column.default is not None:
                default = column.default
                values[column.name] = default.arg(None) if default.is_callable else default.arg
            elif column.server_default is not None:
                if str(getattr(column.server_default, "arg", "")) != "now()":
                    raise ValueError(f"{column}: only now() server defaults are read back")
                server_side.append(attr.key)
                continue
            else:
                values[column.name] = None
            setattr(row, attr.key, values[column.name])
        groups.setdefault(mapper.local_table, []).append(values)
        stamped.append((row, server_side))
    inserts = [
        insert(table).values(values).cte(f"new_{table.name}") for table, values in groups.items()
    ]
    # Data-modifying CTEs run to completion whether read or not; ``now()`` is the value every
    # ``now()`` default of the statement took.
    now = (await session.execute(select(func.now()).add_cte(*inserts))).scalar_one()
    by_model: dict[type[Any], list[Any]] = {}
    for row, server_side in stamped:
        for key in server_side:
            setattr(row, key, now)
        make_transient_to_detached(row)
        session.add(row)
        by_model.setdefault(type(row), []).append(row)
    for model, members in by_model.items():
        note_bulk_change(session, members, [attr.key for attr in inspect(model).column_attrs])


def set_actor_label(session: AsyncSession, label: str) -> None:
    """Name who is writing in this session (change capture records it with each field)."""
    session.info[ACTOR_LABEL] = label


async def commit(session: AsyncSession) -> None:
    """Commit, then run the after-commit hooks."""
    await session.commit()
    hooks = session.info.pop(_AFTER_COMMIT, None) or {}
    session.info.pop(TRANSACTION_STATE, None)
    for key, hook in hooks.items():
        try:
            await hook()
        except Exception:
            _log.exception("after_commit_hook_failed", hook=key)


@event.listens_for(Session, "after_soft_rollback")
def _forget_pending_work(session: Session, previous_transaction: Any) -> None:
    # Only the outermost rollback: a rolled-back SAVEPOINT leaves the transaction's other
    # work, and what must follow its commit, in place.
    if previous_transaction.parent is None:
        session.info.pop(_AFTER_COMMIT, None)
        session.info.pop(TRANSACTION_STATE, None)


@asynccontextmanager
async def session_scope(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block succeeds, roll back when it raises."""
    async with get_sessionmaker(settings)() as session:
        try:
            yield session
            await commit(session)
        except BaseException:
            await session.rollback()
            raise


def autonomous_engine(session: AsyncSession, *, synchronous_commit: bool = True) -> AsyncEngine:
    """A small separate pool on ``session``'s database, for short work committed on its own.

    Separate so that requests holding a main-pool connection can never starve it.
    ``synchronous_commit=False``: a pool whose sessions commit without waiting for the disk
    (set when connecting, instead of a ``SET LOCAL`` round trip per transaction); only for
    work whose result is used by a later, synchronously committed transaction.
    """
    bind = session.bind
    engine = bind if isinstance(bind, AsyncEngine) else bind.engine  # type: ignore[union-attr]
    url = engine.url.render_as_string(hide_password=False)
    key = url if synchronous_commit else f"{url}#async-commit"
    if key not in _autonomous_engines:
        options = {} if synchronous_commit else {"options": "-c synchronous_commit=off"}
        _autonomous_engines[key] = create_async_engine(
            url, pool_size=4, max_overflow=8, hide_parameters=True, connect_args=options
        )
        tracing.instrument_engine(_autonomous_engines[key])
    return _autonomous_engines[key]


async def dispose() -> None:
    global _engine, _sessionmaker
    for autonomous in _autonomous_engines.values():
        await autonomous.dispose()
    _autonomous_engines.clear()
    if _engine is not None:
        await _engine.dispose()
    _engine = None
    _sessionmaker = None


def libpq_conninfo(url: str) -> str:
    """Turn a SQLAlchemy psycopg URL back into a libpq URL (for procrastinate's pool)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


async def raw_connection(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under ``session``'s transaction (for transactional enqueue)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver


async def get_in_organisation(
    session: AsyncSession, model: type[Any], row_id: Any, organisation_id: Any
) -> Any | None:
    """A row by primary key if it belongs to ``organisation_id``, else None.

    Uses the session's identity map first, so services that load the same order or patient
    several times in one request pay for one query.
    """
    row = await session.get(model, row_id)
    if row is None or row.organisation_id != organisation_id:
        return None
    return row
