"""Analyzer integration: instruments as data, the raw message store, landing instrument
results as entered (not verified) results, and the exceptions queue for the rest.

The codec and driver packages (``integration.hl7``, ``integration.astm``) turn bytes into
``domain.InstrumentMessage`` and call :meth:`IntegrationService.ingest_results` inside one
job transaction. A result is never dropped: what cannot be landed becomes an
``interface_exceptions`` row that a technician resolves (enter against an ordered test, or
discard with a note).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.catalog.enums import ResultType
from nidaan.catalog.models import CatalogTest
from nidaan.catalog.service import catalog_service
from nidaan.events.service import publish
from nidaan.integration import domain, guard
from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.drivers.base import OrderLine, driver_names, get_driver
from nidaan.integration.enums import (
    Direction,
    Driver,
    ExceptionKind,
    ExceptionStatus,
    MessageStatus,
    Protocol,
    ResolutionAction,
    Transport,
)
from nidaan.integration.errors import (
    ExceptionClosed,
    IdConflict,
    InstrumentNameTaken,
    InvalidTransport,
    UnknownTests,
    VersionConflict,
)
from nidaan.integration.events import ControlResultsReceived
from nidaan.integration.models import (
    HospitalOrder,
    Instrument,
    InstrumentLinkHeartbeat,
    InstrumentTestMap,
    InterfaceException,
    InterfaceMessage,
)
from nidaan.integration.schemas import InstrumentCreate, InstrumentUpdate, MapEntryIn
from nidaan.kit.aio import pause_every
from nidaan.kit.db import any_of
from nidaan.kit.errors import InvalidInput, NidaanError, NotFound
from nidaan.kit.ids import new_id
from nidaan.kit.metrics import ANALYZER_LINK_UP
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.time import utcnow
from nidaan.orders.enums import OrderTestStatus, Priority
from nidaan.orders.models import Order, OrderTest
from nidaan.orders.service import orders_service
from nidaan.results.batch import BatchEntry
from nidaan.results.enums import ResultSource
from nidaan.results.errors import (
    CalculatedResult,
    InvalidResultValue,
    OrderTestNotActive,
    ResultVerified,
    SampleNotReady,
)
from nidaan.results.models import Result
from nidaan.results.service import results_service
from nidaan.samples.enums import SampleStatus
from nidaan.samples.models import Sample
from nidaan.samples.service import samples_service
from nidaan.tenancy.service import tenancy_service

__all__ = ["IngestReport", "InstrumentStatus", "OutboundMessage", "integration_service"]

#: The roles an instrument acts with when it lands results (entry only; never verification).
INSTRUMENT_ROLES = frozenset({"technician"})
READY_SAMPLE_STATES = frozenset({SampleStatus.RECEIVED, SampleStatus.IN_PROCESS})
_INSTRUMENT_FIELDS = (
    "name",
    "driver",
    "transport",
    "host",
    "port",
    "device",
    "baudrate",
    "branch_id",
    "enabled",
    "settings",
)
_HL7_DRIVERS = frozenset({Driver.GENERIC_HL7})
#: Instrument ``settings`` key that turns on unsolicited order download (batch mode).
ORDER_DOWNLOAD_SETTING = "order_download"


@dataclass(frozen=True)
class MappedTest:
    instrument_code: str
    test: CatalogTest


@dataclass(frozen=True)
class LinkState:
    """What the connection task of an instrument in this process last reported."""

    connected: bool
    #: The instrument's name (for ``/readyz``), when known.
    name: str | None = None
    #: Why the connection is not running (its listener could not start, say); None when it runs.
    error: str | None = None
    #: Since when the link is in this state (the first failure of a run of failures).
    since: datetime | None = None
    #: When the connection will be tried again (only with ``error``).
    next_retry_at: datetime | None = None


@dataclass(frozen=True)
class InstrumentStatus:
    instrument_id: uuid.UUID
    state: str
    connected: bool | None
    last_message_at: datetime | None
    last_message_status: str | None
    last_error: str | None
    error_since: datetime | None
    next_retry_at: datetime | None
    messages_received: int
    messages_failed: int
    duplicates: int
    open_exceptions: int


@dataclass(frozen=True)
class OutboundMessage:
    """A pending outbound message, detached from its session (what the runtime sends)."""

    id: uuid.UUID
    protocol: str
    message_type: str | None
    raw: str
    attempts: int


@dataclass
class IngestReport:
    """What one message led to."""

    message: InterfaceMessage
    duplicate: bool = False
    results: list[Result] = field(default_factory=list)
    exceptions: list[InterfaceException] = field(default_factory=list)
    #: Quality-control results handed to quality control (``ControlResultsReceived``).
    controls: int = 0


class _Skip(Exception):
    """A result that becomes an exception instead of a result."""

    def __init__(
        self,
        kind: ExceptionKind,
        detail: str,
        *,
        sample: Sample | None = None,
        test_id: uuid.UUID | None = None,
        order_test_id: uuid.UUID | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.sample = sample
        self.test_id = test_id
        self.order_test_id = order_test_id


_SKIP_KINDS: tuple[tuple[type[NidaanError], ExceptionKind], ...] = (
    (ResultVerified, ExceptionKind.ALREADY_VERIFIED),
    (SampleNotReady, ExceptionKind.NOT_RECEIVED),
    (OrderTestNotActive, ExceptionKind.CANCELLED_TEST),
    (CalculatedResult, ExceptionKind.CALCULATED_TEST),
    (InvalidResultValue, ExceptionKind.INVALID_VALUE),
)


def _dedupe_key(key: str | None) -> str | None:
    """How ``store_inbound`` keeps a dedupe key (trimmed, at most 200 characters)."""
    return key.strip()[:200] if key and key.strip() else None


def _skip_for(error: NidaanError, context: dict[str, Any]) -> _Skip:
    """The exception an entry error becomes (any other error: an invalid value)."""
    kind = next((k for t, k in _SKIP_KINDS if isinstance(error, t)), ExceptionKind.INVALID_VALUE)
    return _Skip(kind, error.detail, **context)


def _identifiers(item: InstrumentResult) -> list[str]:
    """Every identifier a result names its sample by (for prefetching)."""
    ids = item.sample_ids
    if ids is None or not ids.given:
        return [item.accession]
    return [i for i in (ids.filler, *ids.specimen, ids.placer) if i]


def _entered_value(item: InstrumentResult, test: CatalogTest) -> str:
    """What is entered for a coded (CE/CWE) value: the code when the test's choices know it,
    else its text; the text for a free-text test (the report shows words, not codes)."""
    value = item.value.strip()
    text = (item.value_text or "").strip()
    if not text:
        return value
    if test.result_type == ResultType.CODED:
        known = {
            str(choice.get(key) or "").strip().casefold()
            for choice in test.choices
            for key in ("code", "text")
        }
        return text if value.casefold() not in known and text.casefold() in known else value
    if test.result_type == ResultType.TEXT:
        return text
    return value


def instrument_principal(instrument: Instrument) -> Principal:
    """The caller an instrument's results are entered as (audit label ``instrument:<name>``)."""
    return Principal(
        kind="instrument",
        id=instrument.id,
        organisation_id=instrument.organisation_id,
        roles=INSTRUMENT_ROLES,
        label=f"instrument:{instrument.name}",
    )


def _snapshot(instrument: Instrument, test_map: Sequence[MappedTest]) -> dict[str, Any]:
    data = {name: getattr(instrument, name) for name in _INSTRUMENT_FIELDS}
    data["test_map"] = {m.instrument_code: m.test.code for m in test_map}
    return data


