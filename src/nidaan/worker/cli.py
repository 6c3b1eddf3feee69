"""``nidaan worker``: run background jobs until stopped. Wiring only; the work is in kit.jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from nidaan.command_line import open_database
from nidaan.config import Settings, get_settings
from nidaan.kit.db import dispose
from nidaan.kit.jobs import close_job_app, open_job_app, run_worker
from nidaan.kit.signals import process_role, run_until_stopped


def worker(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="How many jobs this worker runs at the same time. "
            "Raise it on a bigger machine; each running job uses one database connection.",
        ),
    ] = 2,
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            help="Only run jobs from this queue (repeat the option for several). "
            "Default: every queue.",
        ),
    ] = None,
) -> None:
    """Run background jobs (event delivery, reports, notifications, clean-ups) until stopped.

    Keep at least one worker running next to "nidaan serve --role api"; several workers
    on different machines may share the same database safely. (Plain "nidaan serve"
    already runs a worker inside it.) Stop with Ctrl-C or SIGTERM: jobs in progress
    finish first, and anything not finished is retried by the next worker.
    """
    settings = get_settings()
    with process_role(typer.echo):
        open_database(settings)
        run_until_stopped(_work(settings, concurrency=concurrency, queues=queue or None))


async def _work(settings: Settings, *, concurrency: int, queues: list[str] | None) -> None:
    try:
        await open_job_app(settings)
        typer.echo("Background worker running. Press Ctrl-C to stop.")
        # Stopping cancels this task; procrastinate then lets running jobs finish first.
        await run_worker(
            settings,
            wait=True,
            concurrency=concurrency,
            queues=queues,
            install_signal_handlers=False,
        )
    finally:
        await close_job_app()
        await dispose()
