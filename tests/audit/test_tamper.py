"""Committed chains altered behind the triggers' back are caught by verify, at the right entry."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from nidaan.audit.models import AuditLog
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import (
    REASON_DELETED,
    REASON_HASH_MISMATCH,
    REASON_HEAD_MISSING,
    REASON_LOG_AHEAD,
    REASON_PREV_HASH,
    REASON_UNCHAINED,
    BrokenLink,
    VerifyReport,
    audit_service,
)
from nidaan.tenancy.models import Organisation
from tests.audit.conftest import CommittingSession, superuser_execute


async def record_committed(
    committing_session: CommittingSession, organisation: Organisation, n: int
) -> list[AuditLog]:
    async with committing_session() as session:
        recorded = [
            await audit_service.record(
                session,
                organisation_id=organisation.id,
                actor=SYSTEM_ACTOR,
                action="sample.received",
                entity_type="sample",
                entity_id=f"s-{i}",
                before={"status": "collected"},
                after={"status": "received"},
            )
            for i in range(n)
        ]
    # Committed, and chained right after the commit: read back what was stored.
    async with committing_session() as session:
        rows = await session.scalars(
            select(AuditLog).where(AuditLog.id.in_([e.id for e in recorded])).order_by(AuditLog.seq)
        )
        return list(rows)


async def verify_committed(
    committing_session: CommittingSession, organisation_id: uuid.UUID | None
) -> VerifyReport:
    async with committing_session() as session:
        return await audit_service.verify(session, organisation_id)


async def test_committed_chain_verifies(
    committing_session: CommittingSession, committed_organisation: Organisation
) -> None:
    await record_committed(committing_session, committed_organisation, 4)
    report = await verify_committed(committing_session, committed_organisation.id)
    assert report == VerifyReport(True, 1, 4, None)


async def test_changed_content_is_reported_at_that_entry(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
) -> None:
    entries = await record_committed(committing_session, committed_organisation, 5)
    target = entries[2]
    await superuser_execute(
        superuser_conninfo,
        """UPDATE audit_log SET changes = '{"before": {}, "after": {"status": "rejected"}}'
           WHERE id = %s""",
        params=(str(target.id),),
    )

    report = await verify_committed(committing_session, committed_organisation.id)
    assert report == VerifyReport(
        ok=False,
        organisations_checked=1,
        entries_checked=3,
        first_broken=BrokenLink(committed_organisation.id, 3, target.id, REASON_HASH_MISMATCH),
    )
    # Verifying everything reports the same first break.
    everything = await verify_committed(committing_session, None)
    assert everything.first_broken == report.first_broken


async def test_rehashed_entry_breaks_the_next_link(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
) -> None:
    entries = await record_committed(committing_session, committed_organisation, 4)
    # A forger who also rewrites the hash is caught one entry later.
    await superuser_execute(
        superuser_conninfo,
        "UPDATE audit_log SET hash = repeat('f', 64) WHERE id = %s",
        params=(str(entries[1].id),),
    )
    report = await verify_committed(committing_session, committed_organisation.id)
    assert report.first_broken == BrokenLink(
        committed_organisation.id, 2, entries[1].id, REASON_HASH_MISMATCH
    )

    await superuser_execute(
        superuser_conninfo,
        "UPDATE audit_log SET prev_hash = repeat('f', 64) WHERE id = %s",
        params=(str(entries[2].id),),
    )
    await superuser_execute(
        superuser_conninfo,
        "UPDATE audit_log SET hash = %s WHERE id = %s",
        params=(entries[1].hash, str(entries[1].id)),
    )
    report = await verify_committed(committing_session, committed_organisation.id)
    assert report.first_broken == BrokenLink(
        committed_organisation.id, 3, entries[2].id, REASON_PREV_HASH
    )


async def test_deleted_middle_entry_is_a_sequence_gap(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
) -> None:
    entries = await record_committed(committing_session, committed_organisation, 5)
    await superuser_execute(
        superuser_conninfo, "DELETE FROM audit_log WHERE id = %s", params=(str(entries[2].id),)
    )
    report = await verify_committed(committing_session, committed_organisation.id)
    # Reported at the deleted entry's own position (the next entry names it).
    assert report.first_broken == BrokenLink(
        committed_organisation.id, 3, entries[2].id, REASON_DELETED
    )
    assert report.entries_checked == 3


async def test_deleted_tail_is_caught_by_the_chain_head(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
) -> None:
    entries = await record_committed(committing_session, committed_organisation, 4)
    await superuser_execute(
        superuser_conninfo,
        "DELETE FROM audit_log WHERE id = %s",
        params=(str(entries[-1].id),),
    )
    report = await verify_committed(committing_session, committed_organisation.id)
    # The head names its last entry, so the report says which entry is gone.
    assert report == VerifyReport(
        False, 1, 3, BrokenLink(committed_organisation.id, 4, entries[-1].id, REASON_DELETED)
    )


async def test_triggers_block_normal_sessions_after_commit(
    committing_session: CommittingSession, committed_organisation: Organisation
) -> None:
    entries = await record_committed(committing_session, committed_organisation, 2)
    for statement in (
        "UPDATE audit_log SET actor_label = 'someone else' WHERE id = :id",
        "DELETE FROM audit_log WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match=r"append-only|permission denied for table"):
            async with committing_session() as session:
                await session.execute(text(statement), {"id": entries[0].id})
    report = await verify_committed(committing_session, committed_organisation.id)
    assert (report.ok, report.entries_checked) == (True, 2)


async def test_forged_appended_entry_is_caught(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
) -> None:
    entries = await record_committed(committing_session, committed_organisation, 2)
    forged_id = uuid.uuid4()
    # INSERT is allowed by the triggers; a forger appends a row but leaves the head alone.
    await superuser_execute(
        superuser_conninfo,
        """INSERT INTO audit_log (id, organisation_id, seq, occurred_at, actor_kind, actor_id,
               actor_label, action, entity_type, entity_id, changes, request_id, prev_hash, hash)
           SELECT %s, organisation_id, seq + 1, occurred_at, actor_kind, actor_id, actor_label,
               action, entity_type, entity_id, changes, request_id, hash, hash
           FROM audit_log WHERE id = %s""",
        params=(str(forged_id), str(entries[-1].id)),
    )
    report = await verify_committed(committing_session, committed_organisation.id)
    assert report.first_broken == BrokenLink(
        committed_organisation.id, 3, forged_id, REASON_LOG_AHEAD
    )


async def test_deleted_chain_head_is_caught(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
) -> None:
    entries = await record_committed(committing_session, committed_organisation, 2)
    await superuser_execute(
        superuser_conninfo,
        "DELETE FROM audit_chain_heads WHERE organisation_id = %s",
        params=(str(committed_organisation.id),),
    )
    report = await verify_committed(committing_session, None)
    assert report.first_broken == BrokenLink(
        committed_organisation.id, 1, entries[0].id, REASON_HEAD_MISSING
    )


@pytest.mark.parametrize("position", [2, 5], ids=["middle", "last"])
async def test_entry_altered_with_chain_columns_blanked_is_reported_at_its_own_seq(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
    position: int,
) -> None:
    """Finding 2(c): a forger changes an entry and clears seq/prev_hash/hash, hoping the
    chainer re-chains it at the end. It is never chained anew and is reported as altered at
    its own sequence number."""
    from nidaan.audit.tasks import chain_all_pending

    entries = await record_committed(committing_session, committed_organisation, 6)
    target = entries[position]
    await superuser_execute(
        superuser_conninfo,
        """UPDATE audit_log SET changes = '{"before": {}, "after": {"status": "rejected"}}',
               seq = NULL, prev_hash = NULL, hash = NULL
           WHERE id = %s""",
        params=(str(target.id),),
    )
    # The periodic sweep and later writers run: the altered entry stays unchained ...
    await chain_all_pending()
    await record_committed(committing_session, committed_organisation, 2)
    async with committing_session() as session:
        stored = await session.get(AuditLog, target.id)
        assert stored is not None
        assert (stored.seq, stored.hash) == (None, None)

    report = await verify_committed(committing_session, committed_organisation.id)
    # ... and is reported where it was.
    assert report.first_broken == BrokenLink(
        committed_organisation.id, position + 1, target.id, REASON_UNCHAINED
    )
