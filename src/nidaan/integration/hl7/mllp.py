"""MLLP (``0x0B`` message ``0x1C 0x0D``) over asyncio: stream decoder, server, client.

The decoder is a byte-stream state machine: a TCP read may hold part of a frame, several
frames, or garbage. Bytes outside a frame are discarded and reported (stray CR/LF between
frames is tolerated silently); a frame larger than ``max_message_size`` is discarded and
reported once it ends (its first bytes are kept so the server can still NAK it by control
id). A start block inside an unterminated frame aborts that frame and starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from nidaan.integration.guard import ListenerPolicy
from nidaan.integration.hl7.ack import build_ack
from nidaan.integration.hl7.errors import HL7Error, HL7ErrorCode, HL7ParseError, HL7ValidationError
from nidaan.integration.hl7.message import Message

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Frame",
    "FramingError",
    "MLLPClient",
    "MLLPDecoder",
    "MLLPDeliveryError",
    "MLLPServer",
    "frame",
]

log = logging.getLogger(__name__)

SB: Final = 0x0B
EB: Final = 0x1C
CR: Final = 0x0D
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
_HEAD_KEEP: Final = 4096
_READ_SIZE: Final = 256 * 1024


def frame(payload: bytes | str | Message) -> bytes:
    """Wrap one message in an MLLP block."""
    if isinstance(payload, Message):
        payload = payload.to_bytes()
    elif isinstance(payload, str):
        payload = payload.encode("utf-8")
    return b"\x0b" + payload + b"\x1c\x0d"


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class FramingError:
    """``kind``: ``garbage`` (bytes outside a frame), ``oversize`` or ``unterminated``."""

    kind: str
    size: int
    head: bytes = b""


class MLLPDecoder:
    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._in_frame = False
        self._scan = 0  # bytes of _buf already searched for EB/SB
        self._oversize = 0  # >0: discarding an oversize frame, count of bytes dropped
        self._head = b""

    @property
    def in_frame(self) -> bool:
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame | FramingError]:
        events: list[Frame | FramingError] = []
        buf = self._buf
        buf += data
        while buf:
            if not self._in_frame:
                start = buf.find(SB)
                junk = buf if start == -1 else buf[:start]
                if junk.strip(b"\r\n\t "):
                    events.append(FramingError("garbage", len(junk), bytes(junk[:_HEAD_KEEP])))
                if start == -1:
                    buf.clear()
                    break
                del buf[: start + 1]
                self._in_frame, self._scan, self._oversize, self._head = True, 0, 0, b""
                continue
            end = buf.find(EB, self._scan)
            restart = buf.find(SB, self._scan, end if end != -1 else len(buf))
            if restart != -1:
                # A new start block before the end: the previous frame was abandoned.
                size = self._oversize + restart
                events.append(
                    FramingError(
                        "unterminated", size, self._head or bytes(buf[: min(restart, _HEAD_KEEP)])
                    )
                )
                del buf[: restart + 1]
                self._scan, self._oversize, self._head = 0, 0, b""
                continue
            if end == -1:
                self._scan = len(buf)
                if self._oversize or len(buf) > self.max_message_size:
                    if not self._oversize:
                        self._head = bytes(buf[:_HEAD_KEEP])
                    self._oversize += len(buf)
                    buf.clear()
                    self._scan = 0
                break
            if end + 1 >= len(buf):
                self._scan = end  # wait for the byte after EB
                break
            consumed = end + 2 if buf[end + 1] == CR else end + 1
            size = self._oversize + end
            if self._oversize or size > self.max_message_size:
                events.append(
                    FramingError("oversize", size, self._head or bytes(buf[: min(end, _HEAD_KEEP)]))
                )
            else:
                events.append(Frame(bytes(buf[:end])))
            del buf[:consumed]
            self._in_frame, self._scan, self._oversize, self._head = False, 0, 0, b""
        return events


Reply = bytes | str | Message
#: ``await handler(raw, peer)``: the reply, several replies sent in order (IHE LAW answers a
#: query with RSP^K11 then OML^O33), or None for no reply (the payload was an ACK).
Handler = Callable[[bytes, Any], Awaitable[Reply | list[Message] | None]]


def _as_bytes(reply: Reply) -> bytes:
    if isinstance(reply, Message):
        return reply.to_bytes()
    if isinstance(reply, str):
        return reply.encode("utf-8")
    return reply


class MLLPServer:
    """Accepts MLLP connections; ``await handler(raw, peer)`` returns the ACK to send.

    Messages on one connection are handled in order. A handler exception is logged and
    answered with AE; unparseable/oversize messages with AR; nothing a peer sends can stop
    the listener or affect other connections.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        idle_timeout: float | None = None,
        policy: ListenerPolicy | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.max_message_size = max_message_size
        # The policy's idle timeout, unless one is given here.
        self.idle_timeout = idle_timeout or (policy.idle_timeout_s if policy else None)
        self.policy = policy
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def open_connections(self) -> int:
        """Peers connected now (the instrument's status follows it)."""
        return len(self._connections)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MLLPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        if self.policy is not None:
            why = self.policy.refusal(peer, len(self._connections))
            if why is not None:
                self.refused += 1
                log.warning("mllp server %s:%s: refused %s: %s", self.host, self.port, peer, why)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return
        self._connections.add(task)
        decoder = MLLPDecoder(self.max_message_size)
        try:
            while True:
                async with asyncio.timeout(self.idle_timeout or None):
                    data = await reader.read(_READ_SIZE)
                if not data:
                    break
                for event in decoder.feed(data):
                    for reply in await self._on_event(event, peer):
                        writer.write(frame(reply))
                    await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("mllp connection %s closed: %r", peer, exc)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _on_event(self, event: Frame | FramingError, peer: Any) -> list[bytes]:
        """The replies to send for one decoder event, in order."""
        reply = await self._reply_to(event, peer)
        if reply is None:
            return []
        if isinstance(reply, list):
            return [_as_bytes(r) for r in reply]
        return [_as_bytes(reply)] if reply else []

    async def _reply_to(
        self, event: Frame | FramingError, peer: Any
    ) -> Reply | list[Message] | None:
        if isinstance(event, FramingError):
            log.warning("mllp %s from %s (%d bytes)", event.kind, peer, event.size)
            if event.kind == "garbage":
                return None
            error = HL7ValidationError(
                HL7ErrorCode.VALUE_TOO_LONG
                if event.kind == "oversize"
                else HL7ErrorCode.SEGMENT_SEQUENCE_ERROR,
                None,
                None,
                f"{event.kind} message ({event.size} bytes)",
            )
            return build_ack(event.head, "AR", error=error).to_bytes()
        raw = event.payload
        try:
            reply = await self.handler(raw, peer)
        except HL7ParseError as exc:
            log.warning("mllp unparseable message from %s: %s", peer, exc)
            return build_ack(raw, "AR", error=exc).to_bytes()
        except HL7Error as exc:
            log.warning("mllp rejected message from %s: %s", peer, exc)
            return build_ack(raw, "AE", error=exc).to_bytes()
        except Exception as exc:
            log.exception("mllp handler failed for a message from %s", peer)
            return build_ack(raw, "AE", error=exc).to_bytes()
        return reply


