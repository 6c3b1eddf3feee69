"""Quality-control jobs: expire control lots past their expiry date (daily)."""

from __future__ import annotations

import logging

from nidaan.config import get_settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic
from nidaan.qc.service import qc_service

logger = logging.getLogger(__name__)


@periodic(cron="5 0 * * *", periodic_id="qc.expire_lots")
@actor("qc.expire_lots", retry=0)
async def expire_lots(timestamp: int) -> None:
    """Expire lots past their expiry date (results on them are refused from then on)."""
    async with session_scope(get_settings()) as session:
        expired = await qc_service.expire_due_lots(session)
    if expired:
        logger.info("qc: %d control lot(s) expired", expired)
