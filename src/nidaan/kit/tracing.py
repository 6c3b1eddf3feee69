"""OpenTelemetry tracing, switched on by ``NIDAAN_OTLP_ENDPOINT`` and free when it is off.

When off (the default, and ``make run``), nothing here imports the OpenTelemetry SDK or
instruments anything: every helper checks one module flag and returns. When on, spans go
over OTLP/HTTP to the collector (Jaeger, Tempo, an OpenTelemetry Collector); requests,
SQL statements, outbound httpx calls and background jobs are spans of one trace, the job's
parent travelling in its payload (``TRACE_KEY``, W3C trace context).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine

#: Job argument carrying the enqueuing request's trace context (removed before the actor runs).
TRACE_KEY = "_trace"

_provider: TracerProvider | None = None
_instrumented_engines: set[int] = set()


def enabled() -> bool:
    """Whether this process exports traces."""
    return _provider is not None


def configure(endpoint: str | None, service_name: str) -> bool:
    """Export traces to the OTLP/HTTP ``endpoint`` (e.g. http://jaeger:4318); None: off."""
    if not endpoint or _provider is not None:
        return _provider is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    use_provider(provider)
    return True


def use_provider(provider: TracerProvider) -> None:
    """Trace with ``provider`` (``configure`` uses it; tests pass one with an in-memory
    exporter) and instrument httpx for outbound calls."""
    global _provider
    from opentelemetry import trace
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    _provider = provider
    # The global provider is set once per process; later calls (tests) only swap ours.
    with contextlib.suppress(Exception):
        trace.set_tracer_provider(provider)
    instrumentor = HTTPXClientInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)


def shutdown() -> None:
    """Flush pending spans and stop tracing (process exit; tests)."""
    global _provider
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    _provider.shutdown()
    HTTPXClientInstrumentor().uninstrument()
    if _instrumented_engines:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        SQLAlchemyInstrumentor().uninstrument()
    _provider = None
    _instrumented_engines.clear()


def instrument_engine(engine: AsyncEngine) -> None:
    """Trace ``engine``'s SQL statements (no-op when tracing is off)."""
    if _provider is None or id(engine) in _instrumented_engines:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The instrumentation declares SQLAlchemy < 2.1; the engine events it listens to are the
    # same in 2.1, so its version check is skipped rather than losing SQL spans.
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine,
        tracer_provider=_provider,
        enable_commenter=False,
        skip_dep_check=True,
    )
    _instrumented_engines.add(id(engine))


def instrument_app(app: Any) -> None:
    """Give every HTTP request of ``app`` a server span named by its route template."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_provider, excluded_urls="healthz,readyz,metrics"
    )


def inject(carrier: MutableMapping[str, Any]) -> None:
    """Add the current trace context to job arguments (nothing when tracing is off)."""
    if _provider is None:
        return
    from opentelemetry.propagate import inject as otel_inject

    context: dict[str, str] = {}
    otel_inject(context)
    if context:
        carrier[TRACE_KEY] = context


@contextlib.contextmanager
def job_span(task_name: str, carrier: dict[str, str] | None) -> Iterator[None]:
    """A consumer span for one job run, child of the trace that enqueued it (if any)."""
    if _provider is None:
        yield
        return
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    tracer = _provider.get_tracer("nidaan.jobs")
    parent = extract(carrier) if carrier else None
    with tracer.start_as_current_span(
        f"job {task_name}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "procrastinate", "messaging.operation": task_name},
    ):
        yield


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """An internal span around some work (no-op when tracing is off)."""
    if _provider is None:
        yield
        return
    with _provider.get_tracer("nidaan").start_as_current_span(name, attributes=attributes):
        yield


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the span being recorded, for log lines."""
    if _provider is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
