"""SyncClient against an in-memory protocol server: results, retries, gaps, reset, clocks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import NetworkError, ServerError, UpgradeRequired
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport
from tests.sync.client.protocol_server import ProtocolServer


@pytest.fixture
def server() -> ProtocolServer:
    return ProtocolServer()


@pytest.fixture
async def client(server: ProtocolServer, tmp_path: Path) -> AsyncIterator[SyncClient]:
    http = httpx.AsyncClient(transport=server.transport(), base_url="http://lab")
    transport = Transport("", email="cc1@example.com", password="secret", http=http)
    yield SyncClient(LocalStore(tmp_path / "cc1.sqlite"), transport)
    await http.aclose()


async def test_push_then_pull_in_one_round_trip(client: SyncClient, server: ProtocolServer):
    server.write("patient", "p0", {"full_name": "Existing"})
    patient_id = client.create("patient", {"full_name": "Asha"})

    report = await client.sync()

    assert (report.rounds, report.applied, report.pulled) == (1, 1, 2)
    assert client.pending() == []
    assert client.get("patient", patient_id).version == 2
    assert client.get("patient", patient_id).pending == 0
    assert client.cursor == "2"


async def test_a_lost_answer_is_replayed_and_applied_once(client: SyncClient, server):
    patient_id = client.create("patient", {"full_name": "Asha"})
    server.drop_next_response = True
    with pytest.raises(NetworkError):
        await client.sync()
    assert len(client.pending()) == 1  # not acknowledged: kept for the retry

    report = await client.sync()

    assert report.applied == 1  # the stored result, replayed
    assert client.pending() == []
    assert server.rows[("patient", patient_id)]["version"] == 1
    assert server.head == 1


async def test_rejected_ops_go_to_the_failed_list_and_conflicts_are_kept(client, server):
    server.write("patient", "p1", {"pregnant": False})
    await client.sync()
    server.write("patient", "p1", {"pregnant": True})  # someone else, after our pull
    client.update("patient", "p1", {"pregnant": False})
    client.create("forbidden", {"x": 1})

    report = await client.sync()

    assert (report.conflicts, report.rejected) == (1, 1)
    assert [f.reason for f in client.failed()] == ["forbidden"]
    assert [c.entity_id for c in client.conflicts()] == ["p1"]
    assert client.get("patient", "p1").data["pregnant"] is True  # the server's value stands
    assert client.pending() == []


async def test_many_ops_go_in_batches_and_many_rows_in_pages(client, server):
    client.pull_limit = 7
    for i in range(250):
        client.create("patient", {"full_name": f"P{i}"})

    report = await client.sync()

    assert report.applied == 250
    assert len(client.rows("patient")) == 250
    assert server.last_seq[client.client_id] == 250
    assert report.rounds >= 250 // 7


async def test_a_batch_cut_short_is_retried(client: SyncClient, server: ProtocolServer):
    for i in range(5):
        client.create("patient", {"full_name": f"P{i}"})
    server.answer_only = 2
    with pytest.raises(ServerError):
        await client.sync()
    assert [op.client_seq for op in client.pending()] == [3, 4, 5]
    await client.sync()
    assert client.pending() == []


async def test_after_a_server_restore_pending_ops_are_renumbered(client, server):
    for i in range(3):
        client.create("patient", {"full_name": f"P{i}"})
    await client.sync()
    client.create("patient", {"full_name": "after"})
    server.last_seq[client.client_id] = 1  # restored from a backup: seqs 2 and 3 are gone

    report = await client.sync()

    assert report.gaps == 1
    assert client.pending() == []
    assert server.last_seq[client.client_id] == 2


async def test_reset_rebuilds_synced_rows_but_keeps_the_outbox(client, server):
    server.write("patient", "p1", {"mobile": "98"})
    await client.sync()
    client.update("patient", "p1", {"mobile": "99"})
    server.reset_next = True

    report = await client.sync()

    assert report.resets == 1
    assert client.pending() == []  # the op was answered in the reset round
    assert client.get("patient", "p1").data["mobile"] == "99"
    assert client.cursor == str(server.head)


async def test_upgrade_required_stops_and_keeps_everything(client, server):
    client.create("patient", {"full_name": "Asha"})
    server.upgrade_required = True
    with pytest.raises(UpgradeRequired):
        await client.sync()
    assert client.upgrade_required
    assert len(client.pending()) == 1
    server.upgrade_required = False
    await client.sync()
    assert not client.upgrade_required


async def test_the_clock_is_corrected_by_the_server_time(client, server):
    server.clock_skew_ms = 3_600_000  # the centre's PC is an hour slow
    await client.sync()
    assert abs(client.clock.offset_ms - 3_600_000) < 5_000
    op = client.update("patient", "p1", {"mobile": "99"})
    assert int(op.hlc.split("-")[0]) >= time.time() * 1000 + 3_500_000


async def test_an_expired_token_is_renewed_once(client: SyncClient, server: ProtocolServer):
    await client.sync()
    server.reject_tokens = 1
    await client.sync()
    assert server.tokens_issued == 2  # login, then one refresh
