"""Publishing: write the event to the outbox and fan it out to subscribers as jobs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.events.base import DomainEvent
from nidaan.events.models import OutboxEvent
from nidaan.events.registry import subscriptions_for
from nidaan.events.tasks import deliver
from nidaan.kit.context import current_request_id
from nidaan.kit.ids import new_id
from nidaan.kit.jobs import enqueue, enqueue_many


async def publish(session: AsyncSession, event: DomainEvent) -> uuid.UUID:
    """Record ``event`` and enqueue one ``events.deliver`` job per subscriber; return its id.

    Everything happens in the caller's transaction (flush, never commit): if the business
    write rolls back, the event and its jobs vanish with it.
    """
    subscriptions = subscriptions_for(type(event))
    row = OutboxEvent(
        id=new_id(),
        organisation_id=event.organisation_id,
        name=event.name,
        payload=event.to_payload(),
        request_id=current_request_id(),
        subscribers=[sub.name for sub in subscriptions],
    )
    session.add(row)
    await session.flush()
    for sub in subscriptions:
        await enqueue(session, deliver, event_id=str(row.id), subscriber=sub.name)
    return row.id


async def publish_many(session: AsyncSession, events: Sequence[DomainEvent]) -> list[uuid.UUID]:
    """``publish`` for several events of one transaction: their outbox rows in one flush
    and every subscriber's job in one statement (same guarantees: all in the caller's
    transaction)."""
    rows = []
    jobs: list[dict[str, str]] = []
    for event in events:
        subscriptions = subscriptions_for(type(event))
        row = OutboxEvent(
            id=new_id(),
            organisation_id=event.organisation_id,
            name=event.name,
            payload=event.to_payload(),
            request_id=current_request_id(),
            subscribers=[sub.name for sub in subscriptions],
        )
        session.add(row)
        rows.append(row)
        jobs += [{"event_id": str(row.id), "subscriber": sub.name} for sub in subscriptions]
    if rows:
        await session.flush()
    await enqueue_many(session, deliver, jobs)
    return [row.id for row in rows]
