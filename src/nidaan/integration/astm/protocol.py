"""ASTM E1381 link state machine (asyncio), both directions over one byte stream.

One ``ASTMLink`` per connection. ``run()`` reads the stream and drives the receiver; ``send()``
drives the sender and shares the same reader (replies reach it through a queue). States:
neutral, receiving, establishing (ENQ sent), transferring (frames sent).

Receiver: ENQ -> ACK (NAK when ``busy()``); good frame -> ACK; bad checksum, wrong frame number,
over-long or malformed frame -> NAK; the previous frame re-sent (our ACK was lost) -> ACK without
appending; EOT ends the transfer. A transfer is handed to ``on_message(records, raw_frames)``
only when it ended with EOT and (by default) its last record is an L record. A receive timeout
or a dropped connection discards an incomplete transfer; one whose L record was already
acknowledged is complete (the sender holds an ACK for every frame and need not send it again)
and is handed up as if the EOT had come. Each transfer is handed up exactly once, in order, from
a separate delivery task so that the callback may itself ``send()`` (e.g. a host-query reply).

Sender: ENQ; wait for ACK (``timers.ack``). NAK = receiver busy: retry after ``timers.busy``.
ENQ = contention: the instrument has priority, so the host (``role="host"``) stands back, serves
the instrument's transfer and retries after ``timers.host_contention``; an instrument
(``role="instrument"``, used by simulators) re-sends ENQ after ``timers.instrument_contention``.
Each frame waits for ACK; NAK or any other reply re-sends the same frame; the 6th failure
aborts with EOT. EOT in place of ACK is a receiver interrupt: the frame counts as acknowledged;
if frames remain the sender ends the transfer with EOT, keeps the line free for
``timers.interrupt_hold`` and then sends the whole message again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from nidaan.integration.astm.errors import ASTMNotConnected, ASTMSendError
from nidaan.integration.astm.framing import (
    ACK,
    ENQ,
    EOT,
    MAX_TEXT,
    NAK,
    Event,
    EventKind,
    FrameDecoder,
    FrameStatus,
    build_frames,
)

log = logging.getLogger(__name__)

OnMessage = Callable[[list[str], list[bytes]], Awaitable[None] | None]
#: Called with the records of a message whose L record just arrived, before that frame is
#: acknowledged (e.g. to put the message on disk); returns a token for ``kept_tokens``.
Keep = Callable[[list[str]], Awaitable[str]]
Role = Literal["host", "instrument"]

_KEPT: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("astm_kept", default=())


def kept_tokens() -> tuple[str, ...]:
    """Inside ``on_message``: what ``LinkOptions.keep`` returned for the transfer handed up."""
    return _KEPT.get()


class ByteWriter(Protocol):
    """The part of ``asyncio.StreamWriter`` the link uses (serial wraps it too)."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Timers:
    """Seconds. Defaults from E1381; Roche e411/c311 receivers use ``receive=15``."""

    ack: float = 15.0  # sender: reply to ENQ or frame
    receive: float = 30.0  # receiver: next frame or EOT
    busy: float = 10.0  # sender: after NAK to ENQ
    host_contention: float = 20.0
    instrument_contention: float = 1.0
    interrupt_hold: float = 15.0  # sender: after a receiver interrupt


@dataclass(frozen=True, slots=True)
class LinkOptions:
    role: Role = "host"
    timers: Timers = Timers()
    max_retries: int = 6  # failed tries per frame before EOT
    max_enq_attempts: int = 6  # ENQs answered NAK (busy) before giving up
    max_interrupts: int = 3  # receiver interrupts before giving up a message
    allow_wrap_to_one: bool = False
    require_terminator: bool = True  # hand up only transfers whose last record is L
    max_text: int = MAX_TEXT
    encoding: str = "latin-1"
    keep: Keep | None = None  # see ``Keep``; a failure answers the frame NAK, not ACK


class _State:
    NEUTRAL = "neutral"
    RECEIVING = "receiving"
    ESTABLISHING = "establishing"
    TRANSFERRING = "transferring"


