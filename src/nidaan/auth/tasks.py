"""Periodic housekeeping of identity data."""

from __future__ import annotations

import structlog

from nidaan.auth.service import auth_service
from nidaan.config import get_settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic

log = structlog.get_logger("nidaan.auth")


@periodic(cron="*/15 * * * *", periodic_id="auth.purge_expired")
@actor("auth.purge_expired", retry=0)
async def purge_expired(timestamp: int) -> None:
    """Forget old failed-login records and long-expired refresh tokens."""
    settings = get_settings()
    async with session_scope(settings) as session:
        removed = await auth_service.purge_expired(session, settings)
    log.info("auth_purged", removed=removed)
