"""``nidaan worker``: run background jobs until stopped. Wiring only; the work is in kit.jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from nidaan.command_line import open_database
from nidaan.config import Settings, get_settings
from nidaan.kit import tracing
from nidaan.kit.db import dispose
from nidaan.kit.jobs import close_job_app, open_job_app, run_worker
from nidaan.kit.signals import process_role, run_until_stopped
from nidaan.logging import configure_logging
from nidaan.observability.metrics import start_metrics_server


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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve Prometheus metrics of this worker at http://NIDAAN_METRICS_HOST:PORT"
            "/metrics (job counts, durations and the queue backlog).",
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
        # After the database check, so a refusal stays one line (no migration log lines).
        configure_logging(settings)
        tracing.configure(settings.otlp_endpoint, settings.service_name or "nidaan-worker")
        run_until_stopped(
            _work(
                settings, concurrency=concurrency, queues=queue or None, metrics_port=metrics_port
            )
        )


async def _work(
    settings: Settings,
    *,
    concurrency: int,
    queues: list[str] | None,
    metrics_port: int | None = None,
) -> None:
    metrics_server = start_metrics_server(settings, metrics_port)
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
        if metrics_server is not None:
            metrics_server.cancel()
        await close_job_app()
        await dispose()
        tracing.shutdown()
