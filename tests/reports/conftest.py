"""Reports tests run the real job queue: results are committed in a fresh organisation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

# Registers the ResultsVerified subscriber in this process even before the registry's
# HANDLER_MODULES lists "nidaan.reports.handlers" (publishing fans out to it then).
import nidaan.reports.handlers  # noqa: F401
from nidaan.config import Settings
from nidaan.kit.jobs import close_job_app, open_job_app


@pytest.fixture(scope="session")
async def job_app_open(settings: Settings) -> AsyncIterator[None]:
    await open_job_app(settings)
    yield
    await close_job_app()
