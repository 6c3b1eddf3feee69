"""The commit bundle (nidaan.kit.bundle): audit entries, outbox events and the idempotent
response go to the server as one statement at commit, and the transaction still sees them."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import AuditEntry, audit_service
from nidaan.events.base import DomainEvent
from nidaan.events.models import OutboxEvent
from nidaan.events.registry import subscriber
from nidaan.events.service import publish
from nidaan.idempotency.models import IdempotencyRecord
from nidaan.idempotency.service import idempotency_service
from nidaan.tenancy.models import Organisation
from tests.audit.conftest import CommittingSession, superuser_execute

ACTOR = AuditActor("user", uuid.UUID("01890000-0000-7000-8000-0000000000ab"), "Dr B. Iyer")


@dataclasses.dataclass(frozen=True)
class SomethingBundled(DomainEvent):
    name = "tests.something_bundled"
    marker: str


@subscriber(SomethingBundled, name="tests.bundled")
async def bundled(session: AsyncSession, event: SomethingBundled) -> None:
    """A subscriber, so that publishing enqueues a delivery job."""


@contextmanager
def statements(session: AsyncSession) -> Iterator[list[str]]:
    """The statements ``session``'s engine sends while the block runs."""
    seen: list[str] = []
    engine = session.sync_session.bind.engine  # type: ignore[union-attr]

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


async def _record(session: AsyncSession, organisation: Organisation, entity_id: str) -> None:
    await audit_service.record(
        session,
        organisation_id=organisation.id,
        actor=ACTOR,
        action="test.updated",
        entity_type="test",
        entity_id=entity_id,
        before={"name": "CBC"},
        after={"name": "CBC 2"},
    )


async def test_entries_wait_for_a_reader_of_the_log(
    session: AsyncSession, organisation: Organisation
) -> None:
    with statements(session) as sent:
        await _record(session, organisation, "a")
        await _record(session, organisation, "b")
        await session.flush()
    assert sent == []  # neither recording nor a flush sends them

    with statements(session) as sent:
        stored = (
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.organisation_id == organisation.id)
                .order_by(AuditLog.id)
            )
        ).all()
    # One INSERT for both entries, then the query that reads them.
    assert len(sent) == 2
    assert sent[0].startswith("WITH b0 AS (INSERT INTO audit_log")
    assert [e.entity_id for e in stored] == ["a", "b"]
    assert stored[0].changes == {"before": {"name": "CBC"}, "after": {"name": "CBC 2"}}
    assert stored[0].actor_label == "Dr B. Iyer"
    assert stored[0].seq is None


async def test_text_queries_and_outbox_readers_see_pending_rows(
    session: AsyncSession, organisation: Organisation
) -> None:
    event_id = await publish(session, SomethingBundled(organisation_id=organisation.id, marker="x"))
    found = await session.scalar(
        text("SELECT count(*) FROM event_outbox WHERE id = :id"), {"id": event_id}
    )
    assert found == 1
    row = await session.get(OutboxEvent, event_id)
    assert row is not None
    assert row.payload["marker"] == "x"
    assert row.occurred_at is not None


async def test_rolled_back_savepoint_drops_its_entries_and_resends_earlier_ones(
    session: AsyncSession, organisation: Organisation
) -> None:
    await _record(session, organisation, "before")
    savepoint = await session.begin_nested()
    await _record(session, organisation, "inside")
    # A reader inside the savepoint sends both entries (the earlier one too) ...
    assert await _count(session, organisation) == 2
    await savepoint.rollback()
    # ... the rollback undoes both in the database: the earlier one is pending again, the
    # one recorded inside is gone.
    await _record(session, organisation, "after")
    stored = (
        await session.scalars(
            select(AuditLog.entity_id)
            .where(AuditLog.organisation_id == organisation.id)
            .order_by(AuditLog.id)
        )
    ).all()
    assert stored == ["before", "after"]


async def test_released_savepoint_keeps_its_entries(
    session: AsyncSession, organisation: Organisation
) -> None:
    async with session.begin_nested():
        await audit_service.record_many(
            session,
            [
                AuditEntry(organisation.id, ACTOR, "test.created", "test", f"m-{i}", None, {"i": i})
                for i in range(3)
            ],
        )
    assert await _count(session, organisation) == 3


