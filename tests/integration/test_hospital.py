"""Hospital systems end to end over real MLLP sockets: ADT creates and updates patients, ORM
places orders through the connection's test map (unmapped codes -> exceptions queue), and
verified results go back to the hospital as ORU^R01 under its placer order number."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from nidaan.audit.models import AuditLog
from nidaan.config import Settings
from nidaan.integration.hl7.ack import build_ack
from nidaan.integration.hl7.message import Message, decode_payload, format_ts
from nidaan.integration.hl7.mllp import MLLPClient, MLLPServer
from nidaan.integration.models import (
    ExternalPatientId,
    HospitalOrder,
    Instrument,
    InterfaceException,
    InterfaceMessage,
)
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import close_job_app, open_job_app, run_pending_jobs
from nidaan.orders.models import Order, OrderTest
from nidaan.patients.models import Patient
from nidaan.results.service import results_service
from nidaan.samples.models import Sample
from nidaan.samples.service import samples_service
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, enter_and_verify, make_lab, principal_of
from tests.integration.support import eventually, free_port

# Registers the report renderer (ResultsVerified -> report.finalized) in this process.
import nidaan.reports.handlers  # noqa: F401  isort: skip

MSH = "MSH|^~\\&|HIS|CITYHOSP|NIDAAN|LAB|20261127101500||{type}|{control}|P|2.5.1"
PID = "PID|1||{mrn}^^^CITYHOSP^MR||{name}||{dob}|F|||||{phone}"


def adt(
    control: str,
    event: str,
    *,
    mrn: str = "H123456",
    name: str = "VERMA^ASHA",
    dob: str = "19800412",
    phone: str = "9812345678",
) -> str:
    return "\r".join(
        [
            MSH.format(type=f"ADT^{event}^ADT_A01", control=control),
            f"EVN|{event}|20261127101500",
            PID.format(mrn=mrn, name=name, dob=dob, phone=phone),
            "PV1|1|I|WARD1^101^A",
        ]
    )


def orm(control: str, placer: str, codes: list[str], *, control_code: str = "NW") -> str:
    lines = [
        MSH.format(type="ORM^O01^ORM_O01", control=control),
        PID.format(mrn="H123456", name="VERMA^ASHA", dob="19800412", phone=""),
        "PV1|1|O",
    ]
    for n, code in enumerate(codes, start=1):
        lines.append(f"ORC|{control_code}|{placer}||||||||||D123^SHARMA^RAVI")
        lines.append(f"OBR|{n}|{placer}||{code}^Hospital {code}^L|||20261127100000")
    return "\r".join(lines)


@pytest.fixture(scope="module")
async def job_app_open(settings: Settings) -> AsyncIterator[None]:
    await open_job_app(settings)
    yield
    await close_job_app()


pytestmark = pytest.mark.usefixtures("job_app_open")


@dataclass
class World:
    lab: Lab
    his: Instrument
    his_port: int  # where the "hospital" listens for our ORU^R01

    @property
    def org(self) -> uuid.UUID:
        return self.lab.organisation.id


@pytest.fixture
async def world(committing_session: Any) -> World:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        await create_catalog_test(
            session,
            organisation,
            code="GLU",
            name="Glucose, fasting",
            unit="mg/dL",
            decimals=0,
            ranges=[{"low": Decimal("70"), "high": Decimal("100")}],
        )
        await create_catalog_test(
            session,
            organisation,
            code="CREA",
            name="Creatinine",
            unit="mg/dL",
            ranges=[{"low": Decimal("0.6"), "high": Decimal("1.1")}],
        )
        his_port = free_port()
        his, _ = await integration_service.create_instrument(
            session,
            principal_of(lab.users["admin"]),
            InstrumentCreate(
                name="City Hospital HIS",
                driver="hospital-hl7",
                transport="tcp-server",
                host="127.0.0.1",
                port=free_port(),
                branch_id=lab.branch.id,
                settings={
                    "results_host": "127.0.0.1",
                    "results_port": his_port,
                    "send_timeout": 2,
                },
                test_map=[
                    MapEntryIn(instrument_code="GLU-F", test_code="GLU"),
                    MapEntryIn(instrument_code="CRE", test_code="CREA"),
                ],
            ),
        )
    return World(lab, his, his_port)


@pytest.fixture
async def supervisor(settings: Settings, world: World) -> AsyncIterator[InterfaceSupervisor]:
    running = InterfaceSupervisor(
        settings,
        reload_interval=0.3,
        listen_host="127.0.0.1",
        organisation_id=world.org,
        outbound_interval=0.1,
        outbound_backoff_max=0.5,
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def send(supervisor: InterfaceSupervisor, world: World, text: str) -> Message:
    """Play the hospital: one message over MLLP, the LIS's ACK back."""
    port = supervisor.port_of(world.his.id)
    assert port is not None
    async with MLLPClient("127.0.0.1", port, ack_timeout=10, max_attempts=1) as client:
        return await client.send(text)


