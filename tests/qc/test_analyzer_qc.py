"""Quality control from the bench: the analyzer simulator sends control results over real TCP
(ASTM E1381 frames, HL7 over MLLP) in each vendor's layout; the interface runtime lands them
as controls (never matched to a patient) and quality control records them against the lot
the control id names, with z-scores and Westgard rules. Unknown control ids are kept."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from nidaan.config import Settings
from nidaan.events.models import OutboxEvent
from nidaan.events.registry import load_handler_modules
from nidaan.events.tasks import deliver
from nidaan.integration.models import Instrument
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.qc.enums import TargetSource
from nidaan.qc.models import QcLot, QcResult, QcUnmatched, QcViolation
from nidaan.qc.schemas import LotCreate, MaterialCreate
from nidaan.qc.service import qc_service
from nidaan.results.models import Result
from nidaan.simulators.analyzer import AnalyzerSimulator
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, make_lab, principal_of
from tests.integration.support import FAST, eventually, free_port

#: Driver -> the code the analyzer sends for glucose.
DRIVERS = {
    "roche-cobas": "685",
    "abbott-architect": "GLU",
    "beckman-dxh": "GLU",
    "generic-astm": "GLU",
    "generic-hl7": "GLU",
}
MEAN, SD = Decimal("100"), Decimal("4")


@dataclass
class Floor:
    lab: Lab
    instruments: dict[str, Instrument]
    lots: dict[str, QcLot]  # by driver

    @property
    def org(self) -> uuid.UUID:
        return self.lab.organisation.id


@pytest.fixture
async def floor(committing_session: Any) -> Floor:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        glucose = await create_catalog_test(
            session, organisation, code="GLU", unit="mg/dL", decimals=0
        )
        admin, path = principal_of(lab.users["admin"]), principal_of(lab.users["path"])
        instruments, lots = {}, {}
        for driver, code in DRIVERS.items():
            instruments[driver], _ = await integration_service.create_instrument(
                session,
                admin,
                InstrumentCreate(
                    name=f"{driver} bench",
                    driver=driver,
                    transport="tcp-server",
                    host="127.0.0.1",
                    port=free_port(),
                    branch_id=lab.branch.id,
                    settings={**FAST, "control_ids": ["QC*"]},
                    test_map=[MapEntryIn(instrument_code=code, test_code="GLU")],
                ),
            )
            material = await qc_service.create_material(
                session, path, MaterialCreate(name=f"Chem {driver}", level="1")
            )
            lots[driver] = await qc_service.create_lot(
                session,
                path,
                LotCreate(
                    material_id=material.id,
                    lot_number="L1-2601",
                    expires_on=date.today() + timedelta(days=90),
                    instrument_id=instruments[driver].id,
                    test_id=glucose.id,
                    control_id="QC1",
                    target_source=TargetSource.MANUFACTURER,
                    mean=MEAN,
                    sd=SD,
                ),
            )
    return Floor(lab, instruments, lots)


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


async def deliver_to_qc(settings: Settings, organisation_id: uuid.UUID) -> int:
    """Run the QC subscriber's job for every control event of the organisation (the worker's
    ``events.deliver``; a delivered pair is claimed, so running it twice is harmless)."""
    load_handler_modules()
    async with session_scope(settings) as session:
        ids = list(
            await session.scalars(
                select(OutboxEvent.id).where(
                    OutboxEvent.organisation_id == organisation_id,
                    OutboxEvent.name == "integration.control_results_received",
                )
            )
        )
    for event_id in ids:
        await deliver(event_id=str(event_id), subscriber="qc.record_control_results")
    return len(ids)


async def qc_rows(settings: Settings, lot_id: uuid.UUID) -> list[QcResult]:
    async with session_scope(settings) as session:
        return list(
            await session.scalars(
                select(QcResult).where(QcResult.lot_id == lot_id).order_by(QcResult.created_at)
            )
        )


@pytest.mark.parametrize("driver", list(DRIVERS))
async def test_each_analyzer_layout_sends_qc_that_lands_on_its_lot(
    settings: Settings, floor: Floor, supervisor: InterfaceSupervisor, driver: str
) -> None:
    instrument = floor.instruments[driver]
    port = supervisor.port_of(instrument.id)
    assert port is not None
    code = DRIVERS[driver]
    async with AnalyzerSimulator(driver, "127.0.0.1", port) as sim:
        sent = await sim.upload_controls(
            "QC1", [(code, "113", "mg/dL", None)], lot="L1-2601"
        )  # +3.25 SD: 1-3s
        assert sent.ok
        if driver == "generic-hl7":
            assert sent.ack == "AA"
            assert any(s.startswith("SPM|") and s.endswith("|Q") for s in sent.records)
        else:
            assert sent.records[0].split("|")[11] == "Q"  # H-12 processing id
    await eventually(lambda: deliver_to_qc(settings, floor.org), lambda n: n >= 1, within=10)
    [row] = await eventually(lambda: qc_rows(settings, floor.lots[driver].id), bool, within=10)
    assert row.source == "instrument"
    assert row.instrument_id == instrument.id
    assert row.value == Decimal("113")
    assert row.z == Decimal("3.2500")
    assert row.message_id is not None
    async with session_scope(settings) as session:
        violations = list(
            await session.scalars(select(QcViolation).where(QcViolation.qc_result_id == row.id))
        )
        patient_results = await session.scalar(
            select(Result.id).where(Result.organisation_id == floor.org)
        )
    assert sorted((v.rule, v.severity) for v in violations) == [
        ("1-2s", "warning"),
        ("1-3s", "reject"),
    ]
    assert patient_results is None  # a control never becomes a patient result


async def test_an_unknown_control_id_or_lot_is_kept_with_the_reason(
    settings: Settings, floor: Floor, supervisor: InterfaceSupervisor
) -> None:
    port = supervisor.port_of(floor.instruments["abbott-architect"].id)
    assert port is not None
    async with AnalyzerSimulator("abbott-architect", "127.0.0.1", port) as sim:
        await sim.upload_controls("QC7", [("GLU", "100", "mg/dL", None)], lot="L1-2601")
        await sim.upload_controls("QC1", [("GLU", "100", "mg/dL", None)], lot="OTHER-LOT")
    await eventually(lambda: deliver_to_qc(settings, floor.org), lambda n: n >= 2, within=10)

    async def unmatched() -> list[QcUnmatched]:
        async with session_scope(settings) as session:
            return list(
                await session.scalars(
                    select(QcUnmatched)
                    .where(QcUnmatched.organisation_id == floor.org)
                    .order_by(QcUnmatched.created_at)
                )
            )

    rows = await eventually(unmatched, lambda found: len(found) == 2, within=10)
    # Both may be delivered in one transaction (same created_at): match them by reason.
    reasons = [row.reason for row in rows]
    assert any("no control lot in use for GLU with control id QC7" in r for r in reasons), reasons
    assert any("ran control lot OTHER-LOT" in r for r in reasons), reasons
    assert await qc_rows(settings, floor.lots["abbott-architect"].id) == []


@given(
    z=st.decimals(min_value=-6, max_value=6, places=2),
    control_id=st.from_regex(r"QC[0-9A-Z]{1,6}", fullmatch=True),
    lot=st.from_regex(r"[0-9A-Z]{1,10}", fullmatch=True),
)
@hsettings(max_examples=40, deadline=None)
def test_control_records_survive_the_wire_for_any_value(
    z: Decimal, control_id: str, lot: str
) -> None:
    """The records the simulator builds parse back (driver) as a control with the same value,
    control id and (ARCHITECT) lot, whatever they are."""
    from nidaan.integration.drivers import load_all
    from nidaan.integration.drivers.base import get_driver

    load_all()
    value = str(MEAN + z * SD)
    for driver, code in DRIVERS.items():
        sim = AnalyzerSimulator(driver, "127.0.0.1", 1)
        if driver == "generic-hl7":
            raw = str(sim.hl7_oru(control_id, [(code, value, "mg/dL", None)], control=True))
        else:
            raw = "\r".join(
                sim.result_records(
                    control_id, [(code, value, "mg/dL", None)], control=True, lot=lot
                )
            )
        parser = get_driver(driver)
        [result] = parser.to_instrument_message(parser.parse(raw), raw).results
        assert (result.value, result.accession, result.control) == (value, control_id, True)
        if driver == "abbott-architect":
            assert result.control_lot == lot


async def test_the_command_line_simulator_sends_qc_with_the_qc_flag() -> None:
    """`nidaan analyzer-sim --qc --upload QC1 ...` sends a control message (H-12 ``Q``) that the
    LIS side reads as quality control."""
    import sys
    from pathlib import Path

    from nidaan.integration.astm.protocol import LinkOptions, Timers
    from nidaan.integration.astm.transport import ASTMServer
    from nidaan.integration.drivers import load_all
    from nidaan.integration.drivers.base import get_driver

    load_all()
    inbox: asyncio.Queue[list[str]] = asyncio.Queue()

    async def received(records: list[str], frames: list[bytes]) -> None:
        inbox.put_nowait(records)

    server = ASTMServer(
        "127.0.0.1", 0, received, LinkOptions(role="host", timers=Timers(ack=2, receive=2))
    )
    await server.start()
    try:
        sim = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "nidaan"),
            "analyzer-sim",
            "--driver",
            "roche-cobas",
            "--port",
            str(server.port),
            "--qc",
            "--upload",
            "QC2",
            "--codes",
            "685",
            "--values",
            "251",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(sim.communicate(), 60)
        assert sim.returncode == 0, output.decode()
        records = await asyncio.wait_for(inbox.get(), 10)
    finally:
        await server.close()
    driver = get_driver("roche-cobas")
    [result] = driver.to_instrument_message(driver.parse(records), "\r".join(records)).results
    assert (result.accession, result.value, result.control) == ("QC2", "251", True)
