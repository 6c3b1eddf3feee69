"""An analyzer simulator: plays a Roche cobas, Abbott ARCHITECT, Beckman DxH or a generic
ASTM / HL7 instrument against the LIS over real TCP.

``AnalyzerSimulator(driver, host, port, mode="client"|"server", faults=Faults(...))``

- ``client`` mode connects to the LIS (the LIS listens, as with a terminal server);
  ``server`` mode listens and waits for the LIS to connect (ASTM only); ``serial`` mode talks
  ASTM over a serial port (``device``: a path such as one end of a pty pair, or a pyserial URL).
- ``upload_results(accession, [(code, value, unit, flags), ...])`` sends one result message in
  the driver's vendor layout (see ``/work/shared/specs/hl7-astm.md`` section 3).
- ``query(accession)`` sends a host query (ASTM ``H,Q,L`` / HL7 ``QRY^Q02``) and returns what
  the LIS answered.
- ``random_results(accessions, codes)`` uploads plausible random values for each accession.
- ``upload_controls(control_id, [(code, value, unit, flags), ...], lot=...)`` sends quality
  control results the way the instrument marks them: ASTM H-12 processing id ``Q`` (and, on
  the ARCHITECT, the control lot in R-3), HL7 an ORU^R01 whose SPM-11 specimen role is ``Q``.
- ``send_records(records)`` sends prebuilt ASTM records (a re-send of the very same message);
  ``send_raw(data)`` writes bytes on the line below the link (noise).

Faults are injected below the E1381 link (a wrapping writer), so the real ``ASTMLink`` state
machine runs unchanged on the simulator side: a corrupted checksum is NAKed by the host and the
link re-sends the same frame; a drop closes the socket half-way through a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from nidaan.integration.astm.framing import ACK, ENQ, EOT, STX
from nidaan.integration.astm.protocol import ASTMLink, LinkOptions, Timers
from nidaan.integration.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Header,
    Message,
    Order,
    Patient,
    Query,
    Result,
    Terminator,
    parse_message,
)
from nidaan.integration.hl7 import Coded, HL7Result, build_ack, build_oru
from nidaan.integration.hl7 import Message as HL7Message
from nidaan.integration.hl7.message import Segment, build_msh
from nidaan.integration.hl7.mllp import Frame as MLLPFrame
from nidaan.integration.hl7.mllp import MLLPDecoder, frame

Mode = Literal["client", "server", "serial"]
ResultTuple = tuple[str, str, str, str | Sequence[str] | None]

DXH_DELIMITERS = Delimiters(field="|", repeat="\\", component="!", escape="~")


@dataclass(frozen=True, slots=True)
class DriverProfile:
    name: str
    protocol: Literal["astm", "hl7"]
    description: str
    delimiters: Delimiters = DEFAULT_DELIMITERS
    default_port: int = 5100


DRIVERS: dict[str, DriverProfile] = {
    "roche-cobas": DriverProfile(
        "roche-cobas", "astm", "Roche cobas c311/e411/6000: H-11 RSUPL^REAL, ^^^685/ test ids"
    ),
    "abbott-architect": DriverProfile(
        "abbott-architect",
        "astm",
        "Abbott ARCHITECT: ^^^code^name^UNDILUTED^P, R triplet (F value, I interpretation, P RLU)",
    ),
    "beckman-dxh": DriverProfile(
        "beckman-dxh",
        "astm",
        "Beckman Coulter DxH 800/900: \\!~ delimiters, !!!WBC",
        DXH_DELIMITERS,
    ),
    "generic-astm": DriverProfile("generic-astm", "astm", "Generic ASTM E1394: ^^^code"),
    "generic-hl7": DriverProfile(
        "generic-hl7", "hl7", "Generic HL7 v2.5.1 ORU^R01 / QRY^Q02 over MLLP", default_port=2575
    ),
}

# Plausible values per code for random_results (anything else gets 1..100).
_RANGES: dict[str, tuple[float, float, str]] = {
    "685": (70, 180, "mg/dL"),  # glucose
    "767": (0.5, 1.6, "mg/dL"),  # creatinine
    "GLU": (70, 180, "mg/dL"),
    "CREA": (0.5, 1.6, "mg/dL"),
    "WBC": (3.0, 14.0, "10^3/uL"),
    "RBC": (3.5, 6.0, "10^6/uL"),
    "HGB": (8.0, 17.0, "g/dL"),
    "PLT": (100, 450, "10^3/uL"),
    "TSH": (0.2, 6.0, "uIU/mL"),
}


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults to inject. Frame counts are 1-based over the whole session (all transfers).

    - ``bad_checksum_frame``: corrupt the checksum of the Nth frame sent (once; the receiver
      NAKs and the link re-sends it correctly).
    - ``drop_frame``: send half of the Nth frame and close the connection.
    - ``slow_ack``: seconds to wait before each ACK the simulator sends (as a receiver).
    - ``garbage``: bytes written before each message (before ENQ / the MLLP start block).
    - ``lost_ack_frame``: the LIS's ACK to the Nth frame sent never reaches the simulator (it is
      read and thrown away): the simulator's ACK timer runs out, it ends the transfer with EOT
      and the upload raises, as a real analyzer would before sending the message again.
    - ``drop_eot``: close the connection in place of the Nth EOT the simulator sends (after
      the last frame of a message was acknowledged): the upload still succeeds, as it does for
      an analyzer whose EOT is lost on the wire.
    """

    bad_checksum_frame: int | None = None
    drop_frame: int | None = None
    slow_ack: float = 0.0
    garbage: bytes = b""
    lost_ack_frame: int | None = None
    drop_eot: int | None = None

    @classmethod
    def named(cls, name: str | None, *, n: int = 2, delay: float = 2.0) -> Faults:
        """``bad-checksum``, ``drop``, ``slow-ack``, ``garbage`` (CLI names) or None."""
        if not name:
            return cls()
        if name == "bad-checksum":
            return cls(bad_checksum_frame=n)
        if name == "drop":
            return cls(drop_frame=n)
        if name == "slow-ack":
            return cls(slow_ack=delay)
        if name == "garbage":
            return cls(garbage=b"\x00\xffNOISE\r\n")
        raise ValueError(f"unknown fault {name!r}")


