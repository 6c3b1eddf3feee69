"""Analyzer listeners are not open doors (security finding 9): allowed peer addresses, a
connection limit, an idle timeout, a bind address that is the configured lab network address
rather than every card, no privileged ports, and order downloads only on the analyzer's own
connection. Real sockets on loopback; 127.0.0.2 plays a stranger on the lab network."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nidaan.config import Settings
from nidaan.integration.astm.errors import ASTMNotConnected
from nidaan.integration.astm.protocol import LinkOptions
from nidaan.integration.astm.transport import ASTMClient, ASTMServer
from nidaan.integration.guard import ListenerPolicy, settings_problems
from nidaan.integration.hl7.mllp import MLLPServer
from nidaan.integration.models import Instrument
from nidaan.integration.runtime import InterfaceSupervisor, own_link
from nidaan.kit.db import session_scope
from tests.fixtures.results import Lab, make_lab
from tests.integration.support import ANALYZER, free_port

STRANGER = "127.0.0.2"  # another address of this computer: a different peer to the listener


async def _records(records: list[str], frames: list[bytes]) -> None:
    return None


async def _closed_at_once(host: str, port: int, *, source: str = "127.0.0.1") -> bool:
    """Connect from ``source``; whether the listener closes the connection straight away."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        return await asyncio.wait_for(reader.read(1), 2) == b""
    except TimeoutError:
        return False
    finally:
        writer.close()


async def _astm_server(policy: ListenerPolicy) -> ASTMServer:
    server = ASTMServer("127.0.0.1", 0, _records, LinkOptions(role="host"), policy=policy)
    await server.start()
    return server


async def test_astm_listener_refuses_other_addresses_and_connections_over_the_limit() -> None:
    server = await _astm_server(ListenerPolicy(allowed_peers=(ipaddress.ip_network("127.0.0.1"),)))
    try:
        assert await _closed_at_once("127.0.0.1", server.port, source=STRANGER)
        assert server.refused == 1
        assert server.links == set()
        analyzer = ASTMClient("127.0.0.1", server.port, _records, ANALYZER)
        await analyzer.start()
        await analyzer.wait_connected(5)
        await server.wait_for_connection(5)
        assert len(server.links) == 1
        await analyzer.close()
    finally:
        await server.close()

    limited = await _astm_server(ListenerPolicy(max_connections=1))
    try:
        first = ASTMClient("127.0.0.1", limited.port, _records, ANALYZER)
        await first.start()
        await first.wait_connected(5)
        await limited.wait_for_connection(5)
        assert await _closed_at_once("127.0.0.1", limited.port)  # the second one
        assert len(limited.links) == 1  # the first is untouched
        await first.close()
    finally:
        await limited.close()


async def test_idle_connections_are_closed_and_the_slot_freed() -> None:
    server = await _astm_server(ListenerPolicy(max_connections=1, idle_timeout_s=0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(1), 5) == b""  # closed after 0.3 s idle
        writer.close()
        await asyncio.sleep(0.1)
        assert server.links == set()
        again_reader, again = await asyncio.open_connection("127.0.0.1", server.port)
        await server.wait_for_connection(5)  # the slot is free again...
        assert server.refused == 0
        assert await asyncio.wait_for(again_reader.read(1), 5) == b""  # ...and idles out too
        again.close()
    finally:
        await server.close()


async def test_mllp_listener_keeps_the_same_rules() -> None:
    async def handler(raw: bytes, peer: Any) -> None:
        return None

    server = MLLPServer(
        "127.0.0.1",
        0,
        handler,
        policy=ListenerPolicy(
            allowed_peers=(ipaddress.ip_network("127.0.0.1/32"),),
            max_connections=1,
            idle_timeout_s=0.3,
        ),
    )
    await server.start()
    try:
        assert await _closed_at_once("127.0.0.1", server.port, source=STRANGER)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.sleep(0.05)
        assert await _closed_at_once("127.0.0.1", server.port)  # over the limit
        assert await asyncio.wait_for(reader.read(1), 5) == b""  # idle timeout
        writer.close()
        assert server.refused == 2
    finally:
        await server.close()


async def test_order_downloads_go_only_to_the_analyzers_own_connection() -> None:
    loose = await _astm_server(ListenerPolicy(max_connections=3))
    try:
        clients = []
        for _ in range(2):
            client = ASTMClient("127.0.0.1", loose.port, _records, ANALYZER)
            await client.start()
            await client.wait_connected(5)
            clients.append(client)
        for _ in range(50):
            if len(loose.links) == 2:
                break
            await asyncio.sleep(0.02)
        # Two connections and nothing saying which is the analyzer: refuse to guess.
        with pytest.raises(ASTMNotConnected, match="allowed_peers"):
            own_link(loose)
        for client in clients:
            await client.close()
    finally:
        await loose.close()

    strict = await _astm_server(
        ListenerPolicy(allowed_peers=(ipaddress.ip_network("127.0.0.1"),), max_connections=3)
    )
    try:
        with pytest.raises(ASTMNotConnected, match="no analyzer connected"):
            own_link(strict)
        analyzer = ASTMClient("127.0.0.1", strict.port, _records, ANALYZER)
        await analyzer.start()
        await analyzer.wait_connected(5)
        link = await strict.wait_for_connection(5)
        assert own_link(strict) is link
        assert strict.peers[link] == "127.0.0.1"
        await analyzer.close()
    finally:
        await strict.close()


@given(
    peers=st.lists(st.ip_addresses(v=4), min_size=1, max_size=4),
    prefix=st.integers(min_value=24, max_value=32),
    probe=st.ip_addresses(v=4),
)
def test_a_peer_is_allowed_exactly_when_it_is_in_an_allowed_network(
    peers: list[ipaddress.IPv4Address], prefix: int, probe: ipaddress.IPv4Address
) -> None:
    networks = [f"{p}/{prefix}" for p in peers]
    policy = ListenerPolicy.of({"allowed_peers": networks})
    expected = any(probe in ipaddress.ip_network(n, strict=False) for n in networks)
    assert policy.allows(str(probe)) is expected
    assert policy.allows(f"::ffff:{probe}") is expected  # IPv4 seen by an IPv6 socket
    assert (policy.refusal((str(probe), 4000), 0) is None) is expected
    assert policy.allows("not-an-address") is False


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"allowed_peers": ["192.168.1.300"]}, "not an IP address"),
        ({"allowed_peers": 5}, "must be a list"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
        ({"idle_timeout_s": -1}, "idle_timeout_s"),
        ({"idle_timeout_s": "soon"}, "idle_timeout_s"),
    ],
)
def test_bad_listener_settings_are_named(settings: dict[str, Any], problem: str) -> None:
    [found] = settings_problems(settings)
    assert problem in found


