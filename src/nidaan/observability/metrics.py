"""``/metrics``: the Prometheus exposition of this process, and the gauges read at scrape time.

Counters and histograms are kept as things happen (``nidaan.kit.metrics``). What is a
state of the whole installation (job backlog, outbox lag, open sync conflicts, critical
results waiting, database size) is read from PostgreSQL when Prometheus scrapes, with a
short timeout, so every process (API, worker, interfaces) tells the same truth and none
runs a background loop for it. A scrape that cannot reach the database still answers,
with ``nidaan_database_up 0``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from nidaan.config import Settings
from nidaan.kit import db
from nidaan.kit.metrics import REGISTRY

logger = logging.getLogger(__name__)

#: A scrape waits at most this long for the database gauges (Prometheus' own timeout is 10 s).
REFRESH_TIMEOUT_SECONDS = 3.0

DATABASE_UP = Gauge(
    "nidaan_database_up", "1 when the database answered this scrape", registry=REGISTRY
)
DATABASE_SIZE = Gauge(
    "nidaan_database_size_bytes", "Size of the Nidaan database on disk", registry=REGISTRY
)
POOL_SIZE = Gauge(
    "nidaan_db_pool_size",
    "Connections the pool keeps open (its configured size)",
    ["pool"],
    registry=REGISTRY,
)
POOL_CHECKED_OUT = Gauge(
    "nidaan_db_pool_checked_out",
    "Database connections in use by this process",
    ["pool"],
    registry=REGISTRY,
)
POOL_OVERFLOW = Gauge(
    "nidaan_db_pool_overflow",
    "Connections opened beyond the pool size (negative: room left before overflow)",
    ["pool"],
    registry=REGISTRY,
)
JOB_QUEUE = Gauge(
    "nidaan_job_queue_depth",
    "Background jobs waiting (todo) or running (doing), by queue and task",
    ["queue", "task", "status"],
    registry=REGISTRY,
)
JOB_OLDEST = Gauge(
    "nidaan_job_oldest_waiting_seconds",
    "Age of the oldest job that is due and waiting, by queue",
    ["queue"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "nidaan_outbox_undelivered_events",
    "Domain events not yet handled by every subscriber",
    registry=REGISTRY,
)
OUTBOX_LAG = Gauge(
    "nidaan_outbox_lag_seconds",
    "Age of the oldest domain event not yet handled by every subscriber (0: none)",
    registry=REGISTRY,
)
RELAY_LAG = Gauge(
    "nidaan_relay_lag_seconds",
    "Age of the oldest domain event not yet published to the event broker (0: none)",
    registry=REGISTRY,
)
SYNC_CONFLICTS_OPEN = Gauge(
    "nidaan_sync_conflicts_open", "Sync conflicts waiting for a person", registry=REGISTRY
)
CRITICAL_OPEN = Gauge(
    "nidaan_critical_alerts_open",
    "Critical results not yet acknowledged (phoned through)",
    registry=REGISTRY,
)
CRITICAL_OLDEST = Gauge(
    "nidaan_critical_alert_oldest_open_seconds",
    "Age of the oldest critical result not yet acknowledged (0: none)",
    registry=REGISTRY,
)
ANALYZER_EXCEPTIONS_OPEN = Gauge(
    "nidaan_analyzer_exceptions_open",
    "Analyzer messages kept with an error and waiting for a person",
    registry=REGISTRY,
)

_QUERIES: dict[str, str] = {
    "size": "SELECT pg_database_size(current_database())",
    "jobs": (
        "SELECT queue_name, task_name, status::text, count(*) FROM procrastinate_jobs "
        "WHERE status IN ('todo', 'doing') GROUP BY 1, 2, 3"
    ),
    "oldest_job": (
        "SELECT queue_name, extract(epoch FROM now() - min(coalesce(scheduled_at, "
        "(SELECT min(at) FROM procrastinate_events e WHERE e.job_id = j.id)))) "
        "FROM procrastinate_jobs j WHERE status = 'todo' "
        "AND (scheduled_at IS NULL OR scheduled_at <= now()) GROUP BY 1"
    ),
    "outbox": (
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(o.occurred_at)), 0) "
        "FROM event_outbox o WHERE cardinality(o.subscribers) > ("
        "  SELECT count(*) FROM event_deliveries d "
        "  WHERE d.event_id = o.id AND d.subscriber = ANY (o.subscribers))"
    ),
    "conflicts": "SELECT count(*) FROM sync_conflicts WHERE status = 'OPEN'",
    "critical": (
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
        "FROM critical_alerts WHERE status = 'open'"
    ),
    "exceptions": "SELECT count(*) FROM interface_exceptions WHERE status = 'open'",
}


def _set_pool_gauges() -> None:
    for name, engine in db.engines().items():
        pool: Any = engine.sync_engine.pool
        # QueuePool reports these; a NullPool (tests, CLI) has none.
        if not hasattr(pool, "checkedout"):
            continue
        POOL_SIZE.labels(name).set(pool.size())
        POOL_CHECKED_OUT.labels(name).set(pool.checkedout())
        POOL_OVERFLOW.labels(name).set(pool.overflow())


async def _read_database(settings: Settings) -> None:
    engine = db.get_engine(settings)
    async with engine.connect() as connection:
        DATABASE_SIZE.set(await connection.scalar(text(_QUERIES["size"])) or 0)
        JOB_QUEUE.clear()
        for queue, task, status, count in await connection.execute(text(_QUERIES["jobs"])):
            JOB_QUEUE.labels(queue, task, status).set(count)
        JOB_OLDEST.clear()
        for queue, age in await connection.execute(text(_QUERIES["oldest_job"])):
            JOB_OLDEST.labels(queue).set(float(age or 0))
        pending, lag = (await connection.execute(text(_QUERIES["outbox"]))).one()
        OUTBOX_PENDING.set(pending)
        OUTBOX_LAG.set(float(lag))
        SYNC_CONFLICTS_OPEN.set(await connection.scalar(text(_QUERIES["conflicts"])) or 0)
        waiting, oldest = (await connection.execute(text(_QUERIES["critical"]))).one()
        CRITICAL_OPEN.set(waiting)
        CRITICAL_OLDEST.set(float(oldest))
        ANALYZER_EXCEPTIONS_OPEN.set(await connection.scalar(text(_QUERIES["exceptions"])) or 0)
        if settings.events_url:
            from nidaan.events.relay import relay_lag_seconds

            RELAY_LAG.set(await relay_lag_seconds(connection))
        await connection.rollback()


async def refresh(settings: Settings) -> None:
    """Update the gauges read from this process and from the database."""
    _set_pool_gauges()
    try:
        await asyncio.wait_for(_read_database(settings), REFRESH_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("metrics: database gauges not read: %s", type(exc).__name__)
        DATABASE_UP.set(0)
    else:
        DATABASE_UP.set(1)


async def exposition(settings: Settings) -> Response:
    """The current metrics in Prometheus' text format."""
    from nidaan.integration.metrics import register_interface_metrics

    register_interface_metrics()
    await refresh(settings)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def authorised(settings: Settings, authorization: str | None) -> bool:
    """Whether a scrape on the API port may read ``/metrics``.

    Demo and test installations answer anyone; production only a scraper presenting
    ``Bearer NIDAAN_METRICS_TOKEN`` (no token set: not on the API port at all, use
    ``NIDAAN_METRICS_PORT``)."""
    if not settings.is_production:
        return True
    if settings.metrics_token is None:
        return False
    expected = f"Bearer {settings.metrics_token.get_secret_value()}"
    return hmac.compare_digest((authorization or "").encode(), expected.encode())


def metrics_app(settings: Settings) -> Starlette:
    """A tiny ASGI app answering ``GET /metrics`` (the separate metrics port)."""

    async def metrics(_: Request) -> Response:
        return await exposition(settings)

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", health)])


async def serve_metrics(settings: Settings, port: int, host: str | None = None) -> None:
    """Serve ``metrics_app`` on ``host:port`` until cancelled (worker, interfaces, or the
    API's separate metrics port). Binding errors are logged, never fatal: metrics must
    not stop a lab's work."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            metrics_app(settings),
            host=host or settings.metrics_host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    # uvicorn's own signal handlers belong to the main server of this process.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    try:
        await server.serve()
    except (OSError, SystemExit) as exc:
        logger.error("metrics port %s:%s not served: %s", host or settings.metrics_host, port, exc)


def start_metrics_server(settings: Settings, port: int | None) -> asyncio.Task[None] | None:
    """Start ``serve_metrics`` as a task when ``port`` is set (None: nothing to do)."""
    if not port:
        return None
    return asyncio.create_task(serve_metrics(settings, port), name="nidaan-metrics")
