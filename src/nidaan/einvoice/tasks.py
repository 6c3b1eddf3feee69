"""Jobs of the e-invoice module: complete e-invoices the IRP did not answer (outage,
throttling, a lost response) every five minutes. Each row is re-sent with the same JSON; a
duplicate-IRN answer recovers an IRN made by an earlier attempt, so nothing is made twice."""

from __future__ import annotations

import logging

from nidaan.config import get_settings
from nidaan.einvoice.service import einvoice_service
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic

logger = logging.getLogger(__name__)


@periodic(cron="*/5 * * * *", periodic_id="einvoice.retry")
@actor("einvoice.retry", retry=0)
async def retry_pending(timestamp: int) -> None:
    async with session_scope(get_settings()) as session:
        counts = await einvoice_service.retry_pending(session)
    if counts["tried"]:
        logger.info("E-invoices retried: %s", counts)
