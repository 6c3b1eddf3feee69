"""The instrument status tells the truth (issue 11): a listener that cannot start is an
``error`` with the OS error, since when and the next retry, logged once per change of state
(no traceback every reload), shown as ``degraded`` by ``/readyz`` and as
``nidaan_interface_down`` in ``/metrics``; an HL7 ``tcp-server``
follows the analyzer's connection as ASTM does (issue 10)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nidaan.config import Settings
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from tests.fixtures.results import principal_of
from tests.integration.support import World, eventually


async def _status(world: World, instrument_id: Any) -> Any:
    async with session_scope(Settings()) as session:
        return await integration_service.status(
            session, principal_of(world.lab.users["admin"]), instrument_id
        )


@pytest.fixture
def occupied(world: World) -> Iterator[socket.socket]:
    """Another program holds the cobas's port (as 5100 was held on the issue's machine)."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", world.cobas.port or 0))
    holder.listen()
    try:
        yield holder
    finally:
        holder.close()


async def test_a_listener_that_cannot_start_reports_error_with_the_os_error_and_retry(
    settings: Settings,
    world: World,
    occupied: socket.socket,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="nidaan.integration.runtime")
    supervisor = InterfaceSupervisor(
        settings, reload_interval=0.2, listen_host="127.0.0.1", organisation_id=world.org
    )
    started = time.monotonic()
    await supervisor.start()
    try:
        assert world.cobas.id not in supervisor.connections
        assert world.hl7.id in supervisor.connections  # the others run
        url = f"/api/v1/instruments/{world.cobas.id}/status"
        status = (await client.get(url, headers=world.lab.headers("tech"))).json()
        assert status["state"] == "error"
        assert status["connected"] is False
        assert f"cannot listen on 127.0.0.1:{world.cobas.port}" in status["last_error"]
        assert "in use" in status["last_error"].lower()  # the OS's own words (EADDRINUSE)
        since = datetime.fromisoformat(status["error_since"])
        retry = datetime.fromisoformat(status["next_retry_at"])
        assert 4.0 <= (retry - since).total_seconds() <= 6.0  # first retry after 5 s

        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "degraded"
        [down] = ready["interfaces"]["down"]
        assert down["name"] == world.cobas.name
        assert down["error"] == status["last_error"]
        metrics = await _metrics(client)
        assert metrics["nidaan_interfaces_down"] == {(): 1.0}
        cobas = (str(world.cobas.id), world.cobas.name)
        assert metrics["nidaan_interface_down"][cobas] == 1.0
        assert metrics["nidaan_interface_down_since_timestamp_seconds"][cobas] == since.timestamp()
        # (a retry may have come due meanwhile on a busy machine: then it is later still)
        assert metrics["nidaan_interface_next_retry_timestamp_seconds"][cobas] >= retry.timestamp()
        assert metrics["nidaan_interface_connected"][cobas] == 0.0

        # Several reloads later: still one error line, no traceback, and no retry before due.
        await asyncio.sleep(1.0)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert errors[0].exc_info is None
        assert "cannot listen" in errors[0].getMessage()
        # Each reload (every 0.2 s) found the retry not yet due: on a quiet machine that is
        # one attempt; a busy one may have let the 5 s, 10 s, ... retries come due.
        assert supervisor.failures[world.cobas.id].attempts <= _due(time.monotonic() - started)

        # The other program goes away: the next retry starts the listener and clears the error.
        occupied.close()
        supervisor.failures[world.cobas.id].retry_at = 0.0
        await eventually(lambda: _noop(), lambda _: world.cobas.id in supervisor.connections, 3)
        assert world.cobas.id in supervisor.connections
        recovered = await _status(world, world.cobas.id)
        assert recovered.state != "error"
        assert (recovered.last_error, recovered.next_retry_at) == (None, None)
        assert (await client.get("/readyz")).json()["status"] == "ok"
        metrics = await _metrics(client)
        assert metrics["nidaan_interfaces_down"] == {(): 0.0}
        assert metrics["nidaan_interface_down"][cobas] == 0.0
        assert cobas not in metrics.get("nidaan_interface_down_since_timestamp_seconds", {})
    finally:
        await supervisor.stop()
    assert (await _metrics(client))["nidaan_interfaces_down"] == {(): 0.0}


async def _metrics(client: httpx.AsyncClient) -> dict[str, dict[tuple[str, ...], float]]:
    """``/metrics`` as Prometheus reads it: {metric: {label values: value}}."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(
                sample.labels[k] for k in ("instrument_id", "instrument") if k in sample.labels
            )
            values.setdefault(sample.name, {})[key] = sample.value
    return values


def _due(elapsed: float) -> int:
    """Attempts allowed after ``elapsed`` seconds: the first, then one per retry that came due
    (5, 10, 20 ... seconds apart)."""
    attempts, waited, delay = 1, 0.0, 5.0
    while waited + delay <= elapsed:
        attempts, waited, delay = attempts + 1, waited + delay, min(delay * 2, 300.0)
    return attempts


async def _noop() -> None:
    await asyncio.sleep(0)


async def test_failures_back_off_and_log_only_on_change(
    settings: Settings, world: World, occupied: socket.socket
) -> None:
    supervisor = InterfaceSupervisor(
        settings, reload_interval=30, listen_host="127.0.0.1", organisation_id=world.org
    )
    await supervisor.start()
    try:
        delays = []
        for _ in range(8):
            failure = supervisor.failures[world.cobas.id]
            delays.append(failure.delay())
            failure.retry_at = 0.0
            await supervisor.reload()
        assert delays == [5, 10, 20, 40, 80, 160, 300, 300]
        assert supervisor.failures[world.cobas.id].attempts == 9
    finally:
        await supervisor.stop()


async def test_hl7_tcp_server_status_follows_the_analyzer_connection(
    world: World, supervisor: InterfaceSupervisor
) -> None:
    port = supervisor.port_of(world.hl7.id)
    assert port is not None
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    connected = await eventually(
        lambda: _status(world, world.hl7.id), lambda s: s.connected is True, 3
    )
    assert (connected.connected, connected.state) == (True, "connected")
    writer.close()  # the analyzer hangs up
    await writer.wait_closed()
    gone = await eventually(lambda: _status(world, world.hl7.id), lambda s: s.connected is False, 3)
    assert gone.connected is False
