"""Background jobs on procrastinate: the queue is PostgreSQL, so enqueueing is transactional.

``enqueue()`` writes the job row through the caller's session, so the job commits or
vanishes together with the business write that caused it. Jobs are still delivered at
least once (a worker can die after the work but before marking the job done), so every
actor must be idempotent.

The procrastinate schema is created by our Alembic migrations (``0001_platform`` runs
``procrastinate.schema.SchemaManager.get_schema()``), never by procrastinate's CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
import inspect
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import psycopg_pool
from procrastinate import App, PsycopgConnector, RetryStrategy
from procrastinate.retry import BaseRetryStrategy
from procrastinate.tasks import Task
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import Settings
from nidaan.kit import bundle, tracing
from nidaan.kit.db import database_url, libpq_conninfo, raw_connection
from nidaan.kit.metrics import JOB_DURATION, JOBS

logger = logging.getLogger(__name__)

#: Modules that may declare actors; the worker imports them so it knows every task name.
#: A module that gets a ``tasks.py`` adds its dotted path here. Paths whose module does
#: not exist (yet) are skipped with a warning; an import error inside one is not.
TASK_MODULES: list[str] = [
    "nidaan.events.tasks",
    "nidaan.audit.tasks",
    "nidaan.auth.tasks",
    "nidaan.idempotency.tasks",
    "nidaan.sync.tasks",
    "nidaan.files.tasks",
    "nidaan.notifications.tasks",
    "nidaan.abdm.tasks",
    "nidaan.payments.tasks",
    "nidaan.qc.tasks",
    "nidaan.einvoice.tasks",
    "nidaan.compliance.tasks",
]

#: Seconds base of the exponential backoff: retries wait 2, 4, 8, 16, 32 s ...
RETRY_EXPONENTIAL_WAIT = 2

# Resolved by open_job_app(); the pool factory reads it so that importing this module
# never computes a database URL (which could start the embedded server).
_conninfo: str | None = None


def _pool_factory(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool:
    if _conninfo is None:
        raise RuntimeError("The job app is not configured: call open_job_app(settings) first")
    return psycopg_pool.AsyncConnectionPool(conninfo=_conninfo, **kwargs)


job_app = App(
    connector=PsycopgConnector(pool_factory=_pool_factory, min_size=1, max_size=10),
    # Filled from TASK_MODULES when the app is opened, so late additions are honoured.
    import_paths=[],
)


def _existing_task_modules() -> list[str]:
    present = []
    for path in TASK_MODULES:
        try:
            found = importlib.util.find_spec(path) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            present.append(path)
        else:
            logger.warning("Task module %s does not exist; its jobs cannot run here", path)
    return present


async def open_job_app(settings: Settings) -> App:
    """Open the job app's connection pool on this process's database (idempotent)."""
    global _conninfo
    _conninfo = libpq_conninfo(database_url(settings))
    job_app.import_paths = _existing_task_modules()
    # Imported here, not by ``perform_import_paths()``: procrastinate performs those once per
    # process, and deferring a task by name (``configure_task``) before this call would mark
    # them done with nothing imported, leaving the worker unable to run those tasks.
    for path in job_app.import_paths:
        importlib.import_module(path)
    await job_app.open_async()
    return job_app


async def close_job_app() -> None:
    """Close the job app's connection pool (safe to call when it is not open)."""
    await job_app.close_async()


def _retry_strategy(retry: int | BaseRetryStrategy) -> BaseRetryStrategy | bool:
    if isinstance(retry, BaseRetryStrategy):
        return retry
    if retry <= 0:
        # RetryStrategy(max_attempts=0) would mean "retry forever"; 0 must mean "never".
        return False
    return RetryStrategy(max_attempts=retry, exponential_wait=RETRY_EXPONENTIAL_WAIT)


def actor(
    name: str,
    *,
    retry: int | BaseRetryStrategy = 5,
    queue: str = "default",
    pass_context: bool = False,
) -> Callable[[Callable[..., Any]], Task[Any, Any, Any]]:
    """Declare a job named ``module.event``, retried ``retry`` times with exponential backoff."""
    decorator = job_app.task(
        name=name,
        queue=queue,
        pass_context=pass_context,  # type: ignore[call-overload]
        retry=_retry_strategy(retry),
    )

    def declare(func: Callable[..., Any]) -> Task[Any, Any, Any]:
        return cast(Task[Any, Any, Any], decorator(_observed(name, func)))

    return declare


def _observed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Count and time every run of the actor, in a span continuing the enqueuer's trace."""
    if not inspect.iscoroutinefunction(func):
        # procrastinate runs plain functions in a thread: keep them plain.
        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            carrier = kwargs.pop(tracing.TRACE_KEY, None)
            with _observation(name), tracing.job_span(name, carrier):
                return func(*args, **kwargs)

        return run_sync

    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> Any:
        carrier = kwargs.pop(tracing.TRACE_KEY, None)
        with _observation(name), tracing.job_span(name, carrier):
            return await func(*args, **kwargs)

    return run


@contextlib.contextmanager
def _observation(name: str) -> Iterator[None]:
    started = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "succeeded"
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        JOBS.labels(name, outcome).inc()
        JOB_DURATION.labels(name).observe(time.perf_counter() - started)


