"""``/metrics``: scraped over HTTP, its families move when the lab's work happens."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import Mode, Settings
from nidaan.events.service import publish
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import run_pending_jobs
from nidaan.main import create_app
from nidaan.observability.metrics import serve_metrics
from nidaan.reports.render import html_to_pdf
from tests.events.conftest import Cleanup
from tests.events.test_outbox import NobodyCares, ThingHappened, record_job
from tests.fixtures.objects import bearer_for, create_organisation, create_user

pytestmark = pytest.mark.usefixtures("job_app_open")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(exposition: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def test_requests_are_counted_by_route_template_status_and_latency(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    organisation = await create_organisation(session)
    user = await create_user(session, organisation, roles=["admin"])
    before = await scrape(client)
    orders = [uuid.uuid4() for _ in range(3)]
    for order_id in orders:  # three different orders, one series: the route template
        response = await client.get(f"/api/v1/orders/{order_id}", headers=bearer_for(user))
        assert response.status_code == 404
    await client.get("/no/such/page/at/all")  # the web app's catch-all (or 404)
    after = await scrape(client)

    route = {"method": "GET", "route": "/api/v1/orders/{order_id}"}
    assert (
        value(after, "nidaan_http_requests_total", **route, status="404")
        - value(before, "nidaan_http_requests_total", **route, status="404")
        == 3
    )
    assert (
        value(after, "nidaan_http_request_duration_seconds_count", **route)
        - value(before, "nidaan_http_request_duration_seconds_count", **route)
        == 3
    )
    # No order id ever becomes a label value.
    assert not any(str(order_id) in repr(after) for order_id in orders)
    assert "/no/such/page/at/all" not in repr(after)
    assert value(after, "nidaan_database_up") == 1
    assert value(after, "nidaan_db_pool_size", pool="main") == 10
    assert value(after, "nidaan_database_size_bytes") > 0


async def test_jobs_queue_depth_and_outbox_lag_move_with_the_work(
    client: httpx.AsyncClient, settings: Settings, cleanup: Cleanup
) -> None:
    from nidaan.kit.jobs import enqueue

    marker = uuid.uuid4().hex
    before = await scrape(client)
    async with session_scope(settings) as session:
        organisation = await create_organisation(session)
        cleanup.organisation_ids.append(organisation.id)
        cleanup.job_ids.append(await enqueue(session, record_job, marker=marker))
        await publish(session, ThingHappened(organisation_id=organisation.id, marker=marker))
        await publish(session, NobodyCares(organisation_id=organisation.id))
    waiting = await scrape(client)
    queued = {"queue": "default", "task": "tests.events.record_job", "status": "todo"}
    assert value(waiting, "nidaan_job_queue_depth", **queued) >= 1
    delivering = {"queue": "default", "task": "events.deliver", "status": "todo"}
    assert value(waiting, "nidaan_job_queue_depth", **delivering) >= 2
    # The event with subscribers is undelivered; the one nobody listens to is not.
    assert value(waiting, "nidaan_outbox_undelivered_events") >= 1
    assert value(waiting, "nidaan_outbox_lag_seconds") >= 0

    await run_pending_jobs(settings)
    done = await scrape(client)
    ran = {"task": "tests.events.record_job", "outcome": "succeeded"}
    assert value(done, "nidaan_jobs_total", **ran) - value(before, "nidaan_jobs_total", **ran) == 1
    delivered = {"task": "events.deliver", "outcome": "succeeded"}
    assert (
        value(done, "nidaan_jobs_total", **delivered)
        - value(before, "nidaan_jobs_total", **delivered)
        >= 2
    )
    assert value(done, "nidaan_job_queue_depth", **queued) == 0
    assert value(done, "nidaan_job_duration_seconds_count", task="events.deliver") >= 2


async def test_sync_conflicts_critical_alerts_and_renders_are_exposed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    before = await scrape(client)
    html_to_pdf("<html><body><p>Haemoglobin 13.2 g/dL</p></body></html>")
    after = await scrape(client)
    renders = value(after, "nidaan_report_renders_total", outcome="succeeded") - value(
        before, "nidaan_report_renders_total", outcome="succeeded"
    )
    assert renders == 1
    assert (
        value(after, "nidaan_report_render_seconds_count")
        - value(before, "nidaan_report_render_seconds_count")
        == 1
    )
    # The database gauges are present even when nothing waits.
    names = {name for name, _ in after}
    assert {
        "nidaan_sync_conflicts_open",
        "nidaan_critical_alerts_open",
        "nidaan_critical_alert_oldest_open_seconds",
        "nidaan_analyzer_exceptions_open",
    } <= names


async def test_analyzer_link_state_is_a_gauge_per_instrument(client: httpx.AsyncClient) -> None:
    instrument_id = uuid.uuid4()
    integration_service.report_link(instrument_id, True)
    assert value(await scrape(client), "nidaan_analyzer_link_up", instrument=str(instrument_id))
    integration_service.report_link(instrument_id, False)
    samples = await scrape(client)
    assert ("nidaan_analyzer_link_up", (("instrument", str(instrument_id)),)) in samples
    assert value(samples, "nidaan_analyzer_link_up", instrument=str(instrument_id)) == 0
    integration_service.forget_link(instrument_id)
    samples = await scrape(client)
    assert ("nidaan_analyzer_link_up", (("instrument", str(instrument_id)),)) not in samples


async def test_production_answers_metrics_only_to_the_scrape_token(settings: Settings) -> None:
    token = "scrape-" + uuid.uuid4().hex
    closed = settings.model_copy(update={"mode": Mode.PRODUCTION})
    guarded = settings.model_copy(
        update={"mode": Mode.PRODUCTION, "metrics_token": SecretStr(token)}
    )
    for app_settings, headers, status in (
        (closed, {}, 404),
        (closed, {"Authorization": f"Bearer {token}"}, 404),
        (guarded, {}, 404),
        (guarded, {"Authorization": "Bearer wrong"}, 404),
        (guarded, {"Authorization": f"Bearer {token}"}, 200),
    ):
        transport = httpx.ASGITransport(app=create_app(app_settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/metrics", headers=headers)
        assert response.status_code == status
        assert ("nidaan_http_requests_total" in response.text) is (status == 200)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def metrics_port(settings: Settings) -> AsyncIterator[str]:
    port = _free_port()
    task = asyncio.create_task(serve_metrics(settings, port, host="127.0.0.1"))
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield base
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_separate_metrics_port_is_scraped_over_tcp(settings: Settings) -> None:
    """The worker, the interfaces and a production API serve /metrics on a port of their
    own: a real socket, the way Prometheus scrapes it."""
    async with metrics_port(settings) as base, httpx.AsyncClient() as http:
        response = await http.get(f"{base}/metrics")
        assert response.status_code == 200
        samples = parse(response.text)
        assert value(samples, "nidaan_database_up") == 1
        # Every family the issue names is in the exposition.
        names = {name for name, _ in samples} | {
            family.name for family in text_string_to_metric_families(response.text)
        }
        for family in (
            "nidaan_http_requests",
            "nidaan_http_request_duration_seconds",
            "nidaan_db_pool_checked_out",
            "nidaan_jobs",
            "nidaan_job_queue_depth",
            "nidaan_outbox_lag_seconds",
            "nidaan_analyzer_link_up",
            "nidaan_analyzer_messages",
            "nidaan_analyzer_exceptions",
            "nidaan_sync_requests",
            "nidaan_sync_ops",
            "nidaan_sync_conflicts_open",
            "nidaan_report_renders",
        ):
            assert family in names, family
        assert (await http.get(f"{base}/api/v1/branches")).status_code == 404


async def test_database_down_still_answers(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={"database_url": "postgresql://nobody@127.0.0.1:1/none"}
    )
    from nidaan.observability import metrics

    original = metrics.db.get_engine

    def broken_engine(_: Settings):  # type: ignore[no-untyped-def]
        from sqlalchemy.ext.asyncio import create_async_engine

        return create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")

    metrics.db.get_engine = broken_engine  # type: ignore[assignment]
    try:
        response = await metrics.exposition(unreachable)
    finally:
        metrics.db.get_engine = original  # type: ignore[assignment]
    assert value(parse(bytes(response.body).decode()), "nidaan_database_up") == 0
