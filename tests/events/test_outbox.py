"""Publishing is transactional; delivery runs each subscriber once, in its own transaction."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import Counter

import pytest
from procrastinate import RetryStrategy
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import Settings
from nidaan.events.base import DomainEvent, event_from_payload
from nidaan.events.models import EventDelivery, OutboxEvent
from nidaan.events.registry import subscriber, subscriptions_for
from nidaan.events.service import publish
from nidaan.events.tasks import deliver, prune_outbox
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, enqueue, run_pending_jobs
from nidaan.tenancy.models import Organisation
from tests.events.conftest import Cleanup
from tests.fixtures.objects import create_organisation

pytestmark = pytest.mark.usefixtures("job_app_open")

handled: Counter[tuple[str, str]] = Counter()
flaky_attempts: Counter[str] = Counter()
jobs_run: Counter[str] = Counter()


@dataclasses.dataclass(frozen=True)
class ThingHappened(DomainEvent):
    name = "tests.thing_happened"
    marker: str


@dataclasses.dataclass(frozen=True)
class FlakyThingHappened(DomainEvent):
    name = "tests.flaky_thing_happened"
    marker: str


@dataclasses.dataclass(frozen=True)
class NobodyCares(DomainEvent):
    name = "tests.nobody_cares"


@subscriber(ThingHappened, name="tests.first")
async def first(session: AsyncSession, event: ThingHappened) -> None:
    handled["tests.first", event.marker] += 1
    # A DB effect of the handler, to show it commits together with the delivery mark.
    await create_organisation(session, name=f"handled {event.marker}")


@subscriber(ThingHappened, name="tests.second")
async def second(session: AsyncSession, event: ThingHappened) -> None:
    handled["tests.second", event.marker] += 1


@subscriber(FlakyThingHappened, name="tests.flaky")
async def flaky(session: AsyncSession, event: FlakyThingHappened) -> None:
    flaky_attempts[event.marker] += 1
    await create_organisation(session, name=f"handled {event.marker}")
    if flaky_attempts[event.marker] == 1:
        raise ConnectionError("the first attempt fails, like a network blip")


@actor("tests.events.record_job")
async def record_job(marker: str) -> None:
    jobs_run[marker] += 1


async def count(settings: Settings, query: str, **params: object) -> int:
    async with session_scope(settings) as check:
        return int((await check.execute(text(query), params)).scalar_one())


async def deliver_jobs(settings: Settings, event_id: uuid.UUID) -> list[tuple[str, str, int]]:
    async with session_scope(settings) as check:
        rows = await check.execute(
            text(
                "SELECT args->>'subscriber', status::text, attempts FROM procrastinate_jobs"
                " WHERE task_name = 'events.deliver' AND args->>'event_id' = :event_id"
                " ORDER BY id"
            ),
            {"event_id": str(event_id)},
        )
        return [(row[0], row[1], row[2]) for row in rows]


async def organisations_named(settings: Settings, name: str) -> int:
    return await count(settings, "SELECT count(*) FROM organisations WHERE name = :n", n=name)


class AbortedError(Exception):
    """Raised to make a committing transaction roll back."""


async def test_rollback_takes_data_event_and_jobs_together(
    settings: Settings, cleanup: Cleanup
) -> None:
    marker = uuid.uuid4().hex
    seen: dict[str, object] = {}

    async def write_publish_enqueue_then_fail() -> None:
        async with session_scope(settings) as session:
            organisation = await create_organisation(session)
            seen["organisation_id"] = organisation.id
            seen["event_id"] = await publish(
                session, ThingHappened(organisation_id=organisation.id, marker=marker)
            )
            seen["job_id"] = await enqueue(session, record_job, marker=marker)
            raise AbortedError

    with pytest.raises(AbortedError):
        await write_publish_enqueue_then_fail()
    cleanup.organisation_ids.append(seen["organisation_id"])  # type: ignore[arg-type]

    assert (
        await count(
            settings,
            "SELECT count(*) FROM organisations WHERE id = :id",
            id=seen["organisation_id"],
        )
        == 0
    )
    assert (
        await count(
            settings, "SELECT count(*) FROM event_outbox WHERE id = :id", id=seen["event_id"]
        )
        == 0
    )
    assert (
        await count(
            settings, "SELECT count(*) FROM procrastinate_jobs WHERE id = :id", id=seen["job_id"]
        )
        == 0
    )
    assert await deliver_jobs(settings, seen["event_id"]) == []  # type: ignore[arg-type]

    await run_pending_jobs(settings)
    assert jobs_run[marker] == 0
    assert handled["tests.first", marker] == handled["tests.second", marker] == 0


async def test_commit_keeps_data_event_and_jobs_together(
    settings: Settings, cleanup: Cleanup
) -> None:
    marker = uuid.uuid4().hex
    async with session_scope(settings) as session:
        organisation = await create_organisation(session)
        cleanup.organisation_ids.append(organisation.id)
        event_id = await publish(
            session, ThingHappened(organisation_id=organisation.id, marker=marker)
        )
        job_id = await enqueue(session, record_job, marker=marker)
        cleanup.job_ids.append(job_id)

    async with session_scope(settings) as check:
        assert await check.get(Organisation, organisation.id) is not None
        row = await check.get(OutboxEvent, event_id)
        assert row is not None
        assert (row.organisation_id, row.name, row.subscribers) == (
            organisation.id,
            "tests.thing_happened",
            ["tests.first", "tests.second"],
        )
        assert event_from_payload(row.name, row.payload) == ThingHappened(
            organisation_id=organisation.id, marker=marker
        )
    assert await deliver_jobs(settings, event_id) == [
        ("tests.first", "todo", 0),
        ("tests.second", "todo", 0),
    ]
    assert (
        await count(settings, "SELECT count(*) FROM procrastinate_jobs WHERE id = :id", id=job_id)
        == 1
    )


async def test_each_subscriber_runs_once_and_redelivery_is_skipped(
    settings: Settings, cleanup: Cleanup
) -> None:
    marker = uuid.uuid4().hex
    async with session_scope(settings) as session:
        organisation = await create_organisation(session)
        cleanup.organisation_ids.append(organisation.id)
        event_id = await publish(
            session, ThingHappened(organisation_id=organisation.id, marker=marker)
        )

    await run_pending_jobs(settings)

    assert handled["tests.first", marker] == 1
    assert handled["tests.second", marker] == 1
    assert await deliver_jobs(settings, event_id) == [
        ("tests.first", "succeeded", 1),
        ("tests.second", "succeeded", 1),
    ]
    assert await organisations_named(settings, f"handled {marker}") == 1
    async with session_scope(settings) as check:
        delivered = await check.scalars(
            select(EventDelivery.subscriber)
            .where(EventDelivery.event_id == event_id)
            .order_by(EventDelivery.subscriber)
        )
        assert list(delivered) == ["tests.first", "tests.second"]

    # At-least-once: the same delivery job arriving again must not repeat the effects.
    async with session_scope(settings) as session:
        for name in ("tests.first", "tests.second"):
            await enqueue(session, deliver, event_id=str(event_id), subscriber=name)
    await run_pending_jobs(settings)

    assert handled["tests.first", marker] == 1
    assert handled["tests.second", marker] == 1
    assert await organisations_named(settings, f"handled {marker}") == 1
    assert [status for _, status, _ in await deliver_jobs(settings, event_id)] == ["succeeded"] * 4
    await _delete_handled_organisation(settings, marker)


async def test_failed_handler_rolls_back_and_is_retried(
    settings: Settings, cleanup: Cleanup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same policy as production minus the backoff wait, so the retry is due at once.
    monkeypatch.setattr(deliver, "retry_strategy", RetryStrategy(max_attempts=5))
    marker = uuid.uuid4().hex
    async with session_scope(settings) as session:
        organisation = await create_organisation(session)
        cleanup.organisation_ids.append(organisation.id)
        event_id = await publish(
            session, FlakyThingHappened(organisation_id=organisation.id, marker=marker)
        )

    await run_pending_jobs(settings)

    assert flaky_attempts[marker] == 2
    assert await deliver_jobs(settings, event_id) == [("tests.flaky", "succeeded", 2)]
    # The failed attempt's write was rolled back with its delivery mark; only one stays.
    assert await organisations_named(settings, f"handled {marker}") == 1
    assert (
        await count(
            settings, "SELECT count(*) FROM event_deliveries WHERE event_id = :id", id=event_id
        )
        == 1
    )
    await _delete_handled_organisation(settings, marker)


async def test_failed_handler_is_retried_only_after_the_backoff(
    settings: Settings, cleanup: Cleanup
) -> None:
    marker = uuid.uuid4().hex
    async with session_scope(settings) as session:
        organisation = await create_organisation(session)
        cleanup.organisation_ids.append(organisation.id)
        event_id = await publish(
            session, FlakyThingHappened(organisation_id=organisation.id, marker=marker)
        )

    await run_pending_jobs(settings)

    # The real strategy waits 2 s before the first retry: the job is back in the queue.
    assert flaky_attempts[marker] == 1
    assert await deliver_jobs(settings, event_id) == [("tests.flaky", "todo", 1)]
    assert await organisations_named(settings, f"handled {marker}") == 0


async def test_unknown_subscriber_fails_loudly(
    settings: Settings,
    cleanup: Cleanup,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(deliver, "retry_strategy", None)
    async with session_scope(settings) as session:
        organisation = await create_organisation(session)
        cleanup.organisation_ids.append(organisation.id)
        event_id = await publish(session, NobodyCares(organisation_id=organisation.id))
        cleanup.job_ids.append(
            await enqueue(session, deliver, event_id=str(event_id), subscriber="tests.ghost")
        )

    with caplog.at_level(logging.ERROR, logger="nidaan.events.tasks"):
        await run_pending_jobs(settings)

    assert await deliver_jobs(settings, event_id) == [("tests.ghost", "failed", 1)]
    assert f"Cannot deliver event {event_id}: unknown subscriber 'tests.ghost'" in caplog.text


async def test_event_without_subscribers_is_recorded_with_no_jobs(
    session: AsyncSession, organisation: Organisation
) -> None:
    assert subscriptions_for(NobodyCares) == []

    event_id = await publish(session, NobodyCares(organisation_id=organisation.id))

    row = await session.get(OutboxEvent, event_id)
    assert row is not None
    assert row.subscribers == []
    jobs = await session.scalar(
        text("SELECT count(*) FROM procrastinate_jobs WHERE args->>'event_id' = :id").bindparams(
            id=str(event_id)
        )
    )
    assert jobs == 0


async def test_prune_removes_only_old_fully_delivered_events(
    settings: Settings, cleanup: Cleanup
) -> None:
    async with session_scope(settings) as session:
        organisation = await create_organisation(session)
        cleanup.organisation_ids.append(organisation.id)
        ids = {}
        for label, age_days, subscribers, delivered in (
            ("old_delivered", 31, ["a", "b"], ["a", "b"]),
            ("old_partly_delivered", 31, ["a", "b"], ["a"]),
            ("old_without_subscribers", 31, [], []),
            ("recent_delivered", 29, ["a"], ["a"]),
        ):
            row = OutboxEvent(
                organisation_id=organisation.id,
                name="tests.nobody_cares",
                payload={"organisation_id": str(organisation.id)},
                subscribers=subscribers,
                occurred_at=func.now() - text(f"interval '{age_days} days'"),
            )
            session.add(row)
            await session.flush()
            session.add_all(EventDelivery(event_id=row.id, subscriber=s) for s in delivered)
            ids[label] = row.id

    await prune_outbox(timestamp=0)

    async with session_scope(settings) as check:
        left = set(
            await check.scalars(
                select(OutboxEvent.id).where(OutboxEvent.organisation_id == organisation.id)
            )
        )
    assert left == {ids["old_partly_delivered"], ids["recent_delivered"]}


async def test_migration_matches_the_models(settings: Settings) -> None:
    from nidaan import migrate

    ours = ("event_outbox", "event_deliveries")
    differences = [
        d for d in migrate.schema_differences(settings) if any(t in repr(d) for t in ours)
    ]
    assert differences == []


async def _delete_handled_organisation(settings: Settings, marker: str) -> None:
    async with session_scope(settings) as session:
        await session.execute(
            text("DELETE FROM organisations WHERE name = :n"), {"n": f"handled {marker}"}
        )
