"""Our lab records -> FHIR R4 resources shaped by the NRCeS (ABDM) profiles.

Pure functions over plain facts (dataclasses below); nothing here reads the database. Each
``*_resource`` returns a JSON dict; :func:`validated` turns it into the ``fhir.resources`` R4B
model, which checks cardinalities, types and formats of base FHIR (not profile rules: see
``profiles.py``). References go through a ``Ref`` function so the same mappers serve the REST
API (``Patient/<id>``) and documents (``urn:uuid:<id>``, resolved by fullUrl).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.composition import Composition
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.specimen import Specimen

from nidaan.fhir import terminology as t

Ref = Callable[[str, uuid.UUID], str]
Json = dict[str, Any]

MODELS: dict[str, Any] = {
    "Bundle": Bundle,
    "Composition": Composition,
    "DiagnosticReport": DiagnosticReport,
    "DocumentReference": DocumentReference,
    "Observation": Observation,
    "Organization": Organization,
    "Patient": Patient,
    "Practitioner": Practitioner,
    "Specimen": Specimen,
}


def rest_ref(resource_type: str, resource_id: uuid.UUID) -> str:
    return f"{resource_type}/{resource_id}"


def document_ref(resource_type: str, resource_id: uuid.UUID) -> str:
    return f"urn:uuid:{resource_id}"


def validated(resource: Json) -> Any:
    """The ``fhir.resources`` R4B model of ``resource`` (pydantic ValidationError if invalid)."""
    return MODELS[resource["resourceType"]].model_validate(resource)


# ---- facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabFacts:
    id: uuid.UUID
    name: str
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    facility_id: str | None = None  # HFR id, when registered with ABDM


@dataclass(frozen=True)
class PatientFacts:
    id: uuid.UUID
    mrn: str
    name: str
    sex: str
    date_of_birth: date | None
    mobile: str | None = None
    abha_number: str | None = None  # 14 digits
    abha_address: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    pincode: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class PractitionerFacts:
    id: uuid.UUID
    name: str
    qualification: str | None = None


@dataclass(frozen=True)
class SpecimenFacts:
    id: uuid.UUID
    accession: str
    specimen_type: str
    collected_at: datetime | None
    received_at: datetime | None


@dataclass(frozen=True)
class ResultFacts:
    id: uuid.UUID
    test_code: str
    test_name: str
    loinc: str | None
    department: str
    result_type: str
    value: str
    value_numeric: Decimal | None
    value_code: str | None
    unit: str | None
    reference_low: Decimal | None
    reference_high: Decimal | None
    reference_text: str | None
    flag: str | None
    comment: str | None
    method: str | None
    specimen_id: uuid.UUID | None
    verified_at: datetime | None
    verifier_ids: tuple[uuid.UUID, ...]
    corrected: bool


@dataclass(frozen=True)
class ReportFacts:
    id: uuid.UUID
    order_id: uuid.UUID
    report_number: str
    version: int
    issued_at: datetime
    amended: bool
    is_current: bool
    language: str
    pdf: bytes | None = None
    pdf_sha256: str | None = None


@dataclass(frozen=True)
class ReportRecord:
    """Everything one report document is made of."""

    lab: LabFacts
    patient: PatientFacts
    report: ReportFacts
    order_number: str
    results: Sequence[ResultFacts]
    specimens: Sequence[SpecimenFacts]
    practitioners: Sequence[PractitionerFacts] = field(default_factory=tuple)


# ---- helpers ------------------------------------------------------------------------------


def _instant(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def _meta(resource_type: str, version: int | None = None, updated: datetime | None = None) -> Json:
    meta: Json = {"profile": [t.PROFILE[resource_type]]}
    if version is not None:
        meta["versionId"] = str(version)
    if updated is not None:
        meta["lastUpdated"] = _instant(updated)
    return meta


def _coding(system: str, code: str, display: str) -> Json:
    return {"system": system, "code": code, "display": display}


def _quantity(value: Decimal, unit: str | None) -> Json:
    quantity: Json = {"value": value}
    if unit:
        quantity["unit"] = unit
        code = t.ucum(unit)
        if code is not None:
            quantity["system"] = t.UCUM
            quantity["code"] = code
    return quantity


# ---- resources ----------------------------------------------------------------------------


def organization_resource(lab: LabFacts) -> Json:
    identifiers: list[Json] = []
    if lab.facility_id:
        identifiers.append(
            {
                "type": {"coding": [_coding(t.V2_0203, "PRN", "Provider number")]},
                "system": t.HFR_SYSTEM,
                "value": lab.facility_id,
            }
        )
    identifiers.append(
        {
            "type": {"coding": [_coding(t.V2_0203, "PRN", "Provider number")]},
            "system": t.URI_SYSTEM,
            "value": f"urn:uuid:{lab.id}",
        }
    )
    telecom = [
        {"system": system, "value": value, "use": "work"}
        for system, value in (("phone", lab.phone), ("email", lab.email))
        if value
    ]
    resource: Json = {
        "resourceType": "Organization",
        "id": str(lab.id),
        "meta": _meta("Organization"),
        "identifier": identifiers,
        "active": True,
        "type": [{"coding": [_coding(t.V2_0203, "PRN", "Provider number")], "text": "Laboratory"}],
        "name": lab.name,
    }
    if telecom:
        resource["telecom"] = telecom
    if lab.address:
        resource["address"] = [{"text": lab.address, "country": "IN"}]
    return resource


def patient_resource(patient: PatientFacts) -> Json:
    identifiers: list[Json] = [
        {
            "type": {"coding": [_coding(t.V2_0203, "MR", "Medical record number")]},
            "system": t.URI_SYSTEM,
            "value": f"urn:nidaan:mrn:{patient.mrn}",
        }
    ]
    if patient.abha_number:
        digits = patient.abha_number
        identifiers.append(
            {
                "type": {"coding": [_coding(t.V2_0203, "MR", "Medical record number")]},
                "system": t.ABHA_NUMBER_SYSTEM,
                "value": f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}",
            }
        )
    if patient.abha_address:
        identifiers.append(
            {
                "type": {"coding": [_coding(t.V2_0203, "MR", "Medical record number")]},
                "system": t.ABHA_ADDRESS_SYSTEM,
                "value": patient.abha_address,
            }
        )
    gender = {"male": "male", "female": "female", "other": "other"}.get(patient.sex, "unknown")
    resource: Json = {
        "resourceType": "Patient",
        "id": str(patient.id),
        "meta": _meta("Patient", updated=patient.updated_at),
        "identifier": identifiers,
        "name": [{"text": patient.name}],
        "gender": gender,
    }
    if patient.date_of_birth:
        resource["birthDate"] = patient.date_of_birth.isoformat()
    if patient.mobile:
        resource["telecom"] = [{"system": "phone", "value": patient.mobile, "use": "mobile"}]
    if any((patient.address, patient.city, patient.state, patient.pincode)):
        address: Json = {"country": "IN"}
        if patient.address:
            address["line"] = [patient.address]
        for key, value in (
            ("city", patient.city),
            ("state", patient.state),
            ("postalCode", patient.pincode),
        ):
            if value:
                address[key] = value
        resource["address"] = [address]
    return resource


def practitioner_resource(person: PractitionerFacts) -> Json:
    resource: Json = {
        "resourceType": "Practitioner",
        "id": str(person.id),
        "meta": _meta("Practitioner"),
        "identifier": [
            {
                "type": {"coding": [_coding(t.V2_0203, "MD", "Medical License number")]},
                "system": t.URI_SYSTEM,
                "value": f"urn:uuid:{person.id}",
            }
        ],
        "name": [{"text": person.name}],
    }
    if person.qualification:
        resource["qualification"] = [{"code": {"text": person.qualification}}]
    return resource


def specimen_resource(specimen: SpecimenFacts, patient_id: uuid.UUID, ref: Ref) -> Json:
    code, display = t.SPECIMEN_SNOMED.get(specimen.specimen_type, t.ANY_SPECIMEN)
    resource: Json = {
        "resourceType": "Specimen",
        "id": str(specimen.id),
        "meta": _meta("Specimen"),
        "identifier": [
            {"system": t.URI_SYSTEM, "value": f"urn:nidaan:accession:{specimen.accession}"}
        ],
        "accessionIdentifier": {"value": specimen.accession},
        "status": "available",
        "type": {
            "coding": [_coding(t.SNOMED, code, display)],
            "text": specimen.specimen_type.replace("_", " ").capitalize(),
        },
        "subject": {"reference": ref("Patient", patient_id)},
    }
    if specimen.received_at:
        resource["receivedTime"] = _instant(specimen.received_at)
    if specimen.collected_at:
        resource["collection"] = {"collectedDateTime": _instant(specimen.collected_at)}
    return resource


def observation_resource(
    result: ResultFacts,
    patient_id: uuid.UUID,
    lab_id: uuid.UUID,
    ref: Ref,
    *,
    effective_at: datetime | None = None,
) -> Json:
    codings = []
    if result.loinc:
        codings.append(_coding(t.LOINC, result.loinc, result.test_name))
    codings.append(
        {
            "system": f"urn:nidaan:test-code:{lab_id}",
            "code": result.test_code,
            "display": result.test_name,
        }
    )
    resource: Json = {
        "resourceType": "Observation",
        "id": str(result.id),
        "meta": _meta("Observation"),
        "status": "corrected" if result.corrected else "final",
        "category": [
            {
                "coding": [
                    _coding(t.OBSERVATION_CATEGORY, "laboratory", "Laboratory"),
                ]
            }
        ],
        "code": {"coding": codings, "text": result.test_name},
        "subject": {"reference": ref("Patient", patient_id)},
        "performer": [{"reference": ref("Organization", lab_id)}]
        + [{"reference": ref("Practitioner", pid)} for pid in result.verifier_ids],
    }
    if effective_at:
        resource["effectiveDateTime"] = _instant(effective_at)
    if result.verified_at:
        resource["issued"] = _instant(result.verified_at)
    if result.value_numeric is not None and result.result_type in ("numeric", "calculated"):
        resource["valueQuantity"] = _quantity(result.value_numeric, result.unit)
    elif result.value_code:
        resource["valueCodeableConcept"] = {"text": result.value}
    elif result.value:
        resource["valueString"] = result.value
    else:
        resource["dataAbsentReason"] = {"text": "No value"}
    if result.flag in t.INTERPRETATIONS:
        code, display = t.INTERPRETATIONS[result.flag]
        resource["interpretation"] = [{"coding": [_coding(t.INTERPRETATION, code, display)]}]
    band: Json = {}
    if result.reference_low is not None:
        band["low"] = _quantity(result.reference_low, result.unit)
    if result.reference_high is not None:
        band["high"] = _quantity(result.reference_high, result.unit)
    if result.reference_text:
        band["text"] = result.reference_text
    if band:
        resource["referenceRange"] = [band]
    if result.comment:
        resource["note"] = [{"text": result.comment}]
    if result.method:
        resource["method"] = {"text": result.method}
    if result.specimen_id:
        resource["specimen"] = {"reference": ref("Specimen", result.specimen_id)}
    return resource


def conclusion_text(results: Sequence[ResultFacts]) -> str:
    """One line a reader can take in: how many results, which fell outside their range."""
    outside = [f"{r.test_name} {r.value} ({r.flag})" for r in results if r.flag and r.flag != "N"]
    count = f"{len(results)} verified result{'s' if len(results) != 1 else ''}"
    if not outside:
        return f"{count}; all within their reference intervals where one applies."
    return f"{count}; outside the reference interval: " + "; ".join(outside) + "."


def _report_status(report: ReportFacts) -> str:
    return "amended" if report.amended else "final"


def diagnostic_report_resource(record: ReportRecord, ref: Ref) -> Json:
    report, patient = record.report, record.patient
    departments = {r.department.strip().lower() for r in record.results}
    categories = [
        _coding(t.V2_0074, "LAB", "Laboratory"),
        _coding(t.SNOMED, *t.LAB_PROCEDURE_SNOMED),
    ]
    categories += [
        _coding(t.SNOMED, *t.DEPARTMENT_SNOMED[d])
        for d in sorted(departments)
        if d in t.DEPARTMENT_SNOMED
    ]
    collected = [s.collected_at for s in record.specimens if s.collected_at]
    interpreters = [p.id for p in record.practitioners]
    resource: Json = {
        "resourceType": "DiagnosticReport",
        "id": str(report.id),
        "meta": _meta("DiagnosticReport", report.version, report.issued_at),
        "identifier": [
            {"system": t.URI_SYSTEM, "value": f"urn:nidaan:report:{report.report_number}"}
        ],
        "status": _report_status(report),
        "category": [{"coding": categories}],
        "code": {
            "coding": [_coding(t.LOINC, *t.LAB_REPORT_LOINC)],
            "text": f"Laboratory report {record.order_number}",
        },
        "subject": {"reference": ref("Patient", patient.id), "display": patient.name},
        "issued": _instant(report.issued_at),
        "performer": [
            {"reference": ref("Organization", record.lab.id), "display": record.lab.name}
        ],
        "resultsInterpreter": [{"reference": ref("Practitioner", pid)} for pid in interpreters],
        "specimen": [{"reference": ref("Specimen", s.id)} for s in record.specimens],
        "result": [{"reference": ref("Observation", r.id)} for r in record.results],
        "conclusion": conclusion_text(record.results),
    }
    if collected:
        resource["effectiveDateTime"] = _instant(min(collected))
    if not interpreters:
        resource["resultsInterpreter"] = [{"reference": ref("Organization", record.lab.id)}]
    return resource


def document_reference_resource(record: ReportRecord, document_id: uuid.UUID, ref: Ref) -> Json:
    report = record.report
    attachment: Json = {
        "contentType": "application/pdf",
        "language": report.language,
        "title": f"Laboratory report {report.report_number} (version {report.version})",
        "creation": _instant(report.issued_at),
    }
    if report.pdf is not None:
        attachment["data"] = base64.b64encode(report.pdf).decode("ascii")
        attachment["size"] = len(report.pdf)
        # Attachment.hash is SHA-1 by FHIR's definition.
        attachment["hash"] = base64.b64encode(hashlib.sha1(report.pdf).digest()).decode("ascii")  # noqa: S324
    return {
        "resourceType": "DocumentReference",
        "id": str(document_id),
        "meta": _meta("DocumentReference"),
        "status": "current" if report.is_current else "superseded",
        "docStatus": _report_status(report),
        "type": {"coding": [_coding(t.SNOMED, *t.LAB_REPORT_SNOMED)], "text": "Laboratory report"},
        "subject": {"reference": ref("Patient", record.patient.id)},
        "date": _instant(report.issued_at),
        "author": [{"reference": ref("Organization", record.lab.id)}],
        "content": [{"attachment": attachment}],
    }


def _child_id(parent: uuid.UUID, name: str) -> uuid.UUID:
    """A stable id derived from the report (same report -> same composition/bundle ids)."""
    return uuid.uuid5(parent, name)


def report_bundle(record: ReportRecord, *, timestamp: datetime) -> Json:
    """The DiagnosticReportRecord document: Composition first, every reference inside."""
    ref = document_ref
    report = record.report
    composition_id = _child_id(report.id, "composition")
    document_id = _child_id(report.id, "document-reference")
    bundle_id = _child_id(report.id, "bundle")
    diagnostic = diagnostic_report_resource(record, ref)
    composition: Json = {
        "resourceType": "Composition",
        "id": str(composition_id),
        "meta": _meta("Composition", report.version, report.issued_at),
        "language": report.language,
        "identifier": {"system": t.URI_SYSTEM, "value": f"urn:uuid:{composition_id}"},
        "status": "amended" if report.amended else "final",
        "type": {"coding": [_coding(t.SNOMED, *t.RECORD_TYPE)], "text": "Diagnostic Report"},
        "subject": {"reference": ref("Patient", record.patient.id), "display": record.patient.name},
        "date": _instant(report.issued_at),
        "author": [{"reference": ref("Organization", record.lab.id), "display": record.lab.name}],
        "title": f"Diagnostic Report - Lab {report.report_number}",
        "custodian": {"reference": ref("Organization", record.lab.id)},
        "section": [
            {
                "title": "Laboratory report",
                "entry": [
                    {"reference": ref("DiagnosticReport", report.id), "type": "DiagnosticReport"},
                    {
                        "reference": ref("DocumentReference", document_id),
                        "type": "DocumentReference",
                    },
                ],
            }
        ],
    }
    resources: list[Json] = [
        composition,
        patient_resource(record.patient),
        organization_resource(record.lab),
        *(practitioner_resource(p) for p in record.practitioners),
        diagnostic,
        *(specimen_resource(s, record.patient.id, ref) for s in record.specimens),
        *(
            observation_resource(
                r, record.patient.id, record.lab.id, ref, effective_at=_collected(record, r)
            )
            for r in record.results
        ),
        document_reference_resource(record, document_id, ref),
    ]
    return {
        "resourceType": "Bundle",
        "id": str(bundle_id),
        "meta": {
            **_meta("Bundle", report.version, report.issued_at),
            "security": [_coding(t.CONFIDENTIALITY, "V", "very restricted")],
        },
        "identifier": {"system": t.URI_SYSTEM, "value": f"urn:uuid:{bundle_id}"},
        "type": "document",
        "timestamp": _instant(timestamp),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def _collected(record: ReportRecord, result: ResultFacts) -> datetime | None:
    for specimen in record.specimens:
        if specimen.id == result.specimen_id:
            return specimen.collected_at
    return None
