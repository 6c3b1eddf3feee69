"""The interface runtime over the transports where the LIS is not the listener: ``tcp-client``
(we dial the analyzer, ASTM and HL7/MLLP) and ``serial`` (a pty pair made by socat), end to
end through the real ``InterfaceSupervisor``, real sockets and PostgreSQL.

The analyzer is the simulator (``nidaan.simulators``) in ``server`` or ``serial`` mode, running
the same E1381 link code as the LIS, with faults injected below the link: a connection dropped
half-way through a message, an ACK lost on the wire, an EOT that never arrives, noise.
What must hold (issue 4): a dropped connection loses nothing that was acknowledged and applies
nothing twice; the LIS dials again with backoff; garbage on one connection never stops the
runtime nor disturbs another connection.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from nidaan.config import Settings
from nidaan.integration.astm.framing import ENQ, EOT
from nidaan.integration.astm.protocol import Timers
from nidaan.integration.astm.transport import ASTMClient
from nidaan.integration.hl7.message import Message as HL7Message
from nidaan.integration.hl7.mllp import Frame, MLLPDecoder, frame
from nidaan.integration.models import Instrument, InterfaceMessage
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.orders.enums import OrderTestStatus
from nidaan.results.models import Result
from nidaan.simulators import AnalyzerSimulator, Faults
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, PlacedOrder, make_lab, place_order, principal_of

T = TypeVar("T")

#: LIS-side E1381 timers (instrument settings), short so that faults resolve quickly.
FAST_LIS = {"astm": {"timers": {"ack": 2, "receive": 1.5, "busy": 0.2, "host_contention": 0.3}}}
#: Analyzer-side timers: an ACK that never comes is given up after 0.5 s.
FAST_SIM = Timers(ack=0.5, receive=1.5, busy=0.2, instrument_contention=0.1, interrupt_hold=0.2)
GLU, CREA = ("685", "182", "mg/dL", "H"), ("767", "0.9", "mg/dL", "N")
#: Noise with control characters in it: an ENQ (answered ACK), a frame with a bad checksum
#: (answered NAK), an EOT (the empty transfer is dropped) and bytes that mean nothing.
NOISE = (
    b"\x00\xff\xfeline noise\r\n"
    + bytes([ENQ])
    + b"\x021R|1|^^^685/|999|mg/dL\r\x03ZZ\r\n"
    + bytes([EOT])
    + bytes(range(7, 32)) * 2
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    lab: Lab
    orders: list[PlacedOrder]

    @property
    def org(self) -> uuid.UUID:
        return self.lab.organisation.id

    def accession(self, n: int) -> str:
        return self.orders[n].sample.accession


@pytest.fixture
async def world(committing_session: Any) -> World:
    """A lab with four received samples ordered GLU + CREA (+ UREA, cancelled on the first)."""
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        glu = await create_catalog_test(
            session,
            organisation,
            code="GLU",
            unit="mg/dL",
            decimals=0,
            ranges=[{"low": Decimal("70"), "high": Decimal("100")}],
        )
        crea = await create_catalog_test(session, organisation, code="CREA")
        urea = await create_catalog_test(session, organisation, code="UREA")
        patient = await create_patient(session, organisation)
        orders = [await place_order(session, lab, patient, [glu, crea, urea]) for _ in range(4)]
        orders[0]["UREA"].status = OrderTestStatus.CANCELLED
        await session.flush()
    return World(lab, orders)


async def add_instrument(
    committing_session: Any,
    world: World,
    *,
    driver: str = "roche-cobas",
    transport: str = "tcp-client",
    port: int | None = None,
    device: str | None = None,
    name: str | None = None,
) -> Instrument:
    """Register an instrument as data, the way the API does (``POST /api/v1/instruments``)."""
    async with committing_session() as session:
        instrument, _ = await integration_service.create_instrument(
            session,
            principal_of(world.lab.users["admin"]),
            InstrumentCreate(
                name=name or f"{driver} {transport}",
                driver=driver,  # type: ignore[arg-type]
                transport=transport,  # type: ignore[arg-type]
                host="127.0.0.1" if port is not None else None,
                port=port,
                device=device,
                baudrate=9600 if device else None,
                branch_id=world.lab.branch.id,
                settings=FAST_LIS,
                test_map=[
                    MapEntryIn(instrument_code="685", test_code="GLU"),
                    MapEntryIn(instrument_code="767", test_code="CREA"),
                    MapEntryIn(instrument_code="418", test_code="UREA"),
                    MapEntryIn(instrument_code="GLU", test_code="GLU"),
                ],
            ),
        )
    return instrument


@pytest.fixture
async def running(settings: Settings, world: World) -> AsyncIterator[InterfaceSupervisor]:
    """The supervisor, started after the test registered its instruments (``start()``)."""
    supervisor = InterfaceSupervisor(
        settings, reload_interval=0.3, listen_host="127.0.0.1", organisation_id=world.org
    )
    try:
        yield supervisor
    finally:
        await supervisor.stop()


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], within: float = 4.0
) -> T:
    """Poll ``probe`` until ``ok`` (or the deadline); returns the last value for asserting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if ok(value) or loop.time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def count(settings: Settings, model: type, *where: Any) -> int:
    async with session_scope(settings) as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def results_of(settings: Settings, placed: PlacedOrder, code: str) -> list[Result]:
    async with session_scope(settings) as session:
        return list(
            await session.scalars(select(Result).where(Result.order_test_id == placed[code].id))
        )


