"""Jobs of the payments module: retry webhooks that could not be applied at once, and
reconcile open links, QR codes, authorized payments and pending refunds every 10 minutes."""

from __future__ import annotations

import logging
import uuid

from nidaan.config import get_settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic
from nidaan.payments.service import payments_service

logger = logging.getLogger(__name__)


@actor("payments.process_webhook", retry=8)
async def process_webhook(event_row_id: str) -> None:
    """Apply a stored webhook (retried with backoff while it waits, e.g. for our own refund
    call to commit). Idempotent: a processed row is skipped."""
    async with session_scope(get_settings()) as session:
        status = await payments_service.process_webhook(session, uuid.UUID(event_row_id))
    logger.info("Webhook %s: %s", event_row_id, status)


@periodic(cron="*/10 * * * *", periodic_id="payments.reconcile")
@actor("payments.reconcile", retry=0)
async def reconcile(timestamp: int) -> None:
    """Fetch what the gateways say about everything still open, and settle it."""
    async with session_scope(get_settings()) as session:
        summary = await payments_service.reconcile(session)
    logger.info(
        "Reconciled %d requests, %d payments (%d applied), %d refunds, %d captured; %d errors",
        summary.requests_checked,
        summary.payments_seen,
        summary.payments_applied,
        summary.refunds_checked,
        summary.captured,
        len(summary.errors),
    )
