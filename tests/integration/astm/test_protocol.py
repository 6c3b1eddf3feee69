"""E1381 link over real TCP sockets on 127.0.0.1, with short timers.

The instrument side is either the same ``ASTMLink`` class in the instrument role, or a raw
scripted peer that can corrupt checksums, lose ACKs, drop the line or send garbage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from nidaan.integration.astm.errors import ASTMSendError
from nidaan.integration.astm.framing import (
    ACK,
    ENQ,
    EOT,
    ETX,
    NAK,
    STX,
    build_frames,
    make_frame,
)
from nidaan.integration.astm.protocol import ASTMLink, LinkOptions, Timers
from nidaan.integration.astm.records import parse_message
from nidaan.integration.astm.transport import ASTMClient, ASTMServer

FAST = Timers(
    ack=1.0,
    receive=0.5,
    busy=0.05,
    host_contention=0.3,
    instrument_contention=0.1,
    interrupt_hold=0.1,
)
HOST = LinkOptions(role="host", timers=FAST)
INSTRUMENT = LinkOptions(role="instrument", timers=FAST)

RESULTS = [
    "H|\\^&|||c311^1|||||host|RSUPL^REAL|P|1",
    "P|1",
    "O|1|SID-1|0^50001^3^^S1^SC|^^^685/|R||||||N||||1||||||||||F",
    "R|1|^^^685/|28.6|U/L||N||F||BM^SYS||20230414105626|c311",
    "M|1|RR^BM^c311^1|" + "\\".join(str(600 + i) for i in range(80)),  # > 240 characters
    "L|1|N",
]


@dataclass
class Inbox:
    messages: list[list[str]] = field(default_factory=list)
    frames: list[list[bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, records: list[str], raw_frames: list[bytes]) -> None:
        self.messages.append(records)
        self.frames.append(raw_frames)
        self.arrived.set()

    async def wait(self, count: int = 1, within: float = 3.0) -> None:
        async def until() -> None:
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), within)


class RawPeer:
    """A scripted instrument: exact bytes in, exact bytes out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> RawPeer:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def put(self, data: bytes | int) -> None:
        self.writer.write(bytes([data]) if isinstance(data, int) else data)
        await self.writer.drain()

    async def get(self, within: float = 2.0) -> int:
        return (await asyncio.wait_for(self.reader.readexactly(1), within))[0]

    async def get_frame(self, within: float = 2.0) -> bytes:
        first = await self.get(within)
        assert first == STX, f"expected STX, got {first:#x}"
        return bytes([STX]) + await asyncio.wait_for(self.reader.readuntil(b"\n"), within)

    async def silent(self, within: float) -> bool:
        try:
            await asyncio.wait_for(self.reader.read(1), within)
        except TimeoutError:
            return True
        return False

    async def upload(self, records: list[str]) -> None:
        await self.put(ENQ)
        assert await self.get() == ACK
        for frame in build_frames(records):
            await self.put(frame)
            assert await self.get() == ACK
        await self.put(EOT)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def lis() -> AsyncIterator[tuple[ASTMServer, Inbox]]:
    inbox = Inbox()
    server = ASTMServer("127.0.0.1", 0, inbox, HOST)
    await server.start()
    yield server, inbox
    await server.close()


