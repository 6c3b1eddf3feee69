"""Publishing: write the event to the outbox and fan it out to subscribers as jobs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.events.base import DomainEvent
from nidaan.events.models import OutboxEvent
from nidaan.events.registry import subscriptions_for
from nidaan.events.tasks import deliver
from nidaan.kit import bundle
from nidaan.kit.context import current_request_id
from nidaan.kit.ids import new_id
from nidaan.kit.jobs import enqueue_at_commit

_TABLE = OutboxEvent.__table__


def _outbox_row(event: DomainEvent, subscribers: list[str]) -> dict[str, Any]:
    return {
        "id": new_id(),
        "organisation_id": event.organisation_id,
        "name": event.name,
        "payload": event.to_payload(),
        "request_id": current_request_id(),
        "subscribers": subscribers,
    }


async def publish(session: AsyncSession, event: DomainEvent) -> uuid.UUID:
    """Record ``event`` and enqueue one ``events.deliver`` job per subscriber; return its id.

    Everything happens in the caller's transaction (never committed here): if the business
    write rolls back, the event and its jobs vanish with it. The outbox row and the jobs go
    with the transaction's bundle (``nidaan.kit.bundle``): one statement at commit with the
    audit entries and change capture, or earlier if a statement of the session reads the
    outbox or the job table.
    """
    subscriptions = subscriptions_for(type(event))
    row = _outbox_row(event, [sub.name for sub in subscriptions])
    bundle.defer_insert(session, _TABLE, [row])
    # Publishing has always flushed the caller's pending changes (callers read server
    # defaults of what they just added afterwards); with nothing pending this sends nothing.
    await session.flush()
    # The delivery jobs go with the bundle too (the commit statement inserts them).
    enqueue_at_commit(
        session,
        deliver,
        [{"event_id": str(row["id"]), "subscriber": sub.name} for sub in subscriptions],
    )
    return row["id"]  # type: ignore[no-any-return]


async def publish_many(session: AsyncSession, events: Sequence[DomainEvent]) -> list[uuid.UUID]:
    """``publish`` for several events of one transaction (same guarantees: all in the
    caller's transaction)."""
    rows = []
    jobs: list[dict[str, str]] = []
    for event in events:
        subscriptions = subscriptions_for(type(event))
        row = _outbox_row(event, [sub.name for sub in subscriptions])
        rows.append(row)
        jobs += [{"event_id": str(row["id"]), "subscriber": sub.name} for sub in subscriptions]
    bundle.defer_insert(session, _TABLE, rows)
    if rows:
        await session.flush()  # as ``publish``
    enqueue_at_commit(session, deliver, jobs)
    return [row["id"] for row in rows]
