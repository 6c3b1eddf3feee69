"""The FastAPI application: middleware, error handlers, health probes and routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nidaan import __version__
from nidaan.api import api_router, public_router
from nidaan.api_docs import install_api_docs
from nidaan.config import Mode, Settings, get_settings
from nidaan.errors import install_error_handlers
from nidaan.kit import db, tracing
from nidaan.kit.cache import close_caches
from nidaan.kit.context import request_id_var
from nidaan.kit.metrics import HTTP_IN_PROGRESS, HTTP_LATENCY, HTTP_REQUESTS
from nidaan.kit.rate_limit import window_counter
from nidaan.logging import configure_logging
from nidaan.request_guard import BodyLimits, RequestGuardMiddleware

log = structlog.get_logger("nidaan.http")
REQUEST_ID_HEADER = "x-request-id"
#: Route label of requests that matched no route (404s of scanners): one series for all.
UNMATCHED_ROUTE = "<unmatched>"


#: Probes polled every few seconds by load balancers: counted in the metrics, not logged.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()


class _RouteMetrics:
    """The metric children of one (method, route, status), looked up once: ``labels()``
    validates and locks on every call, which a request should not pay for."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[(method, route, status)] = HTTP_REQUESTS.labels(
                method, route, str(status)
            )
        latency = self._latencies.get((method, route))
        if latency is None:
            latency = self._latencies[(method, route)] = HTTP_LATENCY.labels(method, route)
        counter.inc()
        latency.observe(elapsed)


def _incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == _REQUEST_ID_KEY:
            incoming = value.decode("latin-1")
            return incoming if 0 < len(incoming) <= 100 and incoming.isprintable() else None
    return None


class RequestContextMiddleware:
    """Give every request an id (or keep the caller's), bind it to logs and echo it back;
    count and time it, and log one line per request (probes excepted)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.metrics = _RouteMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope["headers"]) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500  # no response started: the app failed
        echoed = (_REQUEST_ID_KEY, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            HTTP_IN_PROGRESS.dec()
            elapsed = time.perf_counter() - started
            # The route template (/api/v1/orders/{order_id}), never the raw path: one series
            # per endpoint, not per order.
            self.metrics.observe(scope["method"], route_template(scope), status, elapsed)
            if scope["path"] not in QUIET_PATHS or status >= 500:
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.unbind_contextvars("request_id")
            request_id_var.reset(token)


def _freeze_startup_objects() -> None:
    """Move what start-up built (modules, mappers, compiled routes: ~570,000 objects) out of
    the garbage collector's reach. Each full collection walked them all again, ~1 s of CPU on
    this machine, as a pause in whichever request happened to allocate at that moment."""
    gc.collect()
    gc.freeze()


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/api/v1/orders/{order_id}``)."""
    # FastAPI keeps the effective route of an included router (with its prefix) here; the
    # matched APIRoute's own path lacks the router prefix.
    fastapi_scope = scope.get("fastapi")
    context = fastapi_scope.get("effective_route_context") if fastapi_scope else None
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template or UNMATCHED_ROUTE


