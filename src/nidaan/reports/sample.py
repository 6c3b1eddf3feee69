"""A realistic sample report (documentation screenshots, benchmarks, render tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from nidaan.reports.domain import (
    Amendment,
    LabInfo,
    OrderInfo,
    PatientInfo,
    ReportDocument,
    ResultLine,
    SampleInfo,
    Signatory,
    SourceLine,
    age_text,
    flag_is_abnormal,
    flag_is_critical,
    group_sections,
    signatories_of,
)

# (department, test, method, value, unit, reference, flag, comment, accredited)
_ROWS: tuple[
    tuple[str, str, str | None, str, str | None, str | None, str, str | None, bool], ...
] = (
    (
        "haematology",
        "Haemoglobin",
        "Photometric (SLS)",
        "10.8",
        "g/dL",
        "12.0 - 15.0",
        "L",
        None,
        True,
    ),
    (
        "haematology",
        "Total leucocyte count",
        "Impedance",
        "7.9",
        "10³/µL",
        "4.0 - 10.0",
        "N",
        None,
        True,
    ),
    (
        "haematology",
        "Platelet count",
        "Impedance",
        "38",
        "10³/µL",
        "150 - 410",
        "LL",
        "Critical value phoned to Dr Mehta at 10:42 IST, read back.",
        True,
    ),
    ("haematology", "Haematocrit (PCV)", "Calculated", "33.9", "%", "36 - 46", "L", None, True),
    ("haematology", "MCV", "Calculated", "78.4", "fL", "83 - 101", "L", None, True),
    ("haematology", "ESR", "Westergren", "32", "mm/h", "0 - 20", "H", None, False),
    ("biochemistry", "Glucose, fasting", "Hexokinase", "126", "mg/dL", "70 - 99", "H", None, True),
    (
        "biochemistry",
        "HbA1c",
        "HPLC",
        "6.1",
        "%",
        "< 5.7 normal; 5.7 - 6.4 prediabetes",
        "H",
        None,
        True,
    ),
    (
        "biochemistry",
        "Creatinine",
        "Jaffe, kinetic",
        "0.82",
        "mg/dL",
        "0.51 - 0.95",
        "N",
        None,
        True,
    ),
    (
        "biochemistry",
        "eGFR (CKD-EPI 2021)",
        "Calculated",
        "88",
        "mL/min/1.73m²",
        ">= 90",
        "L",
        None,
        True,
    ),
    (
        "biochemistry",
        "Potassium",
        "ISE, indirect",
        "6.9",
        "mmol/L",
        "3.5 - 5.1",
        "HH",
        "Sample not haemolysed. Clinician informed.",
        True,
    ),
    (
        "biochemistry",
        "Total cholesterol",
        "CHOD-PAP",
        "212",
        "mg/dL",
        "< 200 desirable",
        "H",
        None,
        True,
    ),
    ("biochemistry", "HDL cholesterol", "Direct", "44", "mg/dL", ">= 40", "N", None, True),
    ("biochemistry", "Triglycerides", "GPO-PAP", "168", "mg/dL", "< 150", "H", None, True),
    (
        "biochemistry",
        "LDL cholesterol (Friedewald)",
        "Calculated",
        "134",
        "mg/dL",
        "< 100 optimal",
        "H",
        None,
        True,
    ),
    ("serology", "TSH", "CLIA", "2.41", "µIU/mL", "0.27 - 4.20", "N", None, True),
    (
        "clinical_pathology",
        "Urine protein",
        "Dipstick",
        "Trace",
        None,
        "Negative",
        "A",
        None,
        False,
    ),
)


def sample_document(
    language: str = "en",
    *,
    amended: bool = False,
    repeat: int = 1,
    verification_url: str = "https://reports.example-lab.in/verify/q7Hk2mZpR9xWc4Lb",
) -> ReportDocument:
    """A two-department report for a 38-year-old woman; ``repeat`` multiplies the lines."""
    issued = datetime(2026, 3, 12, 9, 31, tzinfo=UTC)
    collected = datetime(2026, 3, 12, 2, 40, tzinfo=UTC)
    pathologist = Signatory("Dr. Kavita Rao", "MD (Pathology), Reg. No. KMC 45812", issued)
    biochemist = Signatory(
        "Dr. Arvind Iyer", "MD (Biochemistry), Reg. No. KMC 51230", issued - timedelta(minutes=7)
    )
    source: list[SourceLine] = []
    for copy in range(repeat):
        for index, row in enumerate(_ROWS):
            department, test, method, value, unit, reference, flag, comment, accredited = row
            if language == "hi" and test == "HbA1c":
                comment = "त्रैमासिक जाँच की सलाह; श्रेणी: मधुमेह-पूर्व (prediabetes)।"
            suffix = f" ({copy + 1})" if repeat > 1 else ""
            source.append(
                SourceLine(
                    result_id=uuid.UUID(int=copy * 1000 + index),
                    department=department,
                    sort_key=(index, test),
                    line=ResultLine(
                        test_name=test + suffix,
                        value=value,
                        unit=unit,
                        reference=reference,
                        flag=flag,
                        method=method,
                        comment=comment,
                        abnormal=flag_is_abnormal(flag),
                        critical=flag_is_critical(flag),
                        accredited=accredited,
                    ),
                    verifier=pathologist if department == "haematology" else biochemist,
                )
            )
    amendment = None
    if amended:
        amendment = Amendment(
            reason="Potassium re-run on a fresh sample; the first sample was haemolysed.",
            supersedes_number="RPT-2026-000418",
            supersedes_version=1,
            supersedes_issued_at=issued - timedelta(hours=3),
        )
    return ReportDocument(
        lab=LabInfo(
            name="Sanjeevani Diagnostics",
            address="12, 4th Cross, Jayanagar 4th Block, Bengaluru, Karnataka 560011",
            phone="+91 80 4123 5678",
            email="reports@sanjeevani-labs.example.in",
            accreditation=(
                "NABL accredited medical laboratory (ISO 15189:2022), certificate MC-5820"
            ),
        ),
        patient=PatientInfo(
            name="Sunita Sharma",
            age_text=age_text(date(1987, 8, 14), issued, language),
            sex="female",
            mrn="MRN-00012345",
            referring_doctor="Dr. R. K. Mehta, MD",
        ),
        order=OrderInfo(number="ORD-2026-004211", priority="urgent"),
        samples=(
            SampleInfo(
                "JAY-20260312-0042",
                "EDTA whole blood",
                collected,
                collected + timedelta(minutes=48),
            ),
            SampleInfo("JAY-20260312-0043", "Serum", collected, collected + timedelta(minutes=51)),
            SampleInfo(
                "JAY-20260312-0044",
                "Urine",
                collected + timedelta(minutes=5),
                collected + timedelta(minutes=52),
            ),
        ),
        sections=group_sections(source),
        signatories=signatories_of(source),
        report_number="RPT-2026-000431" if amended else "RPT-2026-000418",
        version=2 if amended else 1,
        issued_at=issued,
        verification_url=verification_url,
        language=language,
        amendment=amendment,
    )