@dataclass(slots=True)
class UploadReport:
    accession: str
    records: list[str]  # ASTM record strings, or HL7 segments
    frames: int = 0
    ack: str = ""  # HL7: MSA-1 of the LIS's ACK
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(slots=True)
class QueryAnswer:
    accession: str
    sent: list[str]
    replies: list[list[str]] = field(default_factory=list)  # one list per reply message
    test_codes: list[str] = field(default_factory=list)
    error: str = ""


class FaultyWriter:
    """Wraps a StreamWriter; injects faults into what the E1381 link writes."""

    def __init__(self, writer: asyncio.StreamWriter, faults: Faults) -> None:
        self._w = writer
        self.faults = faults
        self.frames_sent = 0
        self.eots_sent = 0
        #: Set after the frame whose ACK is to be lost; ``FaultyReader`` swallows that ACK.
        self.lose_next_ack = False
        self._pending: list[bytes] = []
        self._dropped = False

    def write(self, data: bytes) -> None:
        self._pending.append(data)

    async def drain(self) -> None:
        data, self._pending = b"".join(self._pending), []
        f = self.faults
        if self._dropped:
            raise ConnectionResetError("simulator dropped the connection")
        if data == bytes([ACK]) and f.slow_ack:
            await asyncio.sleep(f.slow_ack)
        elif data == bytes([ENQ]) and f.garbage:
            data = f.garbage + data
        elif data == bytes([EOT]):
            self.eots_sent += 1
            if f.drop_eot is not None and self.eots_sent == f.drop_eot:
                self._dropped = True
                self._w.transport.abort()
                raise ConnectionResetError("simulator dropped the connection before EOT (fault)")
        elif data[:1] == bytes([STX]):
            self.frames_sent += 1
            if f.lost_ack_frame is not None and self.frames_sent == f.lost_ack_frame:
                self.lose_next_ack = True
            if f.drop_frame is not None and self.frames_sent == f.drop_frame:
                self._w.write(data[: len(data) // 2])
                with contextlib.suppress(Exception):
                    await self._w.drain()
                self._dropped = True
                self._w.transport.abort()
                raise ConnectionResetError("simulator dropped the connection (fault)")
            if f.bad_checksum_frame is not None and self.frames_sent == f.bad_checksum_frame:
                c = data[-4:-2]
                data = data[:-4] + (b"00" if c != b"00" else b"01") + data[-2:]
        self._w.write(data)
        await self._w.drain()

    def close(self) -> None:
        self._w.close()

    def is_closing(self) -> bool:
        return self._dropped or self._w.is_closing()


class NotTheLIS(Exception):
    """What answers on the port does not speak the protocol (it is not Nidaan's listener)."""


#: The first byte of everything an E1381 peer sends: control characters and frames.
_ASTM_LEADS = frozenset({ACK, ENQ, EOT, STX, 0x15})


class FaultyReader:
    """Wraps the reader of a link: throws away the ACK that ``FaultyWriter`` marked as lost,
    and keeps the first bytes the peer sent that no ASTM host would send (``foreign``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: FaultyWriter) -> None:
        self._r = reader
        self._w = writer
        self.foreign = b""

    async def read(self, n: int = -1) -> bytes:
        while True:
            data = await self._r.read(n)
            if data and not self.foreign and data[0] not in _ASTM_LEADS:
                self.foreign = data[:80]
            if data and self._w.lose_next_ack and ACK in data:
                cut = data.index(ACK)
                data = data[:cut] + data[cut + 1 :]
                self._w.lose_next_ack = False
                if not data:
                    continue
            return data


class SerialLine:
    """A pyserial port as the (reader, writer) pair a link runs on; a thread reads the port.

    The writer side looks enough like an ``asyncio.StreamWriter`` for ``FaultyWriter``
    (``transport.abort()`` closes the port)."""

    def __init__(self, device: str, baudrate: int = 9600) -> None:
        self.device = device
        self.baudrate = baudrate
        self.reader = asyncio.StreamReader()
        self._port: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: list[bytes] = []

    @property
    def transport(self) -> SerialLine:
        return self

    def open(self) -> None:
        import serial  # pyserial

        self._port = serial.serial_for_url(self.device, baudrate=self.baudrate, timeout=0.05)
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._read, args=(loop,), daemon=True, name=f"sim-serial {self.device}"
        )
        self._thread.start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while not self._stop.is_set():
                data = self._port.read(max(1, self._port.in_waiting))
                if data:
                    loop.call_soon_threadsafe(self.reader.feed_data, data)
        except Exception:  # noqa: S110 - the port went away; the link sees EOF
            pass
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.reader.feed_eof)

    def write(self, data: bytes) -> None:
        self._pending.append(data)

    async def drain(self) -> None:
        data, self._pending = b"".join(self._pending), []
        if data and not self._stop.is_set():
            await asyncio.to_thread(self._write_all, data)

    def _write_all(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def abort(self) -> None:
        self.close()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()

    def is_closing(self) -> bool:
        return self._stop.is_set()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _flags(flags: str | Sequence[str] | None) -> tuple[str, ...]:
    if not flags:
        return ()
    if isinstance(flags, str):
        return tuple(f for f in flags.replace("~", ",").split(",") if f)
    return tuple(flags)


def random_value(code: str, rng: random.Random | None = None) -> ResultTuple:
    rng = rng or random.Random()  # noqa: S311 - test data
    lo, hi, unit = _RANGES.get(code.upper(), (1, 100, ""))
    span = hi - lo
    value = rng.uniform(lo - span * 0.15, hi + span * 0.15)
    flag = "H" if value > hi else ("L" if value < lo else "N")
    digits = 2 if hi < 20 else 0
    return code, f"{value:.{digits}f}", unit, flag


class AnalyzerSimulator:
    """One simulated analyzer. Use as ``async with AnalyzerSimulator(...) as sim:``."""

    def __init__(
        self,
        driver: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        mode: Mode = "client",
        faults: Faults | None = None,
        timers: Timers | None = None,
        query_timeout: float = 15.0,
        connect_timeout: float = 10.0,
        test_names: dict[str, str] | None = None,
        serial: str = "SIM0001",
        device: str | None = None,
        baudrate: int = 9600,
    ) -> None:
        if driver not in DRIVERS:
            raise ValueError(f"unknown driver {driver!r}; one of {', '.join(DRIVERS)}")
        self.profile = DRIVERS[driver]
        self.driver = driver
        self.protocol = self.profile.protocol
        self.host = host
        self.port = port if port is not None else self.profile.default_port
        self.mode: Mode = mode
        if mode in ("server", "serial") and self.protocol == "hl7":
            raise ValueError(f"{mode} mode is only for ASTM drivers")
        if mode == "serial" and not device:
            raise ValueError("serial mode needs a device")
        self.device = device
        self.baudrate = baudrate
        self.faults = faults or Faults()
        self.timers = timers or Timers(ack=5.0, receive=10.0, busy=1.0)
        self.query_timeout = query_timeout
        self.connect_timeout = connect_timeout
        self.test_names = test_names or {}
        self.serial = serial
        self.sequence = 0
        self.received: asyncio.Queue[list[str]] = asyncio.Queue()
        self._link: ASTMLink | None = None
        self._writer: FaultyWriter | None = None
        self._reader: FaultyReader | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._server: asyncio.Server | None = None
        self._connected = asyncio.Event()
        self.frames_sent = 0
        self.eots_sent = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AnalyzerSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Server mode: start listening (``self.port`` is the bound port). Client: no-op;
        connections are opened on demand."""
        if self.mode == "server":
            self._server = await asyncio.start_server(self._accept, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self._drop_link()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._drop_link()
        self._attach(reader, writer)
        self._connected.set()
        if self._run_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._run_task

    def _attach(self, reader: asyncio.StreamReader, writer: Any) -> None:
        self._writer = FaultyWriter(writer, self.faults)
        self._writer.frames_sent = self.frames_sent
        self._writer.eots_sent = self.eots_sent
        options = LinkOptions(role="instrument", timers=self.timers)
        self._reader = FaultyReader(reader, self._writer)
        faulty_reader = cast(asyncio.StreamReader, self._reader)
        self._link = ASTMLink(
            faulty_reader, self._writer, self._on_message, options, name=f"sim {self.driver}"
        )
        self._run_task = asyncio.create_task(self._link.run(), name="sim-link")

    async def _on_message(self, records: list[str], frames: list[bytes]) -> None:
        await self.received.put(records)

    async def _drop_link(self) -> None:
        link, task = self._link, self._run_task
        if self._writer is not None:
            self.frames_sent = self._writer.frames_sent
            self.eots_sent = self._writer.eots_sent
        self._link = self._run_task = self._writer = None
        self._connected.clear()
        if link is not None:
            link.close()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task

    async def _astm_link(self) -> ASTMLink:
        if self._link is not None and not self._link.closed:
            return self._link
        if self.mode == "server":
            if self._link is not None:  # the LIS went away: wait for it to connect again
                await self._drop_link()
            await asyncio.wait_for(self._connected.wait(), self.connect_timeout)
            assert self._link is not None
            return self._link
        await self._drop_link()
        if self.mode == "serial":
            assert self.device is not None
            line = SerialLine(self.device, self.baudrate)
            line.open()
            self._attach(line.reader, line)
            assert self._link is not None
            return self._link
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout
        )
        self._attach(reader, writer)
        assert self._link is not None
        return self._link

    async def _send_astm(self, records: list[str]) -> int:
        link = await self._astm_link()
        assert self._writer is not None
        before = self._writer.frames_sent
        try:
            await link.send(records)
        except Exception as exc:
            foreign = self._reader.foreign if self._reader is not None else b""
            answered = self._writer.frames_sent > 0 or self.frames_sent > 0
            await self._drop_link()
            if foreign:
                raise NotTheLIS(
                    f"it answered {foreign!r}, which no ASTM host sends (is it Nidaan?)"
                ) from exc
            if not answered and "ENQ" in str(exc):
                raise NotTheLIS(
                    "it accepted the connection but did not answer the ASTM ENQ "
                    "(not Nidaan's analyzer listener, or no ASTM instrument on this port)"
                ) from exc
            raise
        return self._writer.frames_sent - before

    # ------------------------------------------------------------------ layouts

    def _header(self, meaning: str, processing_id: str = "P") -> Header:
        """The H record; ``processing_id`` ``Q`` marks a quality-control message (H-12)."""
        d = self.profile.delimiters
        if self.driver == "roche-cobas":
            return Header(
                delimiters=d,
                sender=("c311", "1"),
                receiver=("host",),
                comment=(meaning, "REAL"),
                processing_id=processing_id,
                version="1",
                timestamp=_now(),
            )
        if self.driver == "abbott-architect":
            return Header(
                delimiters=d,
                sender=("ARCHITECT", "9.45", self.serial, "H1P1O1R1C1Q1L1"),
                processing_id=processing_id,
                version="1",
                timestamp=_now(),
            )
        if self.driver == "beckman-dxh":
            return Header(
                delimiters=d,
                sender=("DxH", "3.0", self.serial),
                processing_id=processing_id,
                version="LIS2-A",
                timestamp=_now(),
            )
        return Header(
            delimiters=d,
            sender=("NIDAAN-SIM", "1", self.serial),
            processing_id=processing_id,
            version="LIS2-A2",
            timestamp=_now(),
        )

    def _test_id(self, code: str) -> tuple[str, ...]:
        if self.driver == "roche-cobas":
            return ("", "", "", f"{code}/")
        if self.driver == "abbott-architect":
            return ("", "", "", code, self.test_names.get(code, code), "UNDILUTED", "P")
        return ("", "", "", code)

    def _specimen(self, accession: str) -> tuple[str, tuple[str, ...]]:
        """O-3 and O-4. Roche: a failed barcode read (accession "" or "@...") -> "@<seq>"."""
        rack, pos = f"{50000 + self.sequence // 5}", str(self.sequence % 5 + 1)
        if self.driver == "roche-cobas":
            if not accession or accession.startswith("@"):
                accession = f"@{self.sequence}"
            return accession, (str(self.sequence), rack, pos, "", "SC1")
        if self.driver == "abbott-architect":
            return accession, (accession, rack, pos)
        return accession, ()

    def result_records(
        self,
        accession: str,
        results: Sequence[ResultTuple],
        *,
        control: bool = False,
        lot: str | None = None,
    ) -> list[str]:
        """The ASTM record strings of one result upload, in the driver's layout; ``control``:
        a QC message (H-12 ``Q``; the ARCHITECT also names the control ``lot`` in R-3)."""
        self.sequence += 1
        specimen, instrument_id = self._specimen(accession)
        codes = [r[0] for r in results]
        order = Order(
            sequence=1,
            specimen_id=specimen,
            instrument_specimen_id=instrument_id,
            tests=tuple(self._test_id(c) for c in codes),
            priority="R",
            collected_at=_now(),
            action_code="N" if self.driver == "beckman-dxh" else "",
            specimen_descriptor="Whole blood" if self.driver == "beckman-dxh" else "",
            report_type="F",
        )
        items: list[Any] = [
            self._header("RSUPL", "Q" if control else "P"),
            Patient(sequence=1),
            order,
        ]
        seq = 0
        done = _now()
        for code, value, unit, flags in results:
            fl = _flags(flags)
            if self.driver == "abbott-architect":
                base = (*self._test_id(code), "LOT1", "SER1", (lot or "") if control else "")
                interp = "Reactive" if "H" in fl or "HIGH" in fl else "Nonreactive"
                rlu = str(int(abs(hash((accession, code))) % 90000 + 1000))
                for kind, val, u, f in (
                    ("F", value, unit, fl),
                    ("I", interp, "", ()),
                    ("P", rlu, "RLU", ()),
                ):
                    seq += 1
                    items.append(
                        Result(
                            sequence=seq,
                            test_id=(*base, kind),
                            value=val,
                            units=u,
                            flags=f,
                            status="F",
                            operator=("ADMIN", "ADMIN"),
                            completed_at=done,
                            instrument=self.serial,
                        )
                    )
                continue
            seq += 1
            test_id = self._test_id(code)
            if self.driver == "beckman-dxh":
                test_id = ("", "", "", code, "")
            items.append(
                Result(
                    sequence=seq,
                    test_id=test_id,
                    value=value,
                    units=unit,
                    flags=fl,
                    status="F",
                    operator=("SIM",) if self.driver == "roche-cobas" else (),
                    completed_at=done,
                    instrument=self.serial,
                )
            )
        items.append(Terminator(sequence=1, code="N"))
        return Message.build(*items, delimiters=self.profile.delimiters).serialise()

    def query_records(self, accession: str) -> list[str]:
        self.sequence += 1
        if self.driver == "roche-cobas":
            start: tuple[str, ...] = ("", accession, str(self.sequence), "50001", "1", "", "SAMPLE")
            tests: tuple[str, ...] = ("ALL",)
        elif self.driver == "beckman-dxh":
            start, tests = ("", accession), ("ALL",)
        else:
            start, tests = ("", accession), ("", "", "", "ALL")
        items: list[Any] = [
            self._header("TSREQ"),
            Query(sequence=1, starting_range=start, test_ids=tests, request_status="O"),
            Terminator(sequence=1, code="N"),
        ]
        return Message.build(*items, delimiters=self.profile.delimiters).serialise()

    def hl7_oru(
        self, accession: str, results: Sequence[ResultTuple], *, control: bool = False
    ) -> HL7Message:
        """An ORU^R01; ``control``: the specimen is a control (SPM-11 ``Q``, IHE LAW)."""
        self.sequence += 1
        rows = [
            HL7Result(
                accession=accession,
                observation=Coded(code, self.test_names.get(code, code), "L"),
                values=(value,),
                value_type="NM" if _numeric(value) else "ST",
                units=unit,
                abnormal_flags=_flags(flags),
                status="F",
                producer=self.serial,
                service=Coded("PANEL", "Panel", "L"),
                specimen_id=accession,
            )
            for code, value, unit, flags in results
        ]
        msg = build_oru(
            rows,
            sender=("NIDAAN-SIM", self.serial),
            receiver=("NIDAAN", "LAB"),
            control_id=f"SIM{self.sequence:08d}",
        )
        if not control:
            return msg
        # ORU^R01 puts the SPM after the OBX of its OBR (one OBR here: one accession).
        spm = Segment.build("SPM", {1: "1", 2: accession, 4: "BLD", 11: "Q"})
        return HL7Message.build([*msg.segment_list, spm])

    def hl7_qry(self, accession: str) -> HL7Message:
        self.sequence += 1
        control = f"SIMQ{self.sequence:07d}"
        msh = build_msh(
            ("QRY", "Q02", "QRY_Q02"),
            sending_application="NIDAAN-SIM",
            sending_facility=self.serial,
            receiving_application="NIDAAN",
            receiving_facility="LAB",
            control_id=control,
            version="2.3.1",
        )
        qrd = Segment.build(
            "QRD", {1: _now(), 2: "R", 3: "D", 4: control, 7: ("RD",), 8: accession, 9: "OTH"}
        )
        return HL7Message.build([msh, qrd])

    # ------------------------------------------------------------------ operations

    async def send_records(self, records: Sequence[str]) -> int:
        """Send prebuilt ASTM records as one message (e.g. the same message again after a
        failed upload); the number of frames sent. Raises on a transport failure."""
        return await self._send_astm(list(records))

    async def disconnect(self) -> None:
        """Close the current connection (or serial port), whatever the link is doing."""
        await self._drop_link()

    async def send_raw(self, data: bytes) -> None:
        """Write ``data`` on the line as it is, below the E1381 link (noise, stray bytes)."""
        if self.protocol != "astm":
            raise ValueError("send_raw is for ASTM drivers")
        await self._astm_link()
        assert self._writer is not None
        raw = self._writer._w
        raw.write(data)
        await raw.drain()

    async def upload_results(self, accession: str, results: Sequence[ResultTuple]) -> UploadReport:
        """Send one result message; raises on a transport failure (including injected drops)."""
        if self.protocol == "hl7":
            msg = self.hl7_oru(accession, results)
            replies = await self._hl7_exchange(msg, until=("ACK",))
            ack = HL7Message.parse(replies[-1]) if replies else None
            msa = ack.segment("MSA") if ack is not None else None
            code = msa[1].value if msa is not None else ""
            return UploadReport(accession, str(msg).split("\r"), ack=code)
        records = self.result_records(accession, results)
        frames = await self._send_astm(records)
        return UploadReport(accession, records, frames=frames)

    async def upload_controls(
        self, control_id: str, results: Sequence[ResultTuple], *, lot: str | None = None
    ) -> UploadReport:
        """Send one quality-control message: ``control_id`` is the sample id the analyzer
        gives the control (``QC1``), marked as QC the way the instrument does it."""
        if self.protocol == "hl7":
            msg = self.hl7_oru(control_id, results, control=True)
            replies = await self._hl7_exchange(msg, until=("ACK",))
            ack = HL7Message.parse(replies[-1]) if replies else None
            msa = ack.segment("MSA") if ack is not None else None
            code = msa[1].value if msa is not None else ""
            return UploadReport(control_id, str(msg).split("\r"), ack=code)
        records = self.result_records(control_id, results, control=True, lot=lot)
        frames = await self._send_astm(records)
        return UploadReport(control_id, records, frames=frames)

    async def query(self, accession: str) -> QueryAnswer:
        """Ask the LIS for the orders of ``accession``; return its reply (or an error)."""
        if self.protocol == "hl7":
            msg = self.hl7_qry(accession)
            answer = QueryAnswer(accession, str(msg).split("\r"))
            try:
                replies = await self._hl7_exchange(msg, until=("DSR", "QCK_NF"))
            except Exception as exc:
                answer.error = str(exc) or type(exc).__name__
                return answer
            for raw in replies:
                answer.replies.append([s for s in raw.split("\r") if s])
                parsed = HL7Message.parse(raw)
                for dsp in parsed.segments("DSP"):
                    text = dsp[3].value
                    if text:
                        answer.test_codes.append(text)
            return answer
        records = self.query_records(accession)
        answer = QueryAnswer(accession, records)
        while not self.received.empty():
            self.received.get_nowait()
        await self._send_astm(records)
        try:
            reply = await asyncio.wait_for(self.received.get(), self.query_timeout)
        except TimeoutError:
            answer.error = f"no reply within {self.query_timeout:g}s"
            return answer
        answer.replies.append(reply)
        with contextlib.suppress(Exception):
            parsed = parse_message(reply)
            for group in parsed.patients():
                for og in group.orders:
                    answer.test_codes.extend(c.rstrip("/") for c in og.order.test_codes if c)
        return answer

    async def random_results(
        self, accessions: Sequence[str], codes: Sequence[str], *, seed: int | None = None
    ) -> list[UploadReport]:
        rng = random.Random(seed)  # noqa: S311 - test data
        reports = []
        for accession in accessions:
            results = [random_value(c, rng) for c in codes]
            try:
                reports.append(await self.upload_results(accession, results))
            except Exception as exc:
                reports.append(UploadReport(accession, [], error=str(exc) or type(exc).__name__))
        return reports

    # ------------------------------------------------------------------ HL7 transport

    async def _hl7_exchange(self, msg: HL7Message, *, until: tuple[str, ...]) -> list[str]:
        """One connection: send (with faults), collect replies until an ACK / DSR arrives.

        A DSR^Q03 is acknowledged with ACK^Q03; a QCK^Q02 with QAK-2 ``NF`` ends a query."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout
        )
        replies: list[str] = []
        try:
            data = frame(msg)
            if self.faults.garbage:
                data = self.faults.garbage + data
            if self.faults.drop_frame is not None:
                writer.write(data[: len(data) // 2])
                await writer.drain()
                writer.transport.abort()
                raise ConnectionResetError("simulator dropped the connection (fault)")
            writer.write(data)
            await writer.drain()
            decoder = MLLPDecoder()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.query_timeout
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), deadline - loop.time())
                except TimeoutError:
                    if replies:
                        raise
                    raise NotTheLIS(
                        f"no HL7 acknowledgement within {self.query_timeout:g} s "
                        "(not Nidaan's HL7 listener, or no HL7 instrument on this port)"
                    ) from None
                if not chunk:
                    if not replies:
                        raise NotTheLIS("it closed the connection without an HL7 acknowledgement")
                    break
                for event in decoder.feed(chunk):
                    if not isinstance(event, MLLPFrame):
                        if not replies and event.kind == "garbage":
                            raise NotTheLIS(
                                f"it answered {event.head[:80]!r}, which is not HL7 over MLLP "
                                "(is it Nidaan?)"
                            )
                        continue
                    text = event.payload.decode("utf-8", "replace")
                    replies.append(text)
                    reply = HL7Message.parse(text)
                    code = reply.message_code
                    if code == "DSR":
                        ack = _ack_for(reply, self.serial)
                        if self.faults.slow_ack:
                            await asyncio.sleep(self.faults.slow_ack)
                        writer.write(frame(ack))
                        await writer.drain()
                    qak = reply.segment("QAK")
                    not_found = qak is not None and qak[2].value == "NF"
                    if code in until or ("QCK_NF" in until and not_found):
                        return replies
                    if "ACK" in until and code != "ACK" and reply.segment("MSA"):
                        return replies
            return replies
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _ack_for(msg: HL7Message, serial: str) -> HL7Message:
    return build_ack(msg, "AA")
