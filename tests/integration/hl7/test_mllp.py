"""MLLP framing (hypothesis chunking) and real TCP server/client exchanges on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nidaan.integration.hl7 import Message, build_ack, build_msh
from nidaan.integration.hl7.mllp import (
    Frame,
    FramingError,
    MLLPClient,
    MLLPDecoder,
    MLLPServer,
    frame,
)

PAYLOAD = st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(PAYLOAD, min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
    between=st.sampled_from([b"", b"\r\n", b"\n"]),
)
def test_decoder_reassembles_any_chunking(
    payloads: list[bytes], cuts: list[int], between: bytes
) -> None:
    stream = between.join(frame(p) for p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    decoder = MLLPDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    assert events == [Frame(p) for p in payloads]


def test_decoder_reports_garbage_oversize_and_unterminated() -> None:
    decoder = MLLPDecoder(max_message_size=10)
    events = decoder.feed(b"junk" + frame(b"ok") + frame(b"x" * 50) + b"\x0bhalf" + frame(b"z"))
    assert events == [
        FramingError("garbage", 4, b"junk"),
        Frame(b"ok"),
        FramingError("oversize", 50, b"x" * 50),
        FramingError("unterminated", 4, b"half"),
        Frame(b"z"),
    ]
    # oversize detected while streaming, in small chunks
    decoder = MLLPDecoder(max_message_size=10)
    out = []
    for chunk in [b"\x0bMSH|", b"a" * 30, b"b" * 30, b"\x1c", b"\r", frame(b"after")]:
        out.extend(decoder.feed(chunk))
    assert [type(e).__name__ for e in out] == ["FramingError", "Frame"]
    assert out[0].kind == "oversize"
    assert out[0].size == 64
    assert out[0].head.startswith(b"MSH|")
    assert out[1] == Frame(b"after")


def _message(control_id: str, body: str = "OBX|1|ST|X||hello||||||F") -> Message:
    msh = build_msh("ORU^R01^ORU_R01", control_id=control_id, sending_application="DEV")
    return Message.parse(str(msh) + "\rOBR|1|A1\r" + body + "\r")


async def _ack_handler(raw: bytes, peer: Any) -> bytes:
    msg = Message.parse(raw)
    if msg["OBX"].get(5) == "explode":
        raise RuntimeError("handler bug")
    return build_ack(msg).to_bytes()


async def _read_frames(reader: asyncio.StreamReader, n: int) -> list[Frame | FramingError]:
    decoder = MLLPDecoder()
    events: list[Frame | FramingError] = []
    while len(events) < n:
        data = await asyncio.wait_for(reader.read(65536), 5)
        assert data, "connection closed"
        events.extend(decoder.feed(data))
    return events


async def test_server_and_client_exchange() -> None:
    server = MLLPServer("127.0.0.1", 0, _ack_handler)
    await server.start()
    try:
        async with MLLPClient("127.0.0.1", server.port, ack_timeout=5) as client:
            for i in range(5):
                ack = await client.send(_message(f"C{i}"))
                assert (ack["MSA"].get(1), ack["MSA"].get(2)) == ("AA", f"C{i}")
            ack = await client.send(_message("BOOM", "OBX|1|ST|X||explode||||||F"))
            assert ack["MSA"].get(1) == "AE"
            assert ack["ERR"].get(3, 1) == "207"
            ack = await client.send(_message("AFTER"))
            assert ack["MSA"].get(1) == "AA"
            assert client.connects == 1
    finally:
        await server.close()


async def test_bad_connection_does_not_disturb_another() -> None:
    async with MLLPServer("127.0.0.1", 0, _ack_handler, max_message_size=4096) as server:
        bad_r, bad_w = await asyncio.open_connection("127.0.0.1", server.port)
        good = MLLPClient("127.0.0.1", server.port, ack_timeout=5)
        try:
            bad_w.write(b"random garbage\x00\xff")
            bad_w.write(frame(b"not hl7 at all"))
            big = str(_message("BIG", "OBX|1|ED|X||" + "A" * 10000 + "||||||F")).encode()
            bad_w.write(frame(big))
            await bad_w.drain()
            ack = await good.send(_message("G1"))
            assert ack["MSA"].get(2) == "G1"
            replies = await _read_frames(bad_r, 2)
            first, second = (Message.parse(e.payload) for e in replies if isinstance(e, Frame))
            assert (first["MSA"].get(1), first["MSA"].get(2)) == ("AR", "")
            assert (second["MSA"].get(1), second["MSA"].get(2)) == ("AR", "BIG")
            # 104 "value too long" exists only from v2.7: a v2.5 message gets 207.
            assert second["ERR"].get(3, 1) == "207"
            # the bad connection itself still works after all that
            bad_w.write(frame(_message("B2")))
            await bad_w.drain()
            (reply,) = await _read_frames(bad_r, 1)
            assert isinstance(reply, Frame)
            assert Message.parse(reply.payload)["MSA"].get(2) == "B2"
            ack = await good.send(_message("G2"))
            assert ack["MSA"].get(2) == "G2"
        finally:
            bad_w.close()
            await good.close()


async def test_client_resends_after_connection_dropped_before_ack() -> None:
    received: list[str] = []
    connections = 0

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        decoder = MLLPDecoder()
        try:
            while data := await reader.read(65536):
                for event in decoder.feed(data):
                    assert isinstance(event, Frame)
                    msg = Message.parse(event.payload)
                    received.append(msg.control_id)
                    if connections == 1:
                        writer.close()  # crash before acknowledging
                        return
                    writer.write(frame(build_ack(msg)))
                    await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(flaky, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with MLLPClient(
            "127.0.0.1", port, ack_timeout=5, backoff_initial=0.01, backoff_max=0.05
        ) as client:
            ack = await client.send(_message("DUP1"))
            assert ack["MSA"].get(2) == "DUP1"
            assert received == ["DUP1", "DUP1"]  # at-least-once: re-sent after reconnect
            assert client.connects == 2
    finally:
        server.close()
        await server.wait_closed()


async def test_client_gives_up_with_delivery_error() -> None:
    from nidaan.integration.hl7.mllp import MLLPDeliveryError

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = MLLPClient(
        "127.0.0.1", port, ack_timeout=1, max_attempts=3, backoff_initial=0.01, backoff_max=0.02
    )
    try:
        with pytest.raises(MLLPDeliveryError, match="LOST"):
            await client.send(_message("LOST"))
        assert client.connects == 3
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
