"""The span tree printer (benchmarks/trace_order.py): OTLP protobuf bodies in, an indented
tree out, SQL statements counted when there are many, every other span shown once."""

from __future__ import annotations

import gzip

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from nidaan.observability.span_tree import SpanRecord, decode_otlp, render, roots, traces

TRACE = "ab" * 16
MS = 1_000_000


def _attributes(values: dict[str, str | int]) -> list[KeyValue]:
    return [
        KeyValue(
            key=key,
            value=AnyValue(int_value=value)
            if isinstance(value, int)
            else AnyValue(string_value=value),
        )
        for key, value in values.items()
    ]


def _span(
    span_id: int,
    parent: int | None,
    name: str,
    start_ms: int,
    end_ms: int,
    kind: int,
    **attrs: str | int,
) -> Span:
    return Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=start_ms * MS,
        end_time_unix_nano=end_ms * MS,
        attributes=_attributes(attrs),
    )


def _body(service: str, spans: list[Span]) -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={"attributes": _attributes({"service.name": service})},
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )
    return request.SerializeToString()


def test_a_request_its_job_and_the_jobs_outbound_call_print_as_one_tree() -> None:
    api = _body(
        "nidaan-api",
        [
            _span(
                1,
                None,
                "POST /api/v1/results/{result_id}/verify",
                0,
                300,
                2,
                **{"http.route": "/api/v1/results/{result_id}/verify", "http.status_code": 200},
            ),
            *[
                _span(
                    10 + i,
                    1,
                    "SELECT",
                    10 + i,
                    12 + i,
                    3,
                    **{"db.system": "postgresql", "db.statement": "SELECT 1"},
                )
                for i in range(4)
            ],
            _span(
                20,
                1,
                "UPDATE",
                20,
                25,
                3,
                **{"db.system": "postgresql", "db.statement": "update results set x = 1"},
            ),
            _span(
                30,
                1,
                "POST /api/v1/results/{result_id}/verify http send",
                290,
                291,
                1,
                **{"asgi.event.type": "http.response.start"},
            ),
        ],
    )
    worker = _body(
        "nidaan-worker",
        [
            _span(2, 1, "job notifications.send", 400, 600, 5),
            _span(
                3,
                2,
                "POST",
                450,
                500,
                3,
                **{
                    "url.full": "http://127.0.0.1:8000/_simulators/whatsapp",
                    "http.response.status_code": 200,
                },
            ),
            _span(
                4,
                2,
                "SELECT",
                410,
                411,
                3,
                **{"db.system": "postgresql", "db.statement": "SELECT id\n  FROM notifications"},
            ),
        ],
    )
    spans = decode_otlp(api) + decode_otlp(gzip.compress(worker), "gzip")
    assert {s.service for s in spans} == {"nidaan-api", "nidaan-worker"}
    (trace,) = traces(spans).values()
    assert [s.name for s in roots(trace)] == ["POST /api/v1/results/{result_id}/verify"]

    assert render(trace) == [
        "POST /api/v1/results/{result_id}/verify  -> 200  300.0 ms  at +0.0 ms  [nidaan-api]",
        "  [5 SQL statements, 13.0 ms: 4 SELECT, 1 UPDATE]",
        "  [1 ASGI send/receive spans, 1.0 ms]",
        "  job notifications.send  consumer  200.0 ms  at +400.0 ms  [nidaan-worker]",
        "    SELECT  SELECT id FROM notifications  1.0 ms  at +410.0 ms",
        "    POST  http://127.0.0.1:8000/_simulators/whatsapp -> 200  50.0 ms  at +450.0 ms",
    ]
    # With room for five statements per span they are listed one by one.
    listed = render(trace, sql_listed=5)
    assert sum("SELECT  SELECT 1" in line for line in listed) == 4
    assert "    UPDATE  update results set x = 1  5.0 ms  at +20.0 ms" not in listed
    assert "  UPDATE  update results set x = 1  5.0 ms  at +20.0 ms" in listed


def test_a_span_whose_parent_never_arrived_is_a_root_and_says_so() -> None:
    (span,) = decode_otlp(_body("nidaan-worker", [_span(7, 99, "job reports", 5, 9, 5)]))
    assert render([span]) == [
        "job reports  consumer  4.0 ms  at +0.0 ms  [nidaan-worker]  (parent span not exported)"
    ]


@st.composite
def _trees(draw: st.DrawFn) -> list[SpanRecord]:
    """A random trace: each span's parent is an earlier span (or none), some are SQL."""
    count = draw(st.integers(1, 40))
    spans: list[SpanRecord] = []
    for index in range(count):
        parent = draw(st.one_of(st.none(), st.integers(0, index - 1))) if index else None
        sql = draw(st.booleans())
        start = draw(st.integers(0, 1000))
        spans.append(
            SpanRecord(
                trace_id=TRACE,
                span_id=f"{index + 1:016x}",
                parent_id=None if parent is None else f"{parent + 1:016x}",
                name=f"SELECT s{index}" if sql else f"work {index}",
                service=draw(st.sampled_from(["nidaan-api", "nidaan-worker"])),
                start_ns=start * MS,
                end_ns=(start + draw(st.integers(0, 50))) * MS,
                kind="client" if sql else "internal",
                attributes={"db.system": "postgresql", "db.statement": f"SELECT s{index}"}
                if sql
                else {},
            )
        )
    return spans


@given(_trees(), st.integers(0, 5))
def test_every_span_is_shown_once_or_counted_once(spans: list[SpanRecord], sql_listed: int) -> None:
    lines = render(spans, sql_listed=sql_listed)
    counted = sum(
        int(line.strip()[1:].split(" ", 1)[0]) for line in lines if "SQL statements" in line
    )
    shown = [line.strip() for line in lines if not line.strip().startswith("[")]
    assert len(shown) + counted == len(spans)
    # A child is indented one step deeper than its parent.
    depth = {s.span_id: 0 for s in spans if s.parent_id is None}
    for span in sorted(spans, key=lambda s: int(s.span_id, 16)):
        if span.parent_id is not None:
            depth[span.span_id] = depth[span.parent_id] + 1
    for span in spans:
        if span.is_sql:
            continue
        (line,) = [entry for entry in lines if entry.strip().startswith(f"{span.name}  ")]
        assert len(line) - len(line.lstrip()) == 2 * depth[span.span_id]
