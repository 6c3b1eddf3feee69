"""A realistic starting catalogue for an Indian diagnostic lab (demo data and new labs).

Reference intervals are common adult/paediatric values printed by Indian labs; every lab
must verify them against its own analysers and population before use (ISO 15189 5.5.2).
Prices are typical Indian list prices in rupees. LOINC codes are given only where checked.

``seed_catalog`` is idempotent: tests and panels whose code already exists are left as
they are (a lab's own edits survive a re-run).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import AuditActor
from nidaan.catalog.enums import Container, ResultType, SpecimenType
from nidaan.catalog.models import Panel
from nidaan.catalog.schemas import CatalogTestCreate, PanelCreate, ReferenceRangeIn
from nidaan.catalog.service import catalog_service

HAEM = "Haematology"
BIO = "Biochemistry"
IMM = "Immunoassay"
SERO = "Serology"
CLIN = "Clinical Pathology"
MICRO = "Microbiology"

BLOOD, SERUM, PLASMA = SpecimenType.WHOLE_BLOOD, SpecimenType.SERUM, SpecimenType.PLASMA
URINE, STOOL, SPUTUM = SpecimenType.URINE, SpecimenType.STOOL, SpecimenType.SPUTUM

# Ages for bands (days; see catalog.domain.parse_age).
NEONATE = (None, "28d")
INFANT = ("28d", "1y")
CHILD = ("1y", "12y")
TEEN = ("12y", "18y")
ADULT = ("18y", None)
FROM_1Y = ("1y", None)
FROM_12Y = ("12y", None)

EGFR_CKD_EPI_2021 = (
    "142 * min(CREA / (0.9 - 0.2 * SEX_FEMALE), 1) ** (-0.302 + 0.061 * SEX_FEMALE)"
    " * max(CREA / (0.9 - 0.2 * SEX_FEMALE), 1) ** -1.2"
    " * 0.9938 ** AGE_YEARS * (1 + 0.012 * SEX_FEMALE)"
)


def ref(
    low: str | None = None,
    high: str | None = None,
    *,
    sex: str | None = None,
    age: tuple[str | None, str | None] = (None, None),
    crit: tuple[str | None, str | None] = (None, None),
    pregnant: bool | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    """One reference band in the compact form used below."""
    return {
        "sex": sex,
        "age_min": age[0],
        "age_max": age[1],
        "pregnant": pregnant,
        "low": Decimal(low) if low is not None else None,
        "high": Decimal(high) if high is not None else None,
        "critical_low": Decimal(crit[0]) if crit[0] is not None else None,
        "critical_high": Decimal(crit[1]) if crit[1] is not None else None,
        "text": text,
    }


def num(
    code: str,
    name: str,
    loinc: str | None,
    department: str,
    specimen: str,
    container: str,
    unit: str | None,
    decimals: int,
    price: int,
    tat_minutes: int,
    ranges: list[dict[str, Any]] | None = None,
    *,
    result_type: ResultType = ResultType.NUMERIC,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "loinc": loinc,
        "department": department,
        "specimen_type": specimen,
        "container": container,
        "unit": unit,
        "decimals": decimals,
        "price": Decimal(price),
        "tat_minutes": tat_minutes,
        "result_type": result_type,
        "ranges": ranges or [],
        **extra,
    }


def coded(
    code: str,
    name: str,
    loinc: str | None,
    department: str,
    specimen: str,
    container: str,
    price: int,
    tat_minutes: int,
    choices: list[tuple[str, str, bool]],
    **extra: Any,
) -> dict[str, Any]:
    """A test answered by one choice: (code, text, abnormal)."""
    return num(
        code,
        name,
        loinc,
        department,
        specimen,
        container,
        None,
        0,
        price,
        tat_minutes,
        result_type=ResultType.CODED,
        choices=[{"code": c, "text": t, "abnormal": a} for c, t, a in choices],
        **extra,
    )


def calc(
    code: str,
    name: str,
    loinc: str | None,
    department: str,
    specimen: str,
    container: str,
    unit: str | None,
    decimals: int,
    formula: str,
    ranges: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A calculated test: priced at 0 (it comes with its inputs)."""
    return num(
        code,
        name,
        loinc,
        department,
        specimen,
        container,
        unit,
        decimals,
        0,
        240,
        ranges,
        result_type=ResultType.CALCULATED,
        formula=formula,
        **extra,
    )


REACTIVITY = [("NR", "Non-reactive", False), ("R", "Reactive", True)]
DIPSTICK = [
    ("NEG", "Negative", False),
    ("TRACE", "Trace", True),
    ("1+", "1+", True),
    ("2+", "2+", True),
    ("3+", "3+", True),
    ("4+", "4+", True),
]
NEG_POS = [("NEG", "Negative", False), ("POS", "Positive", True)]
EDTA, SST, FLUORIDE, CITRATE = (
    Container.EDTA_LAVENDER,
    Container.SST_YELLOW,
    Container.FLUORIDE_GREY,
    Container.CITRATE_BLUE,
)
URINE_POT = Container.URINE_CONTAINER
STERILE = Container.STERILE_CONTAINER

