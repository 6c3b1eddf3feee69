"""The scheduler: outcomes become network states, backoff and the status snapshot."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from nidaan.sync.client.backoff import Backoff
from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.scheduler import SyncScheduler
from nidaan.sync.client.status import NetworkState
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport
from tests.sync.client.protocol_server import ProtocolServer


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> ProtocolServer:
    return ProtocolServer()


@pytest.fixture
async def scheduler(server: ProtocolServer, tmp_path: Path) -> AsyncIterator[SyncScheduler]:
    http = httpx.AsyncClient(transport=server.transport(), base_url="http://lab")
    transport = Transport("", email="cc1@example.com", password="secret", http=http)
    client = SyncClient(LocalStore(tmp_path / "cc1.sqlite"), transport)
    yield SyncScheduler(
        client, backoff=Backoff(rng=random.Random(7)), monotonic=FakeTime(), debounce_s=1.5
    )
    await http.aclose()


async def test_offline_then_reconnect(scheduler: SyncScheduler, server: ProtocolServer) -> None:
    scheduler.client.create("patient", {"full_name": "Asha"})
    server.offline = True

    assert await scheduler.attempt() is None
    status = scheduler.status()
    assert (status.network, status.pending_ops) == (NetworkState.OFFLINE, 1)
    assert status.next_attempt_in_s == 5.0  # the first retry
    await scheduler.attempt()
    assert 5.0 <= scheduler.status().next_attempt_in_s <= 10.0

    server.offline = False
    await scheduler.heartbeat()  # the line is back: backoff forgotten, sync due now
    assert scheduler.backoff.failures == 0
    assert scheduler.status().next_attempt_in_s is None
    assert await scheduler.attempt() is not None
    status = scheduler.status()
    assert (status.network, status.pending_ops, status.last_error) == (
        NetworkState.ONLINE,
        0,
        None,
    )
    assert status.last_sync_at is not None


async def test_a_local_write_is_debounced(scheduler: SyncScheduler) -> None:
    await scheduler.attempt()
    now = scheduler._now()
    assert scheduler._due == now + scheduler.interval_s
    scheduler.client.create("patient", {"full_name": "Asha"})
    assert scheduler._due == now + 1.5


async def test_auth_expired_when_login_is_refused(scheduler, server: ProtocolServer) -> None:
    server.refuse_login = True
    await scheduler.attempt()
    assert scheduler.status().network == NetworkState.AUTH_EXPIRED
    await scheduler.heartbeat()
    assert scheduler.status().network == NetworkState.AUTH_EXPIRED
    server.refuse_login = False
    await scheduler.attempt()
    assert scheduler.status().network == NetworkState.ONLINE


async def test_upgrade_required_stops_the_loop(scheduler, server: ProtocolServer) -> None:
    server.upgrade_required = True
    await asyncio.wait_for(scheduler.run(), timeout=5)
    assert scheduler.stopped is not None
    assert scheduler.status().upgrade_required


async def test_status_counts_failures_and_conflicts(scheduler, server) -> None:
    server.write("patient", "p1", {"pregnant": False})
    await scheduler.attempt()
    server.write("patient", "p1", {"pregnant": True})
    scheduler.client.update("patient", "p1", {"pregnant": False})
    scheduler.client.create("forbidden", {})
    await scheduler.attempt()
    status = scheduler.status()
    assert (status.failed_ops, status.open_conflicts, status.pending_ops) == (1, 1, 0)
    assert "conflicts=1" in status.line()
