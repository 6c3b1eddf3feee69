"""Order download in batch mode, end to end: a sample received through ``samples_service``
publishes ``SampleReceived``; the delivery job queues a pending outbound message per
instrument with ``settings["order_download"]``; the runtime sends it over real TCP
(ASTM to a connected analyzer, HL7 over MLLP with an ACK) and marks it sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from nidaan.config import Settings
from nidaan.events.models import OutboxEvent
from nidaan.integration.astm.records import parse_message
from nidaan.integration.astm.transport import ASTMClient
from nidaan.integration.handlers import order_download_on_sample_received
from nidaan.integration.hl7.ack import build_ack
from nidaan.integration.hl7.message import Message as HL7Message
from nidaan.integration.hl7.message import decode_payload
from nidaan.integration.hl7.mllp import MLLPServer
from nidaan.integration.models import Instrument, InterfaceMessage
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import close_job_app, open_job_app, run_pending_jobs
from nidaan.orders.enums import OrderTestStatus
from nidaan.samples.enums import SampleStatus
from nidaan.samples.events import SampleReceived
from nidaan.samples.service import samples_service
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, PlacedOrder, make_lab, place_order, principal_of
from tests.integration.support import ANALYZER, FAST, eventually, free_port


@pytest.fixture(scope="module")
async def job_app_open(settings: Settings) -> AsyncIterator[None]:
    await open_job_app(settings)
    yield
    await close_job_app()


pytestmark = pytest.mark.usefixtures("job_app_open")


@dataclass
class World:
    lab: Lab
    cobas: Instrument  # order_download on
    plain: Instrument  # same codes, order_download off
    hl7: Instrument  # order_download on, ORM to download_port
    placed: PlacedOrder
    download_port: int

    @property
    def org(self) -> uuid.UUID:
        return self.lab.organisation.id


@pytest.fixture
async def world(committing_session: Any) -> World:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        glu = await create_catalog_test(session, organisation, code="GLU")
        crea = await create_catalog_test(session, organisation, code="CREA")
        urea = await create_catalog_test(session, organisation, code="UREA")
        hb = await create_catalog_test(session, organisation, code="HB")
        admin = principal_of(lab.users["admin"])
        cobas, _ = await integration_service.create_instrument(
            session,
            admin,
            InstrumentCreate(
                name="cobas c311",
                driver="roche-cobas",
                transport="tcp-server",
                host="127.0.0.1",
                port=free_port(),
                branch_id=lab.branch.id,
                settings={**FAST, "order_download": True},
                test_map=[
                    MapEntryIn(instrument_code="685", test_code="GLU"),
                    MapEntryIn(instrument_code="690", test_code="CREA"),
                    MapEntryIn(instrument_code="418", test_code="UREA"),
                ],
            ),
        )
        plain, _ = await integration_service.create_instrument(
            session,
            admin,
            InstrumentCreate(
                name="erba",
                driver="generic-astm",
                transport="tcp-server",
                host="127.0.0.1",
                port=free_port(),
                branch_id=lab.branch.id,
                settings=FAST,
                test_map=[MapEntryIn(instrument_code="GLU", test_code="GLU")],
            ),
        )
        download_port = free_port()
        hl7, _ = await integration_service.create_instrument(
            session,
            admin,
            InstrumentCreate(
                name="BS-240",
                driver="generic-hl7",
                transport="tcp-server",
                host="127.0.0.1",
                port=free_port(),
                branch_id=lab.branch.id,
                settings={
                    "order_download": True,
                    "download_host": "127.0.0.1",
                    "download_port": download_port,
                    "send_timeout": 2,
                },
                test_map=[MapEntryIn(instrument_code="HB", test_code="HB")],
            ),
        )
        patient = await create_patient(session, organisation)
        placed = await place_order(
            session, lab, patient, [glu, crea, urea, hb], sample_status=SampleStatus.COLLECTED
        )
        placed["UREA"].status = OrderTestStatus.CANCELLED
        await session.flush()
    return World(lab, cobas, plain, hl7, placed, download_port)


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


async def _peer(
    supervisor: InterfaceSupervisor, instrument: Instrument
) -> tuple[ASTMClient, asyncio.Queue[list[str]]]:
    received: asyncio.Queue[list[str]] = asyncio.Queue()
    port = supervisor.port_of(instrument.id)
    assert port is not None
    client = ASTMClient(
        "127.0.0.1", port, lambda records, _frames: received.put_nowait(records), ANALYZER
    )
    await client.start()
    await client.wait_connected(5)
    return client, received


async def _receive(committing_session: Any, world: World) -> None:
    async with committing_session() as session:
        await samples_service.receive(
            session, principal_of(world.lab.users["tech"]), world.placed.sample.id
        )


async def _outbound(settings: Settings, instrument_id: uuid.UUID) -> list[InterfaceMessage]:
    async with session_scope(settings) as session:
        return list(
            await session.scalars(
                select(InterfaceMessage).where(
                    InterfaceMessage.instrument_id == instrument_id,
                    InterfaceMessage.direction == "out",
                )
            )
        )


async def test_received_sample_is_downloaded_to_batch_analyzers_once(
    settings: Settings,
    committing_session: Any,
    world: World,
    supervisor: InterfaceSupervisor,
) -> None:
    cobas, cobas_got = await _peer(supervisor, world.cobas)
    plain, plain_got = await _peer(supervisor, world.plain)
    acks: list[HL7Message] = []

    async def hl7_analyzer(data: bytes, _peer: Any) -> HL7Message:
        acks.append(HL7Message.parse(decode_payload(data)))
        return build_ack(data, "AA")

    # The HL7 analyzer is not listening yet: its message must wait and be retried.
    try:
        await _receive(committing_session, world)
        await run_pending_jobs(settings)

        # ASTM: the cobas gets H P O L with its codes for the live tests (UREA cancelled).
        records = await asyncio.wait_for(cobas_got.get(), 8)
        message = parse_message(records)
        order = message.patients()[0].orders[0].order
        assert order.specimen_id == world.placed.sample.accession
        assert sorted(t[3] for t in order.tests) == ["685", "690"]
        assert order.report_type == "O"
        [sent] = await eventually(
            lambda: _outbound(settings, world.cobas.id), lambda rows: rows[0].status == "sent"
        )
        assert (sent.status, sent.protocol, sent.message_type) == ("sent", "astm", "ASTM-O")
        assert sent.links["codes"] == ["685", "690"]

        # HL7: attempts fail (nothing listens) and are recorded; the message stays pending.
        [waiting] = await eventually(
            lambda: _outbound(settings, world.hl7.id),
            lambda rows: bool(rows) and rows[0].error is not None,
        )
        assert waiting.status == "pending"
        assert waiting.links["attempts"] >= 1
        async with MLLPServer("127.0.0.1", world.download_port, hl7_analyzer):
            [delivered] = await eventually(
                lambda: _outbound(settings, world.hl7.id),
                lambda rows: rows[0].status == "sent",
                within=8,
            )
        assert delivered.status == "sent"
        assert delivered.error is None
        assert acks, "the HL7 analyzer got nothing"
        orm = acks[0]
        assert f"{orm.message_code}^{orm.trigger_event}" == "ORM^O01"
        assert "HB" in str(orm)
        assert len({a.control_id for a in acks}) == 1  # re-sends are the same message

        # No order_download: nothing queued, nothing sent.
        assert await _outbound(settings, world.plain.id) == []
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(plain_got.get(), 0.5)

        # Redelivering the event (the handler run again) queues nothing more.
        async with session_scope(settings) as session:
            outbox = await session.scalar(
                select(OutboxEvent).where(
                    OutboxEvent.organisation_id == world.org,
                    OutboxEvent.name == SampleReceived.name,
                )
            )
            assert outbox is not None
            event = SampleReceived.from_payload(outbox.payload)
            assert event.sample_id == world.placed.sample.id
            await order_download_on_sample_received(session, event)
        await run_pending_jobs(settings)
        assert len(await _outbound(settings, world.cobas.id)) == 1
        assert len(await _outbound(settings, world.hl7.id)) == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cobas_got.get(), 0.5)
    finally:
        await cobas.close()
        await plain.close()


async def test_download_waits_for_the_analyzer_to_connect(
    settings: Settings,
    committing_session: Any,
    world: World,
    supervisor: InterfaceSupervisor,
) -> None:
    await _receive(committing_session, world)
    await run_pending_jobs(settings)
    [queued] = await _outbound(settings, world.cobas.id)
    assert queued.status == "pending"
    await asyncio.sleep(0.5)  # no analyzer connected: not attempted, not lost
    [still] = await _outbound(settings, world.cobas.id)
    assert (still.status, still.error) == ("pending", None)

    cobas, got = await _peer(supervisor, world.cobas)
    try:
        records = await asyncio.wait_for(got.get(), 8)
        assert parse_message(records).patients()[0].orders[0].order.specimen_id == (
            world.placed.sample.accession
        )
        [sent] = await eventually(
            lambda: _outbound(settings, world.cobas.id), lambda rows: rows[0].status == "sent"
        )
        assert sent.status == "sent"
    finally:
        await cobas.close()
