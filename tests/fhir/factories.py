"""Random but plausible report records for the FHIR mapper tests (hypothesis strategies)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from nidaan.fhir.mappers import (
    LabFacts,
    PatientFacts,
    PractitionerFacts,
    ReportFacts,
    ReportRecord,
    ResultFacts,
    SpecimenFacts,
)

UNITS = ["g/dL", "mg/dL", "%", "10^3/uL", "uIU/mL", "IU/mL", "mmol/L", "U/L", None, "cells/hpf"]
NAMES = (
    st.text(
        alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Lo"), max_codepoint=0x097F),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)
MOMENTS = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
UUIDS = st.uuids(version=4)


@st.composite
def records(draw: st.DrawFn, *, with_pdf: bool = True) -> ReportRecord:
    lab = LabFacts(
        id=draw(UUIDS),
        name=draw(NAMES),
        phone=draw(st.none() | st.just("+91 20 2553 0000")),
        email=draw(st.none() | st.just("lab@example.com")),
        address=draw(st.none() | st.just("12 FC Road, Pune")),
        facility_id=draw(st.none() | st.just("IN2710000001")),
    )
    patient = PatientFacts(
        id=draw(UUIDS),
        mrn=f"MRN-{draw(st.integers(1, 999999)):06d}",
        name=draw(NAMES),
        sex=draw(st.sampled_from(["male", "female", "other", "unknown"])),
        date_of_birth=draw(st.none() | st.dates(date(1920, 1, 1), date(2024, 1, 1))),
        mobile=draw(st.none() | st.just("+919876543210")),
        abha_number=draw(st.none() | st.from_regex(r"\A91[0-9]{12}\Z")),
        abha_address=draw(st.none() | st.just("asha.verma@sbx")),
        city=draw(st.none() | st.just("Pune")),
        pincode=draw(st.none() | st.just("411005")),
    )
    issued = draw(MOMENTS)
    specimens = [
        SpecimenFacts(
            id=draw(UUIDS),
            accession=f"CL-{i:04d}",
            specimen_type=draw(st.sampled_from(["serum", "whole_blood", "urine", "odd_fluid"])),
            collected_at=issued - timedelta(hours=5),
            received_at=issued - timedelta(hours=4),
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    practitioners = [
        PractitionerFacts(id=draw(UUIDS), name=draw(NAMES), qualification="MD (Pathology)")
        for _ in range(draw(st.integers(0, 2)))
    ]
    results = []
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["numeric", "text", "coded", "calculated"]))
        number = draw(st.decimals(min_value=Decimal("-50"), max_value=Decimal("100000"), places=2))
        low = draw(st.none() | st.just(Decimal("1.5")))
        results.append(
            ResultFacts(
                id=draw(UUIDS),
                test_code=f"T{i}",
                test_name=draw(NAMES),
                loinc=draw(st.none() | st.sampled_from(["718-7", "1558-6", "2160-0"])),
                department=draw(st.sampled_from(["Haematology", "Biochemistry", "Serology"])),
                result_type=kind,
                value=str(number) if kind in ("numeric", "calculated") else "Positive",
                value_numeric=number if kind in ("numeric", "calculated") else None,
                value_code="POS" if kind == "coded" else None,
                unit=draw(st.sampled_from(UNITS)),
                reference_low=low,
                reference_high=draw(st.none() | st.just(Decimal("11.25"))),
                reference_text=draw(st.none() | st.just("1.5 - 11.25")),
                flag=draw(st.none() | st.sampled_from(["N", "L", "H", "LL", "HH", "A"])),
                comment=draw(st.none() | st.just("Haemolysed sample")),
                method=draw(st.none() | st.just("Photometry")),
                specimen_id=draw(st.sampled_from([s.id for s in specimens])),
                verified_at=issued - timedelta(minutes=5),
                verifier_ids=tuple(p.id for p in practitioners),
                corrected=draw(st.booleans()),
            )
        )
    report = ReportFacts(
        id=draw(UUIDS),
        order_id=uuid.uuid4(),
        report_number=f"RPT-2026-{draw(st.integers(1, 999999)):06d}",
        version=draw(st.integers(1, 4)),
        issued_at=issued,
        amended=draw(st.booleans()),
        is_current=True,
        language=draw(st.sampled_from(["en", "hi"])),
        pdf=b"%PDF-1.7 test" if with_pdf else None,
    )
    return ReportRecord(
        lab=lab,
        patient=patient,
        report=report,
        order_number="ORD-1",
        results=results,
        specimens=specimens,
        practitioners=practitioners,
    )
