"""Notification jobs: send one message (queue "notifications"), and the sweeper."""

from __future__ import annotations

import uuid

import structlog

from nidaan.config import get_settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic
from nidaan.notifications import dispatch, webhooks

log = structlog.get_logger("nidaan.notifications")


@actor("notifications.send", queue="notifications", retry=3)
async def send_notification(notification_id: str) -> None:
    """Send one notification; safe to run twice (the claim lets only one job send it)."""
    await dispatch.send(uuid.UUID(notification_id), get_settings())


@periodic(cron="* * * * *", periodic_id="notifications.sweep")
@actor("notifications.sweep", retry=0)
async def sweep(timestamp: int) -> None:
    """Re-queue messages whose job was lost, mark stuck sends uncertain, and process again
    webhook bodies that failed."""
    settings = get_settings()
    requeued, stuck = await dispatch.sweep(settings)
    async with session_scope(settings) as session:
        retried = await webhooks.retry_unprocessed(session)
    if requeued or stuck or retried:
        log.info("notifications_swept", requeued=requeued, uncertain=stuck, webhooks=retried)
