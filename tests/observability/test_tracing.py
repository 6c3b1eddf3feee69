"""Traces: one trace from a request through the job it enqueues to the job's outbound call,
exported over OTLP/HTTP to a collector; nothing of OpenTelemetry loads when it is off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from fastapi import Depends
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nidaan.config import Settings
from nidaan.deps import get_session
from nidaan.kit import db, tracing
from nidaan.kit.jobs import actor, enqueue, run_pending_jobs
from nidaan.main import create_app

pytestmark = pytest.mark.usefixtures("job_app_open")

#: Where the traced job calls out to (set per test: a loopback server).
outbound: dict[str, str] = {}


@actor("tests.tracing.call_out")
async def call_out(marker: str) -> None:
    logging.getLogger("tests.tracing").info("job calling out for %s", marker)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{outbound['url']}/healthz", params={"marker": marker})
        response.raise_for_status()


class _FormattingHandler(logging.Handler):
    def __init__(self, lines: list[str], formatter: logging.Formatter | None) -> None:
        super().__init__()
        self.lines = lines
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def loopback_server(app: Starlette) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _peer_app(received: list[bytes]) -> Starlette:
    async def healthz(_: Request) -> Response:
        return Response("ok")

    async def traces(request: Request) -> Response:
        # An OTLP/HTTP collector: protobuf ExportTraceServiceRequest bodies on /v1/traces.
        received.append(await request.body())
        return Response(b"", media_type="application/x-protobuf")

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/v1/traces", traces, methods=["POST"])]
    )


@pytest.fixture
def spans(settings: Settings) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.shutdown()
    tracing.use_provider(provider)
    tracing.instrument_engine(db.get_engine(settings))
    try:
        yield exporter
    finally:
        tracing.shutdown()


def _traced_app(settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings)

    @app.post("/_test/enqueue/{marker}")
    async def enqueue_call(marker: str, session: AsyncSession = Depends(get_session)) -> dict:
        await session.execute(text("SELECT 1"))
        await enqueue(session, call_out, marker=marker)
        return {"queued": marker}

    return app


def _by_name(finished: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name.startswith(prefix)]


async def test_request_job_and_outbound_call_share_one_trace(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    marker = uuid.uuid4().hex
    async with loopback_server(_peer_app([])) as url:
        outbound["url"] = url
        transport = httpx.ASGITransport(app=_traced_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(f"/_test/enqueue/{marker}")
        assert response.status_code == 200
        # Log lines are formatted as in production (the root handler's structlog formatter),
        # while the job's span is current.
        lines: list[str] = []
        capture = _FormattingHandler(lines, logging.getLogger().handlers[0].formatter)
        job_logger = logging.getLogger("tests.tracing")
        job_logger.addHandler(capture)
        try:
            await run_pending_jobs(settings)
        finally:
            job_logger.removeHandler(capture)

    finished = spans.get_finished_spans()
    (request_span,) = [
        s
        for s in finished
        if s.attributes.get("http.route") == "/_test/enqueue/{marker}" and s.kind.name == "SERVER"
    ]
    trace_id = request_span.context.trace_id
    (job_span,) = _by_name(finished, "job tests.tracing.call_out")
    assert job_span.context.trace_id == trace_id
    assert job_span.kind.name == "CONSUMER"
    # The job's span continues the request's trace (its parent is a span of the request).
    request_span_ids = {s.context.span_id for s in finished if s.context.trace_id == trace_id}
    assert job_span.parent is not None
    assert job_span.parent.span_id in request_span_ids
    (outbound_span,) = [
        s
        for s in finished
        if s.kind.name == "CLIENT"
        and s.parent is not None
        and s.parent.span_id == job_span.context.span_id
    ]
    assert outbound_span.context.trace_id == trace_id
    called = outbound_span.attributes.get("url.full") or outbound_span.attributes.get("http.url")
    assert str(called).startswith(f"{outbound['url']}/healthz")
    # SQL statements of the request are spans of the same trace.
    sql = [s for s in finished if s.context.trace_id == trace_id and "db.system" in s.attributes]
    assert any("SELECT 1" in str(s.attributes.get("db.statement", "")) for s in sql)
    # The job's log line carries the trace id and its own span id.
    (line,) = [entry for entry in lines if f"job calling out for {marker}" in entry]
    assert f"trace_id={format(trace_id, '032x')}" in line
    assert f"span_id={format(job_span.context.span_id, '016x')}" in line


async def test_spans_reach_an_otlp_http_collector(settings: Settings) -> None:
    received: list[bytes] = []
    tracing.shutdown()
    async with loopback_server(_peer_app(received)) as url:
        assert tracing.configure(url, "nidaan-api-test")
        try:
            app = create_app(settings)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/openapi.json")).status_code == 200
            # The batch exporter posts from its own thread; flushing waits for it.
            await asyncio.to_thread(tracing._provider.force_flush)  # type: ignore[union-attr]
        finally:
            await asyncio.to_thread(tracing.shutdown)
    assert received, "the collector received nothing"
    exported = ExportTraceServiceRequest()
    exported.ParseFromString(b"".join(received[:1]))
    (resource_spans, *_) = exported.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "nidaan-api-test"
    names = [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert any("/openapi.json" in name for name in names), names


def test_tracing_off_loads_no_opentelemetry_sdk(settings: Settings) -> None:
    """Unset NIDAAN_OTLP_ENDPOINT: the app builds and no SDK or instrumentation is imported."""
    env = {k: v for k, v in os.environ.items() if k != "NIDAAN_OTLP_ENDPOINT"}
    probe = (
        "import sys\n"
        "from nidaan.main import create_app\n"
        "create_app()\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.instrumentation', 'opentelemetry.exporter'))]\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
