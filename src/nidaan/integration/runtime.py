"""The interface runtime: one supervised connection per enabled instrument.

:class:`InterfaceSupervisor` loads the enabled instruments of every organisation, starts the
transport each one is configured for (``tcp-server``: we listen; ``tcp-client``: we dial the
analyzer; ``serial``: an RS-232 port) and, for every message received:

1. parses it with the instrument's driver; garbage is kept with ``store_unparsable`` and the
   listener carries on;
2. stores it and lands its results (``integration_service.ingest_results``) in one committed
   transaction; a re-sent message (same MSH-10 / same ASTM records) is stored as a duplicate
   and applied once. ASTM result messages go to the process's :class:`Lander`, which lands
   what queued meanwhile, of all instruments, in one transaction per organisation (each
   instrument's messages in arrival order), so busy analyzers cost a few transactions, not
   one per message;
3. replies: HL7 gets an ACK (AA, AE or AR naming the problem); ASTM frames are acknowledged by
   the link itself; host queries are answered with the sample's ordered (non-cancelled) tests
   mapped to the instrument's codes, or "no order".

Order download (batch mode): every ``outbound_interval`` seconds each connection sends its
pending outbound messages (queued by ``integration.handlers`` when a sample is received),
oldest first: ASTM over the analyzer's link, HL7 over an MLLP client that waits for the ACK.
A delivered message is marked ``sent``; one the analyzer rejects (HL7 AE/AR) ``failed``; any
other error is recorded on the message, which stays ``pending`` and is retried with backoff.

Every ``reload_interval`` seconds the instruments are read again and only connections whose
(version, enabled) changed are restarted, so edits in the UI apply without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import chainer
from nidaan.config import Settings
from nidaan.events.registry import load_handler_modules
from nidaan.integration import domain
from nidaan.integration.astm.errors import ASTMNotConnected
from nidaan.integration.astm.protocol import ASTMLink, LinkOptions, Timers, kept_tokens
from nidaan.integration.astm.transport import ASTMClient, ASTMSerial, ASTMServer
from nidaan.integration.drivers.base import Driver, OrderLine, get_driver
from nidaan.integration.enums import Transport
from nidaan.integration.guard import ListenerPolicy, port_problem
from nidaan.integration.hl7.ack import build_ack
from nidaan.integration.hl7.errors import HL7Error, HL7ParseError, HL7ValidationError
from nidaan.integration.hl7.extract import HL7Patient
from nidaan.integration.hl7.message import Message as HL7Message
from nidaan.integration.hl7.message import decode_payload
from nidaan.integration.hl7.mllp import Frame, MLLPClient, MLLPDecoder, MLLPServer, frame
from nidaan.integration.hl7.validation import validate
from nidaan.integration.hospital import HOSPITAL_HL7, handle_hospital_message
from nidaan.integration.journal import JournalEntry, ReceiveJournal, journal_path
from nidaan.integration.landing import Lander
from nidaan.integration.models import Instrument
from nidaan.integration.service import (
    OutboundMessage,
    instrument_principal,
    integration_service,
)
from nidaan.kit.db import database_url, session_scope
from nidaan.kit.errors import NotFound
from nidaan.kit.metrics import ANALYZER_EXCEPTIONS, ANALYZER_MESSAGES, ANALYZER_SEND_FAILURES
from nidaan.kit.time import utcnow
from nidaan.orders.enums import OrderTestStatus
from nidaan.orders.models import Order
from nidaan.orders.service import orders_service
from nidaan.patients.service import patients_service
from nidaan.samples.service import samples_service

log = logging.getLogger(__name__)

__all__ = ["InstrumentConfig", "InterfaceSupervisor"]

#: A connection that cannot start is tried again after 5 s, then 10 s, ... up to 5 minutes.
START_RETRY_FIRST_S = 5.0
START_RETRY_MAX_S = 300.0


@dataclass(frozen=True)
class InstrumentConfig:
    """What a connection needs of an instrument row (detached from any session)."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    name: str
    driver: str
    transport: str
    host: str | None
    port: int | None
    device: str | None
    baudrate: int | None
    enabled: bool
    version: int
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Instrument) -> InstrumentConfig:
        return cls(
            id=row.id,
            organisation_id=row.organisation_id,
            name=row.name,
            driver=row.driver,
            transport=row.transport,
            host=row.host,
            port=row.port,
            device=row.device,
            baudrate=row.baudrate,
            enabled=row.enabled,
            version=row.version,
            settings=dict(row.settings or {}),
        )

    @property
    def key(self) -> tuple[uuid.UUID, int, bool]:
        return (self.id, self.version, self.enabled)


