"""A realistic sample report (documentation screenshots, benchmarks, render tests).

Units are given as a catalogue stores them (``10^3/uL``): the renderer prints them the
typographic way, as it does for real reports.
"""

from __future__ import annotations

import base64
import io
import math
import uuid
from datetime import UTC, date, datetime, timedelta

from nidaan.reports.domain import (
    Amendment,
    Change,
    ChangeKind,
    LabInfo,
    OrderInfo,
    PatientInfo,
    ReportDocument,
    ReportStatus,
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
        "10^3/uL",
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
        "10^3/uL",
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
        "mL/min/1.73m2",
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
    ("serology", "TSH", "CLIA", "2.41", "uIU/mL", "0.27 - 4.20", "N", None, True),
    (
        "serology",
        "Vitamin D, 25-hydroxy",
        "LC-MS/MS",
        "18.4",
        "ng/mL",
        "30 - 100 sufficient",
        "L",
        None,
        False,
    ),
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


#: The referral laboratory of the sample's send-out test.
REFERRAL_LAB = "Metropolis Healthcare, Mumbai (NABL MC-2212)"
REFERRED_TEST = "Vitamin D, 25-hydroxy"


def signature_png(name: str) -> bytes:
    """A hand-signature-like stroke (deterministic per name), as a PNG."""
    from PIL import Image, ImageDraw

    width, height = 360, 110
    image = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    seed = sum(map(ord, name))
    points = []
    for step in range(220):
        x = 14 + step * (width - 40) / 220
        wave = math.sin(step / (7 + seed % 5)) * 26 + math.sin(step / 3.1) * 9
        y = height / 2 + wave * (1 - step / 300)
        points.append((x, y))
    draw.line(points, fill=(18, 38, 96, 255), width=4, joint="curve")
    draw.line([(30, height - 22), (width - 60, height - 30)], fill=(18, 38, 96, 255), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def sample_document(
    language: str = "en",
    *,
    amended: bool = False,
    repeat: int = 1,
    verification_url: str = "https://reports.example-lab.in/verify/q7Hk2mZpR9xWc4Lb",
    status: ReportStatus | None = None,
    accreditation: str | None = (
        "NABL accredited medical laboratory (ISO 15189:2022), certificate MC-5820"
    ),
) -> ReportDocument:
    """A report for a 38-year-old woman across four departments; ``repeat`` multiplies the
    lines. ``amended`` (or ``status`` corrected/amended) makes it version 2 with what changed
    and why; ``status`` provisional names a pending test."""
    if status is None:
        status = ReportStatus.CORRECTED if amended else ReportStatus.FINAL
    issued = datetime(2026, 3, 12, 9, 31, tzinfo=UTC)
    collected = datetime(2026, 3, 12, 2, 40, tzinfo=UTC)
    pathologist = Signatory(
        "Dr. Kavita Rao",
        "MD (Pathology)",
        issued,
        registration_number="KMC 45812",
        signature_uri=_data_uri(signature_png("Dr. Kavita Rao")),
    )
    biochemist = Signatory(
        "Dr. Arvind Iyer",
        "MD (Biochemistry)",
        issued - timedelta(minutes=7),
        registration_number="KMC 51230",
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
                        referral_lab=REFERRAL_LAB if test == REFERRED_TEST else None,
                    ),
                    verifier=pathologist if department == "haematology" else biochemist,
                )
            )
    amendment = None
    if status in {ReportStatus.AMENDED, ReportStatus.CORRECTED}:
        kind = ChangeKind.CORRECTED if status is ReportStatus.CORRECTED else ChangeKind.ADDED
        amendment = Amendment(
            reason="Potassium re-run on a fresh sample; the first sample was haemolysed.",
            supersedes_number="RPT-2026-000418",
            supersedes_version=1,
            supersedes_issued_at=issued - timedelta(hours=3),
            changes=(Change("Potassium", kind),),
        )
    later = status is not ReportStatus.FINAL and status is not ReportStatus.PROVISIONAL
    return ReportDocument(
        lab=LabInfo(
            name="Sanjeevani Diagnostics",
            address="12, 4th Cross, Jayanagar 4th Block, Bengaluru, Karnataka 560011",
            phone="+91 80 4123 5678",
            email="reports@sanjeevani-labs.example.in",
            accreditation=accreditation,
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
                collected_at_centre="Jayanagar collection centre",
                tested_at="Sanjeevani central laboratory, Bengaluru",
            ),
            SampleInfo(
                "JAY-20260312-0043",
                "Serum",
                collected,
                collected + timedelta(minutes=51),
                collected_at_centre="Jayanagar collection centre",
                tested_at="Sanjeevani central laboratory, Bengaluru",
                condition=("lipaemic",),
                remarks="Mildly lipaemic; results not affected.",
            ),
            SampleInfo(
                "JAY-20260312-0044",
                "Urine",
                collected + timedelta(minutes=5),
                collected + timedelta(minutes=52),
                collected_at_centre="Jayanagar collection centre",
                tested_at="Sanjeevani central laboratory, Bengaluru",
            ),
        ),
        sections=group_sections(source, accredited_lab=accreditation is not None),
        signatories=signatories_of(source),
        report_number="RPT-2026-000431" if later else "RPT-2026-000418",
        version=2 if later else 1,
        issued_at=issued,
        verification_url=verification_url,
        language=language,
        amendment=amendment,
        status=status,
        pending_tests=("Urine culture and sensitivity",)
        if status is ReportStatus.PROVISIONAL
        else (),
    )
