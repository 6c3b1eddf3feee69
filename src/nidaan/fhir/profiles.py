"""The NRCeS profile rules ``fhir.resources`` does not check (it validates base FHIR only).

``profile_problems(resource)`` lists what a resource lacks for its ABDM profile, from the
elements the NRCeS IG marks required (see docs/abdm.md). An empty list means conformant as
far as these rules go; the HL7 validator with ``ndhm.in#6.5.0`` remains the full check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nidaan.fhir import terminology as t

Json = dict[str, Any]


def _codings(concept: Json | None) -> list[Json]:
    return list((concept or {}).get("coding") or [])


def _has_coding(concept: Json | None, system: str, *, display: bool = True) -> bool:
    return any(
        c.get("system") == system and c.get("code") and (c.get("display") or not display)
        for c in _codings(concept)
    )


def _profile(resource: Json, problems: list[str]) -> None:
    wanted = t.PROFILE.get(resource.get("resourceType", ""))
    if wanted and wanted not in (resource.get("meta") or {}).get("profile", []):
        problems.append(f"meta.profile lacks {wanted}")


def _patient(r: Json) -> list[str]:
    problems = []
    identifiers = r.get("identifier") or []
    if not identifiers:
        problems.append("Patient.identifier is required (1..*)")
    for i, ident in enumerate(identifiers):
        coding = _codings(ident.get("type"))
        if not coding or not all(c.get(k) for c in coding for k in ("system", "code", "display")):
            problems.append(f"Patient.identifier[{i}].type needs coding system, code and display")
        if not ident.get("value"):
            problems.append(f"Patient.identifier[{i}].value is required")
    if not any(n.get("text") for n in r.get("name") or []):
        problems.append("Patient.name.text is required")
    return problems


def _practitioner(r: Json) -> list[str]:
    problems = []
    if not any(
        _has_coding(i.get("type"), t.V2_0203)
        and any(c.get("code") == "MD" for c in _codings(i.get("type")))
        for i in r.get("identifier") or []
    ):
        problems.append("Practitioner.identifier needs a type coded MD (v2-0203)")
    if not any(n.get("text") for n in r.get("name") or []):
        problems.append("Practitioner.name.text is required")
    return problems


def _organization(r: Json) -> list[str]:
    problems = []
    if not any(
        i.get("system")
        and i.get("value")
        and any(c.get("code") == "PRN" for c in _codings(i.get("type")))
        for i in r.get("identifier") or []
    ):
        problems.append("Organization.identifier needs system, type PRN and value")
    if not r.get("name"):
        problems.append("Organization.name is required")
    return problems


def _specimen(r: Json) -> list[str]:
    problems = []
    if not _has_coding(r.get("type"), t.SNOMED):
        problems.append("Specimen.type.coding must be SNOMED with code and display")
    if not r.get("receivedTime"):
        problems.append("Specimen.receivedTime is required")
    if not (r.get("collection") or {}).get("collectedDateTime"):
        problems.append("Specimen.collection.collectedDateTime is required")
    if not (r.get("subject") or {}).get("reference"):
        problems.append("Specimen.subject is required")
    return problems


_VALUES = ("valueQuantity", "valueString", "valueCodeableConcept", "valueBoolean", "valueInteger")


def _observation(r: Json) -> list[str]:
    problems = []
    if not r.get("status"):
        problems.append("Observation.status is required")
    codings = _codings(r.get("code"))
    if not codings or not all(c.get("code") and c.get("display") for c in codings):
        problems.append("Observation.code.coding needs code and display")
    if not _has_coding(r.get("code"), t.LOINC):
        problems.append("Observation.code has no LOINC coding (the test has no LOINC code)")
    if not any(k in r for k in _VALUES) and "dataAbsentReason" not in r:
        problems.append("Observation.value[x] (or dataAbsentReason) is required")
    quantity = r.get("valueQuantity")
    if quantity and quantity.get("code") and quantity.get("system") != t.UCUM:
        problems.append("Observation.valueQuantity.system must be UCUM")
    if not (r.get("subject") or {}).get("reference"):
        problems.append("Observation.subject is required")
    return problems


def _diagnostic_report(r: Json) -> list[str]:
    problems = []
    if not _codings(r.get("code")) or not all(
        c.get("system") == t.LOINC for c in _codings(r.get("code"))
    ):
        problems.append("DiagnosticReport.code.coding.system must be LOINC")
    if not any(_has_coding(c, t.SNOMED) for c in r.get("category") or []):
        problems.append("DiagnosticReport.category needs a SNOMED coding")
    for name in ("resultsInterpreter", "result"):
        if not r.get(name):
            problems.append(f"DiagnosticReport.{name} is required (1..*)")
    if not r.get("conclusion"):
        problems.append("DiagnosticReport.conclusion is required")
    if not (r.get("subject") or {}).get("reference"):
        problems.append("DiagnosticReport.subject is required")
    for form in r.get("presentedForm") or []:
        if not form.get("contentType") or not form.get("data"):
            problems.append("DiagnosticReport.presentedForm needs contentType and data")
    return problems


def _document_reference(r: Json) -> list[str]:
    problems = []
    if not r.get("status"):
        problems.append("DocumentReference.status is required")
    if not _has_coding(r.get("type"), t.SNOMED):
        problems.append("DocumentReference.type needs a SNOMED coding")
    for content in r.get("content") or [{}]:
        attachment = content.get("attachment") or {}
        if not attachment.get("contentType") or not attachment.get("data"):
            problems.append("DocumentReference.content.attachment needs contentType and data")
    if not (r.get("subject") or {}).get("reference"):
        problems.append("DocumentReference.subject is required")
    return problems


def _composition(r: Json) -> list[str]:
    problems = []
    if not r.get("status"):
        problems.append("Composition.status is required")
    codings = _codings(r.get("type"))
    if len(codings) != 1 or not _has_coding(r.get("type"), t.SNOMED):
        problems.append("Composition.type.coding must be exactly one SNOMED code with display")
    if not (r.get("subject") or {}).get("reference", "").strip():
        problems.append("Composition.subject is required")
    if not r.get("author") or not all(a.get("reference") for a in r["author"]):
        problems.append("Composition.author is required, each with a reference")
    sections = r.get("section") or []
    if len(sections) != 1:
        problems.append("Composition.section must have exactly one section")
    for section in sections:
        if section.get("code") and not _has_coding(section["code"], t.SNOMED):
            problems.append("Composition.section.code must be SNOMED")
        entries = section.get("entry") or []
        types = [e.get("type") for e in entries]
        if not 1 <= len(entries) <= 2:
            problems.append("Composition.section.entry must have 1 or 2 entries")
        if any(x not in ("DiagnosticReport", "DocumentReference") for x in types):
            problems.append(
                "Composition.section.entry types must be DiagnosticReport/DocumentReference"
            )
        if types.count("DiagnosticReport") > 1 or types.count("DocumentReference") > 1:
            problems.append("Composition.section has at most one entry of each type")
    return problems


def _bundle(r: Json) -> list[str]:
    problems = []
    if r.get("type") != "document":
        problems.append("Bundle.type must be document")
    if not (r.get("meta") or {}).get("versionId"):
        problems.append("Bundle.meta.versionId is required")
    identifier = r.get("identifier") or {}
    if not identifier.get("system") or not identifier.get("value"):
        problems.append("Bundle.identifier needs system and value")
    if not r.get("timestamp"):
        problems.append("Bundle.timestamp is required")
    entries = r.get("entry") or []
    if not entries or (entries[0].get("resource") or {}).get("resourceType") != "Composition":
        problems.append("The first entry of a document Bundle must be the Composition")
    full_urls = {e.get("fullUrl") for e in entries}
    for entry in entries:
        resource = entry.get("resource") or {}
        for reference in _references(resource):
            if reference not in full_urls:
                problems.append(
                    f"{resource.get('resourceType')}/{resource.get('id')} refers to "
                    f"{reference}, which is not in the bundle"
                )
        problems += [
            f"{resource.get('resourceType')}/{resource.get('id')}: {p}"
            for p in profile_problems(resource)
        ]
    return problems


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


_CHECKS: dict[str, Callable[[Json], list[str]]] = {
    "Patient": _patient,
    "Practitioner": _practitioner,
    "Organization": _organization,
    "Specimen": _specimen,
    "Observation": _observation,
    "DiagnosticReport": _diagnostic_report,
    "DocumentReference": _document_reference,
    "Composition": _composition,
    "Bundle": _bundle,
}


def profile_problems(resource: Json) -> list[str]:
    """What ``resource`` lacks for its NRCeS profile (empty: none found)."""
    problems: list[str] = []
    _profile(resource, problems)
    check = _CHECKS.get(resource.get("resourceType", ""))
    if check is not None:
        problems += check(resource)
    return problems
