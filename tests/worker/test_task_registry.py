"""The worker knows every task, whatever was deferred in the process before it started."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import asyncio

from nidaan.config import get_settings
from nidaan.kit import jobs


async def main() -> None:
    # A message queued by name before the worker opens the app (the demo seed does this).
    jobs.job_app.configure_task("notifications.send", queue="notifications")
    await jobs.open_job_app(get_settings())
    try:
        print(" ".join(sorted(jobs.job_app.tasks)))
    finally:
        await jobs.close_job_app()

asyncio.run(main())
"""


def test_tasks_deferred_by_name_before_the_worker_starts_are_still_registered(
    database_url: str,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NIDAAN_DATABASE_URL": database_url},
        check=True,
    )
    registered = set(done.stdout.split())
    for task in ("notifications.send", "events.deliver", "payments.reconcile"):
        assert task in registered, (task, sorted(registered))
