"""Set-based writes of results: new rows of an analyzer batch, review reasons of an
autoverification batch.

The ORM inserts new rows with a pipelined single-row statement: psycopg sends (and the
server executes) one bound statement per result, and the unit of work collects each
object's columns first. Here the whole batch is one ``INSERT … SELECT FROM unnest(<one
array per column>)``: one statement whose text depends only on the columns, prepared once,
whatever the batch size. The arrays go in binary (``%(name)b``): psycopg's text format
quotes every element with regular expressions, which costs more than the per-row sends it
replaces. The rows then join the session as if they had just been loaded, so the callers
keep working with ``Result`` objects, and change capture is told of them as of any
set-based write (``note_bulk_change``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from nidaan.audit.service import AuditEntry, audit_service
from nidaan.auth.principal import Principal
from nidaan.kit.db import note_bulk_change
from nidaan.results.enums import ResultStatus
from nidaan.results.errors import IllegalTransition
from nidaan.results.models import Result

__all__ = ["insert_results", "mark_for_review_many"]

_TABLE = Result.__table__
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_STATEMENTS: dict[tuple[str, ...], str] = {}


def _array_type(column: Column[Any]) -> str:
    return f"{column.type.compile(dialect=_DIALECT)}[]"


def _statement(names: tuple[str, ...]) -> str:
    """``INSERT INTO results (<names>) SELECT * FROM unnest(<binary array per name>)``, in
    the driver's parameter style; one per column set."""
    statement = _STATEMENTS.get(names)
    if statement is None:
        # Names and types are the table's own columns, never input.
        arrays = ", ".join(f"CAST(%({n})b AS {_array_type(_TABLE.c[n])})" for n in names)
        statement = f"INSERT INTO results ({', '.join(names)}) SELECT * FROM unnest({arrays})"  # noqa: S608
        _STATEMENTS[names] = statement
    return statement


def _bound(column: Column[Any], value: Any) -> Any:
    """A value as the array parameter carries it (enums by value, JSON as text)."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(column.type, postgresql.JSONB):
        return json.dumps(value)
    return value


async def insert_results(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[Result]:
    """Insert ``rows`` (column values of new results; every row the same keys) with one
    statement; the ``Result`` objects, persistent in ``session``. Columns a row does not
    name are NULL, except those with a server default, which the row must name (so that no
    value has to be read back)."""
    if not rows:
        return []
    given = rows[0].keys()
    for column in _TABLE.columns:
        if column.key not in given and column.server_default is not None:
            raise ValueError(f"results.{column.key} has a server default: give it")
    columns = [c for c in _TABLE.columns if c.key in given or c.server_default is None]
    names = tuple(c.key for c in columns)
    params = {c.key: [_bound(c, row.get(c.key)) for row in rows] for c in columns}
    # Through the session's connection (its transaction, its statement events); no
    # autoflush is needed: what the rows refer to is already in the database.
    connection = await session.connection()
    await connection.exec_driver_sql(_statement(names), params)
    loaded = []
    manager = Result._sa_class_manager  # type: ignore[attr-defined]
    for row in rows:
        # As a query would load it: every column in the instance's dict, no history.
        result: Result = manager.new_instance()
        result.__dict__.update({name: row.get(name) for name in names})
        make_transient_to_detached(result)
        session.add(result)
        loaded.append(result)
    note_bulk_change(session, loaded, names)
    return loaded


async def mark_for_review_many(
    session: AsyncSession, caller: Principal, marks: Sequence[tuple[Result, str]]
) -> None:
    """``ResultsService.mark_for_review`` for loaded results (autoverification's stopped
    ones), with one flush and one audit INSERT for all instead of a read, an UPDATE and an
    INSERT per result. Each must be entered or held (else IllegalTransition, nothing set)."""
    for result, _ in marks:
        if result.status not in (ResultStatus.ENTERED, ResultStatus.HELD):
            raise IllegalTransition(
                f"A {result.status} result is not waiting for review.",
                **{"from": result.status, "to": result.status},
            )
    entries = []
    for result, reason in marks:
        if result.review_reason == reason[:300]:
            continue
        before = {"review_reason": result.review_reason}
        result.review_reason = reason[:300]
        entries.append(
            AuditEntry(
                organisation_id=caller.organisation_id,
                actor=caller.actor,
                action="result.review_requested",
                entity_type="result",
                entity_id=result.id,
                before=before,
                after={"review_reason": result.review_reason},
            )
        )
    if entries:
        await session.flush()
        await audit_service.record_many(session, entries)
