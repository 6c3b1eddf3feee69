"""Fixtures for jobs and events tests: the job app opened on the per-worker test database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from nidaan.config import Settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import close_job_app, open_job_app


@pytest.fixture(scope="session")
async def job_app_open(settings: Settings) -> AsyncIterator[None]:
    await open_job_app(settings)
    yield
    await close_job_app()


class Cleanup:
    """Ids of committed rows a test created, deleted again at teardown."""

    def __init__(self) -> None:
        self.organisation_ids: list[uuid.UUID] = []
        self.job_ids: list[int] = []


@pytest.fixture
async def cleanup(settings: Settings) -> AsyncIterator[Cleanup]:
    created = Cleanup()
    yield created
    async with session_scope(settings) as session:
        organisation_ids = [str(org_id) for org_id in created.organisation_ids]
        await session.execute(
            text(
                "DELETE FROM procrastinate_jobs WHERE id = ANY(:job_ids) OR ("
                " task_name = 'events.deliver' AND args->>'event_id' IN ("
                "  SELECT id::text FROM event_outbox"
                "  WHERE organisation_id::text = ANY(:organisation_ids)))"
            ),
            {"job_ids": created.job_ids, "organisation_ids": organisation_ids},
        )
        await session.execute(
            text("DELETE FROM event_outbox WHERE organisation_id::text = ANY(:ids)"),
            {"ids": organisation_ids},
        )
        await session.execute(
            text("DELETE FROM organisations WHERE id::text = ANY(:ids)"),
            {"ids": organisation_ids},
        )
