"""Periodic clean-up: purge deleted files whose retention has passed."""

from __future__ import annotations

import structlog

from nidaan.config import get_settings
from nidaan.files.service import files_service
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic

log = structlog.get_logger("nidaan.files")

BATCH = 500


@periodic(cron="41 3 * * *", periodic_id="files.purge_deleted")
@actor("files.purge_deleted", retry=0)
async def purge_deleted(timestamp: int) -> None:
    """Remove from storage every deleted file past its retention (not under legal hold),
    one committed batch at a time; ``nidaan files purge --dry-run`` lists them first."""
    settings = get_settings()
    total = 0
    while True:
        async with session_scope(settings) as session:
            purged = await files_service.purge(session, dry_run=False, limit=BATCH)
        total += len(purged)
        if len(purged) < BATCH:
            break
    log.info("files_purged", count=total)
