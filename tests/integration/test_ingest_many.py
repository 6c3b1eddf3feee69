"""``ingest_many`` (messages that queued up, one transaction) against ``ingest_results`` one
message at a time: the same results, exceptions and duplicates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.models import Instrument, InterfaceMessage
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import IngestReport, integration_service
from nidaan.orders.enums import OrderTestStatus
from nidaan.results.models import Result
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.results import PlacedOrder, make_lab, place_order, principal_of


async def _world(
    session: AsyncSession, organisation: Organisation, name: str
) -> tuple[Instrument, PlacedOrder]:
    lab = await make_lab(session, organisation)
    tests = [
        await create_catalog_test(
            session,
            organisation,
            code=f"GLU{name}",
            decimals=0,
            ranges=[{"low": Decimal("70"), "high": Decimal("100")}],
        ),
        await create_catalog_test(session, organisation, code=f"CREA{name}"),
        await create_catalog_test(session, organisation, code=f"UREA{name}"),
    ]
    instrument, _ = await integration_service.create_instrument(
        session,
        principal_of(lab.users["admin"]),
        InstrumentCreate(
            name=f"cobas {name}",
            driver="roche-cobas",
            transport="tcp-server",
            port=5000,
            branch_id=lab.branch.id,
            test_map=[
                MapEntryIn(instrument_code=code, test_code=test.code)
                for code, test in zip(("687", "690", "418"), tests, strict=True)
            ],
        ),
    )
    placed = await place_order(session, lab, await create_patient(session, organisation), tests)
    placed[f"UREA{name}"].status = OrderTestStatus.CANCELLED
    await session.flush()
    return instrument, placed


def _messages(accession: str) -> list[InstrumentMessage]:
    def result(code: str, value: str, tube: str = accession) -> InstrumentResult:
        return InstrumentResult(tube, code, value, "mg/dL", (), "F", None, f"R|1|^^^{code}/")

    first = InstrumentMessage(
        dedupe_key="K1",
        message_type="ASTM-R",
        raw="first",
        results=[result("687", "182"), result("999", "1"), result("418", "30")],
    )
    again = InstrumentMessage(
        dedupe_key="K1", message_type="ASTM-R", raw="first, re-sent", results=first.results
    )
    later = InstrumentMessage(
        dedupe_key="K2",
        message_type="ASTM-R",
        raw="later",
        results=[result("687", "95"), result("690", "1.1"), result("690", "2", "NO-SUCH-TUBE")],
    )
    return [first, again, later]


def _shape(reports: list[IngestReport]) -> list[tuple[Any, ...]]:
    return [
        (
            r.duplicate,
            r.message.status,
            [(x.entered_value, x.flag, x.status) for x in r.results],
            [e.kind for e in r.exceptions],
            {k: len(v) for k, v in r.message.links.items()},
        )
        for r in reports
    ]


async def test_ingest_many_lands_like_one_message_at_a_time(
    session: AsyncSession, organisation: Organisation
) -> None:
    (one_inst, one), (many_inst, many) = (
        await _world(session, organisation, "A"),
        await _world(session, organisation, "B"),
    )
    org = organisation.id
    one_by_one = [
        await integration_service.ingest_results(session, org, one_inst, m)
        for m in _messages(one.sample.accession)
    ]
    together = await integration_service.ingest_many(
        session, org, many_inst, _messages(many.sample.accession)
    )

    assert _shape(together) == _shape(one_by_one)
    assert [(r.duplicate, len(r.results), len(r.exceptions)) for r in together] == [
        (False, 1, 2),
        (True, 0, 0),
        (False, 2, 1),
    ]
    assert together[1].message.duplicate_of_id == together[0].message.id
    current = await session.scalars(
        select(Result).where(Result.order_id == many.order.id, Result.is_current.is_(True))
    )
    assert sorted((r.entered_value, r.flag) for r in current) == [("1.1", None), ("95", "N")]
    # Sent again later, the whole batch is recognised and applied nowhere.
    again = await integration_service.ingest_many(
        session, org, many_inst, _messages(many.sample.accession)
    )
    assert [r.duplicate for r in again] == [True, True, True]
    stored = await session.scalars(
        select(InterfaceMessage).where(InterfaceMessage.instrument_id == many_inst.id)
    )
    assert sorted(m.status for m in stored) == ["duplicate"] * 4 + ["ok"] * 2
