"""Prometheus metric families of every process (API, worker, interfaces) on one registry.

Modules count what happens here (``JOBS.labels(...).inc()``); the exposition, and the
gauges read from the database at scrape time, live in ``nidaan.observability``. Label
values are bounded sets (route templates, task names, outcomes), never ids or paths, so
the number of series stays small. Later modules add their families here too.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: The registry ``/metrics`` exposes. Not prometheus_client's global one, so a library
#: that registers its own metrics on import cannot change what we expose or clash.
REGISTRY = CollectorRegistry(auto_describe=True)

#: Latency buckets (seconds) for HTTP requests and jobs: 5 ms .. 30 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# ---- HTTP (label route: the route template, e.g. /api/v1/orders/{order_id}) -------------
HTTP_REQUESTS = Counter(
    "nidaan_http_requests",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "nidaan_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
HTTP_IN_PROGRESS = Gauge(
    "nidaan_http_requests_in_progress",
    "HTTP requests being answered by this process",
    registry=REGISTRY,
)

# ---- background jobs ----------------------------------------------------------------------
JOBS = Counter(
    "nidaan_jobs",
    "Background jobs run by this process, by task and outcome (succeeded, failed)",
    ["task", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "nidaan_job_duration_seconds",
    "Time a background job took, by task",
    ["task"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

# ---- analyzer and hospital links (interfaces) --------------------------------------------
ANALYZER_MESSAGES = Counter(
    "nidaan_analyzer_messages",
    "Messages exchanged with analyzers and hospital systems, by protocol and direction",
    ["protocol", "direction"],
    registry=REGISTRY,
)
ANALYZER_LINK_UP = Gauge(
    "nidaan_analyzer_link_up",
    "1 when the analyzer link run by this process is connected, 0 when down, by instrument id",
    ["instrument"],
    registry=REGISTRY,
)
ANALYZER_EXCEPTIONS = Counter(
    "nidaan_analyzer_exceptions",
    "Analyzer messages that could not be applied (kept with their error), by protocol",
    ["protocol"],
    registry=REGISTRY,
)
ANALYZER_SEND_FAILURES = Counter(
    "nidaan_analyzer_send_failures",
    "Outbound analyzer messages that failed to send (retried or refused), by protocol",
    ["protocol"],
    registry=REGISTRY,
)

# ---- offline sync -------------------------------------------------------------------------
SYNC_REQUESTS = Counter(
    "nidaan_sync_requests",
    "Sync calls from collection centres, by kind (push, pull)",
    ["kind"],
    registry=REGISTRY,
)
SYNC_OPS = Counter(
    "nidaan_sync_ops",
    "Operations pushed by devices, by result status (applied, conflict, rejected, ...)",
    ["status"],
    registry=REGISTRY,
)

# ---- reports ------------------------------------------------------------------------------
REPORT_RENDERS = Counter(
    "nidaan_report_renders",
    "PDF documents rendered (reports, invoices, receipts), by outcome",
    ["outcome"],
    registry=REGISTRY,
)
REPORT_RENDER_SECONDS = Histogram(
    "nidaan_report_render_seconds",
    "Time to lay out and write one PDF",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)

# ---- event streaming (outbox relay) -------------------------------------------------------
RELAY_PUBLISHED = Counter(
    "nidaan_relay_published_events",
    "Domain events published to the event broker by this process",
    registry=REGISTRY,
)
RELAY_FAILURES = Counter(
    "nidaan_relay_failures",
    "Relay rounds that failed (broker or database unreachable)",
    registry=REGISTRY,
)