# fmt: off
TESTS: list[dict[str, Any]] = [
    # ---- Haematology: complete blood count (EDTA lavender) -----------------------------
    num("HB", "Haemoglobin", "718-7", HAEM, BLOOD, EDTA, "g/dL", 1, 100, 120, [
        ref("14.0", "24.0", age=NEONATE, crit=("9.5", "25.0")),
        ref("9.5", "14.0", age=INFANT, crit=("7.0", "20.0")),
        ref("11.0", "14.5", age=CHILD, crit=("7.0", "20.0")),
        ref("12.0", "16.0", age=TEEN, crit=("7.0", "20.0")),
        ref("13.0", "17.0", sex="male", age=ADULT, crit=("7.0", "20.0")),
        ref("12.0", "15.0", sex="female", age=ADULT, crit=("7.0", "20.0")),
        ref("11.0", "14.0", sex="female", pregnant=True, crit=("7.0", "20.0")),
    ], method="Cyanide-free SLS photometry", unit_conversions={"g/L": "0.1"},
        delta_absolute=Decimal("3.0"), delta_window_days=3, sort_order=1),
    num("RBC", "Red blood cell count", "789-8", HAEM, BLOOD, EDTA, "10^6/uL", 2, 0, 120, [
        ref("4.0", "6.6", age=NEONATE),
        ref("3.9", "5.3", age=("28d", "12y")),
        ref("4.5", "5.5", sex="male", age=FROM_12Y),
        ref("3.8", "4.8", sex="female", age=FROM_12Y),
    ], method="Electrical impedance", sort_order=2),
    num("HCT", "Haematocrit (PCV)", "4544-3", HAEM, BLOOD, EDTA, "%", 1, 0, 120, [
        ref("42.0", "65.0", age=NEONATE),
        ref("33.0", "43.0", age=("28d", "12y")),
        ref("40.0", "50.0", sex="male", age=FROM_12Y),
        ref("36.0", "46.0", sex="female", age=FROM_12Y),
    ], method="Calculated (RBC x MCV)",
      sort_order=3),
    num("MCV", "Mean corpuscular volume", "787-2", HAEM, BLOOD, EDTA, "fL", 1, 0, 120,
      [ref("83.0", "101.0", age=FROM_12Y), ref("75.0", "95.0", age=("28d", "12y"))],
      method="Electrical impedance (RBC histogram)",
      sort_order=4),
    num("MCH", "Mean corpuscular haemoglobin", "785-6", HAEM, BLOOD, EDTA, "pg", 1, 0, 120,
      [ref("27.0", "32.0")], method="Calculated (Hb / RBC)",
      sort_order=5),
    num("MCHC", "Mean corpuscular haemoglobin concentration", "786-4", HAEM, BLOOD, EDTA,
      "g/dL", 1, 0, 120, [ref("31.5", "34.5")], method="Calculated (Hb / HCT)",
      sort_order=6),
    num("RDW", "Red cell distribution width (CV)", "788-0", HAEM, BLOOD, EDTA, "%", 1, 0, 120,
      [ref("11.6", "14.0")], method="Calculated (RBC histogram)",
      sort_order=7),
    num("WBC", "Total leucocyte count", "6690-2", HAEM, BLOOD, EDTA, "10^3/uL", 2, 100, 120, [
        ref("9.0", "30.0", age=NEONATE, crit=("4.0", "40.0")),
        ref("6.0", "17.5", age=INFANT, crit=("2.0", "35.0")),
        ref("5.0", "14.5", age=CHILD, crit=("2.0", "30.0")),
        ref("4.0", "11.0", age=FROM_12Y, crit=("2.0", "30.0")),
    ], method="Flow cytometry", unit_conversions={"cells/uL": "0.001", "cells/cumm": "0.001"},
        sort_order=10),
    num("NEUTP", "Neutrophils", "770-8", HAEM, BLOOD, EDTA, "%", 0, 0, 120,
      [ref("40", "80", age=FROM_12Y), ref("20", "60", age=("28d", "12y"))],
      method="Flow cytometry (VCS differential)",
      sort_order=11),
    num("LYMPHP", "Lymphocytes", "736-9", HAEM, BLOOD, EDTA, "%", 0, 0, 120,
      [ref("20", "40", age=FROM_12Y), ref("30", "70", age=("28d", "12y"))],
      method="Flow cytometry (VCS differential)",
      sort_order=12),
    num("MONOP", "Monocytes", "5905-5", HAEM, BLOOD, EDTA, "%", 0, 0, 120, [ref("2", "10")],
      method="Flow cytometry (VCS differential)",
      sort_order=13),
    num("EOSP", "Eosinophils", "713-8", HAEM, BLOOD, EDTA, "%", 0, 0, 120, [ref("1", "6")],
      method="Flow cytometry (VCS differential)",
      sort_order=14),
    num("BASOP", "Basophils", "706-2", HAEM, BLOOD, EDTA, "%", 0, 0, 120, [ref("0", "2")],
      method="Flow cytometry (VCS differential)",
      sort_order=15),
    num("ANC", "Absolute neutrophil count", "751-8", HAEM, BLOOD, EDTA, "10^3/uL", 2, 0, 120,
      [ref("2.0", "7.0", age=FROM_12Y, crit=("0.5", None))],
      method="Calculated (TLC x neutrophil %)",
      sort_order=16),
    num("ALC", "Absolute lymphocyte count", "731-0", HAEM, BLOOD, EDTA, "10^3/uL", 2, 0, 120,
      [ref("1.0", "3.0", age=FROM_12Y)], method="Calculated (TLC x lymphocyte %)",
      sort_order=17),
    num("PLT", "Platelet count", "777-3", HAEM, BLOOD, EDTA, "10^3/uL", 0, 150, 120, [
        ref("150", "450", age=("0d", "12y"), crit=("20", "1000")),
        ref("150", "410", age=FROM_12Y, crit=("20", "1000")),
    ], method="Electrical impedance", unit_conversions={"cells/uL": "0.001", "lakh/uL": "100"},
        delta_percent=Decimal("50"), delta_window_days=7, sort_order=20),
    num("MPV", "Mean platelet volume", "32623-1", HAEM, BLOOD, EDTA, "fL", 1, 0, 120,
      [ref("7.5", "11.5")], method="Electrical impedance (PLT histogram)",
      sort_order=21),
    num("ESR", "Erythrocyte sedimentation rate", "4537-7", HAEM, BLOOD, EDTA, "mm/h", 0, 100,
      120, [ref("0", "15", sex="male"), ref("0", "20", sex="female")], method="Westergren",
      # ICSH: set up within 4 h at room temperature (the EDTA tube alone would allow 24).
      stability_hours=4, sort_order=30),
    coded("BG", "Blood group (ABO and Rh)", "882-1", HAEM, BLOOD, EDTA, 150, 120, [
        ("A_POS", "A Rh(D) positive", False), ("A_NEG", "A Rh(D) negative", False),
        ("B_POS", "B Rh(D) positive", False), ("B_NEG", "B Rh(D) negative", False),
        ("AB_POS", "AB Rh(D) positive", False), ("AB_NEG", "AB Rh(D) negative", False),
        ("O_POS", "O Rh(D) positive", False), ("O_NEG", "O Rh(D) negative", False),
    ], method="Tube agglutination (forward and reverse)", sort_order=40),
    # ---- Coagulation (citrate blue) ---------------------------------------------------
    num("PT", "Prothrombin time", "5902-2", HAEM, PLASMA, CITRATE, "s", 1, 300, 180,
      [ref("11.0", "13.5")], method="Clotting (photo-optical)", sort_order=50),
    num("INR", "International normalised ratio", "6301-6", HAEM, PLASMA, CITRATE, None, 2, 0,
      180, [ref("0.8", "1.2", crit=(None, "5.0"))], method="Calculated (PT ratio ^ ISI)",
      sort_order=51),
    num("APTT", "Activated partial thromboplastin time", "14979-9", HAEM, PLASMA, CITRATE, "s",
      1, 400, 180, [ref("25.0", "35.0", crit=(None, "100.0"))], method="Clotting (photo-optical)",
      sort_order=52),
    # ---- Biochemistry: glucose (fluoride grey) and HbA1c ------------------------------
    num("GLUF", "Glucose, fasting", "1558-6", BIO, PLASMA, FLUORIDE, "mg/dL", 0, 80, 120, [
        ref("70", "100", crit=("40", "450"),
          text="70 - 100 normal; 100 - 125 impaired fasting glucose; >= 126 diabetes"),
    ], method="Hexokinase", unit_conversions={"mmol/L": "18.016"}, sort_order=1),
    num("GLUPP", "Glucose, post-prandial (2 h)", "1521-4", BIO, PLASMA, FLUORIDE, "mg/dL", 0, 80,
      120, [ref("70", "140", crit=("40", "450"))], method="Hexokinase",
      unit_conversions={"mmol/L": "18.016"}, sort_order=2),
    num("GLUR", "Glucose, random", "2345-7", BIO, PLASMA, FLUORIDE, "mg/dL", 0, 80, 120, [
        ref("40", "90", age=NEONATE, crit=("30", "300")),
        ref("70", "140", age=("28d", None), crit=("40", "450")),
    ], method="Hexokinase", unit_conversions={"mmol/L": "18.016"}, sort_order=3),
    num("HBA1C", "Glycated haemoglobin (HbA1c)", "4548-4", BIO, BLOOD, EDTA, "%", 1, 450, 240, [
        ref("4.0", "5.6", text="< 5.7 non-diabetic; 5.7 - 6.4 prediabetes; >= 6.5 diabetes"),
    ], method="HPLC (NGSP certified)", sort_order=4),
    # ---- Kidney ---------------------------------------------------------------------------
    num("UREA", "Urea", "3091-6", BIO, SERUM, SST, "mg/dL", 0, 150, 240, [
        ref("10", "38", age=("28d", "12y")),
        ref("17", "43", age=FROM_12Y, crit=(None, "200")),
    ], method="Urease-GLDH", unit_conversions={"mmol/L": "6.006"}, sort_order=10),
    calc("BUN", "Blood urea nitrogen", "3094-0", BIO, SERUM, SST, "mg/dL", 1, "UREA / 2.14",
         [ref("7.0", "20.0", age=FROM_12Y)], method="Calculated from urea", sort_order=11),
    num("CREA", "Creatinine", "2160-0", BIO, SERUM, SST, "mg/dL", 2, 150, 240, [
        ref("0.30", "1.00", age=NEONATE),
        ref("0.20", "0.40", age=INFANT),
        ref("0.30", "0.70", age=CHILD),
        ref("0.50", "1.00", age=TEEN, crit=(None, "7.00")),
        ref("0.70", "1.30", sex="male", age=ADULT, crit=(None, "7.00")),
        ref("0.60", "1.10", sex="female", age=ADULT, crit=(None, "7.00")),
    ], method="Enzymatic (IDMS traceable)", unit_conversions={"umol/L": "0.011312"},
        delta_percent=Decimal("50"), delta_window_days=7, sort_order=12),
    calc("EGFR", "eGFR (CKD-EPI 2021)", "98979-8", BIO, SERUM, SST, "mL/min/1.73m2", 0,
         EGFR_CKD_EPI_2021, [ref("90", None, age=ADULT, text=(
             ">= 90 normal; 60 - 89 mildly decreased; 45 - 59 mild to moderate; "
             "30 - 44 moderate to severe; 15 - 29 severe; < 15 kidney failure"))],
         method="CKD-EPI 2021 creatinine equation (race-free); adults only", sort_order=13),
    num("UA", "Uric acid", "3084-1", BIO, SERUM, SST, "mg/dL", 1, 150, 240, [
        ref("3.5", "7.2", sex="male", age=FROM_12Y),
        ref("2.6", "6.0", sex="female", age=FROM_12Y),
        ref("2.0", "5.5", age=("1y", "12y")),
    ], method="Uricase", unit_conversions={"umol/L": "0.016811"}, sort_order=14),
    num("UMALB", "Microalbumin, urine", "14957-5", BIO, URINE, URINE_POT, "mg/L", 1, 500, 240,
      [ref(None, "30.0", text="< 30 normal")], method="Immunoturbidimetry", sort_order=15),
    # ---- Electrolytes and minerals -------------------------------------------------------
    num("NA", "Sodium", "2951-2", BIO, SERUM, SST, "mmol/L", 0, 200, 120,
      [ref("136", "145", crit=("120", "160"))], method="Ion-selective electrode (indirect)",
      unit_conversions={"mEq/L": "1"}, sort_order=20),
    num("K", "Potassium", "2823-3", BIO, SERUM, SST, "mmol/L", 1, 200, 120, [
        ref("3.7", "5.9", age=NEONATE, crit=("2.8", "7.0")),
        ref("3.5", "5.1", age=("28d", None), crit=("2.8", "6.2")),
    ], method="Ion-selective electrode (indirect)", unit_conversions={"mEq/L": "1"},
        delta_absolute=Decimal("1.0"), delta_window_days=2, sort_order=21),
    num("CL", "Chloride", "2075-0", BIO, SERUM, SST, "mmol/L", 0, 200, 120,
      [ref("98", "107", crit=("80", "120"))], method="Ion-selective electrode (indirect)",
      unit_conversions={"mEq/L": "1"}, sort_order=22),
    num("HCO3", "Bicarbonate", "1963-8", BIO, SERUM, SST, "mmol/L", 0, 250, 120,
      [ref("22", "29", crit=("10", "40"))], method="Enzymatic (PEPC)", sort_order=23),
    num("CA", "Calcium, total", "17861-6", BIO, SERUM, SST, "mg/dL", 1, 200, 240, [
        ref("7.6", "10.4", age=NEONATE, crit=("6.5", "13.0")),
        ref("8.8", "10.8", age=("28d", "18y"), crit=("6.5", "13.0")),
        ref("8.6", "10.3", age=ADULT, crit=("6.5", "13.0")),
    ], method="Arsenazo III", unit_conversions={"mmol/L": "4.008"}, sort_order=24),
    num("PHOS", "Phosphorus, inorganic", "2777-1", BIO, SERUM, SST, "mg/dL", 1, 200, 240, [
        ref("4.0", "7.0", age=("0d", "12y")),
        ref("2.5", "4.5", age=FROM_12Y, crit=("1.0", None)),
    ], method="Phosphomolybdate UV", sort_order=25),
    num("MG", "Magnesium", "19123-9", BIO, SERUM, SST, "mg/dL", 1, 300, 240,
      [ref("1.6", "2.6", crit=("1.0", "4.9"))], method="Xylidyl blue", sort_order=26),
    # ---- Liver -------------------------------------------------------------------------------
    num("TBIL", "Bilirubin, total", "1975-2", BIO, SERUM, SST, "mg/dL", 2, 150, 240, [
        ref("1.40", "8.70", age=(None, "1d"), crit=(None, "15.00")),
        ref("3.40", "11.50", age=("1d", "2d"), crit=(None, "15.00")),
        ref("1.50", "12.00", age=("2d", "28d"), crit=(None, "15.00")),
        ref("0.30", "1.20", age=("28d", None)),
    ], method="Diazo", unit_conversions={"umol/L": "0.05848"}, sort_order=30),
    num("DBIL", "Bilirubin, direct", "1968-7", BIO, SERUM, SST, "mg/dL", 2, 100, 240,
      [ref("0.00", "0.30")], method="Diazo", unit_conversions={"umol/L": "0.05848"},
      sort_order=31),
    calc("IBIL", "Bilirubin, indirect", "1971-1", BIO, SERUM, SST, "mg/dL", 2, "TBIL - DBIL",
         [ref("0.10", "1.00", age=("28d", None))], method="Calculated (total - direct)",
      sort_order=32),
    num("AST", "Aspartate aminotransferase (AST/SGOT)", "1920-8", BIO, SERUM, SST, "U/L", 0,
      150, 240, [ref(None, "50", sex="male"), ref(None, "35", sex="female")],
      method="IFCC without P5P", sort_order=33),
    num("ALT", "Alanine aminotransferase (ALT/SGPT)", "1742-6", BIO, SERUM, SST, "U/L", 0, 150,
      240, [ref(None, "50", sex="male"), ref(None, "35", sex="female")],
      method="IFCC without P5P", sort_order=34),
    num("ALP", "Alkaline phosphatase", "6768-6", BIO, SERUM, SST, "U/L", 0, 150, 240, [
        ref("100", "420", age=("0d", "12y")),
        ref("40", "390", age=TEEN),
        ref("30", "120", age=ADULT),
    ], method="IFCC (AMP buffer)", sort_order=35),
    num("GGT", "Gamma-glutamyl transferase", "2324-2", BIO, SERUM, SST, "U/L", 0, 200, 240,
      [ref(None, "55", sex="male"), ref(None, "38", sex="female")], method="IFCC", sort_order=36),
    num("TP", "Protein, total", "2885-2", BIO, SERUM, SST, "g/dL", 1, 100, 240,
      [ref("6.4", "8.3", age=FROM_1Y), ref("4.6", "7.4", age=(None, "1y"))], method="Biuret",
      unit_conversions={"g/L": "0.1"}, sort_order=37),
    num("ALB", "Albumin", "1751-7", BIO, SERUM, SST, "g/dL", 1, 100, 240,
      [ref("3.5", "5.2", age=FROM_1Y), ref("2.8", "4.7", age=(None, "1y"))],
      method="Bromocresol green", unit_conversions={"g/L": "0.1"}, sort_order=38),
    calc("GLOB", "Globulin", "10834-0", BIO, SERUM, SST, "g/dL", 1, "TP - ALB",
         [ref("2.0", "3.5")], method="Calculated (total protein - albumin)",
      sort_order=39),
    calc("AGR", "Albumin/globulin ratio", "1759-0", BIO, SERUM, SST, None, 2, "ALB / GLOB",
         [ref("1.10", "2.20")], method="Calculated",
      sort_order=40),
    # ---- Lipids ---------------------------------------------------------------------------
    num("CHOL", "Cholesterol, total", "2093-3", BIO, SERUM, SST, "mg/dL", 0, 150, 240, [
        ref(None, "200", text="< 200 desirable; 200 - 239 borderline high; >= 240 high"),
    ], method="CHOD-PAP", unit_conversions={"mmol/L": "38.67"}, sort_order=50),
    num("TG", "Triglycerides", "2571-8", BIO, SERUM, SST, "mg/dL", 0, 150, 240, [
        ref(None, "150", text=(
            "< 150 normal; 150 - 199 borderline high; 200 - 499 high; >= 500 very high")),
    ], method="GPO-PAP", unit_conversions={"mmol/L": "88.57"}, sort_order=51),
    num("HDL", "HDL cholesterol", "2085-9", BIO, SERUM, SST, "mg/dL", 0, 200, 240, [
        ref("40", None, sex="male", text="> 40 desirable (men)"),
        ref("50", None, sex="female", text="> 50 desirable (women)"),
    ], method="Direct enzymatic", unit_conversions={"mmol/L": "38.67"}, sort_order=52),
    calc("LDL", "LDL cholesterol (calculated)", "13457-7", BIO, SERUM, SST, "mg/dL", 0,
         "CHOL - HDL - TG / 5", [ref(None, "100", text=(
             "< 100 optimal; 100 - 129 near optimal; 130 - 159 borderline high; "
             "160 - 189 high; >= 190 very high"))],
         method="Friedewald (not valid when triglycerides > 400 mg/dL)", sort_order=53),
    calc("VLDL", "VLDL cholesterol (calculated)", "13458-5", BIO, SERUM, SST, "mg/dL", 0,
         "TG / 5", [ref("5", "40")], method="Friedewald", sort_order=54),
    calc("CHOLHDL", "Total cholesterol/HDL ratio", "9830-1", BIO, SERUM, SST, None, 1,
         "CHOL / HDL", [ref(None, "5.0", text="< 5.0 desirable")], method="Calculated",
      sort_order=55),
    # ---- Pancreas, inflammation, iron, muscle ------------------------------------------
    num("AMY", "Amylase", "1798-8", BIO, SERUM, SST, "U/L", 0, 400, 240, [ref("28", "100")],
      method="CNPG3", sort_order=60),
    num("LIPASE", "Lipase", "3040-3", BIO, SERUM, SST, "U/L", 0, 600, 240, [ref("13", "60")],
      method="Colorimetric", sort_order=61),
    num("CRP", "C-reactive protein", "1988-5", BIO, SERUM, SST, "mg/L", 1, 400, 240,
      [ref(None, "5.0")], method="Immunoturbidimetry", sort_order=62),
    num("IRON", "Iron", "2498-4", BIO, SERUM, SST, "ug/dL", 0, 300, 240,
      [ref("65", "175", sex="male"), ref("50", "170", sex="female")], method="Ferrozine",
      sort_order=63),
    num("TIBC", "Total iron-binding capacity", "2500-7", BIO, SERUM, SST, "ug/dL", 0, 300, 240,
      [ref("250", "450")], method="Calculated (serum iron + UIBC)",
      sort_order=64),
    num("LDH", "Lactate dehydrogenase", "2532-0", BIO, SERUM, SST, "U/L", 0, 350, 240,
      [ref("125", "220", age=ADULT)], method="IFCC (L to P)", sort_order=65),
    num("CK", "Creatine kinase", "2157-6", BIO, SERUM, SST, "U/L", 0, 400, 240,
      [ref("39", "308", sex="male"), ref("26", "192", sex="female")], method="IFCC (NAC)",
      sort_order=66),
    # ---- Immunoassay / endocrinology -------------------------------------------------------
    num("TSH", "Thyroid stimulating hormone", "3016-3", IMM, SERUM, SST, "uIU/mL", 2, 250, 480, [
        ref("0.70", "15.20", age=NEONATE),
        ref("0.70", "6.00", age=("28d", "12y")),
        ref("0.27", "4.20", age=FROM_12Y),
        ref("0.10", "3.00", sex="female", pregnant=True,
          text="Pregnancy: 0.10 - 2.50 (1st trimester); 0.20 - 3.00 (2nd and 3rd)"),
    ], method="ECLIA", unit_conversions={"mIU/L": "1"}, sort_order=1),
    num("T3", "Triiodothyronine (T3), total", "3053-6", IMM, SERUM, SST, "ng/dL", 0, 200, 480,
      [ref("80", "200", age=FROM_12Y)], method="ECLIA", unit_conversions={"ng/mL": "100"},
      sort_order=2),
    num("T4", "Thyroxine (T4), total", "3026-2", IMM, SERUM, SST, "ug/dL", 1, 200, 480,
      [ref("5.1", "14.1", age=FROM_12Y)], method="ECLIA", sort_order=3),
    num("FT3", "Free T3", "3051-0", IMM, SERUM, SST, "pg/mL", 2, 300, 480,
      [ref("2.00", "4.40", age=FROM_12Y)], method="ECLIA", sort_order=4),
    num("FT4", "Free T4", "3024-7", IMM, SERUM, SST, "ng/dL", 2, 300, 480,
      [ref("0.93", "1.70", age=FROM_12Y)], method="ECLIA", unit_conversions={"pmol/L": "0.0777"},
      sort_order=5),
    num("VITD", "25-Hydroxy vitamin D (total)", "62292-8", IMM, SERUM, SST, "ng/mL", 1, 1200,
      1440, [ref("30.0", "100.0", text=(
          "< 20 deficient; 20 - 29 insufficient; 30 - 100 sufficient; > 100 potential toxicity"))],
      method="CLIA", unit_conversions={"nmol/L": "0.4006"}, sort_order=10),
    num("VITB12", "Vitamin B12", "2132-9", IMM, SERUM, SST, "pg/mL", 0, 900, 1440,
      [ref("197", "771")], method="ECLIA", unit_conversions={"pmol/L": "1.355"}, sort_order=11),
    num("FERR", "Ferritin", "2276-4", IMM, SERUM, SST, "ng/mL", 1, 600, 480,
      [ref("30.0", "400.0", sex="male"), ref("13.0", "150.0", sex="female")], method="ECLIA",
      sort_order=12),
    num("PSA", "Prostate specific antigen, total", "2857-1", IMM, SERUM, SST, "ng/mL", 2, 700,
      480, [ref(None, "4.00", sex="male", age=ADULT)], method="ECLIA", sort_order=13),
    num("PRL", "Prolactin", "2842-3", IMM, SERUM, SST, "ng/mL", 1, 450, 480,
      [ref("4.0", "15.2", sex="male"), ref("4.8", "23.3", sex="female")], method="ECLIA",
      sort_order=14),
    # ---- Serology ----------------------------------------------------------------------------
    coded("HBSAG", "Hepatitis B surface antigen (HBsAg)", "5196-1", SERO, SERUM, SST, 350, 240,
          REACTIVITY, method="CLIA", sort_order=1),
    coded("HIV", "HIV 1 & 2 antibodies and p24 antigen (4th generation)", "56888-1", SERO,
          SERUM, SST, 400, 240, REACTIVITY, method="CLIA", required_verifications=2,
          sort_order=2),
    coded("HCV", "Hepatitis C antibody (anti-HCV)", "13955-0", SERO, SERUM, SST, 600, 240,
          REACTIVITY, method="CLIA", sort_order=3),
    coded("RPR", "Syphilis screen (RPR)", "20507-0", SERO, SERUM, SST, 150, 240, REACTIVITY,
          method="Rapid plasma reagin (card)", sort_order=4),
    coded("DENGNS1", "Dengue NS1 antigen", None, SERO, SERUM, SST, 600, 240, REACTIVITY,
          method="ELISA", sort_order=5),
    coded("MALAG", "Malaria antigen (P. falciparum / P. vivax)", None, SERO, BLOOD, EDTA, 400,
          120, [("NEG", "Negative", False), ("PF", "P. falciparum positive", True),
                ("PV", "P. vivax positive", True), ("MIXED", "Mixed infection", True)],
          method="Immunochromatography", sort_order=6),
    num("RF", "Rheumatoid factor", "11572-5", SERO, SERUM, SST, "IU/mL", 1, 400, 240,
      [ref(None, "14.0")], method="Immunoturbidimetry", sort_order=7),
    num("ASO", "Anti-streptolysin O", "5370-2", SERO, SERUM, SST, "IU/mL", 0, 450, 240,
      [ref(None, "200")], method="Immunoturbidimetry", sort_order=8),
    # ---- Clinical pathology: urine routine (urine container) -----------------------------
    coded("UCOLOR", "Urine colour", "5778-6", CLIN, URINE, URINE_POT, 0, 120, [
        ("PALE", "Pale yellow", False), ("YELLOW", "Yellow", False),
        ("DARK", "Dark yellow", False), ("RED", "Red", True), ("BROWN", "Brown", True),
    ], method="Visual examination",
      sort_order=1),
    coded("UAPP", "Urine appearance", "5767-9", CLIN, URINE, URINE_POT, 0, 120, [
        ("CLEAR", "Clear", False), ("SLTURBID", "Slightly turbid", True),
        ("TURBID", "Turbid", True),
    ], method="Visual examination",
      sort_order=2),
    num("USG", "Urine specific gravity", "5811-5", CLIN, URINE, URINE_POT, None, 3, 0, 120,
      [ref("1.005", "1.030")], method="Reagent strip", sort_order=3),
    num("UPH", "Urine pH", "5803-2", CLIN, URINE, URINE_POT, None, 1, 0, 120, [ref("5.0", "8.0")],
      method="Reagent strip", sort_order=4),
    coded("UPROT", "Urine protein", "20454-5", CLIN, URINE, URINE_POT, 0, 120, DIPSTICK,
          method="Reagent strip", sort_order=5),
    coded("UGLU", "Urine glucose", "25428-4", CLIN, URINE, URINE_POT, 0, 120, DIPSTICK,
          method="Reagent strip", sort_order=6),
    coded("UKET", "Urine ketones", "2514-8", CLIN, URINE, URINE_POT, 0, 120, [
        ("NEG", "Negative", False), ("TRACE", "Trace", True), ("SMALL", "Small (1+)", True),
        ("MOD", "Moderate (2+)", True), ("LARGE", "Large (3+)", True),
    ], method="Reagent strip (nitroprusside)", sort_order=7),
    coded("UBIL", "Urine bilirubin", "5770-3", CLIN, URINE, URINE_POT, 0, 120, NEG_POS,
          method="Reagent strip", sort_order=8),
    coded("UBLD", "Urine blood", "5794-3", CLIN, URINE, URINE_POT, 0, 120, DIPSTICK[:5],
          method="Reagent strip", sort_order=9),
    coded("UNIT", "Urine nitrite", "5802-4", CLIN, URINE, URINE_POT, 0, 120, NEG_POS,
          method="Reagent strip", sort_order=10),
    coded("ULEU", "Urine leucocyte esterase", "5799-2", CLIN, URINE, URINE_POT, 0, 120,
          DIPSTICK[:5], method="Reagent strip", sort_order=11),
    num("UPUS", "Urine pus cells", "5821-4", CLIN, URINE, URINE_POT, "/hpf", 0, 0, 120,
      [ref("0", "5")], method="Microscopy", sort_order=12),
    num("URBC", "Urine red blood cells", "13945-1", CLIN, URINE, URINE_POT, "/hpf", 0, 0, 120,
      [ref("0", "2")], method="Microscopy", sort_order=13),
    coded("UHCG", "Urine pregnancy test (hCG)", "2106-3", CLIN, URINE, URINE_POT, 150, 60,
          [("NEG", "Negative", False), ("POS", "Positive", False)],
          method="Immunochromatography", sort_order=20),
    coded("FOBT", "Stool occult blood", "2335-8", CLIN, STOOL, Container.STOOL_CONTAINER, 200, 240,
          NEG_POS, method="Immunochromatography", sort_order=30),
    # ---- Microbiology ---------------------------------------------------------------------
    num("UCULT", "Urine culture and sensitivity", "630-4", MICRO, URINE, STERILE,
      None, 0, 700, 4320, result_type=ResultType.TEXT, method="Semi-quantitative culture",
      sort_order=1),
    num("BCULT", "Blood culture and sensitivity", "600-7", MICRO, BLOOD, STERILE,
      None, 0, 1200, 7200, result_type=ResultType.TEXT, method="Automated culture",
      sort_order=2),
    coded("AFB", "Sputum AFB smear (Ziehl-Neelsen)", "11545-1", MICRO, SPUTUM,
          Container.STERILE_CONTAINER, 200, 1440, [
              ("NEG", "No AFB seen", False), ("SCANTY", "Scanty", True), ("1+", "1+", True),
              ("2+", "2+", True), ("3+", "3+", True),
          ], method="Ziehl-Neelsen stain", sort_order=3),
]
# fmt: on

