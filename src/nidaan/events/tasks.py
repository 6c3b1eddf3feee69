"""Jobs of the events module: deliver one event to one subscriber, prune the outbox."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import any_, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from nidaan.config import get_settings
from nidaan.events.base import event_from_payload
from nidaan.events.models import EventDelivery, OutboxEvent
from nidaan.events.registry import get_subscription
from nidaan.kit import tracing
from nidaan.kit.context import request_id_var
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic

logger = logging.getLogger(__name__)

#: Delivered events are kept this long for inspection, then pruned.
OUTBOX_RETENTION = timedelta(days=30)


class EventNotFoundError(LookupError):
    """A delivery job points at an outbox row that does not exist."""


@actor("events.deliver")
async def deliver(event_id: str, subscriber: str) -> None:
    """Run ``subscriber`` for the outbox event ``event_id`` once, in one transaction.

    The delivery row is claimed first (insert, do nothing on conflict): a concurrent
    delivery of the same pair waits on that row and then skips, and a handler error
    rolls back the claim together with the handler's own writes, so the job retries.
    """
    try:
        subscription = get_subscription(subscriber)
    except LookupError:
        logger.error("Cannot deliver event %s: unknown subscriber %r", event_id, subscriber)
        raise
    async with session_scope(get_settings()) as session:
        row = await session.get(OutboxEvent, uuid.UUID(event_id))
        if row is None:
            logger.error("Cannot deliver event %s to %s: no such event", event_id, subscriber)
            raise EventNotFoundError(f"Outbox event {event_id} does not exist")
        claimed = await session.scalar(
            insert(EventDelivery)
            .values(event_id=row.id, subscriber=subscriber)
            .on_conflict_do_nothing(index_elements=["event_id", "subscriber"])
            .returning(EventDelivery.id)
        )
        if claimed is None:
            logger.info("Event %s already delivered to %s; skipping", event_id, subscriber)
            return
        try:
            event = event_from_payload(row.name, row.payload)
        except LookupError:
            logger.error("Cannot deliver event %s: unknown event name %r", event_id, row.name)
            raise
        # Logs and audit entries written by the handler point back at the original request.
        token = request_id_var.set(row.request_id)
        try:
            # Names the event and subscriber in the trace ("job events.deliver" says neither).
            with tracing.span(f"{row.name} -> {subscriber}", event_id=event_id):
                await subscription.handler(session, event)
        finally:
            request_id_var.reset(token)


@periodic(cron="23 2 * * *", periodic_id="events.prune_outbox")
@actor("events.prune_outbox", retry=0)
async def prune_outbox(timestamp: int) -> None:
    """Delete outbox events older than the retention whose every subscriber has them."""
    # An event is fully delivered when every subscriber it was fanned out to has a row.
    delivered = (
        select(func.count())
        .where(
            EventDelivery.event_id == OutboxEvent.id,
            EventDelivery.subscriber == any_(OutboxEvent.subscribers),
        )
        .scalar_subquery()
    )
    async with session_scope(get_settings()) as session:
        result = await session.execute(
            delete(OutboxEvent)
            .where(OutboxEvent.occurred_at < func.now() - OUTBOX_RETENTION)
            .where(func.cardinality(OutboxEvent.subscribers) <= delivered)
            .returning(OutboxEvent.id)
        )
        pruned = len(result.all())
    logger.info("Pruned %d delivered outbox events older than %s", pruned, OUTBOX_RETENTION)


@periodic(cron="* * * * *", periodic_id="events.relay")
@actor("events.relay", retry=0)
async def relay(timestamp: int) -> None:
    """Publish waiting domain events to NIDAAN_EVENTS_URL (when set; `nidaan relay` does the
    same continuously, and only one of them works at a time)."""
    from nidaan.events.relay import drain, open_sink

    settings = get_settings()
    if not settings.events_url:
        return
    sink = await open_sink(settings)
    try:
        published = await drain(settings, sink)
    finally:
        await sink.close()
    if published:
        logger.info("Relayed %d domain events", published)