def msa(ack: Message) -> tuple[str, str, str]:
    seg = ack.segment("MSA")
    assert seg is not None
    return seg.get(1), seg.get(2), seg.get(3)


async def linked_patient(settings: Settings, world: World, mrn: str) -> Patient | None:
    async with session_scope(settings) as session:
        link = await session.scalar(
            select(ExternalPatientId).where(
                ExternalPatientId.instrument_id == world.his.id,
                ExternalPatientId.external_id == mrn,
            )
        )
        return None if link is None else await session.get(Patient, link.patient_id)


async def test_adt_registers_then_updates_and_resends_are_not_applied(
    settings: Settings, world: World, supervisor: InterfaceSupervisor
) -> None:
    ack = await send(supervisor, world, adt("ADT0001", "A01"))
    assert msa(ack)[:2] == ("AA", "ADT0001")
    patient = await linked_patient(settings, world, "H123456")
    assert patient is not None
    assert (patient.full_name, patient.sex, str(patient.date_of_birth)) == (
        "ASHA VERMA",
        "female",
        "1980-04-12",
    )
    assert patient.mobile == "+919812345678"  # through the service: encrypted, indexed
    assert patient.mobile_index is not None
    assert patient.registered_at_branch_id == world.lab.branch.id

    ack = await send(supervisor, world, adt("ADT0002", "A08", name="VERMA^ASHA RANI"))
    assert msa(ack)[0] == "AA"
    updated = await linked_patient(settings, world, "H123456")
    assert updated is not None
    assert updated.id == patient.id
    assert (updated.full_name, updated.version) == ("ASHA RANI VERMA", patient.version + 1)

    # The first ADT again (same control id): acknowledged, stored as a duplicate, not applied.
    ack = await send(supervisor, world, adt("ADT0001", "A01"))
    assert msa(ack)[:2] == ("AA", "ADT0001")
    again = await linked_patient(settings, world, "H123456")
    assert again is not None
    assert (again.full_name, again.version) == (
        "ASHA RANI VERMA",
        updated.version,
    )

    # An A08 for a patient we never saw registers them.
    ack = await send(supervisor, world, adt("ADT0003", "A08", mrn="H777", name="RAO^KIRAN"))
    assert msa(ack)[0] == "AA"
    kiran = await linked_patient(settings, world, "H777")
    assert kiran is not None
    assert kiran.full_name == "KIRAN RAO"

    async with session_scope(settings) as session:
        statuses = list(
            await session.scalars(
                select(InterfaceMessage.status)
                .where(InterfaceMessage.instrument_id == world.his.id)
                .order_by(InterfaceMessage.received_at)
            )
        )
        actions = list(
            await session.scalars(
                select(AuditLog.action).where(
                    AuditLog.organisation_id == world.org,
                    AuditLog.entity_type == "patient",
                )
            )
        )
    assert statuses == ["ok", "ok", "duplicate", "ok"]
    assert sorted(actions) == ["patient.registered", "patient.registered", "patient.updated"]


async def test_orm_places_order_through_test_map_and_unmapped_codes_become_exceptions(
    settings: Settings,
    client: httpx.AsyncClient,
    world: World,
    supervisor: InterfaceSupervisor,
) -> None:
    ack = await send(supervisor, world, orm("ORM0001", "PL-1001", ["GLU-F", "CRE", "XYZ"]))
    code, control, text = msa(ack)
    assert (code, control) == ("AA", "ORM0001")
    assert "exceptions queue" in text

    async with session_scope(settings) as session:
        [link] = list(
            await session.scalars(
                select(HospitalOrder).where(HospitalOrder.instrument_id == world.his.id)
            )
        )
        order = await session.get(Order, link.order_id)
        assert order is not None
        tests = list(await session.scalars(select(OrderTest).where(OrderTest.order_id == order.id)))
    assert link.placer_number == "PL-1001"
    assert len(tests) == 2
    patient = await linked_patient(settings, world, "H123456")
    assert patient is not None
    assert order.patient_id == patient.id
    assert order.branch_id == world.lab.branch.id
    assert "RAVI SHARMA" in (order.referring_doctor or "")

    listed = await client.get(
        "/api/v1/integration/exceptions",
        params={"kind": "unmapped_order_code"},
        headers=world.lab.headers("tech"),
    )
    assert listed.status_code == 200, listed.text
    [exception] = listed.json()["items"]
    assert (exception["accession"], exception["instrument_code"]) == ("PL-1001", "XYZ")

    # Re-sent (same control id): not applied twice. A new message for the same placer
    # number adds nothing that is already ordered either.
    assert (
        msa(await send(supervisor, world, orm("ORM0001", "PL-1001", ["GLU-F", "CRE", "XYZ"])))[0]
        == "AA"
    )
    assert msa(await send(supervisor, world, orm("ORM0002", "PL-1001", ["GLU-F"])))[0] == "AA"
    async with session_scope(settings) as session:
        orders = await session.scalar(
            select(func.count()).select_from(Order).where(Order.organisation_id == world.org)
        )
        ordered = await session.scalar(
            select(func.count()).select_from(OrderTest).where(OrderTest.order_id == order.id)
        )
        exceptions = await session.scalar(
            select(func.count())
            .select_from(InterfaceException)
            .where(InterfaceException.instrument_id == world.his.id)
        )
    assert (orders, ordered, exceptions) == (1, 2, 1)


