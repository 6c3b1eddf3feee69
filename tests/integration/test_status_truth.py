"""The instrument status tells the truth (issue 11): a listener that cannot start is an
``error`` with the OS error, since when and the next retry, logged once per change of state
(no traceback every reload), shown as ``degraded`` by ``/readyz``; an HL7 ``tcp-server``
follows the analyzer's connection as ASTM does (issue 10)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

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

        # Several reloads later: still one error line, no traceback, and no retry before due.
        await asyncio.sleep(1.0)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert errors[0].exc_info is None
        assert "cannot listen" in errors[0].getMessage()
        assert supervisor.failures[world.cobas.id].attempts == 1

        # The other program goes away: the next retry starts the listener and clears the error.
        occupied.close()
        supervisor.failures[world.cobas.id].retry_at = 0.0
        await eventually(lambda: _noop(), lambda _: world.cobas.id in supervisor.connections, 3)
        assert world.cobas.id in supervisor.connections
        recovered = await _status(world, world.cobas.id)
        assert recovered.state != "error"
        assert (recovered.last_error, recovered.next_retry_at) == (None, None)
        assert (await client.get("/readyz")).json()["status"] == "ok"
    finally:
        await supervisor.stop()


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