async def test_the_api_refuses_privileged_ports_and_bad_peers_and_changes_nothing(
    client: httpx.AsyncClient, session: Any, organisation: Any
) -> None:
    lab: Lab = await make_lab(session, organisation)
    base = {
        "name": "cobas guard",
        "driver": "roche-cobas",
        "transport": "tcp-server",
        "branch_id": str(lab.branch.id),
    }
    for body, word in (
        ({**base, "port": 80}, "privileged"),
        ({**base, "port": 5100, "settings": {"allowed_peers": ["lab-analyzer"]}}, "allowed_peers"),
        ({**base, "port": 5100, "settings": {"max_connections": 99}}, "max_connections"),
    ):
        response = await client.post("/api/v1/instruments", json=body, headers=lab.headers("admin"))
        assert response.status_code in (400, 422), response.text
        assert word in response.text
    listed = await client.get("/api/v1/instruments", headers=lab.headers("admin"))
    assert listed.json()["items"] == []
    ok = await client.post(
        "/api/v1/instruments",
        json={**base, "port": 5100, "settings": {"allowed_peers": ["192.168.1.50"]}},
        headers=lab.headers("admin"),
    )
    assert ok.status_code == 201, ok.text
    # A client port below 1024 is the analyzer's, not ours to bind: allowed.
    dial = await client.post(
        "/api/v1/instruments",
        json={**base, "name": "dialled", "transport": "tcp-client", "host": "10.0.0.5", "port": 23},
        headers=lab.headers("admin"),
    )
    assert dial.status_code == 201, dial.text


async def test_listeners_bind_the_configured_lab_address_and_never_a_privileged_port(
    settings: Settings, committing_session: Any
) -> None:
    from tests.fixtures.objects import create_organisation

    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        plain = Instrument(
            id=uuid.uuid4(),
            organisation_id=organisation.id,
            branch_id=lab.branch.id,
            name="no host",
            driver="generic-astm",
            transport="tcp-server",
            port=free_port(),
            enabled=True,
            settings={},
        )
        # Written past the API (an old row, a hand edit): the runtime still refuses it.
        privileged = Instrument(
            id=uuid.uuid4(),
            organisation_id=organisation.id,
            branch_id=lab.branch.id,
            name="port 80",
            driver="generic-hl7",
            transport="tcp-server",
            port=80,
            enabled=True,
            settings={},
        )
        session.add_all([plain, privileged])
    assert settings.interfaces_listen_host == "127.0.0.1"  # the default: loopback, not 0.0.0.0
    supervisor = InterfaceSupervisor(settings, reload_interval=60, organisation_id=organisation.id)
    await supervisor.start()
    try:
        assert supervisor.listen_host == "127.0.0.1"
        transport = supervisor.connections[plain.id].transport
        assert isinstance(transport, ASTMServer)
        assert transport._server is not None
        assert {s.getsockname()[0] for s in transport._server.sockets} == {"127.0.0.1"}
        assert privileged.id not in supervisor.connections
        assert "privileged" in supervisor.failures[privileged.id].error
    finally:
        await supervisor.stop()
    configured = settings.model_copy(update={"interfaces_listen_host": "127.0.0.3"})
    assert InterfaceSupervisor(configured).listen_host == "127.0.0.3"
    async with session_scope(settings) as session:
        assert await session.get(Instrument, privileged.id) is not None