async def test_malformed_messages_get_ae_or_ar_naming_segment_and_field(
    settings: Settings, world: World, supervisor: InterfaceSupervisor
) -> None:
    # Structure/required fields: PID-3 empty -> AR (rejected before anything is stored).
    no_pid3 = adt("BAD0001", "A01").replace("H123456^^^CITYHOSP^MR", "")
    ack = await send(supervisor, world, no_pid3)
    assert msa(ack)[:2] == ("AR", "BAD0001")
    err = ack.segment("ERR")
    assert err is not None
    assert (err.get(2, 1), err.get(2, 3)) == ("PID", "3")
    # An identifier with only its authority: read, but unusable -> AE, PID-3.
    ack = await send(supervisor, world, adt("BAD0005", "A01", mrn=""))
    assert msa(ack)[0] == "AE"
    assert "PID-3" in msa(ack)[2]

    # Content: a new patient without a date of birth cannot be registered -> AE, PID-7.
    ack = await send(supervisor, world, adt("BAD0002", "A04", mrn="H555", dob=""))
    code, _, text = msa(ack)
    assert code == "AE"
    assert "PID-7" in text
    err = ack.segment("ERR")
    assert err is not None
    assert (err.get(2, 1), err.get(2, 3)) == ("PID", "7")
    assert await linked_patient(settings, world, "H555") is None

    # An order control we do not handle -> AE naming ORC-1; nothing placed.
    ack = await send(supervisor, world, orm("BAD0003", "PL-9", ["GLU-F"], control_code="XO"))
    assert msa(ack)[0] == "AE"
    assert "ORC[1]-1" in msa(ack)[2]

    # Results are not accepted from a hospital -> AR naming MSH-9.
    oru = "\r".join(
        [
            MSH.format(type="ORU^R01^ORU_R01", control="BAD0004"),
            "OBR|1|PL-1||GLU-F",
            "OBX|1|NM|GLU-F||100|mg/dL|||||F",
        ]
    )
    ack = await send(supervisor, world, oru)
    err = ack.segment("ERR")
    assert msa(ack)[0] == "AR"
    assert err is not None
    assert err.get(2, 3) == "9"

    # The corrected message (new data, same control id) is applied: errors keep no key.
    ack = await send(supervisor, world, adt("BAD0002", "A04", mrn="H555"))
    assert msa(ack)[0] == "AA"
    assert await linked_patient(settings, world, "H555") is not None
    async with session_scope(settings) as session:
        placed = await session.scalar(
            select(func.count()).select_from(Order).where(Order.organisation_id == world.org)
        )
    assert placed == 0


