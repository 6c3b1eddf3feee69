"""The side rows of a transaction, written in one statement at commit.

Beside its own work, every write request records audit entries, publishes outbox events,
stores its idempotent response, and change capture numbers what it changed. Each was a
statement of its own. They are collected here instead and go to the server as the
data-modifying CTEs of one statement, sent when the transaction commits (together with the
COMMIT when the session owns its transaction), so they still commit or vanish with the
business write.

Two rules keep this invisible to the code around it:

* A statement of the session that reads or writes one of the tables with unsent rows
  (``Session.execute`` and everything built on it: ``get``, ``scalar``, autoflushed queries,
  ``text()``) sends the pending rows first, so the transaction always sees its own rows.
* A rolled-back SAVEPOINT drops the rows recorded inside it, and rows that were sent inside
  it (and so rolled back by the server) become pending again.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import functools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import Table, TextClause, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import visitors

_KEY = "nidaan.bundle"
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Part:
    """Data-modifying CTEs (``name AS (...)``, comma-separated) for the commit statement.

    ``ctes`` names its parameters ``{name}`` (psycopg ``sql`` placeholders); ``params``
    holds their values. CTE names must not clash with other parts' (``b0``, ``b1`` … are
    the bundle's own). ``selected``: CTEs that are plain SELECTs (e.g. of a function with
    effects), which run only if the main query reads them.
    """

    ctes: str
    params: Mapping[str, Any]
    selected: tuple[str, ...] = ()


class Writer(Protocol):
    """Renders the CTE that writes a list of deferred rows (hashable: rows are grouped by it).

    ``table_name``: the table it writes, so that statements reading that table send the
    pending rows first. ``selected``: the CTE is a SELECT the main query must read.
    """

    @property
    def table_name(self) -> str: ...

    @property
    def selected(self) -> bool: ...

    def cte(self, name: str, columns: tuple[str, ...]) -> str: ...


#: Called at commit (outermost transaction only), in registration order, after the
#: pending ORM changes are flushed; returns the contributor's CTEs or None. Change capture
#: uses it: its statement must see every flush, so it can only be built at the very end.
Contributor = Callable[[Session], Part | None]
_CONTRIBUTORS: list[Contributor] = []


def on_commit(contributor: Contributor) -> Contributor:
    """Register ``contributor`` (a decorator)."""
    _CONTRIBUTORS.append(contributor)
    return contributor


# ---- what can be deferred ------------------------------------------------------------


# The CTEs interpolate only table and column names of our own models (quoted), never
# values: those are parameters (hence the S608 noqa).


@dataclass(frozen=True)
class _Insert:
    table: Table
    selected = False

    @property
    def table_name(self) -> str:
        return self.table.name

    def cte(self, name: str, columns: tuple[str, ...]) -> str:
        names = ", ".join(_quote(c) for c in columns)
        types = _types(self.table, columns)
        return (
            f"{name} AS (INSERT INTO {_quote(self.table.name)} ({names}) "  # noqa: S608
            f"SELECT {names} FROM jsonb_to_recordset({{{name}}}) AS r({types}))"
        )


@dataclass(frozen=True)
class _Update:
    table: Table
    key: str
    selected = False

    @property
    def table_name(self) -> str:
        return self.table.name

    def cte(self, name: str, columns: tuple[str, ...]) -> str:
        target = _quote(self.table.name)
        key = _quote(self.key)
        sets = ", ".join(f"{_quote(c)} = r.{_quote(c)}" for c in columns if c != self.key)
        return (
            f"{name} AS (UPDATE {target} SET {sets} FROM jsonb_to_recordset({{{name}}}) "  # noqa: S608
            f"AS r({_types(self.table, columns)}) WHERE {target}.{key} = r.{key})"
        )


@functools.cache
def _quote(name: str) -> str:
    return str(_DIALECT.identifier_preparer.quote(name))


def _types(table: Table, columns: tuple[str, ...]) -> str:
    return ", ".join(f"{_quote(c)} {table.c[c].type.compile(dialect=_DIALECT)}" for c in columns)


@functools.cache
def _cte(writer: Writer, name: str, columns: tuple[str, ...]) -> str:
    return writer.cte(name, columns)


# ---- per-transaction state -----------------------------------------------------------


@dataclass
class _Bundle:
    # Everything deferred in this transaction, in order; rows[:sent] are in the database.
    rows: list[tuple[Writer, dict[str, Any]]] = field(default_factory=list)
    sent: int = 0
    # Per open SAVEPOINT (by id of its SessionTransaction): (len(rows), sent) when it began.
    marks: dict[int, tuple[int, int]] = field(default_factory=dict)

    def unsent_tables(self) -> set[str]:
        return {writer.table_name for writer, _ in self.rows[self.sent :]}


def _bundle(session: Session) -> _Bundle:
    found = session.info.get(_KEY)
    if found is None:
        found = session.info[_KEY] = _Bundle()
    return found  # type: ignore[no-any-return]


def _sync(session: Any) -> Session:
    """The ``Session`` under an ``AsyncSession`` (or the session itself)."""
    return getattr(session, "sync_session", session)  # type: ignore[no-any-return]


def defer(session: Any, writer: Writer, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` with ``writer`` in the transaction's bundle."""
    _bundle(_sync(session)).rows.extend((writer, row) for row in rows)


