"""Periodic catch-up of audit chaining.

Entries are chained right after their transaction commits; a process that dies between
commit and chaining, or a chainer that stepped aside while another held the chain head,
leaves entries waiting. This sweep chains them within a minute.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select

from nidaan.audit.checkpoints import checkpoint_store, signer_from_settings, write_checkpoints
from nidaan.audit.models import AuditLog
from nidaan.audit.service import chain_in_own_transactions
from nidaan.config import get_settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, periodic

log = structlog.get_logger("nidaan.audit")


async def chain_all_pending() -> int:
    """Chain every organisation's waiting entries; returns how many organisations had some."""
    async with session_scope(get_settings()) as session:
        organisations = list(
            await session.scalars(
                select(AuditLog.organisation_id).where(AuditLog.hash.is_(None)).distinct()
            )
        )
    for organisation_id in organisations:
        await chain_in_own_transactions(organisation_id)
    return len(organisations)


@periodic(cron="* * * * *", periodic_id="audit.chain_pending")
@actor("audit.chain_pending", retry=0)
async def chain_pending(timestamp: int) -> None:
    """Chain audit entries left waiting (the normal path chains right after commit)."""
    organisations = await chain_all_pending()
    if organisations:
        log.info("audit_chained_late", organisations=organisations)


@periodic(cron="*/5 * * * *", periodic_id="audit.checkpoint")
@actor("audit.checkpoint", retry=0)
async def checkpoint(timestamp: int) -> None:
    """Sign and store a checkpoint of each chain that moved on (outside the database)."""
    settings = get_settings()
    if settings.audit_signing_key is None:
        log.warning("audit_checkpoint_skipped", reason="NIDAAN_AUDIT_SIGNING_KEY is not set")
        return
    async with session_scope(settings) as session:
        written = await write_checkpoints(
            session, checkpoint_store(settings), signer_from_settings(settings)
        )
    signed = [w for w in written if w.checkpoint is not None]
    if signed:
        log.info("audit_checkpoints_written", organisations=len(signed))