def link_options(config: InstrumentConfig) -> LinkOptions:
    """ASTM link options from ``settings["astm"]`` (timers in seconds, quirks)."""
    astm = config.settings.get("astm") or {}
    timers = {
        k: float(v) for k, v in (astm.get("timers") or {}).items() if k in Timers.__annotations__
    }
    return LinkOptions(
        role="host",
        timers=Timers(**timers),
        allow_wrap_to_one=bool(astm.get("allow_wrap_to_one", False)),
        require_terminator=bool(astm.get("require_terminator", True)),
    )


@dataclass
class StartFailure:
    """A connection that could not start (its port is taken, say): when to try again."""

    key: tuple[uuid.UUID, int, bool]
    error: str
    since: datetime
    attempts: int
    retry_at: float  # loop time

    def delay(self) -> float:
        """Seconds until the next attempt: 5 s, doubling up to 5 minutes."""
        return float(min(START_RETRY_MAX_S, START_RETRY_FIRST_S * 2 ** (self.attempts - 1)))


def describe_start_error(config: InstrumentConfig, host: str, exc: BaseException) -> str:
    """One line for the status page and the log: what failed and the OS's words for it."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        code = f" (errno {exc.errno})" if exc.errno is not None else ""
        if config.transport == Transport.TCP_SERVER:
            return f"cannot listen on {host}:{config.port}: {reason}{code}"
        if config.transport == Transport.SERIAL:
            return f"cannot open {config.device}: {reason}{code}"
        return f"cannot start: {reason}{code}"
    return f"cannot start: {type(exc).__name__}: {exc}"


class ListenerRefused(ValueError):
    """The instrument's listener settings are not allowed (a privileged port)."""


def own_link(server: ASTMServer) -> ASTMLink:
    """The instrument's own open link on ``server`` (see ``Connection._astm_send_any``)."""
    # ``peers`` keeps the order the links connected in.
    live = [link for link in server.peers if not link.closed and link in server.links]
    policy = server.policy
    if policy is not None and policy.allowed_peers:
        live = [link for link in live if policy.allows(server.peers.get(link))]
    if not live:
        raise ASTMNotConnected("no analyzer connected")
    if len(live) > 1 and (policy is None or not policy.allowed_peers):
        raise ASTMNotConnected(
            f"{len(live)} connections open and no allowed_peers set: not sending an order "
            "download to a connection that may not be the analyzer's"
        )
    # Several from the analyzer's own address: the newest (an older one is half-open).
    return live[-1]


class OutboundRejected(Exception):
    """The analyzer answered the message with a rejection; re-sending will not help."""