class MLLPDeliveryError(HL7Error):
    """No ACK arrived after every attempt."""


class MLLPClient:
    """Sends messages one at a time and returns their ACK (at-least-once delivery).

    A message counts as delivered only when an ACK whose MSA-2 equals its control id
    arrives. If the connection drops or the ACK times out, the client reconnects (with
    exponential backoff and jitter) and sends the same message again, up to
    ``max_attempts``; receivers de-duplicate by control id.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ack_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.host = host
        self.port = port
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_message_size = max_message_size
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = MLLPDecoder(max_message_size)
        self._pending: list[Frame | FramingError] = []
        self._lock = asyncio.Lock()
        self.connects = 0

    async def __aenter__(self) -> MLLPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        self._decoder = MLLPDecoder(self.max_message_size)
        self._pending.clear()
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_initial * (2**attempt))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout
        )
        self._decoder = MLLPDecoder(self.max_message_size)
        self._pending.clear()
        self.connects += 1

    async def send(self, message: Message | str | bytes) -> Message:
        """Send ``message`` and return its ACK; raises ``MLLPDeliveryError`` after
        ``max_attempts`` failed attempts."""
        if not isinstance(message, Message):
            message = Message.parse(message)
        control_id = message.control_id
        data = frame(message)
        last_error: BaseException | None = None
        async with self._lock:
            for attempt in range(self.max_attempts):
                if attempt:
                    await asyncio.sleep(self._backoff(attempt - 1))
                try:
                    if self._writer is None:
                        await self._connect()
                    assert self._writer is not None
                    self._writer.write(data)
                    await self._writer.drain()
                    return await asyncio.wait_for(self._await_ack(control_id), self.ack_timeout)
                except (OSError, TimeoutError, EOFError, HL7ParseError) as exc:
                    last_error = exc
                    log.warning(
                        "mllp send of %s to %s:%s failed (attempt %d): %r",
                        control_id,
                        self.host,
                        self.port,
                        attempt + 1,
                        exc,
                    )
                    await self.close()
        raise MLLPDeliveryError(
            f"no ACK for {control_id} after {self.max_attempts} attempts: {last_error!r}"
        )

    async def _await_ack(self, control_id: str) -> Message:
        assert self._reader is not None
        while True:
            while self._pending:
                event = self._pending.pop(0)
                if isinstance(event, FramingError):
                    log.warning("mllp %s in reply stream (%d bytes)", event.kind, event.size)
                    continue
                try:
                    ack = Message.parse(event.payload)
                except HL7ParseError:
                    log.warning("mllp unparseable reply ignored")
                    continue
                msa = ack.segment("MSA")
                if msa is not None and msa.get(2) == control_id:
                    return ack
                log.info("mllp reply for another message ignored: %r", ack)
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise EOFError("connection closed before the ACK arrived")
            self._pending.extend(self._decoder.feed(data))
