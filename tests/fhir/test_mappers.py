"""FHIR mappers: every document validates with fhir.resources (R4B) and meets the NRCeS
profile rules the spec lists; the checks themselves catch what they should."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from nidaan.fhir import terminology as t
from nidaan.fhir.mappers import ReportRecord, report_bundle, validated
from nidaan.fhir.profiles import profile_problems
from tests.fhir.factories import records

NOW = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


def _bundle(record: ReportRecord) -> dict:
    model = validated(report_bundle(record, timestamp=NOW))
    return json.loads(model.model_dump_json(exclude_none=True))


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_every_report_document_validates_and_meets_the_profiles(record: ReportRecord) -> None:
    bundle = _bundle(record)
    problems = profile_problems(bundle)
    assert [p for p in problems if "no LOINC coding" not in p] == []
    # Only a test without a LOINC code is reported, once per result.
    assert len([p for p in problems if "no LOINC coding" in p]) == len(
        [r for r in record.results if r.loinc is None]
    )

    assert bundle["type"] == "document"
    assert bundle["meta"]["profile"] == [t.PROFILE["Bundle"]]
    assert bundle["meta"]["versionId"] == str(record.report.version)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        assert resource["meta"]["profile"] == [t.PROFILE[resource["resourceType"]]]
        validated(resource)

    [composition] = _resources(bundle, "Composition")
    assert composition["type"]["coding"] == [
        {"system": t.SNOMED, "code": "721981007", "display": "Diagnostic studies report"}
    ]
    assert len(composition["section"]) == 1
    assert [e["type"] for e in composition["section"][0]["entry"]] == [
        "DiagnosticReport",
        "DocumentReference",
    ]
    [report] = _resources(bundle, "DiagnosticReport")
    assert len(report["result"]) == len(record.results)
    assert report["status"] == ("amended" if record.report.amended else "final")
    [document] = _resources(bundle, "DocumentReference")
    assert document["content"][0]["attachment"]["contentType"] == "application/pdf"
    assert document["content"][0]["attachment"]["data"]

    observations = {o["id"]: o for o in _resources(bundle, "Observation")}
    for result in record.results:
        observation = observations[str(result.id)]
        if result.value_numeric is not None and result.result_type in ("numeric", "calculated"):
            quantity = observation["valueQuantity"]
            assert quantity["value"] == pytest.approx(float(result.value_numeric))
            if quantity.get("code"):
                assert quantity["system"] == t.UCUM
        if result.flag:
            assert observation["interpretation"][0]["coding"][0]["code"] == result.flag
    patient = _resources(bundle, "Patient")[0]
    if record.patient.abha_number:
        digits = record.patient.abha_number
        assert f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}" in [
            i["value"] for i in patient["identifier"]
        ]


@given(records())
@settings(max_examples=10, deadline=None)
def test_profile_checks_catch_broken_documents(record: ReportRecord) -> None:
    bundle = _bundle(record)

    no_composition_first = copy.deepcopy(bundle)
    no_composition_first["entry"].reverse()
    assert any("first entry" in p for p in profile_problems(no_composition_first))

    dangling = copy.deepcopy(bundle)
    dangling["entry"] = [e for e in dangling["entry"] if e["resource"]["resourceType"] != "Patient"]
    assert any("not in the bundle" in p for p in profile_problems(dangling))

    two_sections = copy.deepcopy(bundle)
    composition = two_sections["entry"][0]["resource"]
    composition["section"].append(composition["section"][0])
    assert any("exactly one section" in p for p in profile_problems(two_sections))

    no_conclusion = copy.deepcopy(bundle)
    for entry in no_conclusion["entry"]:
        if entry["resource"]["resourceType"] == "DiagnosticReport":
            del entry["resource"]["conclusion"]
    assert any("conclusion" in p for p in profile_problems(no_conclusion))

    no_profile = copy.deepcopy(bundle)
    del no_profile["meta"]["profile"]
    assert any("meta.profile" in p for p in profile_problems(no_profile))


def test_base_fhir_validation_refuses_what_r4_forbids() -> None:
    with pytest.raises(ValidationError):
        validated({"resourceType": "DiagnosticReport", "status": "final"})  # no code
    with pytest.raises(ValidationError):
        validated({"resourceType": "Patient", "nickname": "x"})  # unknown element
    with pytest.raises(ValidationError):
        validated({"resourceType": "Bundle", "type": "document", "timestamp": "2026-11-26"})


@pytest.mark.parametrize(
    ("unit", "code"),
    [
        ("g/dL", "g/dL"),
        ("10^3/uL", "10*3/uL"),
        ("uIU/mL", "u[IU]/mL"),
        ("IU/mL", "[IU]/mL"),
        ("µg/dL", "ug/dL"),
        ("mEq/L", "meq/L"),
        ("%", "%"),
        ("cells per hpf", None),
        (None, None),
    ],
)
def test_units_become_ucum_codes(unit: str | None, code: str | None) -> None:
    assert t.ucum(unit) == code
