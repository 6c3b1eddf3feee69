"""Pure result rules: parsing, rounding, flags, reference text, delta checks, verification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nidaan.catalog.domain import numeric_flag as catalog_numeric_flag
from nidaan.results.domain import (
    CodedValue,
    InvalidValue,
    NumericValue,
    can_transition,
    can_verify,
    coded_flag,
    delta_check,
    format_value,
    numeric_flag,
    parse_coded,
    parse_numeric,
    reference_text,
    round_display,
)
from nidaan.results.enums import Flag, ResultStatus

D = Decimal
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("entered", "value", "qualifier"),
    [
        ("5.6", D("5.6"), None),
        (" 5,6 ", D("5.6"), None),
        ("1,234.5", D("1234.5"), None),
        ("1,23,456", D("123456"), None),
        ("-3", D("-3"), None),
        (".5", D("0.5"), None),
        ("<0.01", D("0.01"), "<"),
        ("< 0,01", D("0.01"), "<"),
        ("> 500", D("500"), ">"),
        (">=10", D("10"), ">="),
        ("≤ 2", D("2"), "<="),
    ],
)
def test_parse_numeric(entered: str, value: Decimal, qualifier: str | None) -> None:
    assert parse_numeric(entered) == NumericValue(value, qualifier)


@pytest.mark.parametrize("entered", ["", "abc", "5.6.7", "1e3", "NaN", "5 mg", "<", "--1"])
def test_parse_numeric_refuses_non_numbers(entered: str) -> None:
    with pytest.raises(InvalidValue, match="is not a number"):
        parse_numeric(entered)


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=4, allow_nan=False))
def test_parse_numeric_round_trips_plain_decimals(value: Decimal) -> None:
    assert parse_numeric(f"{value:f}").value == value
    assert parse_numeric(f"{value:f}".replace(".", ",")).value == value


CHOICES = [
    {"code": "NEG", "text": "Negative", "abnormal": False},
    {"code": "POS", "text": "Positive", "abnormal": True},
]


def test_parse_coded_matches_code_or_text_ignoring_case() -> None:
    assert parse_coded("pos", CHOICES) == CodedValue("POS", "Positive", True)
    assert parse_coded("  negative ", CHOICES) == CodedValue("NEG", "Negative", False)
    assert coded_flag(parse_coded("Positive", CHOICES)) == Flag.ABNORMAL
    assert coded_flag(parse_coded("NEG", CHOICES)) == Flag.NORMAL


def test_parse_coded_lists_the_choices() -> None:
    with pytest.raises(InvalidValue) as raised:
        parse_coded("maybe", CHOICES)
    assert str(raised.value) == (
        "'maybe' is not one of this test's choices: NEG (Negative), POS (Positive)."
    )
    assert raised.value.data["choices"] == ["NEG", "POS"]


@pytest.mark.parametrize(
    ("value", "decimals", "shown"),
    [
        (D("5.55"), 1, "5.6"),
        (D("5.45"), 1, "5.5"),
        (D("2.5"), 0, "3"),
        (D("-2.5"), 0, "-3"),
        (D("7"), 2, "7.00"),
        (D("0.125"), 2, "0.13"),
    ],
)
def test_display_rounds_half_up(value: Decimal, decimals: int, shown: str) -> None:
    assert format_value(NumericValue(value), decimals) == shown


def test_censored_value_keeps_its_bound_precision() -> None:
    assert format_value(NumericValue(D("0.01"), "<"), 1) == "<0.01"
    assert format_value(NumericValue(D("500"), ">"), 1) == ">500.0"


@given(
    st.decimals(min_value=-(10**6), max_value=10**6, places=6, allow_nan=False),
    st.integers(min_value=0, max_value=4),
)
def test_rounding_is_within_half_a_unit(value: Decimal, decimals: int) -> None:
    rounded = round_display(value, decimals)
    assert abs(rounded - value) <= D(1).scaleb(-decimals) / 2
    assert rounded.as_tuple().exponent == -decimals


RANGE = {"low": D("70"), "high": D("100"), "critical_low": D("40"), "critical_high": D("400")}


@pytest.mark.parametrize(
    ("value", "qualifier", "flag"),
    [
        ("85", None, Flag.NORMAL),
        ("70", None, Flag.NORMAL),
        ("100", None, Flag.NORMAL),
        ("69.9", None, Flag.LOW),
        ("100.1", None, Flag.HIGH),
        ("40", None, Flag.LOW),
        ("39.9", None, Flag.CRITICAL_LOW),
        ("400", None, Flag.HIGH),
        ("400.1", None, Flag.CRITICAL_HIGH),
        ("30", "<", Flag.CRITICAL_LOW),
        ("60", "<", Flag.LOW),
        ("90", "<", None),  # could be below 70 or not
        ("500", ">", Flag.CRITICAL_HIGH),
        ("200", ">", Flag.HIGH),
        ("80", ">", None),
    ],
)
def test_numeric_flag(value: str, qualifier: str | None, flag: Flag | None) -> None:
    assert numeric_flag(NumericValue(D(value), qualifier), **RANGE) == flag


def test_censored_value_under_an_upper_limit_only_is_normal() -> None:
    troponin = {"low": None, "high": D("0.04")}
    assert numeric_flag(NumericValue(D("0.01"), "<"), **troponin) == Flag.NORMAL
    assert numeric_flag(NumericValue(D("0.01"), "<"), low=D("0"), high=D("0.04")) == Flag.NORMAL
    assert numeric_flag(NumericValue(D("5"), ">"), **troponin) == Flag.HIGH
    assert numeric_flag(NumericValue(D("5")), low=None, high=None) is None


@given(st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False))
def test_exact_flags_agree_with_the_catalogue(value: Decimal) -> None:
    flag = numeric_flag(NumericValue(value), **RANGE)
    assert flag == catalog_numeric_flag(value, SimpleNamespace(**RANGE, text=None))
    expected = (
        Flag.CRITICAL_LOW
        if value < 40
        else Flag.CRITICAL_HIGH
        if value > 400
        else Flag.LOW
        if value < 70
        else Flag.HIGH
        if value > 100
        else Flag.NORMAL
    )
    assert flag == expected


def test_reference_text() -> None:
    assert reference_text(text="< 200 desirable", low=D("0"), high=D("200"), decimals=0) == (
        "< 200 desirable"
    )
    assert reference_text(text=None, low=D("70.0000"), high=D("100.0000"), decimals=0) == "70 - 100"
    assert reference_text(text=None, low=D("0.4"), high=D("4.2"), decimals=2) == "0.40 - 4.20"
    assert reference_text(text=None, low=D("3.5"), high=D("5"), decimals=0) == "3.5 - 5"
    assert reference_text(text=None, low=None, high=D("5.7"), decimals=1) == "< 5.7"
    assert reference_text(text=None, low=D("40"), high=None, decimals=0) == "> 40"
    assert reference_text(text=None, low=None, high=None, decimals=0) is None


def test_delta_check_fails_on_percent_or_absolute() -> None:
    before = NOW - timedelta(days=10)
    percent = delta_check(
        D("2.0"), D("1.0"), before, NOW, percent=D("50"), absolute=None, window_days=30
    )
    assert percent.failed
    assert percent.change == D("1.0")
    assert percent.change_percent == D("100.0")
    assert percent.reason == ("Delta check: 1 -> 2 since 2026-02-19: changed by +100% (limit 50%)")
    absolute = delta_check(
        D("1.2"), D("1.0"), before, NOW, percent=None, absolute=D("0.1"), window_days=30
    )
    assert absolute.failed
    assert absolute.reason == "Delta check: 1 -> 1.2 since 2026-02-19: changed by +0.2 (limit 0.1)"
    both = delta_check(
        D("1.05"), D("1.0"), before, NOW, percent=D("50"), absolute=D("0.1"), window_days=30
    )
    assert both.checked
    assert not both.failed
    assert both.reason is None


def test_delta_check_threshold_is_exclusive_and_falls() -> None:
    before = NOW - timedelta(days=1)
    at_limit = delta_check(
        D("13"), D("10"), before, NOW, percent=D("30"), absolute=None, window_days=None
    )
    assert not at_limit.failed
    down = delta_check(D("6"), D("10"), before, NOW, percent=D("30"), absolute=None, window_days=7)
    assert down.failed
    assert down.change_percent == D("-40.0")


def test_delta_check_skips_outside_window_or_without_history() -> None:
    old = NOW - timedelta(days=91)
    outside = delta_check(D("20"), D("1"), old, NOW, percent=D("10"), absolute=None, window_days=90)
    assert outside == delta_check(
        D("20"), None, None, NOW, percent=D("10"), absolute=None, window_days=90
    )
    assert not outside.checked
    assert not outside.failed
    unconfigured = delta_check(
        D("20"), D("1"), NOW, NOW, percent=None, absolute=None, window_days=90
    )
    assert not unconfigured.checked


def test_delta_check_from_zero() -> None:
    result = delta_check(D("1"), D("0"), NOW, NOW, percent=D("30"), absolute=None, window_days=1)
    assert result.failed
    assert result.change_percent is None
    same = delta_check(D("0"), D("0"), NOW, NOW, percent=D("30"), absolute=None, window_days=1)
    assert not same.failed


@given(
    st.decimals(min_value=1, max_value=1000, places=2),
    st.decimals(min_value=1, max_value=1000, places=2),
)
def test_delta_check_is_symmetric_in_absolute_change(a: Decimal, b: Decimal) -> None:
    kwargs = {"percent": None, "absolute": D("5"), "window_days": None}
    assert (
        delta_check(a, b, NOW, NOW, **kwargs).failed == delta_check(b, a, NOW, NOW, **kwargs).failed
    )


TECH, PATH1, PATH2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_single_verification_by_another_person_is_final() -> None:
    decision = can_verify(TECH, PATH1, [], 1, allow_self=False)
    assert (decision.allowed, decision.final, decision.level) == (True, True, 1)


def test_self_verification_depends_on_the_organisation() -> None:
    refused = can_verify(PATH1, PATH1, [], 1, allow_self=False)
    assert not refused.allowed
    assert refused.code == "self_verification_not_allowed"
    assert can_verify(PATH1, PATH1, [], 1, allow_self=True).final


def test_two_verifications_need_two_people() -> None:
    first = can_verify(TECH, PATH1, [], 2, allow_self=False)
    assert (first.allowed, first.final, first.level) == (True, False, 1)
    again = can_verify(TECH, PATH1, [PATH1], 2, allow_self=False)
    assert (again.allowed, again.code) == (False, "second_verifier_required")
    second = can_verify(TECH, PATH2, [PATH1], 2, allow_self=False)
    assert (second.allowed, second.final, second.level) == (True, True, 2)
    done = can_verify(TECH, TECH, [PATH1, PATH2], 2, allow_self=True)
    assert (done.allowed, done.code) == (False, "already_verified")


def test_self_verifier_still_needs_a_second_person() -> None:
    first = can_verify(PATH1, PATH1, [], 2, allow_self=True)
    assert (first.allowed, first.final) == (True, False)
    assert not can_verify(PATH1, PATH1, [PATH1], 2, allow_self=True).allowed


def test_verified_results_only_become_superseded() -> None:
    assert can_transition(ResultStatus.ENTERED, ResultStatus.VERIFIED)
    assert not can_transition(ResultStatus.HELD, ResultStatus.VERIFIED)
    assert can_transition(ResultStatus.HELD, ResultStatus.ENTERED)
    assert can_transition(ResultStatus.VERIFIED, ResultStatus.SUPERSEDED)
    assert not can_transition(ResultStatus.VERIFIED, ResultStatus.ENTERED)
    assert not can_transition(ResultStatus.SUPERSEDED, ResultStatus.ENTERED)