async def landed(settings: Settings, placed: PlacedOrder, codes: tuple[str, ...]) -> int:
    """How many of ``codes`` have a result on the order (waits up to the deadline for all)."""

    async def probe() -> int:
        return sum([bool(await results_of(settings, placed, code)) for code in codes])

    return await eventually(probe, lambda n: n == len(codes))


async def messages(settings: Settings, instrument: Instrument, status: str | None = None) -> int:
    where = [InterfaceMessage.instrument_id == instrument.id]
    if status is not None:
        where.append(InterfaceMessage.status == status)
    return await count(settings, InterfaceMessage, *where)


async def connected(supervisor: InterfaceSupervisor, instrument: Instrument) -> bool:
    async def probe() -> bool:
        connection = supervisor.connections.get(instrument.id)
        if connection is None:
            return False
        connection.poll_link()
        return connection.connected

    return await eventually(probe, bool)


def client_of(supervisor: InterfaceSupervisor, instrument: Instrument) -> ASTMClient:
    transport = supervisor.connections[instrument.id].transport
    assert isinstance(transport, ASTMClient)
    return transport


# --- 1. tcp-client ASTM: we dial the analyzer ----------------------------------------------


async def test_tcp_client_astm_results_land_and_host_query_is_answered(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
) -> None:
    async with AnalyzerSimulator(
        "roche-cobas", "127.0.0.1", 0, mode="server", timers=FAST_SIM, connect_timeout=4
    ) as sim:
        cobas = await add_instrument(committing_session, world, port=sim.port)
        await running.start()
        assert await connected(running, cobas)

        await sim.upload_results(world.accession(0), [GLU, CREA])
        assert await landed(settings, world.orders[0], ("GLU", "CREA")) == 2
        [glu] = await results_of(settings, world.orders[0], "GLU")
        assert (glu.status, glu.source, glu.instrument_flags) == ("entered", "instrument", "H")
        assert glu.value_numeric == Decimal("182")

        # The analyzer asks what to run on a tube: the LIS answers over the link it dialled.
        answer = await sim.query(world.accession(0))
        assert not answer.error
        assert sorted(answer.test_codes) == ["685", "767"]  # UREA is cancelled
        none = await sim.query("NO-SUCH-TUBE")
        assert not none.error
        assert none.test_codes == []
    assert await messages(settings, cobas, "ok") == 3  # one upload, two queries


