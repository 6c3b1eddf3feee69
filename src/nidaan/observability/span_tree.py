"""Spans received over OTLP/HTTP, printed as an indented tree per trace (no collector needed).

``benchmarks/trace_order.py`` runs a loopback OTLP sink, drives one order through the API
and prints its traces with this module; anyone with the protobuf bodies of an
``ExportTraceServiceRequest`` (``/v1/traces``) can do the same. SQL statements are many
(dozens per request), so when one span has more than a few of them they are summarised as
counts per statement kind instead of one line each; the ASGI ``http send``/``http
receive`` spans the FastAPI instrumentation adds under each request are folded likewise.
"""

from __future__ import annotations

import gzip
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: At most this many SQL statements under one span are listed one by one; more are counted.
SQL_LISTED = 3

_KINDS = {0: "", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class SpanRecord:
    """One finished span, as much of it as a reader of the tree needs."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    kind: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def is_sql(self) -> bool:
        return "db.system" in self.attributes or "db.system.name" in self.attributes

    @property
    def is_asgi_event(self) -> bool:
        """The FastAPI instrumentation's per-message spans (``... http send``)."""
        return "asgi.event.type" in self.attributes


def decode_otlp(body: bytes, content_encoding: str | None = None) -> list[SpanRecord]:
    """The spans of one OTLP/HTTP protobuf ``ExportTraceServiceRequest`` body."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    if content_encoding == "gzip":
        body = gzip.decompress(body)
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = resource.get("service.name", "?")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        service=service,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        kind=_KINDS.get(span.kind, ""),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return records


def _value(value: object) -> str:
    """An OTLP ``AnyValue`` as text (the tree shows scalars only)."""
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return "" if kind is None else str(getattr(value, kind))


def traces(spans: Iterable[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """Spans grouped by trace id, each group in start order."""
    grouped: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        grouped[span.trace_id].append(span)
    return {tid: sorted(group, key=lambda s: s.start_ns) for tid, group in grouped.items()}


def roots(trace: Sequence[SpanRecord]) -> list[SpanRecord]:
    """Spans of ``trace`` whose parent is not in it (the request, or orphans whose parent
    was never exported), in start order."""
    ids = {s.span_id for s in trace}
    return [s for s in trace if s.parent_id is None or s.parent_id not in ids]


def render(trace: Sequence[SpanRecord], *, sql_listed: int = SQL_LISTED) -> list[str]:
    """The lines of ``trace`` as an indented tree: name, duration, start offset from the
    trace's first span, and the service wherever it changes."""
    if not trace:
        return []
    children: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in trace:
        if span.parent_id is not None:
            children[span.parent_id].append(span)
    origin = min(s.start_ns for s in trace)
    lines: list[str] = []

    def walk(span: SpanRecord, depth: int, parent_service: str | None) -> None:
        label = _label(span, origin, parent_service)
        if depth == 0 and span.parent_id is not None:
            label += "  (parent span not exported)"
        lines.append("  " * depth + label)
        kids = sorted(children.get(span.span_id, []), key=lambda s: s.start_ns)
        sql = [k for k in kids if k.is_sql and not children.get(k.span_id)]
        asgi = [k for k in kids if k.is_asgi_event and not children.get(k.span_id)]
        if len(sql) <= sql_listed:
            sql = []
        folded = {k.span_id for k in sql} | {k.span_id for k in asgi}
        if sql:
            lines.append("  " * (depth + 1) + _sql_summary(sql))
        if asgi:
            total = sum(k.duration_ms for k in asgi)
            lines.append(
                "  " * (depth + 1) + f"[{len(asgi)} ASGI send/receive spans, {total:.1f} ms]"
            )
        for kid in kids:
            if kid.span_id not in folded:
                walk(kid, depth + 1, span.service)

    for root in roots(trace):
        walk(root, 0, None)
    return lines


def _label(span: SpanRecord, origin: int, parent_service: str | None) -> str:
    parts = [span.name]
    detail = _detail(span)
    if detail:
        parts.append(detail)
    parts.append(f"{span.duration_ms:.1f} ms")
    parts.append(f"at +{(span.start_ns - origin) / 1e6:.1f} ms")
    if span.service != parent_service:
        parts.append(f"[{span.service}]")
    return "  ".join(parts)


def _detail(span: SpanRecord) -> str:
    """The one attribute that says most about the span (status, URL, statement)."""
    attributes = span.attributes
    status = attributes.get("http.response.status_code") or attributes.get("http.status_code")
    if span.is_sql:
        statement = " ".join(_statement(span).split())
        return statement[:80] + ("..." if len(statement) > 80 else "")
    if span.kind == "client":
        url = attributes.get("url.full") or attributes.get("http.url") or ""
        return f"{url} -> {status}" if status else url
    if status:
        return f"-> {status}"
    return span.kind if span.kind in {"consumer", "producer"} else ""


def _sql_summary(sql: Sequence[SpanRecord]) -> str:
    verbs = Counter(_verb(s) for s in sql)
    counted = ", ".join(f"{n} {verb}" for verb, n in verbs.most_common())
    total = sum(s.duration_ms for s in sql)
    return f"[{len(sql)} SQL statements, {total:.1f} ms: {counted}]"


def _statement(span: SpanRecord) -> str:
    return span.attributes.get("db.statement") or span.attributes.get("db.query.text") or ""


def _verb(span: SpanRecord) -> str:
    words = (_statement(span) or span.name).split()
    return words[0].upper() if words else "?"
