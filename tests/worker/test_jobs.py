"""The job queue joins the caller's transaction, and the worker runs what was committed."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from procrastinate import RetryStrategy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import Settings
from nidaan.events.tasks import deliver, prune_outbox
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, enqueue, job_app, run_pending_jobs

pytestmark = pytest.mark.usefixtures("job_app_open")

runs: Counter[str] = Counter()


@actor("tests.jobs.record")
async def record(marker: str) -> None:
    runs[marker] += 1


async def job_status(settings: Settings, job_id: int) -> tuple[str, int] | None:
    async with session_scope(settings) as check:
        row = (
            await check.execute(
                text("SELECT status::text, attempts FROM procrastinate_jobs WHERE id = :id"),
                {"id": job_id},
            )
        ).first()
    return (row[0], row[1]) if row else None


async def test_enqueue_in_rolled_back_session_leaves_no_job(
    session: AsyncSession, settings: Settings
) -> None:
    marker = uuid.uuid4().hex
    job_id = await enqueue(session, record, marker=marker)

    in_transaction = await session.execute(
        text("SELECT task_name, args FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
    )
    assert in_transaction.one() == ("tests.jobs.record", {"marker": marker})
    await session.rollback()

    assert await job_status(settings, job_id) is None


async def test_enqueue_in_committed_session_creates_a_runnable_job(settings: Settings) -> None:
    marker = uuid.uuid4().hex
    async with session_scope(settings) as session:
        job_id = await enqueue(session, record, marker=marker)

    assert await job_status(settings, job_id) == ("todo", 0)

    await run_pending_jobs(settings)

    assert runs[marker] == 1
    assert await job_status(settings, job_id) == ("succeeded", 1)  # attempts counts runs


async def test_failed_rollback_of_the_business_write_takes_the_job_with_it(
    settings: Settings,
) -> None:
    marker = uuid.uuid4().hex
    job_ids: list[int] = []

    class AbortedError(Exception):
        pass

    async def enqueue_then_fail() -> None:
        async with session_scope(settings) as session:
            job_ids.append(await enqueue(session, record, marker=marker))
            raise AbortedError

    with pytest.raises(AbortedError):
        await enqueue_then_fail()

    assert await job_status(settings, job_ids[0]) is None
    await run_pending_jobs(settings)
    assert runs[marker] == 0


def test_actors_retry_with_exponential_backoff() -> None:
    strategy = deliver.retry_strategy
    assert isinstance(strategy, RetryStrategy)
    assert (strategy.max_attempts, strategy.exponential_wait) == (5, 2)
    assert deliver.name == "events.deliver"
    assert deliver.queue == "default"


def test_retry_zero_means_never_retry() -> None:
    assert prune_outbox.retry_strategy is None


def test_prune_outbox_is_registered_as_a_periodic_job() -> None:
    periodic_tasks: dict[tuple[str, str], Any] = job_app.periodic_registry.periodic_tasks
    entry = periodic_tasks[("events.prune_outbox", "events.prune_outbox")]
    assert entry.task is prune_outbox
    assert entry.cron == "23 2 * * *"
