"""The starting catalogue: counts, required LOINC codes, ranges, criticals and idempotency."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.catalog.domain import evaluate_formula, formula_inputs, select_range
from nidaan.catalog.models import CatalogTest, Panel
from nidaan.catalog.seed import seed_catalog
from nidaan.catalog.service import catalog_service
from nidaan.patients.domain import PatientFacts
from nidaan.tenancy.models import Organisation

REQUIRED_LOINC = {
    "GLUF": "1558-6",
    "HB": "718-7",
    "WBC": "6690-2",
    "PLT": "777-3",
    "CREA": "2160-0",
    "K": "2823-3",
    "NA": "2951-2",
    "TSH": "3016-3",
    "HBA1C": "4548-4",
    "ALT": "1742-6",
    "CHOL": "2093-3",
    "LDL": "13457-7",
    "EGFR": "98979-8",
}
DEPARTMENTS = {
    "Haematology",
    "Biochemistry",
    "Clinical Pathology",
    "Immunoassay",
    "Serology",
    "Microbiology",
}


async def _tests(session: AsyncSession, organisation: Organisation) -> dict[str, CatalogTest]:
    rows = await session.scalars(
        select(CatalogTest).where(CatalogTest.organisation_id == organisation.id)
    )
    return {t.code: t for t in rows}


async def test_seed_builds_a_realistic_catalogue_once(
    session: AsyncSession, organisation: Organisation
) -> None:
    created = await seed_catalog(session, organisation.id, SYSTEM_ACTOR)
    tests = await _tests(session, organisation)
    panel_count = await session.scalar(
        select(func.count()).select_from(Panel).where(Panel.organisation_id == organisation.id)
    )

    assert created == len(tests) >= 60
    assert (panel_count or 0) >= 8
    assert {c: tests[c].loinc for c in REQUIRED_LOINC} == REQUIRED_LOINC
    assert {t.department for t in tests.values()} == DEPARTMENTS
    assert {t.container for t in tests.values()} >= {
        "edta_lavender",
        "sst_yellow",
        "fluoride_grey",
        "citrate_blue",
        "urine_container",
    }
    assert all(t.price >= 0 and t.tat_minutes > 0 for t in tests.values())
    assert tests["LDL"].formula == "CHOL - HDL - TG / 5"
    assert formula_inputs(tests["EGFR"].formula or "") == {"CREA"}
    assert tests["GLUF"].unit_conversions == {"mmol/L": "18.016"}
    assert tests["CREA"].unit_conversions == {"umol/L": "0.011312"}
    assert tests["CHOL"].unit_conversions == {"mmol/L": "38.67"}
    for code in ("CREA", "HB", "K", "PLT"):
        assert tests[code].delta_window_days, code
        assert tests[code].delta_percent or tests[code].delta_absolute, code
    assert tests["HIV"].required_verifications == 2
    hbsag = {c["code"]: c["abnormal"] for c in tests["HBSAG"].choices}
    assert hbsag == {"NR": False, "R": True}
    assert {c["code"] for c in tests["UKET"].choices if c["abnormal"]} >= {"SMALL", "LARGE"}
    await audit_service.flush(session)  # audit entries are otherwise written at commit
    entries = await session.scalar(
        select(func.count())
        .select_from(AuditLog)
        .where(AuditLog.organisation_id == organisation.id)
    )
    assert entries == len(tests) + (panel_count or 0)

    again = await seed_catalog(session, organisation.id, SYSTEM_ACTOR)
    assert again == 0
    assert len(await _tests(session, organisation)) == len(tests)
    assert (
        await session.scalar(
            select(func.count()).select_from(Panel).where(Panel.organisation_id == organisation.id)
        )
        == panel_count
    )


async def test_seeded_ranges_and_critical_limits(
    session: AsyncSession, organisation: Organisation
) -> None:
    await seed_catalog(session, organisation.id, SYSTEM_ACTOR)
    tests = await _tests(session, organisation)
    ranges = await catalog_service.ranges_for_tests(session, [t.id for t in tests.values()])

    def band(code: str, sex: str, age_days: int, pregnant: bool | None = None):  # type: ignore[no-untyped-def]
        return select_range(ranges[tests[code].id], sex=sex, age_days=age_days, pregnant=pregnant)

    def limits(code: str, sex: str, age_days: int, pregnant: bool | None = None):  # type: ignore[no-untyped-def]
        chosen = band(code, sex, age_days, pregnant)
        return chosen.low, chosen.high

    adult = 40 * 365
    assert limits("HB", "male", 3) == (Decimal("14.0"), Decimal("24.0"))
    assert limits("HB", "female", 5 * 365) == (Decimal("11.0"), Decimal("14.5"))
    assert limits("HB", "male", adult) == (Decimal("13.0"), Decimal("17.0"))
    assert limits("HB", "female", adult) == (Decimal("12.0"), Decimal("15.0"))
    assert limits("HB", "female", adult, pregnant=True) == (Decimal("11.0"), Decimal("14.0"))
    assert limits("TSH", "female", adult, pregnant=True) == (Decimal("0.10"), Decimal("3.00"))
    assert limits("TBIL", "male", 1) == (Decimal("3.40"), Decimal("11.50"))
    assert limits("TBIL", "male", adult) == (Decimal("0.30"), Decimal("1.20"))
    assert limits("CREA", "female", adult) == (Decimal("0.60"), Decimal("1.10"))
    for code in ("K", "NA", "GLUF", "HB", "PLT", "WBC", "CA"):
        chosen = band(code, "male", adult)
        assert chosen.critical_low is not None, code
        assert chosen.critical_high is not None, code
    assert band("CREA", "male", adult).critical_high == Decimal("7.00")
    assert (band("K", "female", adult).critical_low, band("K", "female", adult).critical_high) == (
        Decimal("2.8"),
        Decimal("6.2"),
    )


async def test_seeded_calculations(session: AsyncSession, organisation: Organisation) -> None:
    await seed_catalog(session, organisation.id, SYSTEM_ACTOR)
    tests = await _tests(session, organisation)
    woman = PatientFacts("female", 50 * 365 + 12, 50, None, None, "en")
    values = {
        "CHOL": Decimal("220"),
        "HDL": Decimal("45"),
        "TG": Decimal("175"),
        "CREA": Decimal("1.0"),
        "UREA": Decimal("30"),
        "TP": Decimal("7.0"),
        "ALB": Decimal("4.2"),
    }
    results = {}
    for code in ("LDL", "VLDL", "CHOLHDL", "EGFR", "BUN", "GLOB"):
        results[code] = evaluate_formula(tests[code].formula or "", values, woman)
    values["GLOB"] = results["GLOB"]
    results["AGR"] = evaluate_formula(tests["AGR"].formula or "", values, woman)

    assert results["LDL"] == Decimal("140")  # 220 - 45 - 175/5
    assert results["VLDL"] == Decimal("35")
    assert round(results["CHOLHDL"], 2) == Decimal("4.89")
    assert round(results["EGFR"]) == 69
    assert round(results["BUN"], 1) == Decimal("14.0")
    assert results["GLOB"] == Decimal("2.8")
    assert results["AGR"] == Decimal("1.5")


def test_every_seeded_test_names_its_method_and_container_in_words() -> None:
    from nidaan.catalog.domain import CONTAINER_WORDS, container_words
    from nidaan.catalog.enums import Container
    from nidaan.catalog.seed import TESTS

    without = [spec["code"] for spec in TESTS if not spec.get("method")]
    assert without == []  # CBC indices and the differential included
    assert {str(c) for c in Container} == set(CONTAINER_WORDS)
    assert container_words("sst_yellow") == "Serum (yellow top)"
    assert container_words("edta_lavender") == "EDTA (lavender top)"
    assert container_words("odd_new_tube") == "Odd new tube"
