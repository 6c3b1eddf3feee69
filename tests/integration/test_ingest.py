"""Landing instrument results: entered-not-verified results, exceptions, duplicates, resolving."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.catalog.models import CatalogTest
from nidaan.integration.domain import (
    InstrumentMessage,
    InstrumentResult,
    normalize_accession,
    transport_problems,
)
from nidaan.integration.models import Instrument, InterfaceException, InterfaceMessage
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.orders.enums import OrderTestStatus
from nidaan.results.models import Result
from nidaan.samples.enums import SampleStatus
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.results import (
    Lab,
    PlacedOrder,
    enter_and_verify,
    make_lab,
    place_order,
    principal_of,
)


@dataclass
class World:
    lab: Lab
    instrument: Instrument
    tests: dict[str, CatalogTest]
    placed: PlacedOrder


@pytest.fixture
async def world(session: AsyncSession, organisation: Organisation) -> World:
    lab = await make_lab(session, organisation)
    tests = {
        "GLU": await create_catalog_test(
            session,
            organisation,
            code="GLU",
            loinc="2345-7",
            unit="mg/dL",
            decimals=0,
            ranges=[{"low": Decimal("70"), "high": Decimal("100")}],
        ),
        "CREA": await create_catalog_test(session, organisation, code="CREA", loinc="2160-0"),
        "UREA": await create_catalog_test(session, organisation, code="UREA"),
    }
    instrument, _ = await integration_service.create_instrument(
        session,
        principal_of(lab.users["admin"]),
        InstrumentCreate(
            name="cobas c311",
            driver="roche-cobas",
            transport="tcp-server",
            port=5000,
            branch_id=lab.branch.id,
            test_map=[
                MapEntryIn(instrument_code="687", test_code="GLU"),
                MapEntryIn(instrument_code="690", loinc="2160-0"),
                MapEntryIn(instrument_code="418", test_code="UREA"),
            ],
        ),
    )
    patient = await create_patient(session, organisation)
    placed = await place_order(session, lab, patient, list(tests.values()))
    placed["UREA"].status = OrderTestStatus.CANCELLED
    await session.flush()
    return World(lab, instrument, tests, placed)


def _message(world: World, key: str = "MSG-0001") -> InstrumentMessage:
    accession = world.placed.sample.accession
    return InstrumentMessage(
        dedupe_key=key,
        message_type="ASTM-R",
        raw="H|\\^&|||c311\rP|1\rO|1|...\rR|1|^^^687/|182|mg/dL||H\rL|1|N",
        results=[
            InstrumentResult(
                f" {accession.lower()}", "687", "182", "mg/dL", ("H",), "F", None, "R|1|^^^687/"
            ),
            InstrumentResult("NO-SUCH-TUBE", "687", "95", "mg/dL", (), "F"),
            InstrumentResult(accession, "999", "4.2", "mmol/L", ("N",), "F"),
            InstrumentResult(accession, "418", "30", "mg/dL", (), "F"),
        ],
    )


async def _count(session: AsyncSession, model: type, organisation_id) -> int:  # type: ignore[no-untyped-def]
    return await session.scalar(
        select(func.count()).select_from(model).where(model.organisation_id == organisation_id)
    )


def test_domain_rules() -> None:
    assert normalize_accession(" lab-20261126-0001 ") == "LAB-20261126-0001"
    # Roche's "@<seq>" (barcode not read) is not an accession with a prefix: kept as it is.
    assert normalize_accession(" @0123 ") == "@0123"
    assert transport_problems("tcp-server", host=None, port=5000, device=None, baudrate=None) == []
    assert (
        transport_problems("serial", host=None, port=None, device="/dev/ttyS0", baudrate=9600) == []
    )
    assert transport_problems("tcp-client", host=None, port=None, device=None, baudrate=None)


async def test_ingest_lands_good_results_and_queues_the_rest(
    session: AsyncSession, world: World
) -> None:
    org = world.lab.organisation.id
    report = await integration_service.ingest_results(
        session, org, world.instrument, _message(world)
    )
    assert not report.duplicate
    assert report.message.status == "ok"
    assert report.message.protocol == "astm"

    [result] = report.results
    assert result.order_test_id == world.placed["GLU"].id
    assert (result.status, result.source, result.instrument_flags) == ("entered", "instrument", "H")
    assert result.flag == "H"
    assert result.value_numeric == Decimal("182")
    assert result.entered_by_id is None
    assert result.raw["instrument"] == "cobas c311"
    assert result.raw["message_id"] == str(report.message.id)
    assert result.raw["segment"] == "R|1|^^^687/"

    kinds = {e.kind: e for e in report.exceptions}
    assert set(kinds) == {"unknown_sample", "unmapped_test", "cancelled_test"}
    assert kinds["unknown_sample"].accession == "NO-SUCH-TUBE"
    assert kinds["unmapped_test"].sample_id == world.placed.sample.id
    assert kinds["cancelled_test"].order_test_id == world.placed["UREA"].id
    assert all(e.status == "open" and e.message_id == report.message.id for e in report.exceptions)
    assert report.message.links["results"] == [str(result.id)]
    assert len(report.message.links["exceptions"]) == 3

    entered = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(result.id), AuditLog.action == "result.entered"
        )
    )
    assert entered is not None
    assert (entered.actor_kind, entered.actor_label) == ("instrument", "instrument:cobas c311")
    assert entered.actor_id == world.instrument.id
    opened = await session.scalar(
        select(func.count())
        .select_from(AuditLog)
        .where(AuditLog.organisation_id == org, AuditLog.action == "interface_exception.created")
    )
    assert opened == 3


async def test_same_message_again_is_a_duplicate_and_applies_nothing(
    session: AsyncSession, world: World
) -> None:
    org = world.lab.organisation.id
    first = await integration_service.ingest_results(
        session, org, world.instrument, _message(world)
    )
    results, exceptions = (
        await _count(session, Result, org),
        await _count(session, InterfaceException, org),
    )
    again = await integration_service.ingest_results(
        session, org, world.instrument, _message(world)
    )
    assert again.duplicate
    assert again.results == []
    assert again.exceptions == []
    assert again.message.status == "duplicate"
    assert again.message.duplicate_of_id == first.message.id
    assert await _count(session, Result, org) == results
    assert await _count(session, InterfaceException, org) == exceptions
    assert await _count(session, InterfaceMessage, org) == 2
    # Another key is another message (a rerun re-enters the unverified value).
    other = await integration_service.ingest_results(
        session, org, world.instrument, _message(world, key="MSG-0002")
    )
    assert not other.duplicate
    assert len(other.results) == 1


async def test_store_inbound_is_idempotent_per_instrument(
    session: AsyncSession, world: World
) -> None:
    org = world.lab.organisation.id
    first, dup1 = await integration_service.store_inbound(
        session, org, world.instrument.id, "hl7", "CTRL1", "ORU^R01", "MSH|1"
    )
    second, dup2 = await integration_service.store_inbound(
        session, org, world.instrument.id, "hl7", "CTRL1", "ORU^R01", "MSH|1"
    )
    hospital, dup3 = await integration_service.store_inbound(
        session, org, None, "hl7", "CTRL1", "ORU^R01", "MSH|1"
    )
    assert (dup1, dup2, dup3) == (False, True, False)
    assert second.duplicate_of_id == first.id
    assert hospital.status == "ok"


async def test_not_received_verified_and_invalid_values_become_exceptions(
    session: AsyncSession, world: World
) -> None:
    org = world.lab.organisation.id
    lab = world.lab
    patient = await create_patient(session, lab.organisation)
    pending = await place_order(
        session, lab, patient, [world.tests["GLU"]], sample_status=SampleStatus.COLLECTED
    )
    await enter_and_verify(session, lab, world.placed["CREA"], "1.1")
    message = InstrumentMessage(
        "MSG-X",
        "ORU^R01",
        [
            InstrumentResult(pending.sample.accession, "687", "90", "mg/dL"),
            InstrumentResult(world.placed.sample.accession, "690", "1.3", None),
            InstrumentResult(world.placed.sample.accession, "687", "", None, (), "X"),
        ],
        "raw",
    )
    report = await integration_service.ingest_results(session, org, world.instrument, message)
    assert report.results == []
    assert [e.kind for e in report.exceptions] == [
        "not_received",
        "already_verified",
        "invalid_value",
    ]


async def test_resolve_by_entering_and_by_discarding(
    client: httpx.AsyncClient, session: AsyncSession, world: World
) -> None:
    org = world.lab.organisation.id
    report = await integration_service.ingest_results(
        session, org, world.instrument, _message(world)
    )
    kinds = {e.kind: e for e in report.exceptions}
    lab = world.lab
    listed = await client.get(
        "/api/v1/integration/exceptions",
        params={"status": "open", "instrument_id": str(world.instrument.id)},
        headers=lab.headers("tech"),
    )
    assert listed.status_code == 200
    assert listed.json()["pagination"]["total_count"] == 3

    # The "unknown" tube was a relabelled one: its CREA value belongs to our order.
    unmapped = kinds["unmapped_test"]
    resolved = await client.post(
        f"/api/v1/integration/exceptions/{unmapped.id}/resolve",
        json={
            "action": "enter",
            "order_test_id": str(world.placed["CREA"].id),
            "value": "1.2",
            "unit": "mg/dL",
            "note": "CREA on the old analyzer code",
        },
        headers=lab.headers("tech"),
    )
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert body["status"] == "resolved"
    assert body["result_id"]
    assert body["resolved_by_id"] == str(lab.users["tech"].id)
    result = await session.get(Result, body["result_id"])
    assert result is not None
    assert result.order_test_id == world.placed["CREA"].id
    assert (result.status, result.source) == ("entered", "manual")
    assert result.entered_by_id == lab.users["tech"].id
    assert result.raw["exception_id"] == str(unmapped.id)

    discarded = await client.post(
        f"/api/v1/integration/exceptions/{kinds['unknown_sample'].id}/resolve",
        json={"action": "discard", "note": "QC material"},
        headers=lab.headers("path"),
    )
    assert discarded.status_code == 200
    assert discarded.json()["status"] == "discarded"

    again = await client.post(
        f"/api/v1/integration/exceptions/{unmapped.id}/resolve",
        json={"action": "discard", "note": "oops"},
        headers=lab.headers("tech"),
    )
    assert again.status_code == 409
    assert again.json()["code"] == "exception_closed"

    # Entering against a cancelled test is refused by results and changes nothing.
    refused = await client.post(
        f"/api/v1/integration/exceptions/{kinds['cancelled_test'].id}/resolve",
        json={"action": "enter", "order_test_id": str(world.placed["UREA"].id), "note": "x"},
        headers=lab.headers("tech"),
    )
    assert refused.status_code == 409, refused.text
    missing = await client.post(
        f"/api/v1/integration/exceptions/{kinds['cancelled_test'].id}/resolve",
        json={"action": "enter", "note": "x"},
        headers=lab.headers("tech"),
    )
    assert missing.status_code == 422

    actions = set(
        await session.scalars(
            select(AuditLog.action).where(
                AuditLog.organisation_id == org, AuditLog.entity_type == "interface_exception"
            )
        )
    )
    assert {"interface_exception.resolved", "interface_exception.discarded"} <= actions
    still_open = await client.get(
        "/api/v1/integration/exceptions", params={"status": "open"}, headers=lab.headers("admin")
    )
    assert [e["kind"] for e in still_open.json()["items"]] == ["cancelled_test"]


async def test_messages_api_and_tenant_isolation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    world: World,
    other_organisation: Organisation,
) -> None:
    org = world.lab.organisation.id
    await integration_service.ingest_results(session, org, world.instrument, _message(world))
    await integration_service.ingest_results(session, org, world.instrument, _message(world))
    lab = world.lab
    url = f"/api/v1/instruments/{world.instrument.id}/messages"
    messages = (await client.get(url, headers=lab.headers("tech"))).json()
    assert [m["status"] for m in messages["items"]] == ["duplicate", "ok"]
    only_dups = (
        await client.get(url, params={"status": "duplicate"}, headers=lab.headers("tech"))
    ).json()
    assert only_dups["pagination"]["total_count"] == 1

    other = await make_lab(session, other_organisation)
    assert (await client.get(url, headers=other.headers("admin"))).status_code == 404
    theirs = await client.get("/api/v1/integration/exceptions", headers=other.headers("tech"))
    assert theirs.json()["items"] == []
    exception_id = await session.scalar(
        select(InterfaceException.id).where(InterfaceException.organisation_id == org)
    )
    stolen = await client.post(
        f"/api/v1/integration/exceptions/{exception_id}/resolve",
        json={"action": "discard", "note": "not mine"},
        headers=other.headers("tech"),
    )
    assert stolen.status_code == 404
    # An instrument of another organisation cannot land results here.
    with pytest.raises(Exception, match="No such instrument"):
        await integration_service.ingest_results(
            session, other_organisation.id, world.instrument, _message(world, key="Z")
        )
