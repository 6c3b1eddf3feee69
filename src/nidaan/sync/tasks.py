"""Daily sync housekeeping: compact the change log, forget tombstones past the horizon."""

from __future__ import annotations

import structlog

from nidaan.config import get_settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic
from nidaan.sync.service import sync_service

log = structlog.get_logger("nidaan.sync")


@periodic(cron="41 2 * * *", periodic_id="sync.compact")
@actor("sync.compact", retry=0)
async def compact(timestamp: int) -> None:
    """Keep the latest change per row; devices older than the horizon will reset."""
    settings = get_settings()
    async with session_scope(settings) as session:
        counts = await sync_service.compact(session, settings)
    log.info("sync_compacted", **counts)
