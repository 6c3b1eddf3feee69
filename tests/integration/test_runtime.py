"""The interface runtime end to end: real TCP on 127.0.0.1, real PostgreSQL, committed data
on a fresh organisation (the supervisor only runs that organisation's instruments)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from nidaan.config import Settings
from nidaan.integration.astm.records import parse_message
from nidaan.integration.astm.transport import ASTMClient
from nidaan.integration.hl7.message import Message as HL7Message
from nidaan.integration.hl7.mllp import MLLPClient, MLLPDecoder, frame
from nidaan.integration.models import InterfaceException, InterfaceMessage
from nidaan.integration.runtime import InterfaceSupervisor, shares
from nidaan.integration.schemas import InstrumentUpdate
from nidaan.integration.service import integration_service
from nidaan.results.models import Result
from tests.fixtures.results import principal_of
from tests.integration.support import (
    World,
    eventually,
    results_upload,
)


async def count(settings: Settings, model: type, *where: Any) -> int:
    from nidaan.kit.db import session_scope

    async with session_scope(settings) as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_astm_upload_lands_once_and_unknown_sample_is_queued(
    settings: Settings, world: World, analyzer: tuple[ASTMClient, Any]
) -> None:
    client, _ = analyzer
    glu_test = world.placed["GLU"]
    await client.send(results_upload(world.accession), within=5)

    async def landed() -> list[Result]:
        from nidaan.kit.db import session_scope

        async with session_scope(settings) as session:
            return list(
                await session.scalars(select(Result).where(Result.order_test_id == glu_test.id))
            )

    [result] = await eventually(landed, bool)
    assert (result.status, result.source, result.instrument_flags) == ("entered", "instrument", "H")
    assert result.value_numeric == Decimal("182")

    # The same transfer again (the analyzer did not see our ACK): stored, not applied.
    await client.send(results_upload(world.accession), within=5)
    duplicates = await eventually(
        lambda: count(
            settings,
            InterfaceMessage,
            InterfaceMessage.instrument_id == world.cobas.id,
            InterfaceMessage.status == "duplicate",
        ),
        lambda n: n == 1,
    )
    assert duplicates == 1
    assert len(await landed()) == 1

    await client.send(results_upload("NO-SUCH-TUBE", glu="95"), within=5)
    unknown = await eventually(
        lambda: count(
            settings,
            InterfaceException,
            InterfaceException.instrument_id == world.cobas.id,
            InterfaceException.kind == "unknown_sample",
        ),
        lambda n: n == 1,
    )
    assert unknown == 1
    status = await _status(world)
    assert status.connected is True


async def _status(world: World) -> Any:
    from nidaan.kit.db import session_scope

    async with session_scope(Settings()) as session:  # same database as the tests
        return await integration_service.status(
            session, principal_of(world.lab.users["admin"]), world.cobas.id
        )


async def test_astm_host_query_gets_mapped_orders_or_no_order(
    world: World, analyzer: tuple[ASTMClient, asyncio.Queue[list[str]]]
) -> None:
    client, replies = analyzer
    query = [
        "H|\\^&|||c311^1|||||host|TSREQ^REAL|P|1",
        f"Q|1|^{world.accession}^0^5001^1^^S1^SC||ALL||||||||O",
        "L|1|N",
    ]
    await client.send(query, within=5)
    answer = parse_message(await asyncio.wait_for(replies.get(), 8))
    order = answer.patients()[0].orders[0].order
    assert order.specimen_id == world.accession
    assert sorted(t[3] for t in order.tests) == ["685", "690"]  # UREA is cancelled
    assert order.instrument_specimen_id[:3] == ("0", "5001", "1")
    assert order.report_type == "Q"

    await client.send([query[0], "Q|1|^UNKNOWN-1||ALL||||||||O", "L|1|N"], within=5)
    none = parse_message(await asyncio.wait_for(replies.get(), 8))
    order = none.patients()[0].orders[0].order
    assert (order.specimen_id, order.tests, order.report_type) == ("UNKNOWN-1", (), "Z")


async def test_astm_garbage_is_stored_and_the_listener_survives(
    settings: Settings, world: World, analyzer: tuple[ASTMClient, Any]
) -> None:
    client, _ = analyzer
    await client.send(["X|garbage with no header", "L|1|N"], within=5)
    errors = await eventually(
        lambda: count(
            settings,
            InterfaceMessage,
            InterfaceMessage.instrument_id == world.cobas.id,
            InterfaceMessage.status == "error",
        ),
        lambda n: n == 1,
    )
    assert errors == 1
    await client.send(results_upload(world.accession, glu="99"), within=5)
    ok = await eventually(
        lambda: count(settings, Result, Result.order_test_id == world.placed["GLU"].id),
        lambda n: n == 1,
    )
    assert ok == 1


def oru(accession: str, control_id: str, value: str = "95") -> str:
    return (
        f"MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261126101010||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r"
        "PID|1||MRN-1\r"
        f"OBR|1|{accession}||GLU^Glucose|||20261126100000\r"
        f"OBX|1|NM|GLU^Glucose||{value}|mg/dL|70-100|N|||F|||20261126100500\r"
    )


async def _raw_exchange(port: int, payload: bytes) -> HL7Message:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame(payload))
        await writer.drain()
        decoder = MLLPDecoder()
        while True:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "connection closed without an answer"
            for event in decoder.feed(data):
                return HL7Message.parse(event.payload)  # type: ignore[union-attr]
    finally:
        writer.close()


async def test_hl7_oru_gets_aa_and_lands_malformed_gets_named_reject(
    settings: Settings, world: World, supervisor: InterfaceSupervisor
) -> None:
    port = supervisor.port_of(world.hl7.id)
    assert port is not None
    control_id = f"C-{uuid.uuid4().hex[:10]}"
    async with MLLPClient("127.0.0.1", port, ack_timeout=5, max_attempts=1) as client:
        ack = await client.send(oru(world.accession, control_id))
    msa = ack.segment("MSA")
    assert msa is not None
    assert (msa.get(1), msa.get(2)) == ("AA", control_id)
    assert await count(settings, Result, Result.order_test_id == world.placed["GLU"].id) == 1

    # Structurally broken (OBX without OBR): rejected, naming the segment.
    broken = (
        "MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261126101010||ORU^R01^ORU_R01|BAD-1|P|2.5.1\r"
        "OBX|1|NM|GLU||95|mg/dL\r"
    )
    nak = await _raw_exchange(port, broken.encode())
    assert nak.segment("MSA").get(1) in ("AR", "AE")  # type: ignore[union-attr]
    assert nak.segment("MSA").get(2) == "BAD-1"  # type: ignore[union-attr]
    assert nak.segment("ERR") is not None

    # Not HL7 at all: AR, and the listener is still there for the next message.
    garbage = await _raw_exchange(port, b"this is not hl7")
    assert garbage.segment("MSA").get(1) == "AR"  # type: ignore[union-attr]
    assert (
        await count(
            settings,
            InterfaceMessage,
            InterfaceMessage.instrument_id == world.hl7.id,
            InterfaceMessage.status == "error",
        )
        == 2
    )
    again = await _raw_exchange(port, oru(world.accession, f"C-{uuid.uuid4().hex[:10]}").encode())
    assert again.segment("MSA").get(1) == "AA"  # type: ignore[union-attr]


async def test_disabling_an_instrument_stops_its_listener(
    committing_session: Any, world: World, supervisor: InterfaceSupervisor
) -> None:
    port = supervisor.port_of(world.cobas.id)
    assert port is not None
    async with committing_session() as session:
        await integration_service.update_instrument(
            session,
            principal_of(world.lab.users["admin"]),
            world.cobas.id,
            InstrumentUpdate(version=world.cobas.version, enabled=False),
        )

    async def refused() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return True
        writer.close()
        return False

    assert await eventually(refused, bool, within=3.0)
    assert world.cobas.id not in supervisor.connections
    assert world.hl7.id in supervisor.connections  # untouched


async def test_processes_share_the_instruments_without_overlap(
    settings: Settings, world: World
) -> None:
    """`nidaan interfaces --processes 2`: each instrument is run by exactly one process."""
    shares = [
        InterfaceSupervisor(
            settings, listen_host="127.0.0.1", organisation_id=world.org, shard=i, shards=2
        )
        for i in range(2)
    ]
    for share in shares:
        await share.start()
    try:
        running = [set(share.connections) for share in shares]
        assert running[0].isdisjoint(running[1])
        assert running[0] | running[1] == {world.cobas.id, world.hl7.id}
        assert [len(r) for r in running] == [1, 1]  # dealt evenly
    finally:
        for share in shares:
            await share.stop()
    with pytest.raises(ValueError, match="shard"):
        InterfaceSupervisor(settings, shard=2, shards=2)


def test_shares_deal_the_instruments_evenly_and_agree() -> None:
    """Every process computes the same shares from the same instruments, within one of
    each other in size, whatever order the rows came in."""
    ids = [uuid.uuid4() for _ in range(10)]
    owner = shares(ids, 3)
    assert owner == shares(list(reversed(ids)), 3)
    sizes = sorted(list(owner.values()).count(n) for n in range(3))
    assert sizes == [3, 3, 4]
    assert set(shares(ids, 1).values()) == {0}
