"""Pure catalogue rules: range selection, ages, units, flags and the formula evaluator."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nidaan.catalog.domain import (
    coded_flag,
    convert_unit,
    evaluate_formula,
    formula_inputs,
    numeric_flag,
    parse_age,
    range_matches,
    range_text,
    select_range,
    validate_formula,
)
from nidaan.catalog.errors import FormulaError
from nidaan.catalog.models import ReferenceRange
from nidaan.catalog.seed import EGFR_CKD_EPI_2021
from nidaan.kit.errors import InvalidInput
from nidaan.patients.domain import PatientFacts

D = Decimal


def band(**kw: object) -> ReferenceRange:
    values: dict[str, object] = {
        "sex": None,
        "age_min_days": None,
        "age_max_days": None,
        "pregnant": None,
        "low": None,
        "high": None,
        "critical_low": None,
        "critical_high": None,
        "text": None,
    }
    values.update(kw)
    return ReferenceRange(**values)


# Haemoglobin as labs configure it (ages in days: 28 d, 1 y = 365, 12 y = 4383, 18 y = 6574).
NEONATE = band(age_max_days=28, low=D("14.0"), high=D("24.0"))
INFANT = band(age_min_days=28, age_max_days=365, low=D("9.5"), high=D("14.0"))
CHILD = band(age_min_days=365, age_max_days=4383, low=D("11.0"), high=D("14.5"))
MALE = band(sex="male", age_min_days=6574, low=D("13.0"), high=D("17.0"))
FEMALE = band(sex="female", age_min_days=6574, low=D("12.0"), high=D("15.0"))
PREGNANT = band(sex="female", pregnant=True, low=D("11.0"), high=D("14.0"))
ANY = band(low=D("12.0"), high=D("16.0"))
HB = [ANY, NEONATE, INFANT, CHILD, MALE, FEMALE, PREGNANT]


@pytest.mark.parametrize(
    ("sex", "age_days", "pregnant", "expected"),
    [
        ("male", 0, None, NEONATE),
        ("female", 27, None, NEONATE),
        ("female", 28, None, INFANT),
        ("male", 364, None, INFANT),
        ("male", 365, None, CHILD),
        ("female", 4382, None, CHILD),
        ("male", 4383, None, ANY),  # a teenager: no sex-specific adult band yet
        ("male", 6574, None, MALE),
        ("female", 12000, None, FEMALE),
        ("female", 12000, False, FEMALE),
        ("female", 12000, True, PREGNANT),
        ("other", 12000, None, ANY),
        ("male", None, None, ANY),  # unknown age: only bands without ages apply
    ],
)
def test_most_specific_band_wins(
    sex: str, age_days: int | None, pregnant: bool | None, expected: ReferenceRange
) -> None:
    assert select_range(HB, sex=sex, age_days=age_days, pregnant=pregnant) is expected


def test_neonatal_band_beats_sex_specific_band_without_ages() -> None:
    male_any_age = band(sex="male", low=D("13"), high=D("17"))
    assert select_range([male_any_age, NEONATE], sex="male", age_days=3, pregnant=None) is NEONATE
    assert (
        select_range([male_any_age, NEONATE], sex="male", age_days=400, pregnant=None)
        is male_any_age
    )


def test_no_matching_band_is_none() -> None:
    assert select_range([MALE], sex="female", age_days=9000, pregnant=None) is None
    assert select_range([], sex="female", age_days=9000, pregnant=None) is None


bands = st.builds(
    band,
    sex=st.sampled_from([None, "male", "female"]),
    age_min_days=st.one_of(st.none(), st.integers(0, 30000)),
    age_max_days=st.one_of(st.none(), st.integers(1, 40000)),
    pregnant=st.sampled_from([None, True, False]),
    low=st.integers(0, 100).map(Decimal),
)


@given(
    ranges=st.lists(bands, max_size=8),
    sex=st.sampled_from(["male", "female", "other"]),
    age=st.one_of(st.none(), st.integers(0, 40000)),
    pregnant=st.sampled_from([None, True, False]),
    seed=st.integers(0, 1000),
)
def test_selection_matches_and_ignores_row_order(
    ranges: list[ReferenceRange], sex: str, age: int | None, pregnant: bool | None, seed: int
) -> None:
    chosen = select_range(ranges, sex=sex, age_days=age, pregnant=pregnant)
    matching = [r for r in ranges if range_matches(r, sex=sex, age_days=age, pregnant=pregnant)]
    assert (chosen is None) == (not matching)
    if chosen is not None:
        assert range_matches(chosen, sex=sex, age_days=age, pregnant=pregnant)
        shuffled = list(ranges)
        random.Random(seed).shuffle(shuffled)
        again = select_range(shuffled, sex=sex, age_days=age, pregnant=pregnant)
        assert again is not None
        assert (again.sex, again.age_min_days, again.age_max_days, again.pregnant, again.low) == (
            chosen.sex,
            chosen.age_min_days,
            chosen.age_max_days,
            chosen.pregnant,
            chosen.low,
        )
        if chosen.pregnant is None:
            assert all(r.pregnant is None for r in matching)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("18y", 6574),
        ("1y", 365),
        ("6m", 182),
        ("2w", 14),
        ("28d", 28),
        ("0d", 0),
        ("12h", 0),
        ("48h", 2),
        ("1y6m", 547),
        (" 65Y ", 23741),
    ],
)
def test_parse_age(text: str, days: int) -> None:
    assert parse_age(text) == days


@pytest.mark.parametrize("text", ["", "18", "y", "18x", "-1y", "18y junk", "1.5.2y"])
def test_parse_age_refuses_other_text(text: str) -> None:
    with pytest.raises(InvalidInput, match="not an age"):
        parse_age(text)


@given(st.integers(0, 150))
def test_years_are_365_25_days_rounded_down(years: int) -> None:
    assert parse_age(f"{years}y") == math.floor(years * 365.25)


GLUCOSE = SimpleNamespace(
    code="GLUF",
    unit="mg/dL",
    unit_conversions={"mmol/L": "18.016"},
    result_type="numeric",
    choices=[],
)
CREATININE = SimpleNamespace(
    code="CREA", unit="mg/dL", unit_conversions={"µmol/L": "0.011312"}, result_type="numeric"
)


def test_convert_unit() -> None:
    assert convert_unit(GLUCOSE, D("5.5"), "mmol/L") == D("99.0880")
    assert convert_unit(GLUCOSE, D("5.5"), "MMOL/l") == D("99.0880")
    assert convert_unit(GLUCOSE, D("99"), "mg/dL") == D("99")
    assert convert_unit(GLUCOSE, D("99"), "mg/dl") == D("99")
    assert convert_unit(GLUCOSE, D("99"), None) == D("99")
    assert convert_unit(CREATININE, D("88.4"), "umol/L") == D("0.9999808")
    assert convert_unit(CREATININE, D("88.4"), "μmol/L") == D("0.9999808")


def test_convert_unknown_unit_names_the_accepted_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        convert_unit(GLUCOSE, D("5"), "g/L")
    assert caught.value.data["accepted_units"] == ["mg/dL", "mmol/L"]
    assert "mg/dL, mmol/L" in caught.value.detail


def test_numeric_flag() -> None:
    k = band(low=D("3.5"), high=D("5.1"), critical_low=D("2.8"), critical_high=D("6.2"))
    assert [numeric_flag(D(v), k) for v in ("2.7", "2.8", "3.4", "3.5", "5.1", "5.2", "6.2")] == [
        "LL",
        "L",
        "L",
        "N",
        "N",
        "H",
        "H",
    ]
    assert numeric_flag(D("6.3"), k) == "HH"
    assert numeric_flag(D("5"), None) is None
    assert numeric_flag(D("5"), band(text="see comment")) is None
    assert numeric_flag(D("250"), band(high=D("200"))) == "H"


def test_range_text() -> None:
    assert range_text(band(low=D("13.0000"), high=D("17.0000")), 1) == "13.0 - 17.0"
    assert range_text(band(high=D("200.0000"))) == "< 200"
    assert range_text(band(low=D("40"))) == "> 40"
    assert range_text(band(low=D("1"), text="< 200 desirable")) == "< 200 desirable"
    assert range_text(None) == ""


HBSAG = SimpleNamespace(
    code="HBSAG",
    result_type="coded",
    choices=[
        {"code": "NR", "text": "Non-reactive", "abnormal": False},
        {"code": "R", "text": "Reactive", "abnormal": True},
    ],
)


def test_coded_flag() -> None:
    assert coded_flag(HBSAG, "R") == "A"
    assert coded_flag(HBSAG, "reactive") == "A"
    assert coded_flag(HBSAG, "NR") == "N"
    assert coded_flag(GLUCOSE, "R") is None
    with pytest.raises(InvalidInput) as caught:
        coded_flag(HBSAG, "maybe")
    assert caught.value.data["accepted"] == ["NR", "R"]


ADULT_WOMAN = PatientFacts("female", 18262, 50, None, D("60"), "en")
ADULT_MAN = PatientFacts("male", 18262, 50, None, D("70"), "en")


def test_friedewald_ldl() -> None:
    values = {"CHOL": D("200"), "HDL": D("50"), "TG": D("150")}
    assert evaluate_formula("CHOL - HDL - TG / 5", values, ADULT_MAN) == D("120")
    assert formula_inputs("CHOL - HDL - TG / 5") == {"CHOL", "HDL", "TG"}


def _ckd_epi_2021(scr: float, age: int, female: bool) -> float:
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    value = (
        142
        * min(scr / kappa, 1) ** alpha
        * max(scr / kappa, 1) ** -1.200
        * 0.9938**age
        * (1.012 if female else 1)
    )
    return value


@pytest.mark.parametrize(
    ("scr", "facts", "rounded"),
    [
        ("1.0", ADULT_MAN, 92),  # 142 x 1.1111^-1.2 x 0.9938^50 = 91.7
        ("1.0", ADULT_WOMAN, 69),  # 142 x 1.4286^-1.2 x 0.9938^50 x 1.012 = 68.6
        ("0.6", PatientFacts("female", 10957, 30, None, None, "en"), 124),  # 0.857^-0.241: 123.8
        ("2.5", PatientFacts("male", 25567, 70, None, None, "en"), 27),
    ],
)
def test_ckd_epi_2021(scr: str, facts: PatientFacts, rounded: int) -> None:
    assert formula_inputs(EGFR_CKD_EPI_2021) == {"CREA"}
    result = evaluate_formula(EGFR_CKD_EPI_2021, {"CREA": D(scr)}, facts)
    assert round(result) == rounded
    expected = _ckd_epi_2021(float(scr), facts.age_years or 0, facts.sex == "female")
    assert abs(float(result) - expected) < 1e-9


def test_formula_needs_its_inputs_and_patient_facts() -> None:
    with pytest.raises(FormulaError) as caught:
        evaluate_formula("CHOL - HDL - TG / 5", {"CHOL": D("200")}, ADULT_MAN)
    assert caught.value.data["missing"] == ["HDL", "TG"]
    unknown_sex = PatientFacts("unknown", 18262, 50, None, None, "en")
    with pytest.raises(FormulaError, match="sex"):
        evaluate_formula(EGFR_CKD_EPI_2021, {"CREA": D("1")}, unknown_sex)
    with pytest.raises(FormulaError, match="weight"):
        evaluate_formula("WEIGHT_KG * 2", {}, PatientFacts("male", 1, 0, None, None, "en"))
    no_age = PatientFacts("male", None, None, None, None, "en")
    with pytest.raises(FormulaError, match="age"):
        evaluate_formula("AGE_YEARS", {}, no_age)


def test_formula_arithmetic_errors_are_reported() -> None:
    with pytest.raises(FormulaError, match="undefined"):
        evaluate_formula("ALB / GLOB", {"ALB": D("4"), "GLOB": D("0")}, ADULT_MAN)
    with pytest.raises(FormulaError, match="undefined"):
        evaluate_formula("ln(X)", {"X": D("-1")}, ADULT_MAN)
    assert evaluate_formula("sqrt(X) + abs(-2) + max(1, 2, 3)", {"X": D("16")}) == D("9")
    assert evaluate_formula("log10(1000) + exp(0) + -X ** 2", {"X": D("3")}) == D("-5")


@pytest.mark.parametrize(
    "formula",
    [
        "__import__('os').system('id')",
        "CREA.__class__",
        "(1).real",
        "open('x')",
        "eval('1')",
        "getattr(CREA, 'x')",
        "lambda: 1",
        "[x for x in CREA]",
        "CREA[0]",
        "'text'",
        "True + 1",
        "CREA if HB else 1",
        "CREA < 1",
        "CREA % 2",
        "CREA // 2",
        "min(*CREA)",
        "max(a=1)",
        "sqrt(1, 2)",
        "min()",
        "lowercase_name + 1",
        "1 +",
        "CREA; 1",
        "",
        "1" + "+1" * 600,
    ],
)
def test_formula_evaluator_refuses_anything_but_arithmetic(formula: str) -> None:
    with pytest.raises(FormulaError):
        validate_formula(formula)
    with pytest.raises(FormulaError):
        evaluate_formula(formula, {"CREA": D("1"), "HB": D("1")}, ADULT_MAN)