async def _count(session: AsyncSession, organisation: Organisation) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(AuditLog.organisation_id == organisation.id)
        )
        or 0
    )


async def test_commit_sends_entries_event_jobs_and_response_in_one_statement(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
) -> None:
    organisation = committed_organisation
    async with committing_session() as session:
        claim = await idempotency_service.claim(
            session,
            organisation_id=organisation.id,
            principal_key="user:bundle",
            key=uuid.uuid4().hex,
            method="POST",
            path="/api/v1/things",
            body=b"{}",
            ttl=timedelta(hours=1),
        )
        assert claim.record_id is not None
        with statements(session) as sent:
            await _record(session, organisation, "c")
            event_id = await publish(
                session, SomethingBundled(organisation_id=organisation.id, marker="y")
            )
            await idempotency_service.remember(session, claim.record_id, 201, {"ok": True})
            await idempotency_service.remember(session, claim.record_id, 201, {"ok": "last"})
            await session.commit()
    bundled = [s for s in sent if s.startswith("WITH ")]
    assert len(bundled) == 1, sent
    assert "INSERT INTO audit_log" in bundled[0]
    assert "INSERT INTO event_outbox" in bundled[0]
    assert "UPDATE idempotency_keys" in bundled[0]
    assert "procrastinate_defer_jobs_v1" in bundled[0]
    assert bundled[0].endswith("COMMIT")

    async with committing_session() as check:
        assert await _count(check, organisation) == 1
        outbox = await check.get(OutboxEvent, event_id)
        assert outbox is not None
        assert outbox.subscribers == ["tests.bundled"]
        jobs = (
            await check.execute(
                text(
                    "SELECT task_name, queue_name, status::text, args->>'subscriber' "
                    "FROM procrastinate_jobs WHERE args->>'event_id' = :id"
                ),
                {"id": str(event_id)},
            )
        ).all()
        assert [tuple(job) for job in jobs] == [
            ("events.deliver", "default", "todo", "tests.bundled")
        ]
        record = await check.get(IdempotencyRecord, claim.record_id)
        assert record is not None
        assert (record.response_status, record.response_body) == (201, {"ok": "last"})
        # Chained after commit, as before.
        report = await audit_service.verify(check, organisation.id)
        assert report.ok
        assert report.entries_checked == 1
    await superuser_execute(
        superuser_conninfo,
        "DELETE FROM procrastinate_jobs WHERE args->>'event_id' = %s",
        "DELETE FROM event_outbox WHERE id = %s",
        params=(str(event_id),),
    )


#: Values a lab's records carry that SQL drivers treat specially: a unit of "%", Python and
#: psycopg placeholders, quotes, backslashes, Devanagari, a NUL-free control character.
AWKWARD_VALUES = [
    "%",
    "100%",
    "%s",
    "%(unit)s",
    "%%",
    "it's",
    'say "hi"',
    "C:\\lab\\x",
    "हीमोग्लोबिन %",
    "tab\there",
]


async def test_fused_commit_keeps_awkward_characters(
    committing_session: CommittingSession, committed_organisation: Organisation
) -> None:
    """The statement fused with COMMIT carries its rows as literals: a ``%`` in them must
    not be read as a placeholder (the demo seed failed on the unit "%"), nor be doubled."""
    organisation = committed_organisation
    async with committing_session() as session:
        with statements(session) as sent:
            for n, value in enumerate(AWKWARD_VALUES):
                await audit_service.record(
                    session,
                    organisation_id=organisation.id,
                    actor=ACTOR,
                    action="test.updated",
                    entity_type="test",
                    entity_id=f"awkward-{n}",
                    before={"unit": "g/dL"},
                    after={"unit": value},
                )
            await session.commit()
    assert any(s.startswith("WITH ") and s.endswith("COMMIT") for s in sent), sent
    async with committing_session() as check:
        rows = (
            await check.execute(
                select(AuditLog.entity_id, AuditLog.changes).where(
                    AuditLog.organisation_id == organisation.id,
                    AuditLog.entity_id.like("awkward-%"),
                )
            )
        ).all()
    stored = {entity_id: changes["after"]["unit"] for entity_id, changes in rows}
    assert stored == {f"awkward-{n}": value for n, value in enumerate(AWKWARD_VALUES)}