def create_app(
    settings: Settings | None = None,
    *,
    run_worker: bool = False,
    run_interfaces: bool = False,
    metrics_port: int | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the app; ``run_worker`` / ``run_interfaces`` add the job worker and the analyzer
    connections to this process (the all-in-one server); ``metrics_port`` serves /metrics
    apart from the API; ``freeze_gc`` (servers, not tests): see ``_freeze_startup_objects``."""
    settings = settings or get_settings()
    configure_logging(settings)
    tracing.configure(settings.otlp_endpoint, settings.service_name or "nidaan-api")
    demo_providers = None
    if settings.mode is Mode.DEMO and settings.whatsapp_access_token is not None:
        from nidaan.simulators.demo import DemoProviders

        demo_providers = DemoProviders(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from nidaan.audit.service import chainer

        chainer.start()
        if demo_providers is not None:
            demo_providers.start()
        supervisor = None
        if run_interfaces:
            from nidaan.integration.journal import JournalBusy
            from nidaan.integration.runtime import InterfaceSupervisor

            supervisor = InterfaceSupervisor(settings)
            try:
                await supervisor.start()
            except JournalBusy as exc:
                # A separate `nidaan interfaces` runs the analyzers: serve the API anyway.
                logging.getLogger("nidaan.integration").error(
                    "analyzer interfaces not started in this server: %s", exc
                )
                supervisor = None
        from nidaan.observability.metrics import start_metrics_server

        # The separate metrics port (production); several API processes cannot share it.
        metrics_server = start_metrics_server(settings, metrics_port)
        worker: asyncio.Task[Any] | None = None
        if run_worker:
            from nidaan.kit.jobs import run_worker as run_job_worker

            worker = asyncio.create_task(
                run_job_worker(settings, install_signal_handlers=False), name="nidaan-worker"
            )
        abdm_simulator = None
        if run_worker:
            # Demo mode: the ABDM simulator runs in this server (none otherwise).
            from nidaan.abdm.runtime import start_demo_simulator

            abdm_simulator = await start_demo_simulator(settings)
        if freeze_gc:
            _freeze_startup_objects()
        try:
            yield
        finally:
            if abdm_simulator is not None:
                await abdm_simulator.stop()
            await app.state.login_failures.close()
            if metrics_server is not None:
                metrics_server.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await metrics_server
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
            if supervisor is not None:
                await supervisor.stop()
            await chainer.stop()
            if demo_providers is not None:
                await demo_providers.stop()
            await db.dispose()
            await close_caches()

    app = FastAPI(
        title="Nidaan LIS",
        version=__version__,
        description="Laboratory information system API. Log in at POST /api/v1/auth/token.",
        lifespan=lifespan,
        docs_url=None,  # served from packaged assets by install_api_docs, not a CDN
        redoc_url=None,
    )
    install_api_docs(app)
    tracing.instrument_app(app)
    # Failed logins per client address: shared through Redis when configured.
    app.state.login_failures = window_counter(
        settings.redis_url,
        settings.login_client_window_minutes * 60,
        prefix="nidaan:login-failures:",
    )
    app.add_middleware(
        RequestGuardMiddleware,
        limits=BodyLimits(
            json=settings.max_json_body_bytes,
            graphql=settings.max_graphql_body_bytes,
            upload=settings.max_upload_body_bytes,
        ),
    )
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)

    # Health probes first: the router tries routes in order, and probes come often.
    @app.get("/metrics", tags=["health"], operation_id="health:metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process (production: bearer NIDAAN_METRICS_TOKEN)."""
        from nidaan.observability.metrics import authorised, exposition

        if not authorised(settings, request.headers.get("authorization")):
            return JSONResponse({"error": "not_found", "detail": "Not Found"}, status_code=404)
        return await exposition(settings)

    @app.get("/healthz", tags=["health"], operation_id="health:live")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], operation_id="health:ready")
    async def readyz() -> JSONResponse:
        """The database answers and its schema is at the latest migration; ``degraded``
        (still 200) lists the analyzer connections of this process that cannot start."""
        from nidaan.migrate import head_revision

        try:
            async with db.get_engine(settings).connect() as connection:
                current = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        except Exception as exc:
            log.warning("readiness_failed", error=type(exc).__name__)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        head = head_revision()
        if current != head:
            return JSONResponse(
                {"status": "unavailable", "database": "ok", "migration": current, "expected": head},
                status_code=503,
            )
        from nidaan.integration.service import integration_service

        # An analyzer connection that cannot start (its port is taken) degrades the process
        # without making the API unready: the API still serves.
        down = integration_service.interfaces_down()
        if down:
            return JSONResponse(
                {
                    "status": "degraded",
                    "database": "ok",
                    "migration": current,
                    "interfaces": {"down": down},
                }
            )
        return JSONResponse({"status": "ok", "database": "ok", "migration": current})

    app.include_router(api_router)
    app.include_router(public_router)
    if demo_providers is not None:
        demo_providers.mount(app)
    if settings.mode is Mode.DEMO:
        # The demo lab pays through the gateway simulators (production never mounts them).
        from nidaan.simulators.payments.mount import mount_payment_simulators

        mount_payment_simulators(app, settings)
        # ... and reports its B2B invoices to the IRP simulator (GST e-invoicing).
        from nidaan.simulators.irp import mount_demo_irp

        mount_demo_irp(app, settings)

    from nidaan.webui.serve import mount_web_app

    mount_web_app(app)  # last: its catch-all must not shadow an API route
    return app


def app_from_environment() -> FastAPI:
    """Factory for `nidaan serve --processes N`: each process builds its app from settings."""
    settings = get_settings()
    return create_app(settings, run_worker=settings.worker_in_process, freeze_gc=True)
