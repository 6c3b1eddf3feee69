"""Count the SQL statements a request issues, through the real engine and driver.

Two counts per request, both kept per asyncio context (so the audit chainer and other
background tasks, started in their own contexts, are not counted against a request):

* ``sql``: statements SQLAlchemy sends (its ``before_cursor_execute`` event on the engine);
* ``driver``: statements sent on psycopg cursors outside SQLAlchemy, e.g. procrastinate's job
  inserts on the request's own connection (transactional enqueue), which the event cannot see.
  The pool's pre-ping (an empty statement on checkout) is counted apart as ``pings``: it is a
  round trip per request but no statement of the endpoint's.

BEGIN and COMMIT are sent by psycopg itself and are in neither count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

#: What SQLAlchemy's PostgreSQL dialects send as the pool's pre-ping.
_PINGS = frozenset({";", "SELECT 1"})


@dataclass
class Count:
    """What one request sent to the database."""

    sql: list[str] = field(default_factory=list)
    driver: list[str] = field(default_factory=list)  # every cursor execution, SQLAlchemy's too

    @property
    def pings(self) -> int:
        return sum(1 for text in self.outside if text.strip() in _PINGS)

    @property
    def outside(self) -> list[str]:
        """Driver executions that SQLAlchemy did not send (the multiset difference)."""
        left = list(self.sql)
        extra = []
        for text in self.driver:
            if text in left:
                left.remove(text)
            else:
                extra.append(text)
        return extra

    @property
    def jobs(self) -> int:
        """Statements sent outside SQLAlchemy that are not the pool's ping."""
        return len(self.outside) - self.pings

    @property
    def total(self) -> int:
        """The endpoint's statements: SQLAlchemy's plus the driver-level ones (not pings)."""
        return len(self.sql) + self.jobs


_current: ContextVar[Count | None] = ContextVar("statement_count", default=None)


@contextlib.contextmanager
def counting(engine: AsyncEngine) -> Iterator[None]:
    """Install the counters on ``engine`` and on psycopg's async cursors while active."""

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        count = _current.get()
        if count is not None:
            count.sql.append(statement)

    original_execute = psycopg.AsyncCursor.execute
    original_executemany = psycopg.AsyncCursor.executemany

    async def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        _note_driver(query)
        return await original_execute(self, query, *args, **kwargs)

    async def executemany(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        _note_driver(query)
        return await original_executemany(self, query, *args, **kwargs)

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    psycopg.AsyncCursor.execute = execute  # type: ignore[method-assign]
    psycopg.AsyncCursor.executemany = executemany  # type: ignore[method-assign]
    try:
        yield
    finally:
        psycopg.AsyncCursor.execute = original_execute  # type: ignore[method-assign]
        psycopg.AsyncCursor.executemany = original_executemany  # type: ignore[method-assign]
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


def _note_driver(query: Any) -> None:
    count = _current.get()
    if count is None:
        return
    if not isinstance(query, str):
        query = query.as_string(None) if hasattr(query, "as_string") else str(query)
    count.driver.append(query)


@contextlib.contextmanager
def count_into(count: Count) -> Iterator[Count]:
    """Count what runs in this context (and tasks started from it) into ``count``."""
    token = _current.set(count)
    try:
        yield count
    finally:
        _current.reset(token)