class Connection:
    """One instrument's transport and message handling."""

    def __init__(self, supervisor: InterfaceSupervisor, config: InstrumentConfig) -> None:
        self.supervisor = supervisor
        self.config = config
        self.driver: Driver = get_driver(config.driver)
        self.transport: Any = None
        self.connected = False
        self.messages = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # Outbound retry state (message id -> loop time before which it is not re-sent).
        self._retry_at: dict[uuid.UUID, float] = {}
        self.sent = 0
        # Received ASTM result messages handed to the supervisor's lander, not yet landed.
        self._landing: set[asyncio.Future[None]] = set()

    @property
    def settings(self) -> Settings:
        return self.supervisor.settings

    @property
    def port(self) -> int | None:
        """The bound (tcp-server) or dialled (tcp-client) port."""
        return getattr(self.transport, "port", self.config.port)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        c = self.config
        host = c.host or self.supervisor.listen_host
        policy = ListenerPolicy.of(c.settings)
        if c.transport == Transport.TCP_SERVER:
            if (why := port_problem(c.port)) is not None:
                raise ListenerRefused(why)
            if not policy.allowed_peers:
                log.warning(
                    "interface %s: any address may connect to %s:%s; set allowed_peers to the "
                    "analyzer's IP address",
                    c.name,
                    host,
                    c.port,
                )
        if self.driver.protocol == "astm":
            # A complete message is on disk before its last frame is acknowledged.
            options = dataclasses.replace(link_options(c), keep=self._keep)
            if c.transport == Transport.TCP_SERVER:
                self.transport = ASTMServer(
                    host, c.port or 0, self._on_astm, options, policy=policy
                )
            elif c.transport == Transport.TCP_CLIENT:
                self.transport = ASTMClient(
                    c.host or "127.0.0.1", c.port or 0, self._on_astm, options, backoff_max=30.0
                )
            elif c.transport == Transport.SERIAL:
                self.transport = ASTMSerial(
                    c.device or "", c.baudrate or 9600, self._on_astm, options
                )
            else:
                raise ValueError(f"unknown transport {c.transport!r}")
            await self.transport.start()
        else:
            if c.transport == Transport.TCP_SERVER:
                self.transport = MLLPServer(host, c.port or 0, self._on_hl7, policy=policy)
                await self.transport.start()
            elif c.transport == Transport.TCP_CLIENT:
                task = asyncio.create_task(self._hl7_dial(), name=f"hl7-client {c.name}")
                self._tasks.add(task)
            else:
                raise ValueError("HL7 over a serial port is not supported; use tcp-server")
        task = asyncio.create_task(self._outbound_loop(), name=f"outbound {c.name}")
        self._tasks.add(task)
        log.info(
            "interface %s (%s, %s) started on %s",
            c.name,
            c.driver,
            c.transport,
            c.device if c.transport == Transport.SERIAL else f"{host}:{self.port}",
        )

    async def stop(self) -> None:
        # Land what was received (and acknowledged) before stopping.
        await self._wait_landed(30.0)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for writer in list(self._writers):
            writer.close()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                await self.transport.close()
        # Transfers the links completed while closing.
        await self._wait_landed(30.0)
        self._report(False)
        log.info("interface %s stopped", self.config.name)

    def poll_link(self) -> None:
        """Report connect/disconnect of the analyzer (called by the supervisor's tick)."""
        t = self.transport
        if isinstance(t, MLLPServer):
            self._report(t.open_connections > 0)
        elif isinstance(t, ASTMServer):
            self._report(any(not link.closed for link in t.links))
        elif isinstance(t, ASTMClient):
            self._report(t.link is not None and not t.link.closed)
        elif isinstance(t, ASTMSerial):
            link = getattr(t, "link", None)
            self._report(link is not None and not link.closed)
        elif self.config.transport == Transport.TCP_CLIENT:
            self._report(bool(self._writers))

    def _report(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            integration_service.report_link(self.config.id, connected, self.config.name)
            log.info(
                "interface %s: analyzer %s",
                self.config.name,
                "connected" if connected else "disconnected",
            )

    # --- shared DB steps ---------------------------------------------------------------

    async def _instrument(self, session: AsyncSession) -> Instrument:
        row = await session.get(Instrument, self.config.id)
        if row is None or row.organisation_id != self.config.organisation_id:
            raise NotFound("The instrument was deleted.", entity="instrument")
        return row

    async def _store_unparsable(self, raw: str, error: str) -> bool:
        """Keep a message that cannot be applied (status error); False: not even that (the
        database is out of reach)."""
        log.warning("interface %s: unreadable message: %s", self.config.name, error)
        ANALYZER_EXCEPTIONS.labels(self.driver.protocol).inc()
        try:
            async with session_scope(self.settings) as session:
                await integration_service.store_unparsable(
                    session,
                    self.config.organisation_id,
                    self.config.id,
                    self.driver.protocol,
                    raw,
                    error,
                )
        except Exception:
            log.exception("interface %s: could not store an unreadable message", self.config.name)
            return False
        return True

    async def _ingest(self, parsed: Any, raw: str) -> None:
        message = self.driver.to_instrument_message(parsed, raw)
        async with session_scope(self.settings) as session:
            instrument = await self._instrument(session)
            report = await integration_service.ingest_results(
                session,
                self.config.organisation_id,
                instrument,
                message,
                protocol=self.driver.protocol,
            )
        self.messages += 1
        log.info(
            "interface %s: %s stored%s, %d result(s), %d exception(s)",
            self.config.name,
            message.message_type,
            " (duplicate, not applied)" if report.duplicate else "",
            len(report.results),
            len(report.exceptions),
        )

    # --- landing (see nidaan.integration.landing) --------------------------------------

    @property
    def instrument_id(self) -> uuid.UUID:
        return self.config.id

    @property
    def organisation_id(self) -> uuid.UUID:
        return self.config.organisation_id

    @property
    def name(self) -> str:
        return self.config.name

    def to_message(self, parsed: Any, raw: str) -> domain.InstrumentMessage:
        return self.driver.to_instrument_message(parsed, raw)

    async def land_alone(self, parsed: Any, raw: str) -> bool:
        """Land one message in its own transaction; one that cannot be applied is kept as
        an error message. False: neither was stored (it stays in the receive journal)."""
        try:
            await self._ingest(parsed, raw)
        except Exception as exc:
            log.exception("interface %s: message not applied", self.config.name)
            return await self._store_unparsable(raw, f"not applied: {exc}")
        return True

    def landed(self, count: int) -> None:
        self.messages += count

    async def _keep(self, records: list[str]) -> str:
        return await self.supervisor.journal.keep(self.config.id, records)

    def _submit(self, parsed: Any, raw: str, kept: tuple[str, ...] = ()) -> None:
        done = self.supervisor.lander.submit(self, parsed, raw, kept)
        self._landing.add(done)
        done.add_done_callback(self._landing.discard)

    async def _wait_landed(self, within_s: float | None = None) -> None:
        """Until what this connection handed to the lander has landed (or ``within_s``)."""
        if self._landing:
            await asyncio.wait(list(self._landing), timeout=within_s)

    async def orders_for(self, sample_id: str) -> list[OrderLine] | None:
        """The sample's non-cancelled tests this instrument can run, as its codes;
        ``None`` when there is no such sample."""
        async with session_scope(self.settings) as session:
            instrument = await self._instrument(session)
            caller = instrument_principal(instrument)
            try:
                sample = await samples_service.get_by_accession(
                    session, caller, domain.normalize_accession(sample_id)
                )
            except NotFound:
                return None
            codes: dict[uuid.UUID, str] = {}
            for mapped in await integration_service.test_map(
                session, instrument.organisation_id, instrument.id
            ):
                codes.setdefault(mapped.test.id, mapped.instrument_code)
            lines: list[OrderLine] = []
            for test in await orders_service.tests_of(session, caller, sample.order_id):
                if test.sample_id != sample.id or test.status == OrderTestStatus.CANCELLED:
                    continue
                code = codes.get(test.test_id)
                if code is not None and all(x.instrument_code != code for x in lines):
                    lines.append(OrderLine(code))
            return lines

    # --- outbound (order download) -----------------------------------------------------

    async def _outbound_loop(self) -> None:
        while True:
            await asyncio.sleep(self.supervisor.outbound_interval)
            try:
                await self.send_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("interface %s: sending pending messages failed", self.config.name)

    def _outbound_ready(self) -> bool:
        """Whether there is a way to the analyzer now (else messages simply wait)."""
        if self.driver.protocol == "hl7":
            return self._hl7_target() is not None
        t = self.transport
        if isinstance(t, ASTMServer):
            return any(not link.closed for link in t.links)
        if isinstance(t, ASTMClient):
            return t.link is not None and not t.link.closed
        link = getattr(t, "link", None)
        return link is not None and not link.closed

    def _hl7_target(self) -> tuple[str, int] | None:
        """Where HL7 order downloads go: ``settings["download_host"/"download_port"]``, else
        the analyzer's own address for ``tcp-client``."""
        c = self.config
        # Hospitals: where verified results (ORU^R01) go.
        host = c.settings.get("download_host") or c.settings.get("results_host")
        port = c.settings.get("download_port") or c.settings.get("results_port")
        if host and port:
            return str(host), int(port)
        if c.transport == Transport.TCP_CLIENT and c.host and c.port:
            return c.host, c.port
        return None

    def _backoff(self, attempts: int) -> float:
        base = self.supervisor.outbound_interval
        return float(min(self.supervisor.outbound_backoff_max, base * (2 ** max(attempts - 1, 0))))

    async def send_pending(self) -> int:
        """Send the pending outbound messages that are due; the number sent."""
        if not self._outbound_ready():
            return 0
        async with session_scope(self.settings) as session:
            pending = await integration_service.pending_outbound(
                session, self.config.organisation_id, self.config.id
            )
        loop = asyncio.get_running_loop()
        sent = 0
        for message in pending:
            if self._retry_at.get(message.id, 0.0) > loop.time():
                continue
            try:
                ack = await self._send_outbound(message)
            except asyncio.CancelledError:
                raise
            except OutboundRejected as exc:
                log.warning("interface %s: %s rejected: %s", self.config.name, message.id, exc)
                self._retry_at.pop(message.id, None)
                ANALYZER_SEND_FAILURES.labels(self.driver.protocol).inc()
                await self._mark_failed(message, str(exc), retry=False)
                continue
            except Exception as exc:
                attempts = message.attempts + 1
                delay = self._backoff(attempts)
                self._retry_at[message.id] = loop.time() + delay
                log.warning(
                    "interface %s: sending %s failed (attempt %d, retry in %.1fs): %r",
                    self.config.name,
                    message.id,
                    attempts,
                    delay,
                    exc,
                )
                ANALYZER_SEND_FAILURES.labels(self.driver.protocol).inc()
                await self._mark_failed(message, f"{type(exc).__name__}: {exc}", retry=True)
                # The way to the analyzer is probably down: keep the rest in order for later.
                break
            self._retry_at.pop(message.id, None)
            async with session_scope(self.settings) as session:
                await integration_service.mark_sent(
                    session, self.config.organisation_id, message.id, ack=ack
                )
            sent += 1
            self.sent += 1
            ANALYZER_MESSAGES.labels(self.driver.protocol, "out").inc()
            log.info("interface %s: %s sent", self.config.name, message.message_type)
        return sent

    async def _mark_failed(self, message: OutboundMessage, error: str, *, retry: bool) -> None:
        try:
            async with session_scope(self.settings) as session:
                await integration_service.mark_failed(
                    session, self.config.organisation_id, message.id, error, retry=retry
                )
        except Exception:
            log.exception("interface %s: could not record a failed send", self.config.name)

    async def _send_outbound(self, message: OutboundMessage) -> str | None:
        """Deliver one message; the HL7 ACK received (kept on the message)."""
        timeout = float(self.config.settings.get("send_timeout", 60.0))
        if self.driver.protocol == "astm":
            records = [r for r in message.raw.replace("\n", "\r").split("\r") if r]
            await asyncio.wait_for(self._astm_send_any(records), timeout)
            return None
        target = self._hl7_target()
        if target is None:
            raise ConnectionError("no HL7 destination (set download_host/download_port)")
        client = MLLPClient(target[0], target[1], ack_timeout=timeout, max_attempts=1)
        try:
            ack = await client.send(message.raw)
        finally:
            await client.close()
        msa = ack.segment("MSA")
        code = msa.get(1) if msa is not None else ""
        if code not in ("AA", "CA"):
            detail = (msa.get(3) if msa is not None else "") or str(ack.segment("ERR") or "")
            raise OutboundRejected(f"{code or 'no MSA'}: {detail}".strip())
        return str(ack)

    async def _astm_send_any(self, records: Sequence[str]) -> None:
        """Send an order download on the analyzer's own connection: one from an allowed
        peer; without allowed peers, only when exactly one connection is open (never to
        whichever of several happens to be first)."""
        t = self.transport
        if isinstance(t, ASTMServer):
            link = own_link(t)
            await link.send(records)
        else:
            await t.send(records)

    # --- ASTM --------------------------------------------------------------------------

    async def _parse_astm(self, records: list[str], kept: tuple[str, ...]) -> tuple[Any, str]:
        """(parsed message or None, raw text); an unreadable one is kept as an error
        message (and, once stored, noted as landed in the receive journal)."""
        raw = "".join(r + "\r" for r in records)
        try:
            return self.driver.parse(records), raw
        except Exception as exc:
            if await self._store_unparsable(raw, f"unreadable ASTM message: {exc}"):
                self.supervisor.journal.landed(*kept)
            return None, raw

    async def _on_astm(self, records: list[str], frames: list[bytes]) -> None:
        self._report(True)
        ANALYZER_MESSAGES.labels("astm", "in").inc()
        link = self._current_link()
        kept = kept_tokens()  # its entries in the receive journal
        parsed, raw = await self._parse_astm(records, kept)
        if parsed is None:
            return
        queries = self.driver.queries(parsed)
        if not queries and self.supervisor.lander.running:
            # Landed by the lander: the link goes on acknowledging the next transfer.
            self._submit(parsed, raw, kept)
            return
        # Everything received before this message lands first (a query is answered after).
        await self._wait_landed()
        if await self.land_alone(parsed, raw):
            self.supervisor.journal.landed(*kept)
        for sample_id in queries:
            try:
                orders = await self.orders_for(sample_id)
                reply = self.driver.answer_query(sample_id, orders, parsed)
                await self._astm_send(reply, link)
            except Exception:
                log.exception("interface %s: host query for %s failed", self.config.name, sample_id)

    def _current_link(self) -> ASTMLink | None:
        """The link whose delivery task is calling us (a server may have several)."""
        task = asyncio.current_task()
        name = task.get_name() if task is not None else ""
        if isinstance(self.transport, ASTMServer):
            for link in self.transport.links:
                if f"{link.name}-deliver" == name:
                    return link
        return None

    async def _astm_send(self, records: Sequence[str], link: ASTMLink | None) -> None:
        if link is not None:
            await link.send(records)
        else:
            await self.transport.send(records)

    # --- HL7 ---------------------------------------------------------------------------

    async def _on_hl7(self, data: bytes, peer: Any) -> HL7Message | list[HL7Message] | None:
        """Handle one MLLP payload; the ACK / query answer(s) to send (None: the payload is
        itself an acknowledgement, ORL^O34 to our OML^O33, which gets no answer)."""
        self._report(True)
        ANALYZER_MESSAGES.labels("hl7", "in").inc()
        raw = decode_payload(data)
        try:
            msg = self.driver.parse(raw)
            if msg.message_code in ("ACK", "ORL"):
                msa = msg.segment("MSA")
                log.info(
                    "interface %s: %s for %s: %s",
                    self.config.name,
                    msg.message_type,
                    msa.get(2) if msa is not None else "?",
                    msa.get(1) if msa is not None else "no MSA",
                )
                return None
            errors: list[HL7ValidationError] = validate(msg)
            if errors:
                raise errors[0]
            self.driver.kind(msg)  # type: ignore[attr-defined]
        except HL7ParseError as exc:
            await self._store_unparsable(raw, f"unreadable HL7 message: {exc}")
            return build_ack(data, "AR", error=exc)
        except HL7ValidationError as exc:
            await self._store_unparsable(raw, f"rejected: {exc}")
            return build_ack(data, "AR", error=exc)
        except HL7Error as exc:
            await self._store_unparsable(raw, f"rejected: {exc}")
            return build_ack(data, "AR", error=exc)
        except Exception as exc:
            await self._store_unparsable(raw, f"unreadable HL7 message: {exc}")
            return build_ack(data, "AR", text=str(exc)[:200])
        if self.driver.name == HOSPITAL_HL7:
            return await self._on_hospital(msg, raw)
        try:
            await self._ingest(msg, raw)
        except Exception as exc:
            log.exception("interface %s: message not applied", self.config.name)
            await self._store_unparsable(raw, f"not applied: {exc}")
            return build_ack(msg, "AE", text=f"not applied: {exc}"[:200])
        queries = self.driver.queries(msg)
        if queries:
            orders = await self.orders_for(queries[0])
            patient = await self.patient_for(queries[0]) if orders else None
            answer: HL7Message | list[HL7Message] = self.driver.answer_query(  # type: ignore[call-arg]
                queries[0], orders, msg, patient=patient
            )
            return answer
        return build_ack(msg, "AA")

    async def patient_for(self, sample_id: str) -> HL7Patient | None:
        """Demographics of the sample's patient for a query answer (DSR^Q03, OML^O33)."""
        async with session_scope(self.settings) as session:
            instrument = await self._instrument(session)
            caller = instrument_principal(instrument)
            try:
                sample = await samples_service.get_by_accession(
                    session, caller, domain.normalize_accession(sample_id)
                )
            except NotFound:
                return None
            order = await session.get(Order, sample.order_id)
            if order is None:
                return None
            patient = await patients_service.get_in(
                session, instrument.organisation_id, order.patient_id
            )
        given, _, family = patient.full_name.rpartition(" ")  # the last word is the family
        return HL7Patient(
            mrn=patient.mrn,
            assigning_authority="NIDAAN",
            family_name=family,
            given_name=given,
            dob=patient.date_of_birth,
            sex=patient.sex,
        )

    async def _on_hospital(self, msg: HL7Message, raw: str) -> HL7Message:
        """Hospitals send patients and orders, not results (``integration.hospital``)."""
        try:
            reply = await handle_hospital_message(
                self.settings, self.config.organisation_id, self.config.id, msg, raw
            )
        except Exception as exc:
            log.exception("interface %s: hospital message not applied", self.config.name)
            await self._store_unparsable(raw, f"not applied: {exc}")
            return build_ack(msg, "AE", text=f"not applied: {exc}"[:80])
        self.messages += 1
        return reply

    async def _hl7_dial(self) -> None:
        """tcp-client for HL7: keep a connection to the analyzer and answer what it sends."""
        c = self.config
        delay = 1.0
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(c.host, c.port), 10.0
                )
            except (OSError, TimeoutError) as exc:
                log.info("interface %s: connect failed (%s)", c.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            self._writers.add(writer)
            self._report(True)
            decoder = MLLPDecoder()
            try:
                while data := await reader.read(65536):
                    for event in decoder.feed(data):
                        if isinstance(event, Frame):
                            reply = await self._on_hl7(event.payload, c.host)
                            for message in [] if reply is None else _as_list(reply):
                                writer.write(frame(message))
                            await writer.drain()
            except (ConnectionError, OSError) as exc:
                log.info("interface %s: connection lost (%s)", c.name, exc)
            except Exception:
                # A failure while answering (the database gone, say) must not end the dialling
                # for good: drop this connection (the analyzer re-sends what was not ACKed).
                log.exception("interface %s: message handling failed; reconnecting", c.name)
            finally:
                self._writers.discard(writer)
                writer.close()
                self._report(False)
            await asyncio.sleep(delay)


def _as_list(reply: HL7Message | list[HL7Message]) -> list[HL7Message]:
    return reply if isinstance(reply, list) else [reply]


#: Seconds after which a message still waiting in the receive journal is landed again.
RETRY_WAITING_AFTER_S = 60.0


def _journal_name(settings: Settings, organisation_id: uuid.UUID | None, shard: int) -> str:
    """One journal per database, organisation filter and share: its entries belong there."""
    url = make_url(database_url(settings)).set(password=None)
    key = f"{url.render_as_string(hide_password=False)}|{organisation_id or '*'}"
    return f"{hashlib.sha256(key.encode()).hexdigest()[:12]}-{shard}"


def shares(instrument_ids: Sequence[uuid.UUID], shards: int) -> dict[uuid.UUID, int]:
    """The interfaces process (of ``shards``) that runs each enabled instrument: dealt in id
    order, so the processes get equal shares (within one). Every process reads the same
    instruments and comes to the same answer; adding or removing an instrument may move
    others to another process (each one's connection is restarted there)."""
    return {i: n % shards for n, i in enumerate(sorted(instrument_ids))}


class InterfaceSupervisor:
    """Runs the connections of all enabled instruments and follows configuration changes."""

    def __init__(
        self,
        settings: Settings,
        *,
        reload_interval: float = 5.0,
        listen_host: str | None = None,
        organisation_id: uuid.UUID | None = None,
        outbound_interval: float = 1.0,
        outbound_backoff_max: float = 300.0,
        shard: int = 0,
        shards: int = 1,
        journal_dir: Path | None = None,
    ) -> None:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
        self.settings = settings
        #: This process runs the instruments whose id falls in its shard (``nidaan interfaces
        #: --processes N`` spreads the analyzers over N processes, so over N CPU cores). Each
        #: instrument belongs to exactly one shard: its link and its outbound queue have one
        #: owner.
        self.shard, self.shards = shard, shards
        #: How often each connection looks for pending outbound messages (seconds).
        self.outbound_interval = outbound_interval
        #: Longest wait before a failed outbound message is tried again (seconds).
        self.outbound_backoff_max = outbound_backoff_max
        self.reload_interval = reload_interval
        #: Where tcp-server instruments without a host listen: the lab network address of
        #: this computer (``NIDAAN_INTERFACES_LISTEN_HOST``), never every card by default.
        self.listen_host = listen_host or settings.interfaces_listen_host
        #: Restrict to one organisation (tests, or one lab per process); None = all.
        self.organisation_id = organisation_id
        self.connections: dict[uuid.UUID, Connection] = {}
        #: Connections that could not start, tried again with backoff.
        self.failures: dict[uuid.UUID, StartFailure] = {}
        #: Organisation of every instrument this process tried to run (for heartbeats).
        self._organisations: dict[uuid.UUID, uuid.UUID] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._owns_chainer = False
        #: Received ASTM messages on disk until landed (see nidaan.integration.journal).
        self.journal = ReceiveJournal()
        self.journal_dir = journal_dir or settings.data_dir / "interfaces"
        self._retried: dict[str, float] = {}  # journal entry -> when it was last landed again
        #: Lands the ASTM result messages of every connection of this process.
        self.lander = Lander(settings, journal=self.journal)

    async def start(self) -> None:
        # Chain the audit entries of many messages at a time, off the ingest path (as the
        # server does); in `serve` the server already runs the chainer.
        # JournalBusy: another process runs this share.
        waiting = self.journal.open(
            journal_path(
                self.journal_dir, _journal_name(self.settings, self.organisation_id, self.shard)
            )
        )
        self._owns_chainer = not chainer.running
        if self._owns_chainer:
            chainer.start()
        # The first landing publishes events, which imports every subscriber's module (some
        # pull in heavy libraries): do it now, before any port listens, not while the first
        # analyzer waits for its ACKs.
        load_handler_modules()
        self.lander.start()
        await self.reload()
        if waiting:
            log.warning(
                "interfaces: %d received message(s) were not landed before the last stop; "
                "landing them now",
                len(waiting),
            )
            await self._land_waiting(waiting)
        await self._heartbeat()
        self._task = asyncio.create_task(self._loop(), name="interface-supervisor")

    def _organisation_of(self) -> dict[uuid.UUID, uuid.UUID]:
        owned = {i: c.config.organisation_id for i, c in self.connections.items()}
        owned |= {i: self._organisations[i] for i in self.failures if i in self._organisations}
        return owned

    async def _heartbeat(self) -> None:
        """Publish this process's link states for API processes elsewhere (best effort)."""
        try:
            async with session_scope(self.settings) as session:
                await integration_service.publish_heartbeats(session, self._organisation_of())
        except Exception as exc:
            log.warning("interfaces: link heartbeat not written: %r", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        owned = list(self._organisation_of())
        if owned:
            try:
                async with session_scope(self.settings) as session:
                    await integration_service.withdraw_heartbeats(session, owned)
            except Exception as exc:
                log.warning("interfaces: link heartbeats not withdrawn: %r", exc)
        async with self._lock:
            for connection in list(self.connections.values()):
                await connection.stop()
            self.connections.clear()
            for instrument_id in self.failures:
                integration_service.forget_link(instrument_id)
            self.failures.clear()
        await self.lander.stop()
        await self.journal.close()
        if self._owns_chainer:
            self._owns_chainer = False
            await chainer.stop()

    async def __aenter__(self) -> InterfaceSupervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _retry_overdue(self) -> None:
        """Land again what waits in the journal long after it was kept and is not queued:
        its landing failed (the database was out of reach) or its transfer never reached
        the lander."""
        now = asyncio.get_running_loop().time()
        entries = [
            e
            for e in self.journal.overdue(RETRY_WAITING_AFTER_S)
            if e.id not in self.lander.in_flight
            and now - self._retried.get(e.id, -RETRY_WAITING_AFTER_S) >= RETRY_WAITING_AFTER_S
        ]
        waiting = {e.id for e in self.journal.overdue(0.0)}
        self._retried = {k: v for k, v in self._retried.items() if k in waiting}
        for entry in entries:
            self._retried[entry.id] = now
        if entries:
            log.warning("interfaces: landing %d waiting message(s) again", len(entries))
            try:
                await self._land_waiting(entries)
            except Exception:
                log.exception("interfaces: waiting messages not landed; trying again later")

    async def _land_waiting(self, entries: Sequence[JournalEntry]) -> None:
        """Hand journal entries that were not landed (an earlier run stopped or the database
        was out of reach) to the lander, through their instrument's connection."""
        async with session_scope(self.settings) as session:
            rows = await integration_service.instruments_by_ids(
                session, {e.instrument_id for e in entries}
            )
        for entry in entries:
            row = rows.get(entry.instrument_id)
            if row is None:
                log.error("interfaces: journal entry %s names no instrument; kept", entry.id)
                continue
            # A connection that is not running (disabled meanwhile, or another process's
            # share now) still parses and lands the messages it received.
            connection = self.connections.get(row.id) or Connection(self, InstrumentConfig.of(row))
            parsed, raw = await connection._parse_astm(entry.records, (entry.id,))
            if parsed is not None:
                connection._submit(parsed, raw, (entry.id,))

    def port_of(self, instrument_id: uuid.UUID) -> int | None:
        """The port a running connection listens on (useful with port 0)."""
        connection = self.connections.get(instrument_id)
        return connection.port if connection is not None else None

    async def _loop(self) -> None:
        tick = min(1.0, self.reload_interval)
        waited = 0.0
        while True:
            await asyncio.sleep(tick)
            waited += tick
            for connection in list(self.connections.values()):
                connection.poll_link()
            if waited >= self.reload_interval:
                waited = 0.0
                try:
                    await self.reload()
                except Exception:
                    log.exception("interfaces: reload failed; keeping the running connections")
                await self._retry_overdue()
                await self._heartbeat()

    async def _load(self) -> dict[uuid.UUID, InstrumentConfig]:
        async with session_scope(self.settings) as session:
            statement = select(Instrument).where(Instrument.enabled.is_(True))
            if self.organisation_id is not None:
                statement = statement.where(Instrument.organisation_id == self.organisation_id)
            rows = list(await session.scalars(statement))
            owner = shares([row.id for row in rows], self.shards)
            return {row.id: InstrumentConfig.of(row) for row in rows if owner[row.id] == self.shard}

    async def reload(self) -> None:
        """Start new, stop removed/disabled and restart changed instruments."""
        wanted = await self._load()
        async with self._lock:
            for instrument_id, connection in list(self.connections.items()):
                config = wanted.get(instrument_id)
                if config is None or config.key != connection.config.key:
                    del self.connections[instrument_id]
                    await connection.stop()
            for instrument_id in list(self.failures):
                if instrument_id not in wanted:
                    del self.failures[instrument_id]
                    integration_service.forget_link(instrument_id)
            now = asyncio.get_running_loop().time()
            for instrument_id, config in wanted.items():
                if instrument_id in self.connections:
                    continue
                failure = self.failures.get(instrument_id)
                if failure is not None and failure.key == config.key and now < failure.retry_at:
                    continue
                connection = Connection(self, config)
                try:
                    await connection.start()
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await connection.stop()
                    self._start_failed(config, exc)
                    continue
                if self.failures.pop(instrument_id, None) is not None:
                    integration_service.report_link(
                        instrument_id, connection.connected, config.name
                    )
                    log.warning("interface %s: started after all", config.name)
                self.connections[instrument_id] = connection

    def _start_failed(self, config: InstrumentConfig, exc: BaseException) -> None:
        """Record the failure for the status page; log it once per change of state (a
        traceback only for what is not an OS error), then retry with backoff."""
        self._organisations[config.id] = config.organisation_id
        host = config.host or self.listen_host
        error = describe_start_error(config, host, exc)
        earlier = self.failures.get(config.id)
        same = earlier is not None and earlier.key == config.key and earlier.error == error
        failure = StartFailure(
            key=config.key,
            error=error,
            since=earlier.since if same and earlier is not None else utcnow(),
            attempts=earlier.attempts + 1 if same and earlier is not None else 1,
            retry_at=0.0,
        )
        delay = failure.delay()
        failure.retry_at = asyncio.get_running_loop().time() + delay
        self.failures[config.id] = failure
        integration_service.report_link_error(
            config.id, config.name, error, failure.since, utcnow() + timedelta(seconds=delay)
        )
        if same:
            log.debug("interface %s still %s; next try in %.0f s", config.name, error, delay)
            return
        log.error(
            "interface %s %s; trying again in %.0f s, then less often (up to every %.0f s)",
            config.name,
            error,
            delay,
            START_RETRY_MAX_S,
            exc_info=None if isinstance(exc, OSError) else exc,
        )