class ASTMLink:
    """E1381 over one reader/writer pair. Call ``run()`` (until the stream ends), ``send()``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: ByteWriter,
        on_message: OnMessage,
        options: LinkOptions | None = None,
        *,
        busy: Callable[[], bool] | None = None,
        name: str = "astm",
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.on_message = on_message
        self.options = options or LinkOptions()
        self.busy = busy
        self.name = name
        self.decoder = FrameDecoder(
            allow_wrap_to_one=self.options.allow_wrap_to_one,
            max_text=self.options.max_text,
            encoding=self.options.encoding,
        )
        self.state = _State.NEUTRAL
        self._replies: asyncio.Queue[EventKind] = asyncio.Queue()
        self._neutral = asyncio.Event()
        self._neutral.set()
        self._send_lock = asyncio.Lock()
        self._hold_until = 0.0
        self._records: list[str] = []
        self._frames: list[bytes] = []
        self._kept: list[str] = []
        self._deliveries: asyncio.Queue[tuple[list[str], list[bytes], tuple[str, ...]] | None] = (
            asyncio.Queue()
        )
        self._closed = asyncio.Event()
        self.delivered = 0
        self.discarded = 0

    # ------------------------------------------------------------------ reading side

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def run(self) -> None:
        """Read until EOF or error; then discard any partial transfer and finish deliveries."""
        worker = asyncio.create_task(self._deliver_loop(), name=f"{self.name}-deliver")
        try:
            while True:
                timeout = self.options.timers.receive if self.state == _State.RECEIVING else None
                try:
                    # asyncio.timeout, not wait_for: no extra task per read (one per frame).
                    async with asyncio.timeout(timeout):
                        chunk = await self.reader.read(4096)
                except TimeoutError:
                    self._cut_off("receive timeout")
                    continue
                if not chunk:
                    break
                for event in self.decoder.feed(chunk):
                    await self._on_event(event)
        except (ConnectionError, OSError) as exc:
            log.info("%s: connection lost: %s", self.name, exc)
        finally:
            if self.state == _State.RECEIVING:
                self._cut_off("connection lost")
            self._closed.set()
            self._replies.put_nowait(EventKind.EOT)  # wake a waiting sender
            self._deliveries.put_nowait(None)
            with contextlib.suppress(Exception):
                await worker
            self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self.writer.is_closing():
                self.writer.close()

    def _set_state(self, state: str) -> None:
        self.state = state
        if state == _State.NEUTRAL:
            self._neutral.set()
        else:
            self._neutral.clear()

    def _cut_off(self, why: str) -> None:
        """The transfer being received ends without EOT. Every frame we ACKed is one the sender
        will not send again; when those already hold the whole message (it ends with its L
        record, nothing unfinished) it is handed up, otherwise it is discarded (E1381: the
        receiver discards an incomplete message). A sender that re-sends it anyway is
        recognised upstream as a duplicate."""
        whole = (
            self.options.require_terminator
            and bool(self._records)
            and self._records[-1][:1] in ("L", "l")
            and not self.decoder.has_partial_record
        )
        if whole:
            log.warning("%s: %s after the last frame; transfer kept", self.name, why)
            self._finish_transfer(partial=False)
        else:
            if self._records or self._frames:
                log.warning("%s: %s; incomplete transfer discarded", self.name, why)
            self._discard()

    def _discard(self) -> None:
        if self._records or self._frames:
            self.discarded += 1
        if self._kept:
            # Kept before an ACK we sent: stays waiting in the keeper (landed at its restart).
            log.warning("%s: a kept message was discarded by the link", self.name)
        self._records, self._frames, self._kept = [], [], []
        self.decoder.reset()
        if self.state == _State.RECEIVING:
            self._set_state(_State.NEUTRAL)

    async def _write(self, data: bytes) -> None:
        if self.closed:
            raise ASTMNotConnected("ASTM link closed")
        self.writer.write(data)
        await self.writer.drain()

    async def _on_event(self, event: Event) -> None:
        kind = event.kind
        state = self.state
        if state in (_State.ESTABLISHING, _State.TRANSFERRING):
            if (
                kind == EventKind.ENQ
                and state == _State.ESTABLISHING
                and self.options.role == "host"
            ):
                # Contention: the instrument wins. Go neutral now so that its next ENQ is served.
                self._set_state(_State.NEUTRAL)
                self._replies.put_nowait(kind)
            elif kind != EventKind.FRAME:
                self._replies.put_nowait(kind)
            return
        if kind == EventKind.ENQ:
            if state == _State.RECEIVING:
                log.warning("%s: ENQ during a transfer; restarting it", self.name)
                if self._kept:
                    # Its L record was acknowledged: the message is whole, hand it up.
                    self._finish_transfer(partial=False)
                self._records, self._frames, self._kept = [], [], []
            if self.busy is not None and self.busy():
                await self._write(bytes([NAK]))
                self._set_state(_State.NEUTRAL)
                return
            self._records, self._frames = [], []
            self._set_state(_State.RECEIVING)
            await self._write(bytes([ACK]))
        elif kind == EventKind.EOT:
            if state == _State.RECEIVING:
                self._finish_transfer(partial=event.partial)
        elif kind == EventKind.FRAME and state == _State.RECEIVING:
            frame = event.frame
            assert frame is not None
            if frame.status == FrameStatus.OK:
                self._records.extend(event.records)
                self._frames.append(frame.raw)
                keep = self.options.keep
                if keep is not None and any(r[:1] in ("L", "l") for r in event.records):
                    try:
                        self._kept.append(await keep(list(self._records)))
                    except Exception:
                        # Not kept, not acknowledged: the analyzer sends the frame again.
                        log.exception("%s: message could not be kept; frame refused", self.name)
                        del self._records[len(self._records) - len(event.records) :]
                        self._frames.pop()
                        self.decoder.forget_last()
                        await self._write(bytes([NAK]))
                        return
                await self._write(bytes([ACK]))
            elif frame.status == FrameStatus.DUPLICATE:
                await self._write(bytes([ACK]))
            else:
                log.info("%s: frame rejected (%s)", self.name, frame.status.value)
                await self._write(bytes([NAK]))
        # ACK/NAK while neutral or receiving, or frames while neutral: ignored.

    def _finish_transfer(self, *, partial: bool) -> None:
        records, frames, kept = self._records, self._frames, tuple(self._kept)
        self._records, self._frames, self._kept = [], [], []
        self.decoder.reset()
        self._set_state(_State.NEUTRAL)
        complete = bool(records) and not partial
        if complete and self.options.require_terminator:
            complete = records[-1][:1] in ("L", "l")
        if not complete:
            if records or frames:
                self.discarded += 1
                log.warning("%s: incomplete transfer discarded at EOT", self.name)
            return
        self._deliveries.put_nowait((records, frames, kept))

    async def _deliver_loop(self) -> None:
        while (item := await self._deliveries.get()) is not None:
            records, frames, kept = item
            self.delivered += 1
            _KEPT.set(kept)
            try:
                result = self.on_message(records, frames)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("%s: on_message failed", self.name)

    # ------------------------------------------------------------------ sending side

    async def _reply(self, seconds: float) -> EventKind | None:
        try:
            async with asyncio.timeout(seconds):
                return await self._replies.get()
        except TimeoutError:
            return None

    def _drain_replies(self) -> None:
        while not self._replies.empty():
            self._replies.get_nowait()

    async def _wait_line_free(self) -> None:
        while True:
            if self.closed:
                raise ASTMNotConnected("ASTM link closed")
            await self._neutral.wait()
            delay = self._hold_until - time.monotonic()
            if delay <= 0 and self.state == _State.NEUTRAL:
                return
            if delay > 0:
                await asyncio.sleep(delay)

    async def send(self, records: Sequence[str]) -> None:
        """Send one transfer (a list of record strings without CR). Raises ``ASTMSendError``."""
        if not records:
            return
        frames = build_frames(
            records, max_text=self.options.max_text, encoding=self.options.encoding
        )
        async with self._send_lock:
            interrupts = 0
            while True:
                await self._establish()
                done = await self._transfer(frames)
                if done:
                    return
                interrupts += 1
                if interrupts >= self.options.max_interrupts:
                    raise ASTMSendError("receiver interrupted the transfer too often")

    async def _establish(self) -> None:
        timers = self.options.timers
        enq_attempts = 0
        while True:
            await self._wait_line_free()
            self._drain_replies()
            self._set_state(_State.ESTABLISHING)
            await self._write(bytes([ENQ]))
            while True:
                reply = await self._reply(timers.ack)
                if reply == EventKind.ENQ and self.options.role == "instrument":
                    # Contention, we have priority: wait, then ENQ again.
                    await asyncio.sleep(timers.instrument_contention)
                    self._drain_replies()
                    await self._write(bytes([ENQ]))
                    continue
                break
            if self.closed:
                raise ASTMNotConnected("ASTM link closed")
            if reply == EventKind.ACK:
                self._set_state(_State.TRANSFERRING)
                return
            if reply == EventKind.ENQ:  # contention: the instrument goes first
                log.info("%s: contention; standing back", self.name)
                self._hold_until = time.monotonic() + timers.host_contention
                continue  # the reader already went neutral (and may be receiving by now)
            if reply == EventKind.NAK:
                enq_attempts += 1
                self._set_state(_State.NEUTRAL)
                if enq_attempts >= self.options.max_enq_attempts:
                    raise ASTMSendError("receiver busy (ENQ refused)")
                self._hold_until = time.monotonic() + timers.busy
                continue
            # Timeout, or an unexpected EOT: termination phase.
            await self._terminate()
            raise ASTMSendError("no reply to ENQ")

    async def _terminate(self) -> None:
        with contextlib.suppress(ASTMNotConnected, ConnectionError, OSError):
            await self._write(bytes([EOT]))
        self._set_state(_State.NEUTRAL)

    async def _transfer(self, frames: list[bytes]) -> bool:
        """Send the frames; True when done, False after a receiver interrupt (send again)."""
        timers = self.options.timers
        for index, frame in enumerate(frames):
            failures = 0
            while True:
                self._drain_replies()
                await self._write(frame)
                reply = await self._reply(timers.ack)
                if self.closed:
                    raise ASTMNotConnected("ASTM link closed during a transfer")
                if reply == EventKind.ACK:
                    break
                if reply == EventKind.EOT:  # receiver interrupt: counts as ACK
                    self._hold_until = time.monotonic() + timers.interrupt_hold
                    if index == len(frames) - 1:
                        break
                    await self._terminate()
                    return False
                if reply is None:
                    await self._terminate()
                    raise ASTMSendError("no reply to frame")
                failures += 1
                if failures >= self.options.max_retries:
                    await self._terminate()
                    raise ASTMSendError(f"frame refused {failures} times")
        await self._terminate()
        return True