async def test_verified_results_go_back_as_oru_with_placer_number(
    settings: Settings,
    committing_session: Any,
    world: World,
    supervisor: InterfaceSupervisor,
) -> None:
    assert (
        msa(await send(supervisor, world, orm("ORM0100", "PL-2001", ["GLU-F", "CRE"])))[0] == "AA"
    )
    async with committing_session() as session:
        link = await session.scalar(
            select(HospitalOrder).where(HospitalOrder.instrument_id == world.his.id)
        )
        assert link is not None
        order = await session.get(Order, link.order_id)
        assert order is not None
        tech = principal_of(world.lab.users["tech"])
        for sample in await session.scalars(select(Sample).where(Sample.order_id == order.id)):
            await samples_service.collect(session, tech, sample.id)
            await samples_service.receive(session, tech, sample.id)
        tests = {
            t.test_id: t
            for t in await session.scalars(select(OrderTest).where(OrderTest.order_id == order.id))
        }
        codes = {code: test_id for test_id, code in link.details["codes"].items()}
        glu = await enter_and_verify(session, world.lab, tests[uuid.UUID(codes["GLU-F"])], "126")
        await enter_and_verify(session, world.lab, tests[uuid.UUID(codes["CRE"])], "0.9")
    await run_pending_jobs(settings)  # report rendered -> report.finalized -> ORU queued

    received: asyncio.Queue[Message] = asyncio.Queue()

    async def hospital(data: bytes, _peer: Any) -> Message:
        message = Message.parse(decode_payload(data))
        received.put_nowait(message)
        return build_ack(message, "AA")

    async with MLLPServer("127.0.0.1", world.his_port, hospital):
        oru = await asyncio.wait_for(received.get(), 10)
        [sent] = await eventually(
            lambda: _outbound(settings, world.his.id), lambda rows: rows[0].status == "sent"
        )
        assert f"{oru.message_code}^{oru.trigger_event}" == "ORU^R01"
        assert oru.msh.get(5) == "HIS"  # addressed to the application that ordered
        pid = oru.segment("PID")
        assert pid is not None
        assert pid.get(3, 1) == "H123456"
        orc, obr = oru.segment("ORC"), oru.segment("OBR")
        assert orc is not None
        assert obr is not None
        assert (orc.get(2), obr.get(2)) == ("PL-2001", "PL-2001")
        # Each OBR has its own filler number (issue 10: all OBRs shared one).
        fillers = [s.get(3) for s in oru.segments("OBR")]
        assert fillers == [f"{order.order_number}-1", f"{order.order_number}-2"]
        assert [s.get(3) for s in oru.segments("ORC")] == fillers
        # OBR-7 / OBX-14: the specimen collection time; OBX-19 / OBR-22: verification.
        async with session_scope(settings) as session:
            sample_rows = list(
                await session.scalars(select(Sample).where(Sample.order_id == order.id))
            )
        collected_times = {format_ts(r.collected_at) for r in sample_rows if r.collected_at}
        assert obr.get(7) in collected_times
        obx = {s.get(3, 1): s for s in oru.segments("OBX")}
        assert set(obx) == {"GLU-F", "CRE"}
        g = obx["GLU-F"]
        assert (g.get(2), g.get(5), g.get(6, 1), g.get(8), g.get(11)) == (
            "NM",
            "126",
            "mg/dL",
            "H",
            "F",
        )
        assert "70" in g.get(7)
        assert "100" in g.get(7)
        assert g.get(14) in collected_times
        assert g.get(19)  # verification time (the same second as collection in this test)
        assert obr.get(22) >= g.get(19)
        assert obx["CRE"].get(5) == "0.9"
        assert obx["CRE"].get(11) == "F"
        assert sent.links["placer"] == "PL-2001"
        assert "MSA|AA|" + oru.control_id in sent.links["ack"]

        # A corrected result -> amended report -> ORU with status C for that result.
        async with committing_session() as session:
            corrected = await results_service.correct(
                session,
                principal_of(world.lab.users["path"]),
                glu.id,
                "131",
                None,
                "Re-run after calibration.",
            )
            await results_service.verify(
                session, principal_of(world.lab.users["path2"]), corrected.id
            )
        await run_pending_jobs(settings)
        amended = await asyncio.wait_for(received.get(), 10)
        obx = {s.get(3, 1): s for s in amended.segments("OBX")}
        assert (obx["GLU-F"].get(5), obx["GLU-F"].get(11)) == ("131", "C")
        # The correction reason goes out as an NTE right after the corrected OBX.
        names = [seg.name for seg in amended.segment_list]
        glu_at = amended.segment_list.index(obx["GLU-F"])
        assert names[glu_at + 1] == "NTE"
        assert "Re-run after calibration." in amended.segment_list[glu_at + 1].get(3)
        assert obx["CRE"].get(11) == "F"  # unchanged: sent again as final
        amended_obr = amended.segment("OBR")
        assert amended_obr is not None
        assert amended_obr.get(2) == "PL-2001"

    # Redelivering the event queues nothing new.
    await run_pending_jobs(settings)
    assert len(await _outbound(settings, world.his.id)) == 2


async def _outbound(settings: Settings, instrument_id: uuid.UUID) -> list[InterfaceMessage]:
    async with session_scope(settings) as session:
        return list(
            await session.scalars(
                select(InterfaceMessage)
                .where(
                    InterfaceMessage.instrument_id == instrument_id,
                    InterfaceMessage.direction == "out",
                )
                .order_by(InterfaceMessage.received_at)
            )
        )