def defer_insert(session: Any, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (column name -> value) into ``table`` with the transaction's bundle.

    Give every column the row needs: Python-side column defaults are not applied (server
    defaults are). Values may be JSON values, UUIDs, datetimes, dates, Decimals or enums.
    """
    writer = _Insert(table)
    _bundle(_sync(session)).rows.extend((writer, row) for row in rows)


def defer_update(session: Any, table: Table, key: str, row: dict[str, Any]) -> None:
    """``UPDATE table SET <row's other columns> WHERE key = row[key]`` with the bundle.

    The row must exist before the bundle is sent (all CTEs of one statement see the same
    snapshot, so a row inserted by the same bundle is not there to update); several updates
    of one row are merged, the later values winning.
    """
    _bundle(_sync(session)).rows.append((_Update(table, key), row))


def write_pending(session: Any) -> None:
    """Send the rows deferred so far now, in one statement (a sync ``Session``)."""
    session = _sync(session)
    part = _pending_part(session)
    if part is not None:
        execute(session, [part], commit=False)


def _pending_part(session: Session) -> Part | None:
    """The unsent rows as CTEs (and mark them sent)."""
    bundle: _Bundle | None = session.info.get(_KEY)
    if bundle is None or bundle.sent == len(bundle.rows):
        return None
    groups: dict[tuple[Writer, tuple[str, ...]], list[dict[str, Any]]] = {}
    updates: dict[tuple[Writer, Any], dict[str, Any]] = {}
    for writer, row in bundle.rows[bundle.sent :]:
        if isinstance(writer, _Update):
            # Two updates of one row in one statement would be undefined: merge them.
            merged = updates.setdefault((writer, row[writer.key]), {})
            merged.update(row)
            continue
        groups.setdefault((writer, tuple(row)), []).append(row)
    for (writer, _), row in updates.items():
        groups.setdefault((writer, tuple(sorted(row))), []).append(row)
    bundle.sent = len(bundle.rows)
    ctes = []
    params: dict[str, Any] = {}
    selected = []
    for index, ((writer, columns), rows) in enumerate(groups.items()):
        name = f"b{index}"
        ctes.append(_cte(writer, name, columns))
        params[name] = Jsonb(rows, dumps=_dumps)
        if writer.selected:
            selected.append(name)
    return Part(", ".join(ctes), params, tuple(selected))


def execute(session: Session, parts: Sequence[Part], *, commit: bool = False) -> None:
    """Send ``parts`` as one statement; ``commit``: with the COMMIT in the same query."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    pieces = []
    params: dict[str, Any] = {}
    read = [sql.SQL("1")]
    for index, part in enumerate(parts):
        read += [sql.SQL(f"(SELECT count(*) FROM {name})") for name in part.selected]  # noqa: S608
        values = {}
        for name, value in part.params.items():
            unique = f"p{index}_{name}"
            params[unique] = value
            values[name] = sql.Literal(value) if commit else sql.Placeholder(unique)
        pieces.append(sql.SQL(part.ctes).format(**values))  # type: ignore[arg-type]
    statement = sql.SQL("WITH {} SELECT {}").format(
        sql.SQL(", ").join(pieces), sql.SQL(", ").join(read)
    )
    if commit:
        # A query of two statements cannot have parameters: the values are literals
        # (quoted by psycopg). The driver still reads ``%`` as a placeholder (SQLAlchemy
        # passes empty parameters), so a literal ``%`` (a unit, a comment) is doubled.
        # The session's own COMMIT then finds nothing open.
        query = statement.as_string(driver).replace("%", "%%")
        connection.exec_driver_sql(query + ";\nCOMMIT")
    else:
        connection.exec_driver_sql(statement.as_string(driver), params)


def _may_fuse(session: Session) -> bool:
    """Whether the statement may carry the COMMIT: the session owns its transaction
    (bound to an engine, not joined to an outer one as tests do), nothing left to flush."""
    return isinstance(session.bind, Engine) and not (
        session.new or session.dirty or session.deleted
    )


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"Cannot write {type(value).__name__} in a bundled row")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_encode, separators=(",", ":"))


# ---- session hooks -------------------------------------------------------------------


@event.listens_for(Session, "before_commit")
def _send_at_commit(session: Session) -> None:
    if session.in_nested_transaction():
        # Also fired when a SAVEPOINT is released: the rows wait for the real end.
        return
    if session.new or session.dirty or session.deleted:
        session.flush()
    parts = [part for contributor in _CONTRIBUTORS if (part := contributor(session))]
    pending = _pending_part(session)
    if pending is not None:
        parts.insert(0, pending)
    session.info.pop(_KEY, None)
    if parts:
        execute(session, parts, commit=_may_fuse(session))


@event.listens_for(Session, "do_orm_execute")
def _send_before_readers(state: ORMExecuteState) -> None:
    bundle: _Bundle | None = state.session.info.get(_KEY)
    if bundle is None or bundle.sent == len(bundle.rows):
        return
    if _touches(state.statement, bundle.unsent_tables()):
        write_pending(state.session)


def _touches(statement: Any, tables: set[str]) -> bool:
    for element in (
        (statement,) if isinstance(statement, TextClause) else visitors.iterate(statement)
    ):
        if isinstance(element, Table) and element.name in tables:
            return True
        if isinstance(element, TextClause) and any(name in element.text for name in tables):
            return True
    return False


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: Any) -> None:
    if transaction.nested:
        bundle = _bundle(session)
        bundle.marks[id(transaction)] = (len(bundle.rows), bundle.sent)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_KEY, None)
        return
    bundle: _Bundle | None = session.info.get(_KEY)
    if bundle is None or not previous_transaction.nested:
        return
    mark = bundle.marks.pop(id(previous_transaction), None)
    if mark is not None:
        recorded, sent = mark
        # Rows recorded inside the SAVEPOINT are gone; rows sent inside it were rolled
        # back by the server and are pending again.
        del bundle.rows[recorded:]
        bundle.sent = min(bundle.sent, sent)
