"""audit_service.record / verify / list_entries on a real database, inside a rolled-back test."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.domain import GENESIS_HASH, REDACTED
from nidaan.audit.models import AuditChainHead, AuditLog
from nidaan.audit.schemas import SYSTEM_ACTOR, AuditActor, AuditEntryOut, AuditVerifyOut
from nidaan.audit.service import audit_service
from nidaan.kit.context import request_id_var
from nidaan.kit.pagination import PageParams
from nidaan.tenancy.models import Organisation

ACTOR = AuditActor("user", uuid.UUID("01890000-0000-7000-8000-0000000000aa"), "Dr A. Rao")


async def _record(
    session: AsyncSession, organisation: Organisation, n: int = 1, **kw: object
) -> list[AuditLog]:
    entries = []
    for i in range(n):
        args: dict = {
            "organisation_id": organisation.id,
            "actor": ACTOR,
            "action": "test.updated",
            "entity_type": "test",
            "entity_id": f"t-{i}",
            "before": {"price": Decimal("100.00"), "name": "CBC"},
            "after": {"price": Decimal(f"{100 + i + 1}.00"), "name": "CBC"},
        }
        args.update(kw)
        entries.append(await audit_service.record(session, **args))  # type: ignore[arg-type]
    await audit_service.flush(session)  # chain now; otherwise that happens after commit
    return await _reload(session, entries)


async def _reload(session: AsyncSession, entries: list[AuditLog]) -> list[AuditLog]:
    """The stored rows of ``entries`` (records are chained after they are written)."""
    rows = await session.scalars(
        select(AuditLog).where(AuditLog.id.in_([e.id for e in entries])).order_by(AuditLog.seq)
    )
    return list(rows)


async def test_record_stores_entry_with_diff_actor_and_request_id(
    session: AsyncSession, organisation: Organisation
) -> None:
    token = request_id_var.set("req-123")
    try:
        (entry,) = await _record(
            session,
            organisation,
            before={"name": "CBC", "password_hash": "old"},
            after={"name": "Complete blood count", "password_hash": "new"},
            entity_id=uuid.UUID("01890000-0000-7000-8000-0000000000bb"),
        )
    finally:
        request_id_var.reset(token)

    stored = (
        await session.execute(
            select(AuditLog)
            .where(AuditLog.id == entry.id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert stored.seq == 1
    assert stored.prev_hash == GENESIS_HASH
    assert stored.actor_kind == "user"
    assert stored.actor_id == ACTOR.id
    assert stored.actor_label == "Dr A. Rao"
    assert stored.entity_id == "01890000-0000-7000-8000-0000000000bb"
    assert stored.request_id == "req-123"
    assert stored.changes == {
        "before": {"name": "CBC", "password_hash": REDACTED},
        "after": {"name": "Complete blood count", "password_hash": REDACTED},
    }
    head = await session.get(AuditChainHead, organisation.id)
    assert head is not None
    assert (head.last_seq, head.last_hash) == (1, stored.hash)


async def test_chain_of_entries_is_contiguous_linked_and_verifies(
    session: AsyncSession, organisation: Organisation
) -> None:
    entries = await _record(session, organisation, 5)
    entries.append(
        await audit_service.record(
            session,
            organisation_id=organisation.id,
            actor=SYSTEM_ACTOR,
            action="test.deleted",
            entity_type="test",
            entity_id="t-0",
            before={"name": "CBC"},
        )
    )
    await audit_service.flush(session)
    entries = await _reload(session, entries)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].prev_hash == GENESIS_HASH
    for previous, current in itertools.pairwise(entries):
        assert current.prev_hash == previous.hash

    report = await audit_service.verify(session, organisation.id)
    assert report.ok
    assert (report.organisations_checked, report.entries_checked) == (1, 6)
    assert report.first_broken is None


async def test_verify_reads_back_from_database_in_any_session_time_zone(
    session: AsyncSession, organisation: Organisation
) -> None:
    # Values chosen to stress JSONB round trips: integral floats, unicode, nested data.
    await _record(
        session,
        organisation,
        3,
        before=None,
        after={"value": 1e16, "ratio": 0.1, "name": "हीमोग्लोबिन", "ranges": [{"low": 12.0}]},
    )
    await session.execute(text("SET LOCAL TIME ZONE 'Asia/Kolkata'"))
    report = await audit_service.verify(session, organisation.id)
    assert report.ok, report.first_broken


async def test_organisations_have_independent_chains(
    session: AsyncSession, organisation: Organisation, other_organisation: Organisation
) -> None:
    first = await _record(session, organisation, 2)
    second = await _record(session, other_organisation, 3)
    third = await _record(session, organisation, 1)
    assert [e.seq for e in first + third] == [1, 2, 3]
    assert [e.seq for e in second] == [1, 2, 3]
    assert second[0].prev_hash == GENESIS_HASH
    assert third[0].prev_hash == first[-1].hash
    for org in (organisation, other_organisation):
        report = await audit_service.verify(session, org.id)
        assert (report.ok, report.entries_checked) == (True, 3)


async def test_verify_of_organisation_without_entries_is_ok(
    session: AsyncSession, organisation: Organisation
) -> None:
    report = await audit_service.verify(session, organisation.id)
    assert (report.ok, report.organisations_checked, report.entries_checked) == (True, 1, 0)


async def test_verify_walks_chains_longer_than_one_batch(
    session: AsyncSession, organisation: Organisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nidaan.audit import service

    monkeypatch.setattr(service, "VERIFY_BATCH_SIZE", 3)
    await _record(session, organisation, 7)
    report = await audit_service.verify(session, organisation.id)
    assert (report.ok, report.entries_checked) == (True, 7)


async def test_verify_all_organisations_includes_this_one(
    session: AsyncSession, organisation: Organisation
) -> None:
    await _record(session, organisation, 2)
    report = await audit_service.verify(session)
    assert report.ok, report.first_broken
    assert report.organisations_checked >= 1
    assert report.entries_checked >= 2


async def test_rolled_back_record_leaves_nothing_behind(
    session: AsyncSession, organisation: Organisation
) -> None:
    savepoint = await session.begin_nested()
    await _record(session, organisation, 2)
    await savepoint.rollback()

    assert (
        await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.organisation_id == organisation.id)
        )
        == 0
    )
    assert (
        await session.scalar(
            select(func.count())
            .select_from(AuditChainHead)
            .where(AuditChainHead.organisation_id == organisation.id)
        )
        == 0
    )
    (entry,) = await _record(session, organisation)
    assert (entry.seq, entry.prev_hash) == (1, GENESIS_HASH)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'forged' WHERE organisation_id = :org",
        "DELETE FROM audit_log WHERE organisation_id = :org",
        "TRUNCATE audit_log",
    ],
)
async def test_database_refuses_to_change_the_log(
    session: AsyncSession, organisation: Organisation, statement: str
) -> None:
    await _record(session, organisation, 2)
    # The application role lacks the privilege; the trigger stops even the owner.
    with pytest.raises(DBAPIError, match=r"audit_log is append-only|permission denied for table"):
        async with session.begin_nested():
            await session.execute(text(statement), {"org": organisation.id})
    report = await audit_service.verify(session, organisation.id)
    assert (report.ok, report.entries_checked) == (True, 2)


async def test_list_entries_filters_pages_newest_first_and_is_tenant_scoped(
    session: AsyncSession, organisation: Organisation, other_organisation: Organisation
) -> None:
    await _record(session, organisation, 3, entity_type="test", action="test.updated")
    await _record(
        session, organisation, 2, entity_type="panel", action="panel.created", entity_id="p-1"
    )
    await _record(session, other_organisation, 4)

    everything, total = await audit_service.list_entries(
        session, organisation.id, page=PageParams(1, 20)
    )
    assert total == 5
    assert [e.seq for e in everything] == [5, 4, 3, 2, 1]
    assert {e.organisation_id for e in everything} == {organisation.id}

    page, total = await audit_service.list_entries(session, organisation.id, page=PageParams(2, 2))
    assert (total, [e.seq for e in page]) == (5, [3, 2])

    panels, total = await audit_service.list_entries(
        session, organisation.id, entity_type="panel", entity_id="p-1", page=PageParams()
    )
    assert (total, [e.seq for e in panels]) == (2, [5, 4])
    updated, total = await audit_service.list_entries(
        session, organisation.id, action="test.updated", page=PageParams()
    )
    assert (total, [e.seq for e in updated]) == (3, [3, 2, 1])


async def test_response_schemas_read_service_objects(
    session: AsyncSession, organisation: Organisation
) -> None:
    (entry,) = await _record(session, organisation)
    out = AuditEntryOut.model_validate(entry)
    assert (out.seq, out.hash, out.changes) == (1, entry.hash, entry.changes)
    report = await audit_service.verify(session, organisation.id)
    verified = AuditVerifyOut.model_validate({**vars(report), "checkpoints": []})
    assert verified.model_dump() == {
        "ok": True,
        "organisations_checked": 1,
        "entries_checked": 1,
        "first_broken": None,
        "checkpoints": [],
    }