async def test_tcp_client_dials_again_with_backoff_until_the_analyzer_listens(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nidaan.integration.astm.transport")
    port = free_port()
    cobas = await add_instrument(committing_session, world, port=port)
    await running.start()
    client = client_of(running, cobas)

    async def refused() -> bool:
        return any("connect failed" in r.getMessage() for r in caplog.records)

    # Nothing listens yet: the attempt fails and is retried later; the runtime carries on.
    assert await eventually(refused, bool)
    assert client.link is None
    assert client.connections == 0
    async with AnalyzerSimulator(
        "roche-cobas", "127.0.0.1", port, mode="server", timers=FAST_SIM, connect_timeout=4
    ) as sim:
        await sim.upload_results(world.accession(1), [GLU])
        assert await landed(settings, world.orders[1], ("GLU",)) == 1
    assert client.connections == 1


# --- 2. tcp-client reconnect: nothing acknowledged lost, nothing applied twice -------------


async def test_dropped_mid_message_is_resent_from_the_start_and_lands_once(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
) -> None:
    # Six frames (H P O R R L): frames 1-3 are ACKed, frame 4 is cut in half, the line drops.
    faults = Faults(drop_frame=4)
    async with AnalyzerSimulator(
        "roche-cobas",
        "127.0.0.1",
        0,
        mode="server",
        faults=faults,
        timers=FAST_SIM,
        connect_timeout=4,
    ) as sim:
        cobas = await add_instrument(committing_session, world, port=sim.port)
        await running.start()
        assert await connected(running, cobas)
        client = client_of(running, cobas)
        records = sim.result_records(world.accession(0), [GLU, CREA])
        with pytest.raises(ConnectionError):
            await sim.send_records(records)
        # E1381: an interrupted message is sent again from its start, once the LIS dialled
        # back in (the simulator waits for that connection).
        await sim.send_records(records)
        assert await landed(settings, world.orders[0], ("GLU", "CREA")) == 2
        assert client.connections == 2
    assert len(await results_of(settings, world.orders[0], "GLU")) == 1
    assert len(await results_of(settings, world.orders[0], "CREA")) == 1
    # The half message stored nothing; the whole one is stored once and is no duplicate.
    assert await messages(settings, cobas) == 1


async def test_message_whose_last_ack_was_lost_is_resent_and_applied_once(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
) -> None:
    # The LIS ACKs the L frame (6th) but the analyzer never sees it: after its ACK timer it
    # ends with EOT (the LIS has the whole message by then) and sends the message again.
    faults = Faults(lost_ack_frame=6)
    async with AnalyzerSimulator(
        "roche-cobas",
        "127.0.0.1",
        0,
        mode="server",
        faults=faults,
        timers=FAST_SIM,
        connect_timeout=4,
    ) as sim:
        cobas = await add_instrument(committing_session, world, port=sim.port)
        await running.start()
        assert await connected(running, cobas)
        records = sim.result_records(world.accession(1), [GLU, CREA])
        with pytest.raises(Exception, match="no reply"):
            await sim.send_records(records)
        assert await landed(settings, world.orders[1], ("GLU", "CREA")) == 2
        await sim.send_records(records)
        duplicates = await eventually(
            lambda: messages(settings, cobas, "duplicate"), lambda n: n == 1
        )
    assert duplicates == 1
    assert await messages(settings, cobas, "ok") == 1
    assert len(await results_of(settings, world.orders[1], "GLU")) == 1
    assert len(await results_of(settings, world.orders[1], "CREA")) == 1


async def test_message_acknowledged_in_full_lands_although_its_eot_never_arrives(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
) -> None:
    # Every frame, the L record's too, was ACKed; the line drops instead of the EOT. The
    # analyzer holds an ACK for everything and will not send it again: the LIS must keep it.
    faults = Faults(drop_eot=1)
    async with AnalyzerSimulator(
        "roche-cobas",
        "127.0.0.1",
        0,
        mode="server",
        faults=faults,
        timers=FAST_SIM,
        connect_timeout=4,
    ) as sim:
        cobas = await add_instrument(committing_session, world, port=sim.port)
        await running.start()
        assert await connected(running, cobas)
        client = client_of(running, cobas)
        records = sim.result_records(world.accession(2), [GLU, CREA])
        await sim.send_records(records)  # succeeds: the analyzer saw every ACK
        assert await landed(settings, world.orders[2], ("GLU", "CREA")) == 2
        # An analyzer that re-sends anyway (after the reconnect) is recognised.
        await sim.send_records(records)
        duplicates = await eventually(
            lambda: messages(settings, cobas, "duplicate"), lambda n: n == 1
        )
        assert client.connections == 2
    assert duplicates == 1
    assert len(await results_of(settings, world.orders[2], "GLU")) == 1


# --- 3. serial ASTM through the supervisor ---------------------------------------------------


class PtyPair:
    """Two linked pseudo-terminals made by socat: ``lis`` and ``analyzer`` (paths). Stopping
    socat is the cable being pulled; starting it again plugs it back in (same paths)."""

    def __init__(self, socat: str, directory: Path) -> None:
        self.socat = socat
        self._lis, self._analyzer = directory / "lis", directory / "analyzer"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def lis(self) -> str:
        return str(self._lis)

    @property
    def analyzer(self) -> str:
        return str(self._analyzer)

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                self.socat,
                f"pty,raw,echo=0,link={self._lis}",
                f"pty,raw,echo=0,link={self._analyzer}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 3
        while not (self._lis.exists() and self._analyzer.exists()):
            if time.monotonic() > deadline:
                pytest.skip("socat did not create the pty pair")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)
            self._proc = None
        for link in (self._lis, self._analyzer):
            link.unlink(missing_ok=True)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    pytest.importorskip("serial")
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat not installed")
    pair = PtyPair(socat, tmp_path)
    pair.start()
    try:
        yield pair
    finally:
        pair.stop()


