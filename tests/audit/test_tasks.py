"""Entries whose after-commit chaining never ran are chained by the periodic sweep."""

from __future__ import annotations

from sqlalchemy import select

from nidaan.audit.models import AuditLog
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.audit.tasks import chain_all_pending
from nidaan.config import Settings
from nidaan.kit.db import get_sessionmaker
from nidaan.kit.jobs import TASK_MODULES
from nidaan.tenancy.models import Organisation


async def test_sweep_chains_entries_committed_without_their_hook(
    settings: Settings, committed_organisation: Organisation
) -> None:
    async with get_sessionmaker(settings)() as session:
        for i in range(3):
            await audit_service.record(
                session,
                organisation_id=committed_organisation.id,
                actor=SYSTEM_ACTOR,
                action="sample.received",
                entity_type="sample",
                entity_id=f"s-{i}",
            )
        # A plain commit skips the after-commit chaining, like a process dying right there.
        await session.commit()
        waiting = await session.scalars(
            select(AuditLog.seq).where(AuditLog.organisation_id == committed_organisation.id)
        )
        assert list(waiting) == [None, None, None]

    assert await chain_all_pending() >= 1

    async with get_sessionmaker(settings)() as session:
        seqs = await session.scalars(
            select(AuditLog.seq)
            .where(AuditLog.organisation_id == committed_organisation.id)
            .order_by(AuditLog.seq)
        )
        assert list(seqs) == [1, 2, 3]
        report = await audit_service.verify(session, committed_organisation.id)
        assert (report.ok, report.entries_checked) == (True, 3)
        await session.rollback()


def test_sweep_is_a_periodic_job() -> None:
    assert "nidaan.audit.tasks" in TASK_MODULES
    from nidaan.audit import tasks

    assert tasks.chain_pending.name == "audit.chain_pending"
