"""Code systems, NRCeS profile URLs and the small vocabularies our mapping needs."""

from __future__ import annotations

import re

NRCES = "https://nrces.in/ndhm/fhir/r4/StructureDefinition/"
PROFILE = {
    "Bundle": NRCES + "DocumentBundle",
    "Composition": NRCES + "DiagnosticReportRecord",
    "DiagnosticReport": NRCES + "DiagnosticReportLab",
    "Patient": NRCES + "Patient",
    "Practitioner": NRCES + "Practitioner",
    "Organization": NRCES + "Organization",
    "Observation": NRCES + "Observation",
    "Specimen": NRCES + "Specimen",
    "DocumentReference": NRCES + "DocumentReference",
}

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#: An identifier whose value is a URI (our UUIDs as ``urn:uuid:...``).
URI_SYSTEM = "urn:ietf:rfc:3986"
#: ABDM identifier systems (the NRCeS IG examples' spelling).
ABHA_NUMBER_SYSTEM = "https://healthid.ndhm.gov.in"
ABHA_ADDRESS_SYSTEM = "https://healthid.ndhm.gov.in/abha-address"
HFR_SYSTEM = "https://facility.ndhm.gov.in"

#: The whole report's code: LOINC "Laboratory report".
LAB_REPORT_LOINC = ("11502-2", "Laboratory report")
#: Composition.type of a DiagnosticReportRecord (the IG example and NHA's mapper).
RECORD_TYPE = ("721981007", "Diagnostic studies report")
#: DocumentReference.type of the report PDF.
LAB_REPORT_SNOMED = ("4241000179101", "Laboratory report")
LAB_PROCEDURE_SNOMED = ("108252007", "Laboratory procedure")
DEPARTMENT_SNOMED = {"haematology": ("708196005", "Hematology service")}

SPECIMEN_SNOMED = {
    "whole_blood": ("258580003", "Whole blood sample"),
    "serum": ("119364003", "Serum specimen"),
    "plasma": ("119361006", "Plasma specimen"),
    "urine": ("122575003", "Urine specimen"),
    "stool": ("119339001", "Stool specimen"),
    "sputum": ("119334006", "Sputum specimen"),
    "swab": ("257261003", "Swab"),
}
ANY_SPECIMEN = ("123038009", "Specimen")

#: Our result flags -> v3 ObservationInterpretation.
INTERPRETATIONS = {
    "N": ("N", "Normal"),
    "L": ("L", "Low"),
    "H": ("H", "High"),
    "LL": ("LL", "Critical low"),
    "HH": ("HH", "Critical high"),
    "A": ("A", "Abnormal"),
}

_UCUM_WORDS = {"IU": "[IU]", "mEq": "meq", "Eq": "eq", "cumm": "uL", "mcg": "ug"}
_UCUM_ALLOWED = re.compile(r"^[A-Za-z0-9%\[\]*/.{}_-]+$")


def ucum(unit: str | None) -> str | None:
    """The UCUM code of a lab unit as people write it (``10^3/uL`` -> ``10*3/uL``), or None.

    Covers the catalogue's units; anything it cannot read is left as display text only.
    """
    if not unit or not unit.strip():
        return None
    code = unit.strip().replace("µ", "u").replace("μ", "u").replace("^", "*")
    code = re.sub(r"\b(m|u|n)?IU\b", lambda m: (m.group(1) or "") + "[IU]", code)
    for word, replacement in _UCUM_WORDS.items():
        if word != "IU":
            code = re.sub(rf"\b{re.escape(word)}\b", replacement, code)
    return code if _UCUM_ALLOWED.match(code) else None