async def test_serial_astm_lands_and_line_noise_is_refused_then_ignored(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
    pty_pair: PtyPair,
) -> None:
    lis_end, analyzer_end = pty_pair.lis, pty_pair.analyzer
    architect = await add_instrument(
        committing_session, world, driver="abbott-architect", transport="serial", device=lis_end
    )
    await running.start()
    assert architect.id in running.connections
    async with AnalyzerSimulator(
        "abbott-architect", mode="serial", device=analyzer_end, timers=FAST_SIM
    ) as sim:
        await sim.upload_results(world.accession(0), [GLU, CREA])
        assert await landed(settings, world.orders[0], ("GLU", "CREA")) == 2
        assert await connected(running, architect)

        await sim.send_raw(NOISE)
        link = running.connections[architect.id].transport.link
        # The noise's ENQ opened a transfer, its frame was NAKed, its EOT closed it empty.
        await eventually(lambda: asyncio.sleep(0, link.state), lambda s: s == "neutral")
        await asyncio.sleep(0.2)  # let the LIS's ACK/NAK to the noise reach the analyzer
        await sim.upload_results(world.accession(1), [GLU])
        assert await landed(settings, world.orders[1], ("GLU",)) == 1
        [glu] = await results_of(settings, world.orders[1], "GLU")
        assert glu.value_numeric == Decimal("182")  # the noise's 999 never landed
    assert await messages(settings, architect) == 2  # the noise stored nothing
    assert await messages(settings, architect, "ok") == 2


async def test_serial_port_that_goes_away_is_opened_again(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
    pty_pair: PtyPair,
) -> None:
    architect = await add_instrument(
        committing_session,
        world,
        driver="abbott-architect",
        transport="serial",
        device=pty_pair.lis,
    )
    await running.start()
    async with AnalyzerSimulator(
        "abbott-architect", mode="serial", device=pty_pair.analyzer, timers=FAST_SIM
    ) as sim:
        await sim.upload_results(world.accession(0), [GLU])
        assert await landed(settings, world.orders[0], ("GLU",)) == 1

        pty_pair.stop()  # the cable is pulled: both ends of the line go away

        async def down() -> bool:
            connection = running.connections[architect.id]
            connection.poll_link()
            return not connection.connected

        assert await eventually(down, bool)
        await sim.disconnect()
        pty_pair.start()  # plugged back in: the LIS opens the port again (with backoff)
        assert await connected(running, architect)
        port = running.connections[architect.id].transport
        assert port.opened == 2
        await sim.upload_results(world.accession(1), [GLU, CREA])
        assert await landed(settings, world.orders[1], ("GLU", "CREA")) == 2
    assert await messages(settings, architect, "ok") == 2


# --- 4. tcp-client HL7 (MLLP): we dial, the analyzer sends ORU^R01 ---------------------------


