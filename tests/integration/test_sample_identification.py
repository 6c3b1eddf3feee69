"""Which sample an analyzer result lands on (issue 10, "Analyzer correctness").

HL7: our accession in the filler number (OBR-3/ORC-3) first, then SPM-2/SAC-3, the placer
number (OBR-2/ORC-2) only through a known mapping (our own accession, a hospital's order);
identifiers that disagree are queued naming both, never guessed. Roche ``@<seq>`` (barcode
not read) is unidentified, never matched. CE/CWE values keep code and text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.integration.astm.transport import ASTMClient
from nidaan.integration.drivers.base import get_driver
from nidaan.integration.enums import Direction, MessageStatus
from nidaan.integration.hl7.mllp import MLLPClient
from nidaan.integration.models import (
    HospitalOrder,
    Instrument,
    InterfaceException,
    InterfaceMessage,
)
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import IngestReport, integration_service
from nidaan.kit.db import session_scope
from nidaan.kit.time import utcnow
from nidaan.results.models import Result
from nidaan.samples.models import Sample
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.results import Lab, PlacedOrder, make_lab, place_order, principal_of
from tests.integration.support import World, eventually, results_upload


@dataclass
class Bench:
    lab: Lab
    analyzer: Instrument
    a: PlacedOrder  # hospital order HIS-77 was placed as this one
    b: PlacedOrder
    coded: PlacedOrder  # a coded test (choices POS/NEG) and a free-text test


@pytest.fixture
async def bench(session: AsyncSession, organisation: Organisation) -> Bench:
    lab = await make_lab(session, organisation)
    glu = await create_catalog_test(session, organisation, code="GLU", unit="mg/dL", decimals=0)
    hbsag = await create_catalog_test(
        session,
        organisation,
        code="HBSAG",
        unit=None,
        result_type="coded",
        choices=[
            {"code": "NEG", "text": "Non-reactive", "abnormal": False},
            {"code": "POS", "text": "Reactive", "abnormal": True},
        ],
    )
    culture = await create_catalog_test(
        session, organisation, code="CULT", unit=None, result_type="text"
    )
    wbc = await create_catalog_test(
        session,
        organisation,
        code="WBC",
        unit="10^3/uL",
        decimals=2,
        unit_conversions={"cells/uL": "0.001"},
    )
    admin = principal_of(lab.users["admin"])
    analyzer, _ = await integration_service.create_instrument(
        session,
        admin,
        InstrumentCreate(
            name="BS-240",
            driver="generic-hl7",
            transport="tcp-server",
            port=2575,
            branch_id=lab.branch.id,
            test_map=[
                MapEntryIn(instrument_code="GLU", test_code="GLU"),
                MapEntryIn(instrument_code="HBS", test_code="HBSAG"),
                MapEntryIn(instrument_code="CUL", test_code="CULT"),
                MapEntryIn(instrument_code="WBC", test_code="WBC"),
            ],
        ),
    )
    his, _ = await integration_service.create_instrument(
        session,
        admin,
        InstrumentCreate(
            name="City HIS",
            driver="hospital-hl7",
            transport="tcp-server",
            port=2576,
            branch_id=lab.branch.id,
        ),
    )
    patient = await create_patient(session, organisation)
    a = await place_order(session, lab, patient, [glu])
    b = await place_order(session, lab, patient, [glu])
    coded = await place_order(session, lab, patient, [hbsag, culture, wbc])
    message = InterfaceMessage(
        organisation_id=organisation.id,
        instrument_id=his.id,
        direction=Direction.IN,
        protocol="hl7",
        message_type="ORM^O01",
        raw="MSH|...",
        received_at=utcnow(),
        status=MessageStatus.OK,
        links={},
    )
    session.add(message)
    await session.flush()
    session.add(
        HospitalOrder(
            organisation_id=organisation.id,
            instrument_id=his.id,
            placer_number="HIS-77",
            order_id=a.order.id,
            message_id=message.id,
        )
    )
    await session.flush()
    return Bench(lab, analyzer, a, b, coded)


def oru(*, placer: str = "", filler: str = "", specimen: str = "", obx: str | None = None) -> str:
    """An ORU^R01 as analyzers send it: ORC/OBR with the order numbers, SPM after the OBX."""
    control = uuid.uuid4().hex[:16]
    lines = [
        f"MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261127101010||ORU^R01^ORU_R01|{control}|P|2.5.1",
        f"ORC|RE|{placer}|{filler}",
        f"OBR|1|{placer}|{filler}|GLU^Glucose^L|||20261127100000",
        obx or "OBX|1|NM|GLU^Glucose^L||112|mg/dL|||||F",
    ]
    if specimen:
        lines.append(f"SPM|1|{specimen}||SER^Serum^HL70487")
    return "\r".join(lines) + "\r"


async def ingest(session: AsyncSession, bench: Bench, text: str) -> IngestReport:
    driver = get_driver("generic-hl7")
    message = driver.to_instrument_message(driver.parse(text), text)
    return await integration_service.ingest_results(
        session, bench.lab.organisation.id, bench.analyzer, message
    )


def landed_on(report: IngestReport) -> uuid.UUID | None:
    return report.results[0].sample_id if report.results else None


async def test_placer_number_in_obr2_and_our_accession_in_obr3_lands_on_our_sample(
    session: AsyncSession, bench: Bench
) -> None:
    """The independent corpus case: ORC-2/OBR-2 carry a placer number, OBR-3 our accession.
    Today every result went to the exceptions queue as unknown_sample naming ``PL-…``."""
    report = await ingest(session, bench, oru(placer="PL-4471", filler=bench.a.sample.accession))
    assert report.exceptions == []
    assert landed_on(report) == bench.a.sample.id


async def test_identifiers_that_name_different_samples_are_queued_naming_both(
    session: AsyncSession, bench: Bench
) -> None:
    a, b = bench.a.sample.accession, bench.b.sample.accession
    report = await ingest(session, bench, oru(placer=b, filler=a))
    assert report.results == []
    [queued] = report.exceptions
    assert queued.kind == "identifier_conflict"
    assert a in (queued.detail or "")
    assert b in (queued.detail or "")
    assert "filler" in (queued.detail or "")
    assert "placer" in (queued.detail or "")


async def test_specimen_id_and_hospital_placer_mapping_find_the_sample(
    session: AsyncSession, bench: Bench
) -> None:
    by_specimen = await ingest(
        session, bench, oru(placer="ANALYZER-9", specimen=bench.b.sample.accession)
    )
    assert landed_on(by_specimen) == bench.b.sample.id
    # A hospital's placer number is known: its order was placed here as order A.
    by_hospital = await ingest(session, bench, oru(placer="HIS-77"))
    assert landed_on(by_hospital) == bench.a.sample.id
    # The hospital's order and the specimen id disagree: queued, naming both.
    conflict = await ingest(session, bench, oru(placer="HIS-77", specimen=bench.b.sample.accession))
    assert [e.kind for e in conflict.exceptions] == ["identifier_conflict"]


async def test_an_unknown_placer_number_alone_is_never_guessed(
    session: AsyncSession, bench: Bench
) -> None:
    report = await ingest(session, bench, oru(placer="PL-9999"))
    [queued] = report.exceptions
    assert queued.kind == "unknown_sample"
    assert "PL-9999" in (queued.detail or "")


async def test_oul_r22_finds_the_sample_by_spm2_and_sac3(
    session: AsyncSession, bench: Bench
) -> None:
    text = (
        "MSH|^~\\&|CENTAUR|LAB|NIDAAN|LAB|20261127101010||OUL^R22^OUL_R22|OUL-1|P|2.5.1\r"
        f"SPM|1|{bench.b.sample.accession}||SER^Serum^HL70487\r"
        f"SAC|||{bench.b.sample.accession}\r"
        "OBR|1|||GLU^Glucose^L\r"
        "ORC|SC||RUN-12\r"
        "OBX|1|NM|GLU^Glucose^L||97|mg/dL|||||F\r"
    )
    report = await ingest(session, bench, text)
    assert report.exceptions == []
    assert landed_on(report) == bench.b.sample.id


async def test_coded_values_keep_code_and_text_and_the_text_shows(
    session: AsyncSession, bench: Bench
) -> None:
    accession = bench.coded.sample.accession
    text = (
        "MSH|^~\\&|BS-240|LAB|NIDAAN|LAB|20261127101010||ORU^R01^ORU_R01|CE-1|P|2.5.1\r"
        f"OBR|1||{accession}|PANEL\r"
        # The analyzer's own code for "Reactive": only the text matches a choice of the test.
        "OBX|1|CWE|HBS^HBsAg^L||1^Reactive^99ANA||||||F\r"
        "OBX|2|CE|CUL^Culture^L||NG^No growth after 48 hours^99ANA||||||F\r"
    )
    report = await ingest(session, bench, text)
    assert report.exceptions == []
    by_test = {r.order_test_id: r for r in report.results}
    hbsag = by_test[bench.coded["HBSAG"].id]
    assert (hbsag.value_code, hbsag.value_text) == ("POS", "Reactive")
    assert hbsag.raw["value"] == "1"
    assert hbsag.raw["value_text"] == "Reactive"
    culture = by_test[bench.coded["CULT"].id]
    assert culture.value_text == "No growth after 48 hours"  # what the report prints
    assert culture.raw["value"] == "NG"


# -- property: every combination of identifiers ---------------------------------------------

ROLE = st.sampled_from(["none", "a", "b", "foreign"])


def spelled(accession: str, style: int) -> str:
    """Spellings of the same accession an analyzer may send (case, padding)."""
    return [accession, accession.lower(), f" {accession} "][style]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    filler=ROLE,
    specimen=ROLE,
    placer=st.sampled_from(["none", "a", "b", "foreign", "hospital-a"]),
    style=st.integers(0, 2),
)
async def test_property_lands_only_when_every_known_identifier_agrees(
    session: AsyncSession, bench: Bench, filler: str, specimen: str, placer: str, style: int
) -> None:
    samples = {"a": bench.a.sample, "b": bench.b.sample}

    def text_of(role: str) -> str:
        if role == "none":
            return ""
        if role == "foreign":
            return f"X{uuid.uuid4().hex[:8]}"
        if role == "hospital-a":
            return "HIS-77"
        return spelled(samples[role].accession, style)

    named = {
        ("a" if role == "hospital-a" else role)
        for role in (filler, specimen, placer)
        if role in ("a", "b", "hospital-a")
    }
    report = await ingest(
        session,
        bench,
        oru(placer=text_of(placer), filler=text_of(filler), specimen=text_of(specimen)),
    )
    if len(named) == 1:
        assert report.exceptions == []
        assert landed_on(report) == samples[named.pop()].id
    else:
        assert report.results == []
        [queued] = report.exceptions
        assert queued.kind == ("identifier_conflict" if named else "unknown_sample")


# -- Roche: a barcode that could not be read, over real TCP ----------------------------------


async def test_roche_barcode_read_failure_is_unidentified_and_never_matched(
    settings: Any, committing_session: Any, world: World, analyzer: tuple[ASTMClient, Any]
) -> None:
    """A lab whose accessions are plain numbers: ``@0123`` (sequence 123, barcode not read)
    must not land on the tube ``0123``. Today the ``@`` was stripped and it did."""
    async with committing_session() as session:
        sample = await session.get(Sample, world.placed.sample.id)
        sample.accession = "0123"
    client, _ = analyzer
    records = results_upload("@0123")
    records[2] = "O|1|@0123|123^50041^3^^S1^SC|^^^685^|R||||||N||||1||||||||||F"
    await client.send(records, within=5)

    async def queued() -> list[InterfaceException]:
        async with session_scope(settings) as session:
            return list(
                await session.scalars(
                    select(InterfaceException).where(
                        InterfaceException.instrument_id == world.cobas.id
                    )
                )
            )

    [exception] = await eventually(queued, bool)
    assert exception.kind == "unidentified_sample"
    assert exception.accession == "@0123"
    assert exception.sample_id is None
    assert "rack 50041" in (exception.detail or "")
    assert "position 3" in (exception.detail or "")
    async with session_scope(settings) as session:
        landed = await session.scalar(
            select(func.count()).where(Result.order_test_id == world.placed["GLU"].id)
        )
    assert landed == 0


@pytest.mark.parametrize("sample_id", ["@7", "@ABC-1", ""])
def test_roche_driver_marks_every_failed_read_unidentified(sample_id: str) -> None:
    driver = get_driver("roche-cobas")
    text = (
        "H|\\^&|||c311^1|||||host|RSUPL^REAL|P|1\r"
        "P|1\r"
        f"O|1|{sample_id}|7^50001^2^^S1^SC|^^^685^|R||||||N||||1||||||||||F\r"
        "R|1|^^^685/|182|mg/dL||H||F||admin||20261126100000|c311\r"
        "L|1|N\r"
    )
    [result] = driver.to_instrument_message(driver.parse(text), text).results
    assert result.unidentified is not None
    assert "sequence 7, rack 50001, position 2" in result.unidentified


async def test_placer_and_filler_oru_over_mllp_lands_and_is_acknowledged(
    settings: Any, world: World, supervisor: InterfaceSupervisor
) -> None:
    port = supervisor.port_of(world.hl7.id)
    assert port is not None
    async with MLLPClient("127.0.0.1", port, ack_timeout=5, max_attempts=1) as client:
        ack = await client.send(oru(placer="PL-20261127-88", filler=world.accession))
    assert ack.segment("MSA").get(1) == "AA"  # type: ignore[union-attr]
    async with session_scope(settings) as session:
        [result] = await session.scalars(
            select(Result).where(Result.order_test_id == world.placed["GLU"].id)
        )
        queued = await session.scalar(
            select(func.count()).where(InterfaceException.instrument_id == world.hl7.id)
        )
    assert result.raw["sample_ids"] == {
        "filler": world.accession,
        "specimen": [],
        "placer": "PL-20261127-88",
    }
    assert queued == 0


@pytest.mark.parametrize(
    ("unit", "value", "stored"),
    [
        ("10*3/uL", "7.4", "7.40"),  # UCUM: refused as another unit on main
        ("x10³/µL", "7.4", "7.40"),
        ("10^9/L", "7.4", "7.40"),  # the "^" unescaped, as many analyzers send it
        ("10\\S\\9/L", "7.4", "7.40"),  # escaped as HL7 wants
        ("cells/uL", "7400", "7.40"),  # a declared conversion still applies
    ],
)
async def test_units_are_compared_by_meaning(
    session: AsyncSession, bench: Bench, unit: str, value: str, stored: str
) -> None:
    text = (
        "MSH|^~\\&|XN-550|LAB|NIDAAN|LAB|20261127101010||ORU^R01^ORU_R01|U-1|P|2.5.1\r"
        f"OBR|1||{bench.coded.sample.accession}|CBC\r"
        f"OBX|1|NM|WBC^WBC^L||{value}|{unit}|||||F\r"
    )
    report = await ingest(session, bench, text)
    assert report.exceptions == []
    [result] = report.results
    entered = unit.replace("\\S\\", "^")  # what the analyzer meant, unescaped
    assert (str(result.value_numeric), result.unit, result.entered_unit) == (
        stored,
        "10^3/uL",
        entered,
    )


async def test_a_genuinely_different_unit_is_still_refused(
    session: AsyncSession, bench: Bench
) -> None:
    text = (
        "MSH|^~\\&|XN-550|LAB|NIDAAN|LAB|20261127101010||ORU^R01^ORU_R01|U-2|P|2.5.1\r"
        f"OBR|1||{bench.coded.sample.accession}|CBC\r"
        "OBX|1|NM|WBC^WBC^L||7.4|10*6/uL|||||F\r"
    )
    report = await ingest(session, bench, text)
    assert report.results == []
    assert [e.kind for e in report.exceptions] == ["invalid_value"]