def _exception_snapshot(row: InterfaceException) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "accession": row.accession,
        "instrument_code": row.instrument_code,
        "value": row.value,
        "unit": row.unit,
        "flags": row.flags,
        "order_test_id": row.order_test_id,
        "status": row.status,
        "resolution_note": row.resolution_note,
        "result_id": row.result_id,
        "resolved_by_id": row.resolved_by_id,
        "resolved_at": row.resolved_at,
    }


class IntegrationService:
    def __init__(self) -> None:
        # Link heartbeat of the connection tasks running in this process.
        self._links: dict[uuid.UUID, LinkState] = {}
        # Instrument id -> (its version and update time, {instrument code: test id}): a map
        # is only changed together with its instrument row (version + 1), so ingestion
        # reads it once per instrument version, not per message.
        self._code_maps: dict[uuid.UUID, tuple[tuple[int, Any], dict[str, uuid.UUID]]] = {}

    # --- instruments -------------------------------------------------------------------

    async def list_instruments(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        branch_id: uuid.UUID | None = None,
        enabled: bool | None = None,
    ) -> tuple[list[Instrument], int]:
        statement = select(Instrument).where(
            Instrument.organisation_id == caller.organisation_id,
            self._instruments_within_reach(caller),
        )
        if branch_id is not None:
            statement = statement.where(Instrument.branch_id == branch_id)
        if enabled is not None:
            statement = statement.where(Instrument.enabled.is_(enabled))
        return await paginate(session, statement.order_by(Instrument.name, Instrument.id), page)

    async def get_instrument(
        self, session: AsyncSession, caller: Principal, instrument_id: uuid.UUID
    ) -> Instrument:
        return await self._instrument_for(session, caller, instrument_id)

    async def _instrument_for(
        self, session: AsyncSession, caller: Principal, instrument_id: uuid.UUID
    ) -> Instrument:
        """The caller's instrument, refused when it stands at a branch they do not work at."""
        instrument = await self._instrument(session, caller.organisation_id, instrument_id)
        caller.require_reach([instrument.branch_id], "instrument")
        return instrument

    async def _require_exception_reach(
        self, session: AsyncSession, caller: Principal, row: InterfaceException
    ) -> None:
        if caller.branch_ids is None:
            return
        if row.instrument_id is None:
            caller.require_reach([], "interface exception")
        else:
            await self._instrument_for(session, caller, row.instrument_id)

    @staticmethod
    def _instruments_within_reach(caller: Principal) -> ColumnElement[bool]:
        if caller.branch_ids is None:
            return true()
        return Instrument.branch_id.in_(list(caller.branch_ids))

    async def _instrument(
        self, session: AsyncSession, organisation_id: uuid.UUID, instrument_id: uuid.UUID
    ) -> Instrument:
        instrument = await session.scalar(
            select(Instrument).where(
                Instrument.id == instrument_id, Instrument.organisation_id == organisation_id
            )
        )
        if instrument is None:
            raise NotFound("No such instrument in your organisation.", entity="instrument")
        return instrument

    async def test_map(
        self, session: AsyncSession, organisation_id: uuid.UUID, instrument_id: uuid.UUID
    ) -> list[MappedTest]:
        """The instrument's codes and their catalogue tests, by code."""
        rows = list(
            await session.scalars(
                select(InstrumentTestMap)
                .where(
                    InstrumentTestMap.organisation_id == organisation_id,
                    InstrumentTestMap.instrument_id == instrument_id,
                )
                .order_by(InstrumentTestMap.instrument_code)
            )
        )
        tests = await catalog_service.tests_by_ids(
            session, organisation_id, {r.test_id for r in rows}
        )
        return [MappedTest(r.instrument_code, tests[r.test_id]) for r in rows]

    async def instruments_by_ids(
        self,
        session: AsyncSession,
        ids: Iterable[uuid.UUID],
        organisation_id: uuid.UUID | None = None,
    ) -> dict[uuid.UUID, Instrument]:
        """Instrument rows by id (of one organisation when given), with one query."""
        statement = select(Instrument).where(any_of(Instrument.id, set(ids)))
        if organisation_id is not None:
            statement = statement.where(Instrument.organisation_id == organisation_id)
        return {row.id: row for row in await session.scalars(statement)}

    async def codes_of(
        self, session: AsyncSession, instruments: Sequence[Instrument]
    ) -> dict[uuid.UUID, dict[str, CatalogTest]]:
        """Each instrument's test map as {instrument code: catalogue test}, for ingestion:
        maps come from a per-version cache, the catalogue tests (which may change on their
        own) are read fresh, all with one query each."""
        if not instruments:
            return {}
        organisation_id = instruments[0].organisation_id
        stale = [
            i
            for i in instruments
            if (cached := self._code_maps.get(i.id)) is None
            or cached[0] != (i.version, i.updated_at)
        ]
        if stale:
            found: dict[uuid.UUID, dict[str, uuid.UUID]] = {i.id: {} for i in stale}
            for row in await session.scalars(
                select(InstrumentTestMap).where(
                    InstrumentTestMap.organisation_id == organisation_id,
                    any_of(InstrumentTestMap.instrument_id, found),
                )
            ):
                found[row.instrument_id][row.instrument_code] = row.test_id
            for instrument in stale:
                self._code_maps[instrument.id] = (
                    (instrument.version, instrument.updated_at),
                    found[instrument.id],
                )
        maps = {i.id: self._code_maps[i.id][1] for i in instruments}
        tests = await catalog_service.tests_by_ids(
            session, organisation_id, {t for m in maps.values() for t in m.values()}
        )
        return {
            instrument_id: {code: tests[t] for code, t in codes.items() if t in tests}
            for instrument_id, codes in maps.items()
        }

    async def create_instrument(
        self, session: AsyncSession, caller: Principal, data: InstrumentCreate
    ) -> tuple[Instrument, bool]:
        """Register an analyzer with its test map; (instrument, created). A replayed client
        id with the same content returns the existing row."""
        resolved = await self._resolve_map(session, caller, data.test_map)
        if data.id is not None:
            # Looked up in every organisation: another tenant's id gets the same answer as
            # one of ours with other content (never a hint of who owns it).
            existing = await session.get(Instrument, data.id)
            if existing is not None and existing.organisation_id != caller.organisation_id:
                raise IdConflict(
                    "An instrument with this id already exists with different content.",
                    id=str(data.id),
                )
            if existing is not None:
                current = _snapshot(
                    existing, await self.test_map(session, caller.organisation_id, existing.id)
                )
                proposed = data.model_dump(include=set(_INSTRUMENT_FIELDS))
                proposed["test_map"] = {m.instrument_code: m.test.code for m in resolved}
                if current != proposed:
                    raise IdConflict(
                        "An instrument with this id already exists with different content.",
                        id=str(data.id),
                    )
                return existing, False
        self._check_transport(data.model_dump())
        await tenancy_service.check_branches_belong(
            session, caller.organisation_id, [data.branch_id]
        )
        caller.require_reach([data.branch_id], "instrument")
        await self._check_name(session, caller.organisation_id, data.name.strip())
        values = data.model_dump(include=set(_INSTRUMENT_FIELDS))
        values["name"] = data.name.strip()
        instrument = Instrument(organisation_id=caller.organisation_id, **values)
        if data.id is not None:
            instrument.id = data.id
        session.add(instrument)
        await session.flush()
        await self._write_map(session, instrument, resolved)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="instrument.created",
            entity_type="instrument",
            entity_id=instrument.id,
            after=_snapshot(instrument, resolved),
        )
        return instrument, True

    async def update_instrument(
        self,
        session: AsyncSession,
        caller: Principal,
        instrument_id: uuid.UUID,
        data: InstrumentUpdate,
    ) -> Instrument:
        instrument = await self._instrument_for(session, caller, instrument_id)
        if data.version != instrument.version:
            raise VersionConflict(
                f"The instrument was changed meanwhile (version {instrument.version}, you sent "
                f"{data.version}); reload and try again.",
                current_version=instrument.version,
            )
        old_map = await self.test_map(session, caller.organisation_id, instrument.id)
        before = _snapshot(instrument, old_map)
        changes = data.model_dump(exclude_unset=True, exclude={"version", "test_map"})
        not_null = {"name", "driver", "transport", "branch_id", "enabled", "settings"}
        changes = {k: v for k, v in changes.items() if v is not None or k not in not_null}
        if "name" in changes:
            changes["name"] = changes["name"].strip()
            if changes["name"] != instrument.name:
                await self._check_name(session, caller.organisation_id, changes["name"])
        if "branch_id" in changes:
            await tenancy_service.check_branches_belong(
                session, caller.organisation_id, [changes["branch_id"]]
            )
            caller.require_reach([changes["branch_id"]], "instrument")
        proposed = {name: getattr(instrument, name) for name in _INSTRUMENT_FIELDS} | changes
        self._check_transport(proposed)
        new_map = old_map
        if data.test_map is not None:
            new_map = await self._resolve_map(session, caller, data.test_map)
        for name, value in changes.items():
            setattr(instrument, name, value)
        if data.test_map is not None:
            # A map change is a change of the instrument: its row is updated (version + 1).
            instrument.updated_at = utcnow()
            await self._write_map(session, instrument, new_map, replace=True)
        try:
            await session.flush()
        except StaleDataError:
            raise VersionConflict(
                "The instrument was changed meanwhile; reload and try again."
            ) from None
        await session.refresh(instrument)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="instrument.updated",
            entity_type="instrument",
            entity_id=instrument.id,
            before=before,
            after=_snapshot(instrument, new_map),
        )
        return instrument

    @staticmethod
    def _check_transport(values: dict[str, Any]) -> None:
        problems = domain.transport_problems(
            values["transport"],
            host=values.get("host"),
            port=values.get("port"),
            device=values.get("device"),
            baudrate=values.get("baudrate"),
        )
        settings = values.get("settings") or {}
        problems.extend(guard.settings_problems(settings))
        if values["transport"] == Transport.TCP_SERVER and (
            why := guard.port_problem(values.get("port"))
        ):
            problems.append(why)
        driver = values.get("driver")
        pushes_orders = settings.get(ORDER_DOWNLOAD_SETTING) is True
        if (
            pushes_orders
            and driver in driver_names()
            and not get_driver(driver).accepts_order_downloads
        ):
            problems.append(f"{driver} connections do not take order downloads")
        if problems:
            raise InvalidTransport("; ".join(problems) + ".", problems=problems)

    async def _check_name(
        self, session: AsyncSession, organisation_id: uuid.UUID, name: str
    ) -> None:
        taken = await session.scalar(
            select(Instrument.id).where(
                Instrument.organisation_id == organisation_id, Instrument.name == name
            )
        )
        if taken is not None:
            raise InstrumentNameTaken(f"An instrument named {name!r} already exists.")

    async def _resolve_map(
        self, session: AsyncSession, caller: Principal, entries: Sequence[MapEntryIn]
    ) -> list[MappedTest]:
        """Catalogue tests for map entries given by test code or LOINC; every problem is
        reported at once."""
        codes = [domain.normalize_code(e.instrument_code) for e in entries]
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise InvalidInput(
                "Each instrument code may be mapped once.", field="test_map", repeated=repeated
            )
        by_code = await catalog_service.tests_by_codes(
            session, caller.organisation_id, [e.test_code for e in entries if e.test_code]
        )
        resolved: list[MappedTest] = []
        unknown: list[str] = []
        ambiguous: list[str] = []
        for code, entry in zip(codes, entries, strict=True):
            if entry.test_code is not None:
                test = by_code.get(entry.test_code.strip().upper())
                if test is None:
                    unknown.append(entry.test_code)
                    continue
            else:
                loinc = (entry.loinc or "").strip()
                found, total = await catalog_service.list_tests(
                    session, caller, PageParams(1, 2), loinc=loinc
                )
                if total == 0:
                    unknown.append(f"LOINC {loinc}")
                    continue
                if total > 1:
                    ambiguous.append(f"LOINC {loinc}")
                    continue
                test = found[0]
            resolved.append(MappedTest(code, test))
        if unknown or ambiguous:
            raise UnknownTests(
                "Some map entries match no catalogue test, or more than one.",
                field="test_map",
                unknown=unknown,
                ambiguous=ambiguous,
            )
        return resolved

    async def _write_map(
        self,
        session: AsyncSession,
        instrument: Instrument,
        entries: Sequence[MappedTest],
        *,
        replace: bool = False,
    ) -> None:
        if replace:
            for row in await session.scalars(
                select(InstrumentTestMap).where(InstrumentTestMap.instrument_id == instrument.id)
            ):
                await session.delete(row)
            await session.flush()
        for entry in entries:
            session.add(
                InstrumentTestMap(
                    organisation_id=instrument.organisation_id,
                    instrument_id=instrument.id,
                    instrument_code=entry.instrument_code,
                    test_id=entry.test.id,
                )
            )
        await session.flush()

    # --- link status ---------------------------------------------------------------------

    def report_link(
        self, instrument_id: uuid.UUID, connected: bool, name: str | None = None
    ) -> None:
        """Heartbeat from the connection task (socket or serial port) in this process."""
        known = self._links.get(instrument_id)
        name = name or (known.name if known is not None else None)
        self._links[instrument_id] = LinkState(connected, name, since=utcnow())
        ANALYZER_LINK_UP.labels(str(instrument_id)).set(1 if connected else 0)

    def link_states(self) -> dict[uuid.UUID, LinkState]:
        """What every connection of this process last reported (for ``/metrics``)."""
        return dict(self._links)

    def interfaces_down(self) -> list[dict[str, Any]]:
        """The connections of this process that could not start (for ``/readyz``)."""
        return [
            {
                "instrument_id": str(instrument_id),
                "name": link.name,
                "error": link.error,
                "since": link.since.isoformat() if link.since else None,
                "next_retry_at": link.next_retry_at.isoformat() if link.next_retry_at else None,
            }
            for instrument_id, link in self._links.items()
            if link.error
        ]

    def report_link_error(
        self,
        instrument_id: uuid.UUID,
        name: str,
        error: str,
        since: datetime,
        next_retry_at: datetime,
    ) -> None:
        """The instrument's connection could not start (its port is taken, say)."""
        self._links[instrument_id] = LinkState(False, name, error, since, next_retry_at)
        ANALYZER_LINK_UP.labels(str(instrument_id)).set(0)

    def forget_link(self, instrument_id: uuid.UUID) -> None:
        """No connection of this process runs the instrument any more."""
        self._links.pop(instrument_id, None)
        with contextlib.suppress(KeyError):
            ANALYZER_LINK_UP.remove(str(instrument_id))

    async def publish_heartbeats(
        self, session: AsyncSession, organisation_of: dict[uuid.UUID, uuid.UUID]
    ) -> int:
        """Write the link state of the instruments this process runs (``organisation_of``:
        instrument id -> organisation id), for API processes elsewhere to read."""
        now = utcnow()
        rows = [
            {
                "instrument_id": instrument_id,
                "organisation_id": organisation_id,
                "connected": link.connected,
                "error": (link.error or "")[:500] or None,
                "since": link.since,
                "next_retry_at": link.next_retry_at,
                "heartbeat_at": now,
            }
            for instrument_id, organisation_id in organisation_of.items()
            if (link := self._links.get(instrument_id)) is not None
        ]
        if rows:
            statement = pg_insert(InstrumentLinkHeartbeat).values(rows)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["instrument_id"],
                    set_={
                        name: statement.excluded[name]
                        for name in ("connected", "error", "since", "next_retry_at", "heartbeat_at")
                    },
                )
            )
        return len(rows)

    async def withdraw_heartbeats(
        self, session: AsyncSession, instrument_ids: Iterable[uuid.UUID]
    ) -> None:
        """This process no longer runs these instruments: their state is unknown now."""
        await session.execute(
            delete(InstrumentLinkHeartbeat).where(
                InstrumentLinkHeartbeat.instrument_id.in_(list(instrument_ids))
            )
        )

    async def _heartbeat_link(
        self, session: AsyncSession, instrument: Instrument
    ) -> LinkState | None:
        """The link state another process published for ``instrument``, unless stale."""
        beat = await session.get(InstrumentLinkHeartbeat, instrument.id)
        if beat is None or beat.organisation_id != instrument.organisation_id:
            return None
        if utcnow() - beat.heartbeat_at > domain.HEARTBEAT_STALE:
            return None  # the process that ran it is gone or stuck: unknown, not connected
        return LinkState(
            beat.connected, instrument.name, beat.error, beat.since, beat.next_retry_at
        )

    async def status(
        self, session: AsyncSession, caller: Principal, instrument_id: uuid.UUID
    ) -> InstrumentStatus:
        instrument = await self._instrument_for(session, caller, instrument_id)
        own = (
            InterfaceMessage.organisation_id == caller.organisation_id,
            InterfaceMessage.instrument_id == instrument.id,
            InterfaceMessage.direction == Direction.IN,
        )
        counts = (
            await session.execute(
                select(
                    func.count(),
                    func.count().filter(InterfaceMessage.status == MessageStatus.ERROR),
                    func.count().filter(InterfaceMessage.status == MessageStatus.DUPLICATE),
                ).where(*own)
            )
        ).one()
        last = await session.scalar(
            select(InterfaceMessage)
            .where(*own)
            .order_by(InterfaceMessage.received_at.desc(), InterfaceMessage.id.desc())
            .limit(1)
        )
        open_exceptions = await session.scalar(
            select(func.count()).where(
                InterfaceException.organisation_id == caller.organisation_id,
                InterfaceException.instrument_id == instrument.id,
                InterfaceException.status == ExceptionStatus.OPEN,
            )
        )
        link = self._links.get(instrument.id) if instrument.enabled else None
        if link is None and instrument.enabled:
            # Production layout: `nidaan interfaces` runs the link in another process.
            link = await self._heartbeat_link(session, instrument)
        connected = link.connected if link is not None else None
        link_error = link.error if link is not None else None
        state = domain.connection_state(
            enabled=instrument.enabled,
            connected=connected,
            last_message_at=last.received_at if last else None,
            last_status=last.status if last else None,
            now=utcnow(),
            link_error=link_error,
        )
        return InstrumentStatus(
            instrument_id=instrument.id,
            state=state,
            connected=connected,
            last_message_at=last.received_at if last else None,
            last_message_status=last.status if last else None,
            last_error=link_error or (last.error if last else None),
            error_since=link.since if link_error and link is not None else None,
            next_retry_at=link.next_retry_at if link is not None and link_error else None,
            messages_received=counts[0],
            messages_failed=counts[1],
            duplicates=counts[2],
            open_exceptions=open_exceptions or 0,
        )

    # --- message store -------------------------------------------------------------------

    async def store_inbound(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID | None,
        protocol: str,
        dedupe_key: str | None,
        message_type: str | None,
        raw: str,
    ) -> tuple[InterfaceMessage, bool]:
        """Keep a received message; (message, is_duplicate). A message whose dedupe key was
        seen before from the same instrument is stored as ``duplicate`` pointing at the
        first copy, and must not be applied again."""
        key = dedupe_key.strip()[:200] if dedupe_key and dedupe_key.strip() else None
        first = await self._first_copy(session, organisation_id, instrument_id, key)
        if first is None:
            message = InterfaceMessage(
                organisation_id=organisation_id,
                instrument_id=instrument_id,
                direction=Direction.IN,
                protocol=Protocol(protocol),
                dedupe_key=key,
                message_type=message_type,
                raw=raw,
                received_at=utcnow(),
                status=MessageStatus.OK,
                links={},
            )
            try:
                async with session.begin_nested():
                    session.add(message)
                    await session.flush()
                return message, False
            except IntegrityError:
                # Another connection stored the same message a moment ago.
                first = await self._first_copy(session, organisation_id, instrument_id, key)
                if first is None:
                    raise
        duplicate = InterfaceMessage(
            organisation_id=organisation_id,
            instrument_id=instrument_id,
            direction=Direction.IN,
            protocol=Protocol(protocol),
            dedupe_key=key,
            message_type=message_type,
            raw=raw,
            received_at=utcnow(),
            status=MessageStatus.DUPLICATE,
            duplicate_of_id=first.id,
            links={},
        )
        session.add(duplicate)
        await session.flush()
        return duplicate, True

    async def store_unparsable(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID | None,
        protocol: str,
        raw: str,
        error: str,
    ) -> InterfaceMessage:
        """Keep a message the codec could not read (status ``error``); nothing is applied."""
        message = InterfaceMessage(
            organisation_id=organisation_id,
            instrument_id=instrument_id,
            direction=Direction.IN,
            protocol=Protocol(protocol),
            raw=raw,
            received_at=utcnow(),
            status=MessageStatus.ERROR,
            error=error[:2000],
            links={},
        )
        session.add(message)
        await session.flush()
        return message

    async def _first_copy(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID | None,
        key: str | None,
    ) -> InterfaceMessage | None:
        if key is None:
            return None
        statement = select(InterfaceMessage).where(
            InterfaceMessage.organisation_id == organisation_id,
            InterfaceMessage.direction == Direction.IN,
            InterfaceMessage.dedupe_key == key,
            InterfaceMessage.status != MessageStatus.DUPLICATE,
        )
        if instrument_id is None:
            statement = statement.where(InterfaceMessage.instrument_id.is_(None))
        else:
            statement = statement.where(InterfaceMessage.instrument_id == instrument_id)
        return await session.scalar(statement.limit(1))

    async def list_messages(
        self,
        session: AsyncSession,
        caller: Principal,
        instrument_id: uuid.UUID,
        page: PageParams,
        *,
        status: MessageStatus | None = None,
        direction: Direction | None = None,
    ) -> tuple[list[InterfaceMessage], int]:
        """An instrument's messages, newest first."""
        await self._instrument_for(session, caller, instrument_id)
        statement = select(InterfaceMessage).where(
            InterfaceMessage.organisation_id == caller.organisation_id,
            InterfaceMessage.instrument_id == instrument_id,
        )
        if status is not None:
            statement = statement.where(InterfaceMessage.status == status)
        if direction is not None:
            statement = statement.where(InterfaceMessage.direction == direction)
        statement = statement.order_by(
            InterfaceMessage.received_at.desc(), InterfaceMessage.id.desc()
        )
        return await paginate(session, statement, page)

    # --- outbound: order download ---------------------------------------------------------

    async def order_lines(
        self, session: AsyncSession, instrument: Instrument, sample: Sample
    ) -> list[OrderLine]:
        """The sample's non-cancelled tests this instrument runs, as its codes (one line per
        code; ``S`` priority for stat orders)."""
        codes: dict[uuid.UUID, str] = {}
        for mapped in await self.test_map(session, instrument.organisation_id, instrument.id):
            codes.setdefault(mapped.test.id, mapped.instrument_code)
        order = await session.get(Order, sample.order_id)
        priority = "S" if order is not None and order.priority == Priority.STAT else "R"
        tests = await session.scalars(
            select(OrderTest)
            .where(
                OrderTest.organisation_id == sample.organisation_id,
                OrderTest.sample_id == sample.id,
                OrderTest.status != OrderTestStatus.CANCELLED,
            )
            .order_by(OrderTest.created_at, OrderTest.id)
        )
        lines: list[OrderLine] = []
        for test in tests:
            code = codes.get(test.test_id)
            if code is not None and all(line.instrument_code != code for line in lines):
                lines.append(OrderLine(code, priority=priority))
        return lines

    async def queue_order_downloads(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        sample_id: uuid.UUID,
        *,
        branch_id: uuid.UUID | None = None,
    ) -> list[InterfaceMessage]:
        """Queue the order download of a received sample for every enabled instrument (at the
        receiving lab ``branch_id``, when given) with ``settings["order_download"]`` whose
        test map covers some of its live tests.

        One message per (instrument, sample): the dedupe key ``order:<sample id>`` makes a
        redelivered event (or a second call) a no-op. Returns the messages queued now.
        """
        sample = await session.scalar(
            select(Sample).where(Sample.id == sample_id, Sample.organisation_id == organisation_id)
        )
        if sample is None or sample.status not in READY_SAMPLE_STATES:
            return []
        statement = select(Instrument).where(
            Instrument.organisation_id == organisation_id, Instrument.enabled.is_(True)
        )
        if branch_id is not None:
            # Analyzers at another lab never see this tube.
            statement = statement.where(Instrument.branch_id == branch_id)
        instruments = await session.scalars(statement.order_by(Instrument.name, Instrument.id))
        queued: list[InterfaceMessage] = []
        for instrument in list(instruments):
            if (instrument.settings or {}).get(ORDER_DOWNLOAD_SETTING) is not True:
                continue
            if not get_driver(instrument.driver).accepts_order_downloads:
                continue
            message = await self._queue_order_download(session, instrument, sample)
            if message is not None:
                queued.append(message)
        return queued

    async def _queue_order_download(
        self, session: AsyncSession, instrument: Instrument, sample: Sample
    ) -> InterfaceMessage | None:
        key = f"order:{sample.id}"
        existing = await session.scalar(
            select(InterfaceMessage.id).where(
                InterfaceMessage.organisation_id == instrument.organisation_id,
                InterfaceMessage.instrument_id == instrument.id,
                InterfaceMessage.direction == Direction.OUT,
                InterfaceMessage.dedupe_key == key,
            )
        )
        if existing is not None:
            return None
        lines = await self.order_lines(session, instrument, sample)
        if not lines:
            return None
        driver = get_driver(instrument.driver)
        built = driver.order_download(sample.accession, lines)
        if driver.protocol == Protocol.HL7:
            raw = str(built)
            message_type = f"{built.message_code}^{built.trigger_event}"
        else:
            raw = "".join(record + "\r" for record in built)
            message_type = "ASTM-O"
        message = InterfaceMessage(
            organisation_id=instrument.organisation_id,
            instrument_id=instrument.id,
            direction=Direction.OUT,
            protocol=Protocol(driver.protocol),
            dedupe_key=key,
            message_type=message_type,
            raw=raw,
            received_at=utcnow(),
            status=MessageStatus.PENDING,
            links={
                "samples": [str(sample.id)],
                "orders": [str(sample.order_id)],
                "codes": [line.instrument_code for line in lines],
                "attempts": 0,
            },
        )
        try:
            async with session.begin_nested():
                session.add(message)
                await session.flush()
        except IntegrityError:
            # Queued by a concurrent delivery a moment ago.
            return None
        return message

    async def pending_outbound(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        *,
        limit: int = 50,
    ) -> list[OutboundMessage]:
        """An instrument's outbound messages still to send, oldest first."""
        rows = await session.scalars(
            select(InterfaceMessage)
            .where(
                InterfaceMessage.organisation_id == organisation_id,
                InterfaceMessage.instrument_id == instrument_id,
                InterfaceMessage.direction == Direction.OUT,
                InterfaceMessage.status == MessageStatus.PENDING,
            )
            .order_by(InterfaceMessage.received_at, InterfaceMessage.id)
            .limit(limit)
        )
        return [
            OutboundMessage(
                id=row.id,
                protocol=row.protocol,
                message_type=row.message_type,
                raw=row.raw,
                attempts=int((row.links or {}).get("attempts") or 0),
            )
            for row in rows
        ]

    async def _outbound(
        self, session: AsyncSession, organisation_id: uuid.UUID, message_id: uuid.UUID
    ) -> InterfaceMessage:
        row = await session.scalar(
            select(InterfaceMessage)
            .where(
                InterfaceMessage.id == message_id,
                InterfaceMessage.organisation_id == organisation_id,
                InterfaceMessage.direction == Direction.OUT,
            )
            .with_for_update()
        )
        if row is None:
            raise NotFound("No such outbound message.", entity="interface_message")
        return row

    async def mark_sent(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        message_id: uuid.UUID,
        *,
        ack: str | None = None,
    ) -> InterfaceMessage:
        """The analyzer (or hospital) acknowledged the message; ``ack``: its HL7 ACK."""
        row = await self._outbound(session, organisation_id, message_id)
        links = dict(row.links or {})
        links["attempts"] = int(links.get("attempts") or 0) + 1
        links["sent_at"] = utcnow().isoformat()
        if ack is not None:
            links["ack"] = ack[:2000]
        row.links = links
        row.status = MessageStatus.SENT
        row.error = None
        await session.flush()
        return row

    async def mark_failed(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        message_id: uuid.UUID,
        error: str,
        *,
        retry: bool = True,
    ) -> InterfaceMessage:
        """A send attempt failed: keep ``error``; the message stays pending (to be retried)
        unless ``retry`` is False (the analyzer rejected it), which makes it ``failed``."""
        row = await self._outbound(session, organisation_id, message_id)
        links = dict(row.links or {})
        links["attempts"] = int(links.get("attempts") or 0) + 1
        row.links = links
        row.error = error[:2000]
        if not retry:
            row.status = MessageStatus.FAILED
        await session.flush()
        return row

    # --- ingestion -----------------------------------------------------------------------

    async def ingest_results(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument: Instrument,
        message: InstrumentMessage,
        *,
        protocol: str | None = None,
        stored: InterfaceMessage | None = None,
    ) -> IngestReport:
        """Store ``message`` (unless ``stored`` is given) and land its results as entered,
        unverified results; everything that cannot land becomes an exception. A duplicate
        (same dedupe key as an earlier message) is stored and nothing else happens."""
        if stored is None:
            [report] = await self.ingest_many(
                session, organisation_id, instrument, [message], protocol=protocol
            )
            return report
        if instrument.organisation_id != organisation_id:
            raise NotFound("No such instrument in your organisation.", entity="instrument")
        if stored.status == MessageStatus.DUPLICATE:
            return IngestReport(stored, duplicate=True)
        [report] = await self._land_messages(session, [(instrument, stored, message)])
        return report

    async def ingest_many(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument: Instrument,
        messages: Sequence[InstrumentMessage],
        *,
        protocol: str | None = None,
    ) -> list[IngestReport]:
        """``ingest_results`` for messages received back to back, in one transaction: each
        is stored (a re-sent one, even within ``messages``, as a duplicate) and all their
        results land in one go, in message order, as if ingested one after another."""
        return await self.ingest_received(
            session, organisation_id, [(instrument, m) for m in messages], protocol=protocol
        )

    async def ingest_received(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        received: Sequence[tuple[Instrument, InstrumentMessage]],
        *,
        protocol: str | None = None,
    ) -> list[IngestReport]:
        """``ingest_many`` for messages of several instruments of one organisation (those
        that queued up in an interfaces process), in arrival order: each result is entered
        in the name of the instrument that sent it, through that instrument's test map."""
        for instrument, _ in received:
            if instrument.organisation_id != organisation_id:
                raise NotFound("No such instrument in your organisation.", entity="instrument")
        reports: list[IngestReport | None] = []
        fresh: list[tuple[Instrument, InterfaceMessage, InstrumentMessage]] = []
        stored_all = await self._store_many(session, received, protocol)
        for (instrument, message), (stored, duplicate) in zip(received, stored_all, strict=True):
            if duplicate:
                reports.append(IngestReport(stored, duplicate=True))
            else:
                reports.append(None)
                fresh.append((instrument, stored, message))
        landed = iter(await self._land_messages(session, fresh))
        return [report or next(landed) for report in reports]

    async def _store_many(
        self,
        session: AsyncSession,
        received: Sequence[tuple[Instrument, InstrumentMessage]],
        protocol: str | None,
    ) -> list[tuple[InterfaceMessage, bool]]:
        """``store_inbound`` for each message, with one lookup and one INSERT for all (a
        key repeated within ``received`` from the same instrument makes the later ones
        duplicates)."""

        def protocol_of(instrument: Instrument) -> str:
            return protocol or (
                Protocol.HL7 if instrument.driver in _HL7_DRIVERS else Protocol.ASTM
            )

        async def one_by_one() -> list[tuple[InterfaceMessage, bool]]:
            return [
                await self.store_inbound(
                    session,
                    i.organisation_id,
                    i.id,
                    protocol_of(i),
                    m.dedupe_key,
                    m.message_type,
                    m.raw,
                )
                for i, m in received
            ]

        if len(received) < 2:
            return await one_by_one()
        org = received[0][0].organisation_id
        keys = [(i.id, _dedupe_key(m.dedupe_key)) for i, m in received]
        firsts: dict[tuple[uuid.UUID, str | None], InterfaceMessage] = {}
        if wanted := {k for _, k in keys if k is not None}:
            instruments = {i for i, k in keys if k is not None}
            firsts = {
                (row.instrument_id, row.dedupe_key): row
                for row in await session.scalars(
                    select(InterfaceMessage).where(
                        InterfaceMessage.organisation_id == org,
                        any_of(InterfaceMessage.instrument_id, instruments),
                        InterfaceMessage.direction == Direction.IN,
                        any_of(InterfaceMessage.dedupe_key, wanted),
                        InterfaceMessage.status != MessageStatus.DUPLICATE,
                    )
                )
            }
        stored: list[tuple[InterfaceMessage, bool]] = []
        for (instrument, message), key in zip(received, keys, strict=True):
            first = firsts.get(key) if key[1] is not None else None
            row = InterfaceMessage(
                id=new_id(),
                organisation_id=org,
                instrument_id=instrument.id,
                direction=Direction.IN,
                protocol=Protocol(protocol_of(instrument)),
                dedupe_key=key[1],
                message_type=message.message_type,
                raw=message.raw,
                received_at=utcnow(),
                status=MessageStatus.OK if first is None else MessageStatus.DUPLICATE,
                duplicate_of_id=None if first is None else first.id,
                links={},
            )
            if first is None and key[1] is not None:
                firsts[key] = row
            stored.append((row, first is not None))
        try:
            async with session.begin_nested():
                session.add_all([row for row, _ in stored])
                await session.flush()
        except IntegrityError:
            # Another connection stored one of them a moment ago: one by one, which copes.
            return await one_by_one()
        return stored

    async def _prefetch(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        items: Sequence[InstrumentResult],
        samples: dict[str, Sample | None],
        order_tests: dict[uuid.UUID, list[OrderTest]],
    ) -> None:
        """Fill ``_match``'s caches for all items with two queries (samples by accession,
        the tests of their orders as ``orders_service.tests_of`` lists them)."""
        accessions = {
            domain.normalize_accession(identifier)
            for item in items
            for identifier in _identifiers(item)
        }
        found = {
            row.accession: row
            for row in await session.scalars(
                select(Sample).where(
                    Sample.organisation_id == organisation_id,
                    any_of(Sample.accession, accessions),
                )
            )
        }
        for accession in accessions:
            samples[accession] = found.get(accession)
        orders = {s.order_id for s in found.values()}
        if not orders:
            return
        for order_id in orders:
            order_tests[order_id] = []
        for row in await session.scalars(
            select(OrderTest)
            .where(OrderTest.organisation_id == organisation_id, any_of(OrderTest.order_id, orders))
            .order_by(OrderTest.created_at, OrderTest.id)
        ):
            order_tests[row.order_id].append(row)

    async def _land_messages(
        self,
        session: AsyncSession,
        messages: Sequence[tuple[Instrument, InterfaceMessage, InstrumentMessage]],
    ) -> list[IngestReport]:
        """Land the results of stored messages (of one organisation); one report per
        message."""
        if not messages:
            return []
        organisation_id = messages[0][0].organisation_id
        instruments = {instrument.id: instrument for instrument, _, _ in messages}
        callers = {i: instrument_principal(instrument) for i, instrument in instruments.items()}
        codes = await self.codes_of(session, list(instruments.values()))
        samples: dict[str, Sample | None] = {}
        order_tests: dict[uuid.UUID, list[OrderTest]] = {}
        items: list[tuple[Instrument, InterfaceMessage, InstrumentResult]] = []
        indices: dict[tuple[uuid.UUID, str], dict[str, str]] = {}
        controls: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for instrument, stored, message in messages:
            settings = instrument.settings or {}
            control_ids = settings.get(domain.CONTROL_IDS_SETTING) or []
            if not isinstance(control_ids, list | tuple):
                control_ids = [str(control_ids)]
            patients: list[InstrumentResult] = []
            for item in message.results:
                if domain.is_control(item, control_ids):
                    test = codes[instrument.id].get(domain.normalize_code(item.instrument_code))
                    controls.setdefault(stored.id, []).append(
                        domain.control_item(item, test.id if test is not None else None)
                    )
                else:
                    patients.append(item)
            kept, found = domain.serum_indices(patients, domain.serum_index_codes(settings))
            for accession, values in found.items():
                indices[(stored.id, accession)] = values
            items.extend((instrument, stored, item) for item in kept)
        if len(messages) > 1:
            await self._prefetch(
                session, organisation_id, [i for _, _, i in items], samples, order_tests
            )
        matched: list[tuple[int, BatchEntry, dict[str, Any]]] = []
        skips: dict[int, _Skip] = {}
        for index, (instrument, stored, item) in enumerate(items):
            await pause_every(index)
            caller = callers[instrument.id]
            try:
                order_test, context, value = await self._match(
                    session, caller, item, codes[instrument.id], samples, order_tests
                )
            except _Skip as skip:
                skips[index] = skip
                continue
            raw = domain.result_raw(item, stored.id, instrument.name)
            serum = indices.get((stored.id, domain.normalize_accession(item.accession)))
            if serum:
                raw["indices"] = serum
            entry = BatchEntry(
                order_test.id,
                value,
                (item.unit or "").strip() or None,
                source=ResultSource.INSTRUMENT,
                instrument_flags=domain.join_flags(item.flags),
                raw=raw,
                caller=caller,
            )
            matched.append((index, entry, context))
        # All results in one go: the rules of one-by-one entry, a few statements in all.
        first_caller = callers[messages[0][0].id]
        outcomes = await results_service.enter_many(session, first_caller, [m[1] for m in matched])
        landed: dict[int, Result] = {}
        for (index, _, context), outcome in zip(matched, outcomes, strict=True):
            if isinstance(outcome, NidaanError):
                skips[index] = _skip_for(outcome, context)
            else:
                landed[index] = outcome.result
        reports = {stored.id: IngestReport(stored) for _, stored, _ in messages}
        for index, (instrument, stored, item) in enumerate(items):
            report = reports[stored.id]
            if index in landed:
                report.results.append(landed[index])
            else:
                report.exceptions.append(
                    await self._open_exception(
                        session, callers[instrument.id], instrument, stored, item, skips[index]
                    )
                )
        for report in reports.values():
            report.message.links = {
                "results": [str(r.id) for r in report.results],
                "exceptions": [str(e.id) for e in report.exceptions],
                "orders": sorted({str(r.order_id) for r in report.results}),
                "patients": sorted({str(r.patient_id) for r in report.results}),
            }
        for instrument, stored, _ in messages:
            if found_controls := controls.get(stored.id):
                reports[stored.id].controls = len(found_controls)
                stored.links = {**stored.links, "controls": len(found_controls)}
                await publish(
                    session,
                    ControlResultsReceived(
                        organisation_id=organisation_id,
                        instrument_id=instrument.id,
                        message_id=stored.id,
                        received_at=stored.received_at,
                        controls=tuple(found_controls),
                    ),
                )
        await session.flush()
        return list(reports.values())

    async def _match(
        self,
        session: AsyncSession,
        caller: Principal,
        item: InstrumentResult,
        codes: dict[str, CatalogTest],
        samples: dict[str, Sample | None],
        order_tests: dict[uuid.UUID, list[OrderTest]],
    ) -> tuple[OrderTest, dict[str, Any], str]:
        """The ordered test an instrument result lands on, the exception context and the
        value to enter; raises _Skip for what cannot land."""
        test = codes.get(domain.normalize_code(item.instrument_code))
        if item.unidentified:
            raise _Skip(
                ExceptionKind.UNIDENTIFIED_SAMPLE,
                f"Not matched to any sample: {item.unidentified}. Find the tube at that "
                "position and enter the result against it.",
                test_id=test.id if test is not None else None,
            )
        sample = await self._resolve_sample(session, caller, item, test, samples, order_tests)
        if test is None:
            raise _Skip(
                ExceptionKind.UNMAPPED_TEST,
                f"Code {item.instrument_code!r} is not in this instrument's test map.",
                sample=sample,
            )
        if sample is None:
            raise _Skip(
                ExceptionKind.UNKNOWN_SAMPLE,
                f"No sample with accession {domain.normalize_accession(item.accession)!r}.",
                test_id=test.id,
            )
        await self._load_order_tests(session, caller, sample.order_id, order_tests)
        candidates = [
            t
            for t in order_tests[sample.order_id]
            if t.sample_id == sample.id and t.test_id == test.id
        ]
        context: dict[str, Any] = {"sample": sample, "test_id": test.id}
        if not candidates:
            raise _Skip(
                ExceptionKind.NOT_ORDERED,
                f"{test.code} is not ordered on sample {sample.accession}.",
                **context,
            )
        live = [t for t in candidates if t.status != OrderTestStatus.CANCELLED]
        if not live:
            raise _Skip(
                ExceptionKind.CANCELLED_TEST,
                f"{test.code} was cancelled on this order.",
                order_test_id=candidates[-1].id,
                **context,
            )
        order_test = live[-1]
        context["order_test_id"] = order_test.id
        if order_test.status == OrderTestStatus.VERIFIED:
            raise _Skip(
                ExceptionKind.ALREADY_VERIFIED,
                f"{test.code} is already verified; a new value needs a correction.",
                **context,
            )
        if sample.status not in READY_SAMPLE_STATES:
            raise _Skip(
                ExceptionKind.NOT_RECEIVED,
                f"Sample {sample.accession} is {sample.status}, not received in the lab.",
                **context,
            )
        if test.result_type == ResultType.CALCULATED:
            raise _Skip(
                ExceptionKind.CALCULATED_TEST,
                f"{test.code} is calculated by Nidaan; map the instrument code to its inputs.",
                **context,
            )
        if not domain.has_value(item):
            raise _Skip(
                ExceptionKind.INVALID_VALUE,
                f"No value for {test.code} (status {item.status or '-'}).",
                **context,
            )
        return order_test, context, _entered_value(item, test)

    async def _load_order_tests(
        self,
        session: AsyncSession,
        caller: Principal,
        order_id: uuid.UUID,
        order_tests: dict[uuid.UUID, list[OrderTest]],
    ) -> list[OrderTest]:
        if order_id not in order_tests:
            order_tests[order_id] = await orders_service.tests_of(session, caller, order_id)
        return order_tests[order_id]

    async def _sample(
        self,
        session: AsyncSession,
        caller: Principal,
        identifier: str,
        samples: dict[str, Sample | None],
    ) -> Sample | None:
        """Our sample with this accession (cached per batch), else None."""
        accession = domain.normalize_accession(identifier)
        if accession not in samples:
            try:
                samples[accession] = await samples_service.get_by_accession(
                    session, caller, accession
                )
            except NotFound:
                samples[accession] = None
        return samples[accession]

    async def _resolve_sample(
        self,
        session: AsyncSession,
        caller: Principal,
        item: InstrumentResult,
        test: CatalogTest | None,
        samples: dict[str, Sample | None],
        order_tests: dict[uuid.UUID, list[OrderTest]],
    ) -> Sample | None:
        """The sample a result names. HL7 gives several identifiers: our accession in the
        filler number, then the specimen ids, then the placer number through a known placer
        mapping (our own accession, or a hospital's order placed here). Identifiers that are
        not ours are passed over; those that are must agree, else nothing is guessed."""
        ids = item.sample_ids
        if ids is None or not ids.given:
            return await self._sample(session, caller, item.accession, samples)
        named: list[tuple[str, Sample]] = []
        tried: list[str] = []
        if ids.filler:
            tried.append(f"filler number {ids.filler!r}")
            if (sample := await self._sample(session, caller, ids.filler, samples)) is not None:
                named.append((f"the filler number {ids.filler!r}", sample))
        for specimen in ids.specimen:
            tried.append(f"specimen id {specimen!r}")
            if (sample := await self._sample(session, caller, specimen, samples)) is not None:
                named.append((f"the specimen id {specimen!r}", sample))
        if ids.placer:
            tried.append(f"placer number {ids.placer!r}")
            for sample in await self._by_placer(
                session, caller, ids.placer, test, samples, order_tests
            ):
                named.append((f"the placer number {ids.placer!r}", sample))
        if not named:
            raise _Skip(
                ExceptionKind.UNKNOWN_SAMPLE,
                f"No sample of ours for the {', '.join(tried)}.",
                test_id=test.id if test is not None else None,
            )
        first_where, first = named[0]
        for where, other in named[1:]:
            if other.id != first.id:
                raise _Skip(
                    ExceptionKind.IDENTIFIER_CONFLICT,
                    f"The identifiers disagree: {first_where} is sample {first.accession} "
                    f"but {where} is sample {other.accession}; landed on neither.",
                    test_id=test.id if test is not None else None,
                )
        return first

    async def _by_placer(
        self,
        session: AsyncSession,
        caller: Principal,
        placer: str,
        test: CatalogTest | None,
        samples: dict[str, Sample | None],
        order_tests: dict[uuid.UUID, list[OrderTest]],
    ) -> list[Sample]:
        """Samples a placer order number is known to mean: our own accession (what we send
        as placer in order downloads), and the samples of a hospital's order with that
        placer number that carry the test."""
        found: dict[uuid.UUID, Sample] = {}
        if (own := await self._sample(session, caller, placer, samples)) is not None:
            found[own.id] = own
        orders = await session.scalars(
            select(HospitalOrder.order_id).where(
                HospitalOrder.organisation_id == caller.organisation_id,
                HospitalOrder.placer_number == placer.strip(),
            )
        )
        for order_id in orders:
            tests = await self._load_order_tests(session, caller, order_id, order_tests)
            sample_ids = {
                t.sample_id
                for t in tests
                if t.sample_id is not None and (test is None or t.test_id == test.id)
            }
            for sample_id in sample_ids - set(found):
                sample = await session.get(Sample, sample_id)
                if sample is not None and sample.organisation_id == caller.organisation_id:
                    found[sample.id] = sample
        return list(found.values())

    async def _open_exception(
        self,
        session: AsyncSession,
        caller: Principal,
        instrument: Instrument,
        message: InterfaceMessage,
        item: InstrumentResult,
        skip: _Skip,
    ) -> InterfaceException:
        row = InterfaceException(
            organisation_id=instrument.organisation_id,
            message_id=message.id,
            instrument_id=instrument.id,
            kind=skip.kind,
            detail=skip.detail[:500],
            accession=item.accession.strip()[:64] or None,
            instrument_code=item.instrument_code.strip()[:64] or None,
            value=(item.value or "")[:200] or None,
            unit=(item.unit or "")[:32] or None,
            flags=domain.join_flags(item.flags),
            instrument_status=(item.status or "")[:8] or None,
            completed_at=item.completed_at,
            raw_segment=item.raw_segment,
            sample_id=skip.sample.id if skip.sample else None,
            test_id=skip.test_id,
            order_test_id=skip.order_test_id,
            status=ExceptionStatus.OPEN,
        )
        session.add(row)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=instrument.organisation_id,
            actor=caller.actor,
            action="interface_exception.created",
            entity_type="interface_exception",
            entity_id=row.id,
            after=_exception_snapshot(row),
        )
        return row

    # --- exceptions queue ----------------------------------------------------------------

    async def list_exceptions(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        status: ExceptionStatus | None = None,
        kind: ExceptionKind | None = None,
        instrument_id: uuid.UUID | None = None,
        accession: str | None = None,
    ) -> tuple[list[InterfaceException], int]:
        """Exceptions, oldest first (a queue)."""
        statement = select(InterfaceException).where(
            InterfaceException.organisation_id == caller.organisation_id
        )
        if caller.branch_ids is not None:
            statement = statement.where(
                InterfaceException.instrument_id.in_(
                    select(Instrument.id).where(self._instruments_within_reach(caller))
                )
            )
        if status is not None:
            statement = statement.where(InterfaceException.status == status)
        if kind is not None:
            statement = statement.where(InterfaceException.kind == kind)
        if instrument_id is not None:
            statement = statement.where(InterfaceException.instrument_id == instrument_id)
        if accession:
            statement = statement.where(
                func.upper(InterfaceException.accession) == accession.strip().upper()
            )
        statement = statement.order_by(InterfaceException.created_at, InterfaceException.id)
        return await paginate(session, statement, page)

    async def get_exception(
        self, session: AsyncSession, caller: Principal, exception_id: uuid.UUID
    ) -> InterfaceException:
        row = await session.scalar(
            select(InterfaceException).where(
                InterfaceException.id == exception_id,
                InterfaceException.organisation_id == caller.organisation_id,
            )
        )
        if row is None:
            raise NotFound("No such interface exception.", entity="interface_exception")
        await self._require_exception_reach(session, caller, row)
        return row

    async def resolve_exception(
        self,
        session: AsyncSession,
        caller: Principal,
        exception_id: uuid.UUID,
        action: ResolutionAction,
        note: str,
        *,
        order_test_id: uuid.UUID | None = None,
        value: str | None = None,
        unit: str | None = None,
    ) -> InterfaceException:
        """Enter the value (the instrument's unless another is given) against an ordered
        test, or discard it; either way with a note."""
        row = await session.scalar(
            select(InterfaceException)
            .where(
                InterfaceException.id == exception_id,
                InterfaceException.organisation_id == caller.organisation_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is None:
            raise NotFound("No such interface exception.", entity="interface_exception")
        await self._require_exception_reach(session, caller, row)
        if row.status != ExceptionStatus.OPEN:
            raise ExceptionClosed(
                f"This exception is already {row.status}.", exception_status=row.status
            )
        before = _exception_snapshot(row)
        if action == ResolutionAction.ENTER:
            if order_test_id is None:
                raise InvalidInput("Choose the ordered test to enter the value for.")
            entered_value = (value or row.value or "").strip()
            if not entered_value:
                raise InvalidInput("The instrument sent no value; give one.", field="value")
            unchanged = value is None or value.strip() == (row.value or "").strip()
            result = await results_service.enter(
                session,
                caller,
                order_test_id,
                entered_value,
                (unit if unit is not None else row.unit) or None,
                comment=None,
                source=ResultSource.INSTRUMENT if unchanged else ResultSource.MANUAL,
                instrument_flags=row.flags if unchanged else None,
                raw={
                    "exception_id": str(row.id),
                    "message_id": str(row.message_id),
                    "instrument_code": row.instrument_code,
                    "accession": row.accession,
                    "value": row.value,
                    "unit": row.unit,
                    "flags": row.flags,
                    "segment": row.raw_segment,
                },
            )
            row.status = ExceptionStatus.RESOLVED
            row.result_id = result.id
            row.order_test_id = order_test_id
            verb = "resolved"
        else:
            row.status = ExceptionStatus.DISCARDED
            verb = "discarded"
        self._close(row, caller.actor, note)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action=f"interface_exception.{verb}",
            entity_type="interface_exception",
            entity_id=row.id,
            before=before,
            after=_exception_snapshot(row),
        )
        return row

    @staticmethod
    def _close(row: InterfaceException, actor: AuditActor, note: str) -> None:
        row.resolution_note = note.strip()[:500]
        row.resolved_by_kind = actor.kind
        row.resolved_by_id = actor.id
        row.resolved_by_label = actor.label
        row.resolved_at = utcnow()


integration_service = IntegrationService()