class MLLPAnalyzer:
    """An HL7 analyzer that listens (the LIS dials it) and sends messages on that connection."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._peers: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._peer: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self._peers.put((reader, writer))

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._peer is None or self._peer[1].is_closing():
            self._peer = await asyncio.wait_for(self._peers.get(), 4)
        return self._peer

    async def send(self, data: bytes, within: float = 4.0) -> HL7Message:
        """Write ``data`` (framed by the caller) and return the first HL7 reply."""
        reader, writer = await self._connection()
        writer.write(data)
        await writer.drain()
        decoder = MLLPDecoder()
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), within)
            assert chunk, "the LIS closed the connection without answering"
            for event in decoder.feed(chunk):
                if isinstance(event, Frame):
                    return HL7Message.parse(event.payload.decode())

    def drop(self) -> None:
        """Close the current connection abruptly (RST)."""
        assert self._peer is not None
        self._peer[1].transport.abort()
        self._peer = None

    async def close(self) -> None:
        if self._peer is not None:
            self._peer[1].close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def msa(ack: HL7Message) -> tuple[str, str]:
    segment = ack.segment("MSA")
    assert segment is not None, str(ack)
    return segment.get(1), segment.get(2)


async def test_tcp_client_hl7_oru_gets_aa_with_its_control_id_and_survives_garbage(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
) -> None:
    analyzer = MLLPAnalyzer()
    await analyzer.start()
    try:
        bs240 = await add_instrument(
            committing_session, world, driver="generic-hl7", port=analyzer.port
        )
        await running.start()
        builder = AnalyzerSimulator("generic-hl7")
        oru = builder.hl7_oru(world.accession(0), [("GLU", "95", "mg/dL", "N")])
        control_id = oru.control_id
        assert msa(await analyzer.send(frame(oru))) == ("AA", control_id)
        assert await landed(settings, world.orders[0], ("GLU",)) == 1
        assert await connected(running, bs240)

        # Bytes outside any MLLP block are skipped; a block that is not HL7 gets AR.
        code, _ = msa(await analyzer.send(b"\x00\xffnoise\r\n" + frame(b"not hl7 at all")))
        assert code == "AR"
        # The same ORU again (our ACK was "lost"): AA, stored as a duplicate, applied once.
        assert msa(await analyzer.send(frame(oru))) == ("AA", control_id)
        assert await messages(settings, bs240, "duplicate") == 1
        assert len(await results_of(settings, world.orders[0], "GLU")) == 1

        # The analyzer drops the line; the LIS dials again and the next message lands.
        analyzer.drop()
        second = builder.hl7_oru(world.accession(1), [("GLU", "120", "mg/dL", "H")])
        ack = await analyzer.send(frame(second))
        assert msa(ack) == ("AA", second.control_id)
        assert await landed(settings, world.orders[1], ("GLU",)) == 1
        assert analyzer.connections == 2
    finally:
        await analyzer.close()


# --- 5. two instruments: trouble on one leaves the other alone -------------------------------


async def test_garbage_and_drops_on_one_analyzer_do_not_disturb_another(
    settings: Settings,
    committing_session: Any,
    world: World,
    running: InterfaceSupervisor,
) -> None:
    noisy_sim = AnalyzerSimulator(
        "roche-cobas",
        "127.0.0.1",
        0,
        mode="server",
        faults=Faults(drop_frame=2),
        timers=FAST_SIM,
        connect_timeout=4,
    )
    good_sim = AnalyzerSimulator(
        "roche-cobas",
        "127.0.0.1",
        0,
        mode="server",
        timers=FAST_SIM,
        connect_timeout=4,
        serial="GOOD0001",
    )
    async with noisy_sim, good_sim:
        noisy = await add_instrument(committing_session, world, port=noisy_sim.port, name="noisy")
        good = await add_instrument(committing_session, world, port=good_sim.port, name="good")
        await running.start()
        assert await connected(running, noisy)
        assert await connected(running, good)

        async def trouble() -> None:
            with pytest.raises(ConnectionError):  # dropped half-way through frame 2
                await noisy_sim.upload_results(world.accession(3), [GLU])
            # Dialled again: noise, a frame that never ends, and the line goes down again.
            await noisy_sim.send_raw(NOISE + bytes(range(256)) * 4)
            await noisy_sim.send_raw(bytes([ENQ]) + b"\x02" + b"9" * 600)
            await noisy_sim.disconnect()

        async def work() -> None:
            for n in range(3):
                await good_sim.upload_results(world.accession(n), [GLU, CREA])

        await asyncio.gather(trouble(), work())
        for n in range(3):
            assert await landed(settings, world.orders[n], ("GLU", "CREA")) == 2
        # The noisy analyzer, reconnected, gets its message through too, exactly once.
        await noisy_sim.upload_results(world.accession(3), [CREA])
        assert await landed(settings, world.orders[3], ("CREA",)) == 1
        assert client_of(running, noisy).connections == 3
        assert client_of(running, good).connections == 1  # never disturbed
    assert await messages(settings, good, "ok") == 3
    assert await messages(settings, noisy) == 1
    assert await results_of(settings, world.orders[3], "GLU") == []