def periodic(cron: str, periodic_id: str) -> Callable[[Task[Any, Any, Any]], Task[Any, Any, Any]]:
    """Schedule an actor on ``cron``; the actor receives ``timestamp`` (the scheduled epoch)."""
    return cast(
        Callable[[Task[Any, Any, Any]], Task[Any, Any, Any]],
        job_app.periodic(cron=cron, periodic_id=periodic_id),
    )


async def enqueue(session: AsyncSession, task: Task[Any, Any, Any], **kwargs: Any) -> int:
    """Insert a job for ``task`` in ``session``'s transaction and return the job id.

    ``kwargs`` are the task's arguments and must be JSON values (pass UUIDs as ``str``).
    Nothing is committed here: the job exists only if the caller's transaction commits.
    """
    connection = await raw_connection(session)
    tracing.inject(kwargs)  # the job's span joins the enqueuing request's trace
    return await task.configure(connection=connection).defer_async(**kwargs)


async def enqueue_many(
    session: AsyncSession, task: Task[Any, Any, Any], arguments: Sequence[dict[str, Any]]
) -> list[int]:
    """``enqueue`` for several jobs of ``task``: one statement for all of them."""
    if not arguments:
        return []
    connection = await raw_connection(session)
    for kwargs in arguments:
        tracing.inject(kwargs)
    return await task.configure(connection=connection).batch_defer_async(*arguments)


@dataclass(frozen=True)
class _DeferJobs:
    """procrastinate's own ``defer_jobs`` query (``procrastinate_defer_jobs_v1``) as a CTE of
    the transaction's commit statement (``nidaan.kit.bundle``)."""

    table_name = "procrastinate_jobs"
    selected = True  # a SELECT of a function: it runs only if the main query reads it

    def cte(self, name: str, columns: tuple[str, ...]) -> str:
        fields = ", ".join(f"r.{column}" for column, _ in _JOB_COLUMNS)
        types = ", ".join(f"{column} {kind}" for column, kind in _JOB_COLUMNS)
        return (
            f"{name} AS (SELECT procrastinate_defer_jobs_v1(array_agg(ROW({fields})"  # noqa: S608
            f"::procrastinate_job_to_defer_v1)) FROM jsonb_to_recordset({{{name}}}) AS r({types}))"
        )


#: The fields of procrastinate's ``procrastinate_job_to_defer_v1`` type, in order.
_JOB_COLUMNS = (
    ("queue_name", "varchar"),
    ("task_name", "varchar"),
    ("priority", "integer"),
    ("lock", "text"),
    ("queueing_lock", "text"),
    ("args", "jsonb"),
    ("scheduled_at", "timestamptz"),
)
_DEFER_JOBS = _DeferJobs()


def enqueue_at_commit(
    session: AsyncSession, task: Task[Any, Any, Any], arguments: Sequence[dict[str, Any]]
) -> None:
    """``enqueue_many`` without a round trip of its own: the jobs are inserted by the
    transaction's commit statement (or before a statement of the session that reads the job
    table), by the same database function procrastinate uses. For jobs whose ids nobody
    needs and that take no queueing lock (a clash could not be reported to the caller)."""
    deferrer = task.configure()
    if deferrer.job.queueing_lock is not None:
        raise ValueError(f"{task.name} takes a queueing lock: enqueue it with enqueue_many")
    rows = []
    for kwargs in arguments:
        tracing.inject(kwargs)
        job = deferrer.make_new_job(**kwargs)
        rows.append(
            {
                "queue_name": job.queue,
                "task_name": job.task_name,
                "priority": job.priority,
                "lock": job.lock,
                "queueing_lock": job.queueing_lock,
                "args": job.task_kwargs,
                "scheduled_at": job.scheduled_at,
            }
        )
    bundle.defer(session, _DEFER_JOBS, rows)


async def run_worker(
    settings: Settings,
    *,
    wait: bool = True,
    concurrency: int = 2,
    queues: list[str] | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run a worker on ``queues`` (all when None) until stopped, or until idle if not ``wait``.

    ``nidaan worker`` keeps the signal handlers (Ctrl-C / SIGTERM finish running jobs
    first); ``nidaan serve`` runs this as an asyncio task with ``install_signal_handlers=
    False`` and cancels the task to stop it, so the web server keeps its own handlers.
    """
    await open_job_app(settings)
    await job_app.run_worker_async(
        wait=wait,
        concurrency=concurrency,
        queues=queues,
        install_signal_handlers=install_signal_handlers,
    )


async def run_pending_jobs(settings: Settings, *, queues: list[str] | None = None) -> None:
    """Run every job that is due now, then return (tests and one-off CLI runs).

    One job at a time: the worker then fetches again only after each job has finished,
    so jobs that a job enqueues and retries due immediately are run in the same call.
    Retries scheduled in the future are left for a later run.
    """
    await open_job_app(settings)
    await job_app.run_worker_async(
        wait=False,
        concurrency=1,
        queues=queues,
        name="inline",
        install_signal_handlers=False,
        listen_notify=False,
    )
