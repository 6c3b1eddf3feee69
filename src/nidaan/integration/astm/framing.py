"""ASTM E1381 / CLSI LIS1-A frames (pure): build frames and decode a byte stream.

Frame: ``STX FN text ETB|ETX C1 C2 CR LF``. FN is ``1..7, 0, 1...``; the text is at most 240
characters; the checksum is the sum of the bytes from FN through ETB/ETX inclusive, mod 256, as
two uppercase hex digits. Each record (plus its CR) starts a new frame; a longer record is sent
as intermediate frames ending ETB and a last frame ending ETX.

``FrameDecoder`` is a byte-stream state machine: it is fed arbitrary chunks (TCP and serial
reads never line up with frames), validates every frame on arrival (checksum, frame number,
length), recognises a retransmitted frame (same FN as the last accepted one) and reassembles
the accepted texts into records by splitting on CR, so a device that ends every record with
``CR ETB`` (cobas c111) decodes the same as one that uses ETX.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

STX = 0x02
ETX = 0x03
EOT = 0x04
ENQ = 0x05
ACK = 0x06
LF = 0x0A
CR = 0x0D
NAK = 0x15
ETB = 0x17

MAX_TEXT = 240
ENCODING = "latin-1"
_ABORTING = frozenset((STX, ENQ, EOT, ACK, NAK))


def checksum(data: bytes) -> bytes:
    """Two uppercase hex digits of ``sum(data) % 256`` (data = FN .. ETB/ETX inclusive)."""
    return f"{sum(data) & 0xFF:02X}".encode("ascii")


def next_frame_number(fn: int) -> int:
    return (fn + 1) % 8


def make_frame(fn: int, text: bytes, final: bool) -> bytes:
    body = bytes([0x30 + fn]) + text + bytes([ETX if final else ETB])
    return bytes([STX]) + body + checksum(body) + b"\r\n"


def build_frames(
    records: Iterable[str],
    *,
    first_number: int = 1,
    max_text: int = MAX_TEXT,
    encoding: str = ENCODING,
) -> list[bytes]:
    """Frames for a message: one per record (CR included), split into ETB frames if longer."""
    frames: list[bytes] = []
    fn = first_number % 8
    for record in records:
        data = record.encode(encoding) + b"\r"
        for start in range(0, len(data), max_text):
            chunk = data[start : start + max_text]
            frames.append(make_frame(fn, chunk, final=start + max_text >= len(data)))
            fn = next_frame_number(fn)
    return frames


class EventKind(enum.Enum):
    ENQ = "enq"
    EOT = "eot"
    ACK = "ack"
    NAK = "nak"
    FRAME = "frame"


class FrameStatus(enum.Enum):
    OK = "ok"
    DUPLICATE = "duplicate"  # same FN as the last accepted frame: a retransmission; ACK it
    BAD_CHECKSUM = "bad_checksum"
    BAD_NUMBER = "bad_number"
    TOO_LONG = "too_long"
    MALFORMED = "malformed"  # no FN digit, or cut off by a control byte

    @property
    def acceptable(self) -> bool:
        """Whether the receiver answers ACK."""
        return self in (FrameStatus.OK, FrameStatus.DUPLICATE)


@dataclass(frozen=True, slots=True)
class Frame:
    number: int | None
    text: bytes
    final: bool  # ended with ETX (False: ETB)
    status: FrameStatus
    raw: bytes


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    frame: Frame | None = None
    records: tuple[str, ...] = ()  # records completed by this (accepted) frame
    partial: bool = False  # EOT only: a record was left unfinished (ETB without its end)


@dataclass(slots=True)
class FrameDecoder:
    """Streaming decoder. ``feed(chunk)`` returns the events completed by the chunk.

    ``allow_wrap_to_one``: accept 7 -> 1 as well as 7 -> 0 (OpenELIS mock, Immulite).
    ``max_text``: longer frames are reported ``TOO_LONG`` (the receiver NAKs them).
    """

    allow_wrap_to_one: bool = False
    max_text: int = MAX_TEXT
    encoding: str = ENCODING
    _buf: bytearray = field(default_factory=bytearray)
    _in_frame: bool = False
    _discarding: bool = False
    _last_fn: int | None = None
    _pending: bytearray = field(default_factory=bytearray)
    _before_last: tuple[int | None, bytes] = (None, b"")
    garbage_bytes: int = 0

    def reset(self) -> None:
        """Forget the transfer in progress (frame numbering and partial record)."""
        self._last_fn = None
        self._pending.clear()

    def forget_last(self) -> None:
        """Undo the last accepted frame (the receiver refused it after all): its re-sent copy
        is then accepted again rather than taken for a duplicate."""
        self._last_fn, pending = self._before_last
        self._pending = bytearray(pending)

    @property
    def has_partial_record(self) -> bool:
        """Text of an unfinished record is pending (ETB frames without the record's end)."""
        return bool(self._pending)

    def _expected(self) -> tuple[int, ...]:
        if self._last_fn is None:
            return (1,)
        nxt = next_frame_number(self._last_fn)
        if self.allow_wrap_to_one and self._last_fn == 7:
            return (0, 1)
        return (nxt,)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        buf = self._buf
        i = 1 if self._in_frame else 0  # in a frame buf[0] is its STX
        n = len(buf)
        while i < n:
            if not self._in_frame:
                b = buf[i]
                if self._discarding:
                    # Rest of an over-long frame: skip to its ETB/ETX, then its checksum bytes.
                    if b in (ETX, ETB):
                        self._discarding = False
                    elif b in _ABORTING:
                        self._discarding = False
                        continue
                    i += 1
                    continue
                i += 1
                if b == STX:
                    self._in_frame = True
                    del buf[: i - 1]
                    n = len(buf)
                    i = 1
                elif b == ENQ:
                    self.reset()
                    events.append(Event(EventKind.ENQ))
                elif b == EOT:
                    partial = bool(self._pending)
                    self.reset()
                    events.append(Event(EventKind.EOT, partial=partial))
                elif b == ACK:
                    events.append(Event(EventKind.ACK))
                elif b == NAK:
                    events.append(Event(EventKind.NAK))
                elif b not in (CR, LF):
                    self.garbage_bytes += 1
                continue
            # In a frame: buf[0] is STX, i is the next unscanned byte.
            b = buf[i]
            if b in (ETX, ETB):
                if n < i + 3:
                    break  # wait for the two checksum characters
                raw = bytes(buf[: i + 3])
                events.append(self._frame(raw))
                self._in_frame = False
                del buf[: i + 3]
                n = len(buf)
                i = 0
                continue
            if b in _ABORTING:
                events.append(self._bad(bytes(buf[:i]), FrameStatus.MALFORMED))
                self._in_frame = False
                del buf[:i]
                n = len(buf)
                i = 0
                continue
            if i > self.max_text + 1:  # STX + FN + text
                events.append(self._bad(bytes(buf[:i]), FrameStatus.TOO_LONG))
                self._in_frame = False
                self._discarding = True
                del buf[:i]
                n = len(buf)
                i = 0
                continue
            i += 1
        if not self._in_frame:
            del buf[:i]
        return events

    @staticmethod
    def _bad(raw: bytes, status: FrameStatus) -> Event:
        return Event(EventKind.FRAME, Frame(None, b"", False, status, raw))

    def _frame(self, raw: bytes) -> Event:
        body = raw[1:-2]  # FN .. ETB/ETX
        final = body[-1] == ETX
        text = body[1:-1]
        fn_byte = body[0] if len(body) > 1 else None
        if fn_byte is None or not 0x30 <= fn_byte <= 0x37:
            return Event(EventKind.FRAME, Frame(None, text, final, FrameStatus.MALFORMED, raw))
        fn = fn_byte - 0x30
        if raw[-2:].upper() != checksum(body):
            return Event(EventKind.FRAME, Frame(fn, text, final, FrameStatus.BAD_CHECKSUM, raw))
        if len(text) > self.max_text:
            return Event(EventKind.FRAME, Frame(fn, text, final, FrameStatus.TOO_LONG, raw))
        if fn not in self._expected():
            status = FrameStatus.DUPLICATE if fn == self._last_fn else FrameStatus.BAD_NUMBER
            return Event(EventKind.FRAME, Frame(fn, text, final, status, raw))
        self._before_last = (self._last_fn, bytes(self._pending))
        self._last_fn = fn
        self._pending += text
        records: list[str] = []
        while (cut := self._pending.find(b"\r")) != -1:
            records.append(self._pending[:cut].decode(self.encoding))
            del self._pending[: cut + 1]
        if final and self._pending:
            # ETX closes the record even when the device left out the CR.
            records.append(self._pending.decode(self.encoding))
            self._pending.clear()
        records = [r.lstrip("\n") for r in records if r.strip("\n")]
        return Event(EventKind.FRAME, Frame(fn, text, final, FrameStatus.OK, raw), tuple(records))
