"""Periodic clean-up of idempotency keys past their 24-hour window."""

from __future__ import annotations

import structlog

from nidaan.config import get_settings
from nidaan.idempotency.service import idempotency_service
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic

log = structlog.get_logger("nidaan.idempotency")


@periodic(cron="17 * * * *", periodic_id="idempotency.purge_expired")
@actor("idempotency.purge_expired", retry=0)
async def purge_expired(timestamp: int) -> None:
    """Delete expired idempotency records (lookups already ignore them)."""
    async with session_scope(get_settings()) as session:
        removed = await idempotency_service.purge_expired(session)
    log.info("idempotency_purged", removed=removed)
