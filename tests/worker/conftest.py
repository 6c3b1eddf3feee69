"""Fixtures for jobs and events tests: the job app opened on the per-worker test database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nidaan.config import Settings
from nidaan.kit.jobs import close_job_app, open_job_app


@pytest.fixture(scope="session")
async def job_app_open(settings: Settings) -> AsyncIterator[None]:
    await open_job_app(settings)
    yield
    await close_job_app()