PANELS: list[tuple[str, str, int, list[str]]] = [
    (
        "CBC",
        "Complete blood count",
        350,
        [
            "HB",
            "RBC",
            "HCT",
            "MCV",
            "MCH",
            "MCHC",
            "RDW",
            "WBC",
            "NEUTP",
            "LYMPHP",
            "MONOP",
            "EOSP",
            "BASOP",
            "ANC",
            "ALC",
            "PLT",
            "MPV",
        ],
    ),
    (
        "LFT",
        "Liver function test",
        600,
        [
            "TBIL",
            "DBIL",
            "IBIL",
            "AST",
            "ALT",
            "ALP",
            "GGT",
            "TP",
            "ALB",
            "GLOB",
            "AGR",
        ],
    ),
    ("KFT", "Kidney function test", 600, ["UREA", "BUN", "CREA", "EGFR", "UA", "NA", "K", "CL"]),
    ("LIPID", "Lipid profile", 500, ["CHOL", "TG", "HDL", "LDL", "VLDL", "CHOLHDL"]),
    ("THYROID", "Thyroid profile (T3, T4, TSH)", 450, ["T3", "T4", "TSH"]),
    ("THYFREE", "Thyroid profile, free (FT3, FT4, TSH)", 600, ["FT3", "FT4", "TSH"]),
    ("DIABETES", "Diabetes screen (fasting glucose, HbA1c)", 450, ["GLUF", "HBA1C"]),
    ("ELECTROLYTES", "Serum electrolytes", 400, ["NA", "K", "CL", "HCO3"]),
    (
        "URINE_RE",
        "Urine routine and microscopy",
        150,
        [
            "UCOLOR",
            "UAPP",
            "USG",
            "UPH",
            "UPROT",
            "UGLU",
            "UKET",
            "UBIL",
            "UBLD",
            "UNIT",
            "ULEU",
            "UPUS",
            "URBC",
        ],
    ),
    ("COAG", "Coagulation profile (PT/INR, APTT)", 600, ["PT", "INR", "APTT"]),
    ("IRONPROF", "Iron profile", 900, ["IRON", "TIBC", "FERR"]),
    (
        "ANTENATAL",
        "Antenatal profile",
        1500,
        [
            "HB",
            "BG",
            "GLUR",
            "TSH",
            "HBSAG",
            "HIV",
            "HCV",
            "RPR",
            "UHCG",
        ],
    ),
]


async def seed_catalog(session: AsyncSession, organisation_id: uuid.UUID, actor: AuditActor) -> int:
    """Add the starting catalogue to ``organisation_id``; returns how many tests were added.

    Tests and panels whose code exists already are skipped, so running it again adds
    nothing (and keeps a lab's own changes).
    """
    existing = await catalog_service.tests_by_codes(
        session, organisation_id, [t["code"] for t in TESTS]
    )
    created = 0
    for spec in TESTS:
        if spec["code"] in existing:
            continue
        data = CatalogTestCreate(
            **{k: v for k, v in spec.items() if k != "ranges"},
            ranges=[ReferenceRangeIn(**r) for r in spec["ranges"]],
        )
        await catalog_service.create_test_in(session, organisation_id, data, actor=actor)
        created += 1
    panel_codes = set(
        await session.scalars(
            select(Panel.code).where(
                Panel.organisation_id == organisation_id,
                Panel.code.in_([p[0] for p in PANELS]),
            )
        )
    )
    for code, name, price, tests in PANELS:
        if code in panel_codes:
            continue
        await catalog_service.create_panel_in(
            session,
            organisation_id,
            PanelCreate(code=code, name=name, price=Decimal(price), tests=tests),
            actor=actor,
        )
    return created
