"""Batch landing over real TCP lands every result exactly once, whatever the analyzers do.

Two analyzers (separate instruments, separate connections) upload at the same time to a
running supervisor; hypothesis chooses how many samples, which analyzer measures which, the
order each analyzer sends them in, and which messages it sends again (an analyzer that missed
our ACK re-sends the very same message, right after or much later). Whatever queues together
is landed in one transaction by the lander; a re-send must be kept as a duplicate and change
nothing, and the receive journal must end empty (everything acknowledged was landed).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from nidaan.audit.models import AuditLog
from nidaan.catalog.models import CatalogTest
from nidaan.config import Settings
from nidaan.integration.astm.protocol import Timers
from nidaan.integration.models import Instrument, InterfaceException, InterfaceMessage
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.results.models import Result
from nidaan.simulators import AnalyzerSimulator
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, make_lab, place_order, principal_of
from tests.integration.support import FAST, eventually, free_port

ANALYZER_TIMERS = Timers(ack=2, receive=2, busy=0.2, instrument_contention=0.1, interrupt_hold=0.2)
CODES = {"685": "GLU", "767": "CREA"}


@dataclass
class Floor:
    lab: Lab
    analyzers: list[Instrument]
    tests: list[CatalogTest]

    @property
    def org(self) -> uuid.UUID:
        return self.lab.organisation.id


@pytest.fixture
async def floor(committing_session: Any) -> Floor:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        tests = [
            await create_catalog_test(
                session,
                organisation,
                code=code,
                unit="mg/dL",
                ranges=[{"low": Decimal("1"), "high": Decimal("120")}],
            )
            for code in CODES.values()
        ]
        analyzers = []
        for name in ("cobas left", "cobas right"):
            instrument, _ = await integration_service.create_instrument(
                session,
                principal_of(lab.users["admin"]),
                InstrumentCreate(
                    name=name,
                    driver="roche-cobas",
                    transport="tcp-server",
                    host="127.0.0.1",
                    port=free_port(),
                    branch_id=lab.branch.id,
                    settings=FAST,
                    test_map=[MapEntryIn(instrument_code=i, test_code=t) for i, t in CODES.items()],
                ),
            )
            analyzers.append(instrument)
    return Floor(lab, analyzers, tests)


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


@st.composite
def uploads(draw: st.DrawFn) -> tuple[int, list[list[int]]]:
    """(samples, per analyzer the sample indexes it sends, in order, re-sends included)."""
    samples = draw(st.integers(1, 6))
    owner = draw(st.lists(st.integers(0, 1), min_size=samples, max_size=samples))
    plans: list[list[int]] = []
    for analyzer in (0, 1):
        mine = [i for i in range(samples) if owner[i] == analyzer]
        order = draw(st.permutations(mine))
        resent = draw(st.lists(st.sampled_from(mine), max_size=4)) if mine else []
        sends = list(order)
        for index in resent:
            # A re-send comes after the first copy: right after it or any time later.
            first = sends.index(index)
            sends.insert(draw(st.integers(first + 1, len(sends))), index)
        plans.append(sends)
    return samples, plans


async def _place(settings: Settings, floor: Floor, samples: int) -> list[tuple[str, uuid.UUID]]:
    """``samples`` new committed samples with GLU and CREA ordered: (accession, order id)."""
    placed = []
    async with session_scope(settings) as session:
        for _ in range(samples):
            patient = await create_patient(session, floor.lab.organisation)
            order = await place_order(session, floor.lab, patient, floor.tests)
            placed.append((order.sample.accession, order.order.id))
    return placed


async def _stored(settings: Settings, floor: Floor, accessions: set[str]) -> list[InterfaceMessage]:
    """The inbound messages of the floor's analyzers that carry one of ``accessions``."""
    async with session_scope(settings) as session:
        rows = await session.scalars(
            select(InterfaceMessage).where(
                InterfaceMessage.organisation_id == floor.org,
                InterfaceMessage.direction == "in",
            )
        )
        return [m for m in rows if any(f"|{a}|" in m.raw for a in accessions)]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=uploads())
async def test_resent_and_reordered_uploads_land_every_result_exactly_once(
    settings: Settings,
    floor: Floor,
    supervisor: InterfaceSupervisor,
    plan: tuple[int, list[list[int]]],
) -> None:
    samples, sends = plan
    placed = await _place(settings, floor, samples)
    accessions = {accession for accession, _ in placed}
    ports = [supervisor.port_of(a.id) for a in floor.analyzers]
    assert all(ports)
    values = {i: (str(40 + i), f"0.{i + 1}") for i in range(samples)}

    async def upload(analyzer: int) -> None:
        port = ports[analyzer]
        assert port is not None
        async with AnalyzerSimulator(
            "roche-cobas", "127.0.0.1", port, mode="client", timers=ANALYZER_TIMERS
        ) as sim:
            # Built once per sample: a re-send is the very same message.
            records = {
                i: sim.result_records(
                    placed[i][0],
                    [("685", values[i][0], "mg/dL", ""), ("767", values[i][1], "mg/dL", "")],
                )
                for i in set(sends[analyzer])
            }
            for index in sends[analyzer]:
                assert await sim.send_records(records[index]) > 0

    await asyncio.gather(upload(0), upload(1))
    total = sum(len(s) for s in sends)
    # Every message was acknowledged, so each is in the journal until landed.
    stored = await eventually(
        lambda: _stored(settings, floor, accessions), lambda rows: len(rows) == total, within=60
    )
    await eventually(
        lambda: asyncio.sleep(0, supervisor.journal.waiting), lambda n: n == 0, within=60
    )
    assert supervisor.journal.waiting == 0
    assert len(stored) == total
    assert sorted(m.status for m in stored) == sorted(
        ["ok"] * samples + ["duplicate"] * (total - samples)
    )
    originals = {m.id for m in stored if m.status == "ok"}
    assert {m.duplicate_of_id for m in stored if m.status == "duplicate"} <= originals

    orders = {order_id: i for i, (_, order_id) in enumerate(placed)}
    async with session_scope(settings) as session:
        results = list(
            await session.scalars(select(Result).where(Result.order_id.in_(list(orders))))
        )
        exceptions = await session.scalars(
            select(InterfaceException).where(InterfaceException.message_id.in_(originals))
        )
        assert list(exceptions) == []
        # Applied once: one ``result.entered`` each, never a re-entry by a re-sent copy.
        entries = list(
            await session.execute(
                select(AuditLog.entity_id, AuditLog.action).where(
                    AuditLog.organisation_id == floor.org,
                    AuditLog.entity_type == "result",
                    AuditLog.entity_id.in_([str(r.id) for r in results]),
                )
            )
        )
    assert sorted(entries) == sorted((str(r.id), "result.entered") for r in results)
    # Exactly one result per ordered test, each once, with the value that was sent.
    assert len(results) == 2 * samples
    assert len({r.order_test_id for r in results}) == 2 * samples
    assert all(r.result_version == 1 and r.is_current for r in results)
    by_test = {t.id: code for code, t in zip(CODES.values(), floor.tests, strict=True)}
    for result in results:
        sent = values[orders[result.order_id]]
        expected = sent[0] if by_test[result.test_id] == "GLU" else sent[1]
        assert result.entered_value == expected
        assert (result.raw or {})["message_id"] in {str(m) for m in originals}
