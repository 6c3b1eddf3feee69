"""Pure patient rules: names, ABHA identifiers, ages and duplicate scoring."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nidaan.patients.domain import (
    InvalidAbha,
    PersonKeys,
    age_days,
    age_years,
    estimated_date_of_birth,
    format_abha_number,
    format_mrn,
    local_date,
    mask_abha_number,
    names_similar,
    normalize_abha_address,
    normalize_abha_number,
    normalize_name,
    score_duplicate,
)


def test_names_and_mrns() -> None:
    assert normalize_name("  Smt.  Sunita   DEVI ") == "smt sunita devi"
    assert normalize_name("Ramesh\tKumar") == "ramesh kumar"
    assert format_mrn(123) == "MRN-000123"
    assert format_mrn(1234567) == "MRN-1234567"


@pytest.mark.parametrize(
    ("a", "b", "similar"),
    [
        ("Sunita Devi", "Sunita Devi", True),
        ("Sunita Devi", "Sunita D.", True),  # same first name
        ("Mrs. Sunita Devi", "Sunita Devi", True),  # titles ignored
        ("Mohammed Irfan", "Mohammad Irfan", True),  # ratio >= 0.8
        ("Sunita Devi", "Ramesh Kumar", False),
        ("Ravi Shankar", "Ramesh Kumar", False),
        ("Al", "Al Khan", False),  # a two-letter first token is not enough
    ],
)
def test_names_similar(a: str, b: str, similar: bool) -> None:
    assert names_similar(a, b) is similar


def test_abha_number() -> None:
    assert normalize_abha_number("91-1234-5678-9012") == "91123456789012"
    assert normalize_abha_number("91 1234 5678 9012") == "91123456789012"
    assert format_abha_number("91123456789012") == "91-1234-5678-9012"
    assert mask_abha_number("91123456789012") == "**-****-****-9012"
    with pytest.raises(InvalidAbha, match=r"ABHA numbers have 14 digits.*Aadhaar"):
        normalize_abha_number("1234 5678 9012")
    with pytest.raises(InvalidAbha, match="14 digits"):
        normalize_abha_number("9112345678901")
    with pytest.raises(InvalidAbha, match="no letters"):
        normalize_abha_number("91-1234-5678-901A")


def test_abha_address() -> None:
    assert normalize_abha_address(" Asha.Verma@ABDM ") == "asha.verma@abdm"
    assert normalize_abha_address("asha_1990@sbx") == "asha_1990@sbx"
    for bad in ("asha@gmail.com", ".asha@abdm", "asha.@abdm", "as ha@abdm", "@abdm", "asha"):
        with pytest.raises(InvalidAbha):
            normalize_abha_address(bad)


def test_ages() -> None:
    assert age_years(date(1980, 7, 1), date(2025, 6, 30)) == 44
    assert age_years(date(1980, 7, 1), date(2025, 7, 1)) == 45
    assert age_years(date(2000, 2, 29), date(2025, 2, 28)) == 24
    assert age_years(None, date(2025, 1, 1)) is None
    assert age_days(date(2025, 1, 1), date(2025, 1, 29)) == 28
    assert age_days(date(2025, 1, 1), date(2025, 1, 1)) == 0
    # 20:00 UTC on 31 Dec is already 1 Jan in India.
    assert local_date(datetime(2024, 12, 31, 20, 0, tzinfo=UTC)) == date(2025, 1, 1)


def test_estimated_date_of_birth() -> None:
    today = date(2025, 3, 10)
    assert estimated_date_of_birth(today, 45) == date(1980, 7, 1)
    assert estimated_date_of_birth(today, 0) == today  # 1 July would be in the future
    assert estimated_date_of_birth(today, 0, 6) == date(2024, 9, 10)
    assert estimated_date_of_birth(today, 0, 0, 10) == date(2025, 2, 28)
    assert estimated_date_of_birth(date(2025, 3, 31), 0, 1) == date(2025, 2, 28)
    assert estimated_date_of_birth(today, 1, 2, 3) == date(2024, 1, 7)


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(0, 120),
    st.integers(0, 24),
    st.integers(0, 60),
)
def test_estimated_birth_is_never_after_today(
    today: date, years: int, months: int, days: int
) -> None:
    if today.year - years < 1:
        return
    assert estimated_date_of_birth(today, years, months, days) <= today


def person(
    name: str = "Sunita Devi",
    sex: str = "female",
    dob: date | None = date(1980, 7, 1),
    estimated: bool = False,
    mobile: str | None = "m1",
    abha: str | None = None,
) -> PersonKeys:
    return PersonKeys(name, sex, dob, estimated, mobile, abha)


def test_same_mobile_similar_name_same_birth_is_likely() -> None:
    score = score_duplicate(person(name="Sunita D."), person())
    assert score.is_likely
    assert score.reasons == ("same mobile", "similar name", "same date of birth")
    assert score.score == 95
    exact = score_duplicate(person(), person())
    assert (exact.score, exact.reasons) == (100, ("same mobile", "same name", "same date of birth"))


def test_family_sharing_a_mobile_is_not_a_duplicate() -> None:
    husband = person(name="Ramesh Kumar", sex="male", dob=date(1975, 1, 1))
    daughter = person(name="Priya Kumari", dob=date(2005, 4, 2))
    assert not score_duplicate(daughter, person()).is_likely
    assert score_duplicate(husband, person()).score == 0
    mother_in_law = person(name="Sunita Devi", dob=date(1955, 1, 1))
    assert not score_duplicate(mother_in_law, person()).is_likely


def test_estimated_birth_dates_match_within_a_year() -> None:
    stated = person(dob=date(1981, 7, 1), estimated=True)
    assert score_duplicate(stated, person()).is_likely
    assert "date of birth within a year (estimated)" in score_duplicate(stated, person()).reasons
    exact_but_far = person(dob=date(1981, 7, 1))
    assert not score_duplicate(exact_but_far, person()).is_likely
    too_far = person(dob=date(1982, 7, 2), estimated=True)
    assert not score_duplicate(too_far, person()).is_likely


def test_same_name_and_birth_without_mobile_is_likely() -> None:
    score = score_duplicate(person(mobile=None), person(mobile="m2"))
    assert score.is_likely
    assert score.reasons == ("same name", "same date of birth")


def test_same_abha_number_is_certain() -> None:
    score = score_duplicate(
        person(name="S. Devi", mobile=None, abha="a1", dob=None), person(abha="a1")
    )
    assert (score.score, score.reasons, score.is_likely) == (100, ("same ABHA number",), True)