async def instrument_link(port: int, inbox: Inbox) -> tuple[ASTMLink, asyncio.Task[None]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    link = ASTMLink(reader, writer, inbox, INSTRUMENT, name="instrument")
    return link, asyncio.create_task(link.run())


async def test_instrument_uploads_results(lis: tuple[ASTMServer, Inbox]) -> None:
    server, inbox = lis
    link, task = await instrument_link(server.port, Inbox())
    await link.send(RESULTS)
    await inbox.wait()
    assert inbox.messages == [RESULTS]
    assert len(inbox.frames[0]) == 7  # the M record takes two frames
    result = parse_message(inbox.messages[0]).patients()[0].orders[0].results[0].result
    assert (result.value, result.units) == ("28.6", "U/L")
    link.close()
    await task


async def test_host_query_answered_from_the_callback() -> None:
    """TSREQ -> TSDWN: the LIS replies in a new transfer from inside on_message."""
    server: ASTMServer

    async def on_query(records: list[str], frames: list[bytes]) -> None:
        sid = parse_message(records).queries[0].sample_id
        await server.send(
            [
                "H|\\^&|||host|||||c311|TSDWN^REPLY|P|1",
                "P|1",
                f"O|1|{sid}||^^^685/\\^^^690/|R||||||A||||1||||||||||O",
                "L|1|N",
            ]
        )

    server = ASTMServer("127.0.0.1", 0, on_query, HOST)
    await server.start()
    orders = Inbox()
    link, task = await instrument_link(server.port, orders)
    await link.send(["H|\\^&|||c311^1|||||host|TSREQ^REAL|P|1", "Q|1|^SID-9||ALL", "L|1|N"])
    await orders.wait()
    order = parse_message(orders.messages[0]).patients()[0].orders[0].order
    assert order.specimen_id == "SID-9"
    assert order.test_codes == ("685/", "690/")
    link.close()
    await task
    await server.close()


async def test_bad_checksum_is_nakked_and_retransmission_accepted(
    lis: tuple[ASTMServer, Inbox],
) -> None:
    server, inbox = lis
    peer = await RawPeer.connect(server.port)
    frames = build_frames(RESULTS)
    await peer.put(ENQ)
    assert await peer.get() == ACK
    await peer.put(frames[0])
    assert await peer.get() == ACK
    corrupted = frames[1][:-4] + (b"00" if frames[1][-4:-2] != b"00" else b"01") + b"\r\n"
    await peer.put(corrupted)
    assert await peer.get() == NAK
    for frame in frames[1:]:
        await peer.put(frame)
        assert await peer.get() == ACK
    await peer.put(EOT)
    await inbox.wait()
    assert inbox.messages == [RESULTS]
    await peer.close()


async def test_frame_resent_after_lost_ack_is_not_duplicated(
    lis: tuple[ASTMServer, Inbox],
) -> None:
    server, inbox = lis
    peer = await RawPeer.connect(server.port)
    frames = build_frames(RESULTS)
    await peer.put(ENQ)
    assert await peer.get() == ACK
    for i, frame in enumerate(frames):
        await peer.put(frame)
        assert await peer.get() == ACK
        if i in (1, 4):  # pretend the ACK was lost: the same frame again, same number
            await peer.put(frame)
            assert await peer.get() == ACK
    await peer.put(EOT)
    await inbox.wait()
    await asyncio.sleep(0.05)
    assert inbox.messages == [RESULTS]


async def test_wrong_frame_number_is_nakked(lis: tuple[ASTMServer, Inbox]) -> None:
    server, _inbox = lis
    peer = await RawPeer.connect(server.port)
    await peer.put(ENQ)
    assert await peer.get() == ACK
    await peer.put(make_frame(3, b"H|\\^&\r", final=True))
    assert await peer.get() == NAK
    await peer.close()


async def test_contention_instrument_goes_first(lis: tuple[ASTMServer, Inbox]) -> None:
    server, inbox = lis
    peer = await RawPeer.connect(server.port)
    link = await server.wait_for_connection(2)
    order = ["H|\\^&|||host", "P|1", "O|1|SID-3||^^^685/|R", "L|1|N"]
    sending = asyncio.create_task(server.send(order, link))
    assert await peer.get() == ENQ
    await peer.put(ENQ)  # contention
    assert await peer.silent(0.08)  # the LIS must not answer our first ENQ
    await peer.upload(RESULTS)  # the instrument re-sends ENQ and wins
    await inbox.wait()
    assert inbox.messages == [RESULTS]
    assert not sending.done()
    assert await peer.get(within=2) == ENQ  # the LIS retries after its back-off
    await peer.put(ACK)
    received: list[str] = []
    for _ in build_frames(order):
        frame = await peer.get_frame()
        received.append(frame[2:-5].decode().rstrip("\r"))
        await peer.put(ACK)
    assert await peer.get() == EOT
    await asyncio.wait_for(sending, 1)
    assert received == order
    await peer.close()


async def test_contention_between_two_links(lis: tuple[ASTMServer, Inbox]) -> None:
    server, inbox = lis
    instrument_inbox = Inbox()
    link, task = await instrument_link(server.port, instrument_inbox)
    host_link = await server.wait_for_connection(2)
    order = ["H|\\^&|||host", "O|1|SID-4||^^^685/|R", "L|1|N"]
    await asyncio.gather(link.send(RESULTS), host_link.send(order))
    await inbox.wait()
    await instrument_inbox.wait()
    assert inbox.messages == [RESULTS]
    assert instrument_inbox.messages == [order]
    link.close()
    await task


async def test_sender_aborts_with_eot_after_six_naks(lis: tuple[ASTMServer, Inbox]) -> None:
    server, _ = lis
    peer = await RawPeer.connect(server.port)
    link = await server.wait_for_connection(2)
    sending = asyncio.create_task(link.send(RESULTS))
    assert await peer.get() == ENQ
    await peer.put(ACK)
    first = await peer.get_frame()
    tries = 1
    await peer.put(NAK)
    while tries < 6:
        assert await peer.get_frame() == first  # the same frame, same number
        tries += 1
        await peer.put(NAK)
    assert await peer.get() == EOT
    with pytest.raises(ASTMSendError):
        await asyncio.wait_for(sending, 1)
    # The link is usable again afterwards.
    await peer.upload(RESULTS)
    await peer.close()


async def test_no_reply_to_enq_ends_with_eot(lis: tuple[ASTMServer, Inbox]) -> None:
    server, _ = lis
    peer = await RawPeer.connect(server.port)
    link = await server.wait_for_connection(2)
    link.options = LinkOptions(timers=Timers(ack=0.1))
    sending = asyncio.create_task(link.send(["H|\\^&", "L|1|N"]))
    assert await peer.get() == ENQ
    assert await peer.get() == EOT
    with pytest.raises(ASTMSendError):
        await sending
    await peer.close()


async def test_busy_receiver_nak_to_enq_then_ack(lis: tuple[ASTMServer, Inbox]) -> None:
    server, _ = lis
    peer = await RawPeer.connect(server.port)
    link = await server.wait_for_connection(2)
    records = ["H|\\^&", "L|1|N"]
    sending = asyncio.create_task(link.send(records))
    assert await peer.get() == ENQ
    await peer.put(NAK)
    assert await peer.get() == ENQ
    await peer.put(ACK)
    for _ in records:
        await peer.get_frame()
        await peer.put(ACK)
    assert await peer.get() == EOT
    await asyncio.wait_for(sending, 1)
    await peer.close()


async def test_receiver_interrupt_resends_whole_message(lis: tuple[ASTMServer, Inbox]) -> None:
    server, _ = lis
    peer = await RawPeer.connect(server.port)
    link = await server.wait_for_connection(2)
    records = ["H|\\^&|||host", "P|1", "L|1|N"]
    sending = asyncio.create_task(link.send(records))
    assert await peer.get() == ENQ
    await peer.put(ACK)
    await peer.get_frame()
    await peer.put(EOT)  # receiver interrupt
    assert await peer.get() == EOT
    assert await peer.get(within=2) == ENQ  # after the hold time, from the beginning
    await peer.put(ACK)
    frames = []
    for _ in records:
        frames.append(await peer.get_frame())
        await peer.put(ACK)
    assert await peer.get() == EOT
    assert frames == build_frames(records)
    await asyncio.wait_for(sending, 1)
    await peer.close()


async def test_dropped_connection_delivers_nothing_then_next_message_ok(
    lis: tuple[ASTMServer, Inbox],
) -> None:
    server, inbox = lis
    peer = await RawPeer.connect(server.port)
    await peer.put(ENQ)
    assert await peer.get() == ACK
    for frame in build_frames(RESULTS)[:3]:
        await peer.put(frame)
        assert await peer.get() == ACK
    await peer.close()  # line dropped mid-message
    second = await RawPeer.connect(server.port)
    await second.upload(RESULTS)
    await inbox.wait()
    await asyncio.sleep(0.05)
    assert inbox.messages == [RESULTS]
    await second.close()


async def test_receive_timeout_discards_partial_transfer(lis: tuple[ASTMServer, Inbox]) -> None:
    server, inbox = lis
    peer = await RawPeer.connect(server.port)
    await peer.put(ENQ)
    assert await peer.get() == ACK
    frames = build_frames(RESULTS)
    await peer.put(frames[0])
    assert await peer.get() == ACK
    await asyncio.sleep(FAST.receive + 0.2)  # receiver gives up and goes neutral
    await peer.put(frames[1])  # ignored: no transfer in progress
    await peer.put(EOT)
    await peer.upload(RESULTS)
    await inbox.wait()
    await asyncio.sleep(0.05)
    assert inbox.messages == [RESULTS]
    await peer.close()


async def test_eot_without_terminator_is_not_delivered(lis: tuple[ASTMServer, Inbox]) -> None:
    server, inbox = lis
    peer = await RawPeer.connect(server.port)
    await peer.upload(RESULTS[:3])  # the sender stopped before the L record
    await peer.upload(RESULTS)
    await inbox.wait()
    await asyncio.sleep(0.05)
    assert inbox.messages == [RESULTS]
    await peer.close()


async def test_garbage_does_not_break_other_connections(lis: tuple[ASTMServer, Inbox]) -> None:
    server, inbox = lis
    noisy = await RawPeer.connect(server.port)
    await noisy.put(bytes(range(256)) * 3 + bytes([STX]) + b"9" * 1000 + b"\x00\xff" * 100)
    good = await RawPeer.connect(server.port)
    await good.upload(RESULTS)
    await inbox.wait()
    await noisy.put(bytes([STX, ETX, ENQ]))
    await noisy.close()
    third = await RawPeer.connect(server.port)
    await third.upload(RESULTS)
    await inbox.wait(2)
    assert inbox.messages == [RESULTS, RESULTS]
    await good.close()
    await third.close()


async def test_client_reconnects_with_backoff() -> None:
    inbox = Inbox()
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = ASTMClient("127.0.0.1", port, inbox, HOST, backoff_initial=0.05, backoff_max=0.2)
    await client.start()
    await asyncio.sleep(0.2)  # nothing listening yet: the client keeps retrying
    assert client.link is None
    peers: asyncio.Queue[RawPeer] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peers.put(RawPeer(reader, writer))

    analyzer = await asyncio.start_server(accept, "127.0.0.1", port)
    peer = await asyncio.wait_for(peers.get(), 3)
    await peer.upload(RESULTS)
    await inbox.wait()
    await peer.close()  # analyzer drops the line; the client connects again
    peer = await asyncio.wait_for(peers.get(), 3)
    await peer.upload(RESULTS)
    await inbox.wait(2)
    assert client.connections == 2
    await client.close()
    await peer.close()
    analyzer.close()
    await analyzer.wait_closed()


async def test_busy_lis_naks_enq() -> None:
    inbox = Inbox()
    busy = [True]
    server = ASTMServer("127.0.0.1", 0, inbox, HOST, busy=lambda: busy[0])
    await server.start()
    peer = await RawPeer.connect(server.port)
    await peer.put(ENQ)
    assert await peer.get() == NAK
    busy[0] = False
    await peer.upload(RESULTS)
    await inbox.wait()
    await peer.close()
    await server.close()


async def test_unfinished_record_at_eot_is_discarded(lis: tuple[ASTMServer, Inbox]) -> None:
    server, inbox = lis
    peer = await RawPeer.connect(server.port)
    await peer.put(ENQ)
    assert await peer.get() == ACK
    frames = build_frames([*RESULTS[:-1], "L|1|N" + "x" * 300])
    for frame in frames[:-1]:  # the L record's last frame never comes
        await peer.put(frame)
        assert await peer.get() == ACK
    await peer.put(EOT)
    await peer.upload(RESULTS)
    await inbox.wait()
    await asyncio.sleep(0.05)
    assert inbox.messages == [RESULTS]
    await peer.close()
