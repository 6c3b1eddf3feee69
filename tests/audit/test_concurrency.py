"""Concurrent writers of one organisation queue on the chain head and never fork the chain."""

from __future__ import annotations

import asyncio
import itertools

from sqlalchemy import select

from nidaan.audit.models import AuditLog
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.tenancy.models import Organisation
from tests.audit.conftest import CommittingSession

WRITERS = 8
ENTRIES_PER_WRITER = 3


async def test_concurrent_transactions_build_one_contiguous_chain(
    committing_session: CommittingSession, committed_organisation: Organisation
) -> None:
    start = asyncio.Event()

    async def writer(number: int) -> None:
        async with committing_session() as session:
            await start.wait()
            for i in range(ENTRIES_PER_WRITER):
                await audit_service.record(
                    session,
                    organisation_id=committed_organisation.id,
                    actor=SYSTEM_ACTOR,
                    action="order.created",
                    entity_type="order",
                    entity_id=f"o-{number}-{i}",
                    after={"writer": number, "i": i},
                )
                # Hold the transaction open so the other writers pile up on the head lock.
                await asyncio.sleep(0.005)

    verifications: list[bool] = []

    async def verifier() -> None:
        # Verifying while writers commit must never report a break that is not there.
        while not all(task.done() for task in tasks):
            async with committing_session() as session:
                report = await audit_service.verify(session, committed_organisation.id)
            verifications.append(report.ok)
            await asyncio.sleep(0.002)

    tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    await asyncio.sleep(0.05)
    start.set()
    await asyncio.gather(*tasks, verifier())
    assert verifications
    assert all(verifications)

    async with committing_session() as session:
        # A verify holds the chain head while it checks; chaining skipped meanwhile is
        # caught up here (or by the next write, or the periodic sweep).
        await audit_service.verify(session, committed_organisation.id)
    async with committing_session() as session:
        rows = (
            await session.execute(
                select(AuditLog.seq, AuditLog.prev_hash, AuditLog.hash, AuditLog.entity_id)
                .where(AuditLog.organisation_id == committed_organisation.id)
                .order_by(AuditLog.seq)
            )
        ).all()
        report = await audit_service.verify(session, committed_organisation.id)

    total = WRITERS * ENTRIES_PER_WRITER
    assert [r.seq for r in rows] == list(range(1, total + 1))
    # No fork: every hash is the prev_hash of exactly the next entry.
    assert len({r.prev_hash for r in rows}) == total
    for previous, current in itertools.pairwise(rows):
        assert current.prev_hash == previous.hash
    # Within each writer, the chain keeps the order in which its entries were recorded.
    writers_in_order = [r.entity_id.split("-")[1:] for r in rows]
    for n in range(WRITERS):
        own = [int(i) for w, i in writers_in_order if w == str(n)]
        assert own == sorted(own)
    assert (report.ok, report.entries_checked) == (True, total)
