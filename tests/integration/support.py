"""Shared by the interface runtime tests: a committed lab with a cobas (ASTM) and a BS-240
(HL7) on a fresh organisation, fast link timers, waiting without sleeps of fixed length."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from nidaan.integration.astm.protocol import LinkOptions, Timers
from nidaan.integration.models import Instrument
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.orders.enums import OrderTestStatus
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, PlacedOrder, make_lab, place_order, principal_of

T = TypeVar("T")
FAST = {"astm": {"timers": {"ack": 2, "receive": 2, "busy": 0.2, "host_contention": 0.3}}}
ANALYZER = LinkOptions(
    role="instrument",
    timers=Timers(ack=2, receive=2, busy=0.2, instrument_contention=0.1, interrupt_hold=0.2),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    lab: Lab
    cobas: Instrument
    hl7: Instrument
    placed: PlacedOrder

    @property
    def org(self) -> uuid.UUID:
        return self.lab.organisation.id

    @property
    def accession(self) -> str:
        return self.placed.sample.accession


async def make_world(committing_session: Any) -> World:
    """Committed: GLU (685), CREA (690), UREA (418, cancelled) ordered on a received sample;
    the BS-240 maps GLU as ``GLU``."""
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await make_lab(session, organisation)
        glu = await create_catalog_test(
            session,
            organisation,
            code="GLU",
            unit="mg/dL",
            decimals=0,
            ranges=[{"low": Decimal("70"), "high": Decimal("100")}],
        )
        crea = await create_catalog_test(session, organisation, code="CREA")
        urea = await create_catalog_test(session, organisation, code="UREA")
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
                settings=FAST,
                test_map=[
                    MapEntryIn(instrument_code="685", test_code="GLU"),
                    MapEntryIn(instrument_code="690", test_code="CREA"),
                    MapEntryIn(instrument_code="418", test_code="UREA"),
                ],
            ),
        )
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
                test_map=[MapEntryIn(instrument_code="GLU", test_code="GLU")],
            ),
        )
        patient = await create_patient(session, organisation)
        placed = await place_order(session, lab, patient, [glu, crea, urea])
        placed["UREA"].status = OrderTestStatus.CANCELLED
        await session.flush()
    return World(lab, cobas, hl7, placed)


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], within: float = 5.0
) -> T:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if ok(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


def results_upload(accession: str, glu: str = "182") -> list[str]:
    return [
        "H|\\^&|||c311^1|||||host|RSUPL^REAL|P|1",
        "P|1|||||||U",
        f"O|1|{accession}|0^5001^1^^S1^SC|^^^685^|R||||||N||||1||||||||||F",
        f"R|1|^^^685/|{glu}|mg/dL||H||F||admin||20261126100000|c311",
        "C|1|I|0|I",
        "L|1|N",
    ]
