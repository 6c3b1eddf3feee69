"""Landing the result messages of several instruments together: ``ingest_received`` (one
transaction, each result through its own instrument's map and in its name), ``enter_many``
with per-entry callers, and the interfaces process's ``Lander`` (batches, the one-by-one
fallback, ``stop``), down to real analyzers uploading over TCP to a running supervisor."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.config import Settings
from nidaan.integration.astm.protocol import Timers
from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.landing import Lander
from nidaan.integration.models import Instrument, InterfaceMessage
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.kit.errors import NotFound
from nidaan.orders.enums import OrderTestStatus
from nidaan.orders.models import OrderTest
from nidaan.results.batch import BatchEntry, enter_many
from nidaan.results.models import Result
from nidaan.results.service import EntryOutcome
from nidaan.simulators import AnalyzerSimulator
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, PlacedOrder, make_lab, place_order, principal_of
from tests.integration.support import FAST, free_port

#: Analyzer-side E1381 timers (the simulators), short enough for a test.
ANALYZER_TIMERS = Timers(ack=2, receive=2, busy=0.2, instrument_contention=0.1, interrupt_hold=0.2)


async def _instrument(
    session: AsyncSession,
    lab: Lab,
    name: str,
    test_map: dict[str, str],
    *,
    port: int | None = None,
) -> Instrument:
    instrument, _ = await integration_service.create_instrument(
        session,
        principal_of(lab.users["admin"]),
        InstrumentCreate(
            name=name,
            driver="roche-cobas",
            transport="tcp-server",
            host="127.0.0.1",
            port=port or free_port(),
            branch_id=lab.branch.id,
            settings=FAST,
            test_map=[MapEntryIn(instrument_code=c, test_code=t) for c, t in test_map.items()],
        ),
    )
    return instrument


def _result(accession: str, code: str, value: str, unit: str = "mg/dL") -> InstrumentResult:
    return InstrumentResult(accession, code, value, unit, (), "F", None, f"R|1|^^^{code}/|{value}")


def _message(key: str | None, raw: str, *results: InstrumentResult) -> InstrumentMessage:
    return InstrumentMessage(dedupe_key=key, message_type="ASTM-R", results=list(results), raw=raw)


async def _audit(
    session: AsyncSession, entity_type: str, entity_id: Any, action: str
) -> list[AuditLog]:
    return list(
        await session.scalars(
            select(AuditLog).where(
                AuditLog.entity_type == entity_type,
                AuditLog.entity_id == str(entity_id),
                AuditLog.action == action,
            )
        )
    )


async def _count(session: AsyncSession, model: type, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@dataclass
class Bench:
    """One lab (rolled back with the test) with GLU and CREA ordered on one received sample."""

    lab: Lab
    placed: PlacedOrder

    @property
    def accession(self) -> str:
        return self.placed.sample.accession


@pytest.fixture
async def bench(session: AsyncSession, organisation: Organisation) -> Bench:
    lab = await make_lab(session, organisation)
    glu = await create_catalog_test(
        session,
        organisation,
        code="GLU",
        decimals=0,
        ranges=[{"low": Decimal("70"), "high": Decimal("100")}],
    )
    crea = await create_catalog_test(session, organisation, code="CREA")
    patient = await create_patient(session, organisation)
    return Bench(lab, await place_order(session, lab, patient, [glu, crea]))


# --- ingest_received ------------------------------------------------------------------------


async def test_each_instrument_maps_its_own_codes_and_enters_in_its_own_name(
    session: AsyncSession, organisation: Organisation, bench: Bench
) -> None:
    # The same analyzer code means glucose on one instrument and creatinine on the other.
    a = await _instrument(session, bench.lab, "cobas A", {"100": "GLU"})
    b = await _instrument(session, bench.lab, "cobas B", {"100": "CREA"})

    reports = await integration_service.ingest_received(
        session,
        organisation.id,
        [
            (a, _message("KA", "from A", _result(bench.accession, "100", "95"))),
            (b, _message("KB", "from B", _result(bench.accession, "100", "1.1"))),
        ],
    )

    assert [(r.duplicate, len(r.results), len(r.exceptions)) for r in reports] == [
        (False, 1, 0),
        (False, 1, 0),
    ]
    assert [r.message.instrument_id for r in reports] == [a.id, b.id]
    [from_a], [from_b] = reports[0].results, reports[1].results
    assert (from_a.order_test_id, from_a.entered_value, from_a.flag) == (
        bench.placed["GLU"].id,
        "95",
        "N",
    )
    assert (from_b.order_test_id, from_b.entered_value) == (bench.placed["CREA"].id, "1.1")
    assert (from_a.source, from_b.source) == ("instrument", "instrument")
    assert (from_a.raw or {})["instrument"] == "cobas A"
    assert (from_b.raw or {})["instrument"] == "cobas B"
    assert (from_a.raw or {})["message_id"] == str(reports[0].message.id)
    assert (from_b.raw or {})["message_id"] == str(reports[1].message.id)

    for result, instrument in ((from_a, a), (from_b, b)):
        who = ("instrument", instrument.id, f"instrument:{instrument.name}")
        [entered] = await _audit(session, "result", result.id, "result.entered")
        assert (entered.actor_kind, entered.actor_id, entered.actor_label) == who
        changed = await _audit(
            session, "order_test", result.order_test_id, "order_test.status_changed"
        )
        assert changed
        assert {(e.actor_kind, e.actor_id, e.actor_label) for e in changed} == {who}
    for order_test in (bench.placed["GLU"], bench.placed["CREA"]):
        await session.refresh(order_test)
        assert order_test.status != OrderTestStatus.ACTIVE
    # The sample started processing with the first result that touched it: cobas A's.
    [started] = await _audit(session, "sample", bench.placed.sample.id, "sample.processing_started")
    assert (started.actor_id, started.actor_label) == (a.id, "instrument:cobas A")


async def test_dedupe_keys_are_per_instrument(
    session: AsyncSession, organisation: Organisation, bench: Bench
) -> None:
    a = await _instrument(session, bench.lab, "cobas A", {"685": "GLU"})
    b = await _instrument(session, bench.lab, "cobas B", {"767": "CREA"})

    reports = await integration_service.ingest_received(
        session,
        organisation.id,
        [
            (a, _message("K1", "A first", _result(bench.accession, "685", "95"))),
            (b, _message("K1", "B first", _result(bench.accession, "767", "1.1"))),
            # A sends its K1 again (its first ACK was lost): recognised, applied nowhere.
            (a, _message("K1", "A again", _result(bench.accession, "685", "99"))),
        ],
    )

    assert [(r.duplicate, len(r.results), len(r.exceptions)) for r in reports] == [
        (False, 1, 0),
        (False, 1, 0),
        (True, 0, 0),
    ]
    assert [r.message.status for r in reports] == ["ok", "ok", "duplicate"]
    assert reports[0].message.duplicate_of_id is None
    assert reports[1].message.duplicate_of_id is None
    assert reports[2].message.duplicate_of_id == reports[0].message.id
    current = {
        r.order_test_id: r.entered_value
        for r in await session.scalars(
            select(Result).where(
                Result.order_id == bench.placed.order.id, Result.is_current.is_(True)
            )
        )
    }
    assert current == {bench.placed["GLU"].id: "95", bench.placed["CREA"].id: "1.1"}
    assert await _count(session, Result, Result.order_id == bench.placed.order.id) == 2

    # In a later call too, B's K1 is a duplicate of B's first message, not of A's.
    [again] = await integration_service.ingest_received(
        session,
        organisation.id,
        [(b, _message("K1", "B again", _result(bench.accession, "767", "7.7")))],
    )
    assert again.duplicate is True
    assert again.message.duplicate_of_id == reports[1].message.id
    stored = await session.scalars(
        select(InterfaceMessage).where(InterfaceMessage.organisation_id == organisation.id)
    )
    assert sorted((m.instrument_id == a.id, m.status) for m in stored) == [
        (False, "duplicate"),
        (False, "ok"),
        (True, "duplicate"),
        (True, "ok"),
    ]


async def test_an_instrument_of_another_organisation_is_refused_and_nothing_stored(
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
    bench: Bench,
) -> None:
    ours = await _instrument(session, bench.lab, "cobas A", {"685": "GLU"})
    other_lab = await make_lab(session, other_organisation)
    await create_catalog_test(session, other_organisation, code="GLU")
    theirs = await _instrument(session, other_lab, "cobas X", {"685": "GLU"})
    messages_before = await _count(session, InterfaceMessage)
    audit_before = await _count(session, AuditLog)

    with pytest.raises(NotFound):
        await integration_service.ingest_received(
            session,
            organisation.id,
            [
                (ours, _message("K1", "ours", _result(bench.accession, "685", "95"))),
                (theirs, _message("K2", "theirs", _result(bench.accession, "685", "96"))),
            ],
        )
    # Named as the other organisation, our instrument is the foreign one.
    with pytest.raises(NotFound):
        await integration_service.ingest_received(
            session,
            other_organisation.id,
            [(ours, _message("K3", "ours", _result(bench.accession, "685", "97")))],
        )

    assert await _count(session, InterfaceMessage) == messages_before
    assert await _count(session, AuditLog) == audit_before
    assert await _count(session, Result, Result.order_id == bench.placed.order.id) == 0
    # The session is still usable: the same message of our own instrument lands.
    [report] = await integration_service.ingest_received(
        session,
        organisation.id,
        [(ours, _message("K1", "ours", _result(bench.accession, "685", "95")))],
    )
    assert (report.duplicate, len(report.results)) == (False, 1)


# --- enter_many with per-entry callers ----------------------------------------------------


async def test_enter_many_refuses_a_caller_of_another_organisation_and_writes_nothing(
    session: AsyncSession, other_organisation: Organisation, bench: Bench
) -> None:
    other_lab = await make_lab(session, other_organisation)
    tech = principal_of(bench.lab.users["tech"])
    foreign = principal_of(other_lab.users["tech"])
    glu, crea = bench.placed["GLU"], bench.placed["CREA"]
    audit_before = await _count(session, AuditLog)

    with pytest.raises(ValueError, match="organisation"):
        await enter_many(
            session,
            tech,
            [
                BatchEntry(glu.id, "95", None),  # fine on its own
                BatchEntry(crea.id, "1.1", None, caller=foreign),
            ],
        )

    assert await _count(session, Result, Result.order_id == bench.placed.order.id) == 0
    assert await _count(session, AuditLog) == audit_before
    statuses = await session.scalars(
        select(OrderTest.status).where(OrderTest.order_id == bench.placed.order.id)
    )
    assert set(statuses) == {OrderTestStatus.ACTIVE}


async def test_enter_many_enters_each_entry_as_its_own_caller(
    session: AsyncSession, bench: Bench
) -> None:
    tech = principal_of(bench.lab.users["tech"])
    pathologist = principal_of(bench.lab.users["path"])
    glu, crea = bench.placed["GLU"], bench.placed["CREA"]

    outcomes = await enter_many(
        session,
        tech,
        [BatchEntry(glu.id, "95", None), BatchEntry(crea.id, "1.1", None, caller=pathologist)],
    )

    assert all(isinstance(o, EntryOutcome) and o.created for o in outcomes)
    results = [o.result for o in outcomes if isinstance(o, EntryOutcome)]
    for result, who in zip(results, (tech, pathologist), strict=True):
        [entered] = await _audit(session, "result", result.id, "result.entered")
        assert (entered.actor_id, entered.actor_label) == (who.id, who.label)
        [changed] = await _audit(
            session, "order_test", result.order_test_id, "order_test.status_changed"
        )
        assert changed.actor_id == who.id
    # The sample moved on with its first entry, the batch caller's.
    [started] = await _audit(session, "sample", bench.placed.sample.id, "sample.processing_started")
    assert started.actor_id == tech.id


# --- committed worlds (the lander and the supervisor use their own transactions) -----------


@dataclass
class Floor:
    """A committed lab: two cobas analyzers (tcp-server) and six samples, GLU + CREA each."""

    lab: Lab
    analyzers: list[Instrument]
    orders: list[PlacedOrder]

    @property
    def org(self) -> uuid.UUID:
        return self.lab.organisation.id


@pytest.fixture
async def floor(committing_session: Any) -> Floor:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        glu = await create_catalog_test(session, organisation, code="GLU", unit="mg/dL")
        crea = await create_catalog_test(session, organisation, code="CREA")
        mapping = {"685": "GLU", "767": "CREA"}
        analyzers = [
            await _instrument(session, lab, "cobas one", mapping),
            await _instrument(session, lab, "cobas two", mapping),
        ]
        patient = await create_patient(session, organisation)
        orders = [await place_order(session, lab, patient, [glu, crea]) for _ in range(6)]
    return Floor(lab, analyzers, orders)


async def _landed(settings: Settings, org: uuid.UUID) -> list[tuple[Result, AuditLog]]:
    """Every result of the organisation with its ``result.entered`` audit entry."""
    async with session_scope(settings) as session:
        rows = await session.execute(
            select(Result, AuditLog)
            .join(
                AuditLog,
                (AuditLog.entity_id == cast(Result.id, Text))
                & (AuditLog.action == "result.entered"),
            )
            .where(Result.organisation_id == org)
        )
        return [(result, entry) for result, entry in rows]


async def _inbound(settings: Settings, org: uuid.UUID) -> list[InterfaceMessage]:
    async with session_scope(settings) as session:
        return list(
            await session.scalars(
                select(InterfaceMessage).where(
                    InterfaceMessage.organisation_id == org, InterfaceMessage.direction == "in"
                )
            )
        )


@pytest.fixture
async def supervisor(settings: Settings, floor: Floor) -> AsyncIterator[InterfaceSupervisor]:
    running = InterfaceSupervisor(
        settings, reload_interval=0.3, listen_host="127.0.0.1", organisation_id=floor.org
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_two_analyzers_uploading_at_once_land_each_result_in_its_analyzers_name(
    settings: Settings, floor: Floor, supervisor: InterfaceSupervisor
) -> None:
    assert supervisor.lander.running
    ports = [supervisor.port_of(a.id) for a in floor.analyzers]
    assert all(ports)
    sent_by = {}  # accession -> the instrument it was sent to
    plan = []
    for n, (analyzer, port) in enumerate(zip(floor.analyzers, ports, strict=True)):
        samples = floor.orders[3 * n : 3 * n + 3]
        sent_by.update({p.sample.accession: analyzer for p in samples})
        plan.append((port, samples))

    async def upload(port: int, samples: list[PlacedOrder]) -> None:
        async with AnalyzerSimulator(
            "roche-cobas", "127.0.0.1", port, mode="client", timers=ANALYZER_TIMERS
        ) as sim:
            for placed in samples:
                report = await sim.upload_results(
                    placed.sample.accession,
                    [("685", "182", "mg/dL", "H"), ("767", "0.9", "mg/dL", "N")],
                )
                assert report.ok, report.error

    await asyncio.gather(*(upload(port, samples) for port, samples in plan))
    # Everything was acknowledged; stopping lands whatever is still queued.
    await supervisor.stop()

    messages = len(floor.orders)
    assert supervisor.lander.messages == messages
    assert 1 <= supervisor.lander.batches <= messages
    assert not supervisor.lander.running
    inbound = await _inbound(settings, floor.org)
    assert sorted(m.status for m in inbound) == ["ok"] * messages
    assert sorted(str(m.instrument_id) for m in inbound) == sorted(
        [str(floor.analyzers[0].id)] * 3 + [str(floor.analyzers[1].id)] * 3
    )
    landed = await _landed(settings, floor.org)
    assert len(landed) == 2 * messages
    by_order = {p.order.id: p for p in floor.orders}
    for result, entered in landed:
        analyzer = sent_by[by_order[result.order_id].sample.accession]
        assert (entered.actor_kind, entered.actor_id, entered.actor_label) == (
            "instrument",
            analyzer.id,
            f"instrument:{analyzer.name}",
        )
        assert (result.raw or {})["instrument"] == analyzer.name
        message = next(m for m in inbound if str(m.id) == (result.raw or {})["message_id"])
        assert message.instrument_id == analyzer.id
    assert {(r.order_id, r.test_id) for r, _ in landed} == {
        (p.order.id, t.test_id) for p in floor.orders for t in p.tests.values()
    }


# --- the Lander itself ------------------------------------------------------------------------


class Source:
    """A LandingSource for one committed instrument, whose messages are InstrumentMessages
    already (``parsed``). ``to_message`` refuses the raws in ``unreadable`` (as a driver that
    cannot read a message would); ``land_alone`` lands one message as the runtime's
    connection does: ingested in its own transaction, or kept as an error message."""

    def __init__(
        self, settings: Settings, instrument: Instrument, unreadable: tuple[str, ...] = ()
    ) -> None:
        self.settings = settings
        self.instrument_id = instrument.id
        self.organisation_id = instrument.organisation_id
        self.name = instrument.name
        self.unreadable = set(unreadable)
        self.alone: list[str] = []
        self.counts: list[int] = []

    def to_message(self, parsed: Any, raw: str) -> InstrumentMessage:
        if raw in self.unreadable:
            raise ValueError(f"cannot read {raw!r}")
        assert isinstance(parsed, InstrumentMessage)
        return parsed

    async def land_alone(self, parsed: Any, raw: str) -> bool:
        self.alone.append(raw)
        try:
            message = self.to_message(parsed, raw)
            async with session_scope(self.settings) as session:
                instrument = await session.get(Instrument, self.instrument_id)
                assert instrument is not None
                await integration_service.ingest_results(
                    session, self.organisation_id, instrument, message
                )
        except Exception as exc:
            async with session_scope(self.settings) as session:
                await integration_service.store_unparsable(
                    session, self.organisation_id, self.instrument_id, "astm", raw, f"{exc}"
                )
        return True

    def landed(self, count: int) -> None:
        self.counts.append(count)


def _upload(placed: PlacedOrder, raw: str, glu: str = "182") -> InstrumentMessage:
    accession = placed.sample.accession
    return _message(
        f"key {raw}", raw, _result(accession, "685", glu), _result(accession, "767", "0.9")
    )


async def test_stop_lands_what_queued_without_a_running_task_in_one_transaction(
    settings: Settings, floor: Floor
) -> None:
    lander = Lander(settings)
    one, two = (Source(settings, a) for a in floor.analyzers)
    queued = [
        (one, _upload(floor.orders[0], "one-0")),
        (two, _upload(floor.orders[1], "two-1")),
        (one, _upload(floor.orders[2], "one-2")),
    ]
    done = [lander.submit(source, message, message.raw) for source, message in queued]
    assert not lander.running
    assert not any(f.done() for f in done)

    await lander.stop()

    assert all(f.done() and f.exception() is None for f in done)
    assert (lander.batches, lander.messages) == (1, 3)
    assert (one.counts, two.counts) == ([2], [1])
    assert one.alone == two.alone == []
    landed = await _landed(settings, floor.org)
    assert len(landed) == 6
    expected = {0: floor.analyzers[0], 1: floor.analyzers[1], 2: floor.analyzers[0]}
    for n, analyzer in expected.items():
        mine = [(r, e) for r, e in landed if r.order_id == floor.orders[n].order.id]
        assert len(mine) == 2
        assert {e.actor_id for _, e in mine} == {analyzer.id}
    # Nothing is left: stopping again lands nothing more.
    await lander.stop()
    assert (lander.batches, lander.messages) == (1, 3)


async def test_a_batch_that_cannot_land_together_lands_one_by_one_and_keeps_the_bad_one(
    settings: Settings, floor: Floor
) -> None:
    lander = Lander(settings)
    one = Source(settings, floor.analyzers[0])
    two = Source(settings, floor.analyzers[1], unreadable=("two-bad",))
    queued = [
        (one, _upload(floor.orders[0], "one-0")),
        (two, _upload(floor.orders[1], "two-bad")),
        (one, _upload(floor.orders[2], "one-2", glu="95")),
        (two, _upload(floor.orders[3], "two-3")),
    ]
    done = [lander.submit(source, message, message.raw) for source, message in queued]
    lander.start()
    await asyncio.wait_for(asyncio.gather(*done), 30)
    await lander.stop()

    assert all(f.done() and f.exception() is None for f in done)
    # Nothing landed together: every message went through its own connection, in order.
    assert (lander.batches, lander.messages) == (0, 0)
    assert one.alone == ["one-0", "one-2"]
    assert two.alone == ["two-bad", "two-3"]
    assert one.counts == two.counts == []
    inbound = {m.raw: m for m in await _inbound(settings, floor.org)}
    assert sorted(inbound) == ["one-0", "one-2", "two-3", "two-bad"]
    assert {raw: m.status for raw, m in inbound.items()} == {
        "one-0": "ok",
        "one-2": "ok",
        "two-3": "ok",
        "two-bad": "error",
    }
    assert "cannot read" in (inbound["two-bad"].error or "")
    assert inbound["two-bad"].instrument_id == floor.analyzers[1].id
    landed = await _landed(settings, floor.org)
    by_order: dict[uuid.UUID, set[uuid.UUID | None]] = {}
    for result, entered in landed:
        by_order.setdefault(result.order_id, set()).add(entered.actor_id)
    assert by_order == {
        floor.orders[0].order.id: {floor.analyzers[0].id},
        floor.orders[2].order.id: {floor.analyzers[0].id},
        floor.orders[3].order.id: {floor.analyzers[1].id},
    }
    assert len(landed) == 6


async def test_a_running_lander_lands_each_organisation_in_its_own_transaction(
    settings: Settings, committing_session: Any, floor: Floor
) -> None:
    # A second lab, committed too, whose analyzer's message queues among the first lab's.
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        glu = await create_catalog_test(session, organisation, code="GLU")
        crea = await create_catalog_test(session, organisation, code="CREA")
        elsewhere = await _instrument(session, lab, "cobas far", {"685": "GLU", "767": "CREA"})
        far = await place_order(
            session, lab, await create_patient(session, organisation), [glu, crea]
        )
    lander = Lander(settings)
    one, two = (Source(settings, a) for a in floor.analyzers)
    other = Source(settings, elsewhere)
    queued = [
        (one, _upload(floor.orders[0], "one-0")),
        (other, _upload(far, "far")),
        (two, _upload(floor.orders[1], "two-1")),
    ]
    done = [lander.submit(source, message, message.raw) for source, message in queued]
    lander.start()
    await asyncio.wait_for(asyncio.gather(*done), 30)
    await lander.stop()

    # Queued before the task started, all three were taken as one batch: two organisations.
    assert (lander.batches, lander.messages) == (2, 3)
    assert (one.counts, two.counts, other.counts) == ([1], [1], [1])
    assert one.alone == two.alone == other.alone == []
    assert len(await _landed(settings, floor.org)) == 4
    theirs = await _landed(settings, organisation.id)
    assert len(theirs) == 2
    assert {e.actor_id for _, e in theirs} == {elsewhere.id}
    assert {e.organisation_id for _, e in theirs} == {organisation.id}
    assert [m.status for m in await _inbound(settings, organisation.id)] == ["ok"]
