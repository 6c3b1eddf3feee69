"""Pure ABDM rules: Aadhaar (Verhoeff), wire formats, consent states and data-request checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nidaan.abdm.domain import (
    ConsentRefused,
    ConsentTerms,
    InvalidAadhaar,
    bare_abha_number,
    check_data_request,
    consent_transition_allowed,
    error_code,
    mask_aadhaar,
    normalize_aadhaar,
    parse_wire_time,
    verhoeff_digit,
    verhoeff_valid,
    wire_timestamp,
)
from nidaan.abdm.enums import ConsentStatus, FrequencyUnit


def test_aadhaar_rules() -> None:
    assert normalize_aadhaar("2341 2341 2346") == "234123412346"
    assert mask_aadhaar("234123412346") == "XXXX-XXXX-2346"
    for bad in ("234123412347", "123412341234", "23412341234", "2341234123a6", ""):
        with pytest.raises(InvalidAadhaar) as caught:
            normalize_aadhaar(bad)
        assert bad[:8] not in str(caught.value) or not bad


@settings(deadline=None)
@given(st.from_regex(r"\A[2-9][0-9]{10}\Z"), st.integers(1, 9))
def test_verhoeff_catches_every_single_digit_error(body: str, delta: int) -> None:
    number = body + verhoeff_digit(body)
    assert verhoeff_valid(number)
    for position in range(12):
        wrong = (
            number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
        )
        assert not verhoeff_valid(wrong)


@settings(deadline=None)
@given(st.from_regex(r"\A[2-9][0-9]{9}\Z"))
def test_verhoeff_catches_adjacent_transpositions(body: str) -> None:
    number = body + "7"
    number = number + verhoeff_digit(number)
    for position in range(11):
        a, b = number[position], number[position + 1]
        if a != b:
            swapped = number[:position] + b + a + number[position + 2 :]
            assert not verhoeff_valid(swapped)


def test_wire_formats() -> None:
    assert wire_timestamp(datetime(2022, 10, 6, 20, 40, 0, 587000, tzinfo=UTC)) == (
        "2022-10-06T20:40:00.587Z"
    )
    for raw in (
        "2022-10-06T15:10:00.587Z",
        "2022-10-06T15:10:00.587",
        "2022-10-06T20:40:00.587+05:30",
    ):
        assert parse_wire_time(raw) == datetime(2022, 10, 6, 15, 10, 0, 587000, tzinfo=UTC)
    assert parse_wire_time("2022-10-06T15:10:00.587123456Z") is not None
    assert parse_wire_time("yesterday") is None
    assert error_code("ABDM-9999: ") == "ABDM-9999"
    assert error_code("abdm-1092 duplicate") == "ABDM-1092"
    assert bare_abha_number("91-1234-5678-9012") == "91123456789012"
    assert bare_abha_number(91123456789012) == "91123456789012"
    assert bare_abha_number("12") is None


def test_consent_transitions() -> None:
    assert consent_transition_allowed(None, ConsentStatus.GRANTED)
    assert consent_transition_allowed(ConsentStatus.GRANTED, ConsentStatus.REVOKED)
    assert consent_transition_allowed(ConsentStatus.GRANTED, ConsentStatus.GRANTED)
    assert not consent_transition_allowed(ConsentStatus.REVOKED, ConsentStatus.GRANTED)
    assert not consent_transition_allowed(ConsentStatus.EXPIRED, ConsentStatus.GRANTED)


NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _terms(**overrides: object) -> ConsentTerms:
    values: dict[str, object] = {
        "status": ConsentStatus.GRANTED,
        "hi_types": ("DiagnosticReport",),
        "date_from": NOW - timedelta(days=30),
        "date_to": NOW,
        "data_erase_at": NOW + timedelta(days=30),
        "frequency_unit": FrequencyUnit.HOUR,
        "frequency_value": 24,
        "frequency_repeats": 2,
    }
    values.update(overrides)
    return ConsentTerms(**values)  # type: ignore[arg-type]


def test_data_request_checks() -> None:
    start, end = check_data_request(
        _terms(),
        requested_from=NOW - timedelta(days=90),
        requested_to=NOW + timedelta(days=1),
        now=NOW,
        earlier_requests_in_window=0,
    )
    assert (start, end) == (NOW - timedelta(days=30), NOW)  # clipped to the consent
    cases = [
        (_terms(status=ConsentStatus.REVOKED), 0, "REVOKED"),
        (_terms(data_erase_at=NOW - timedelta(seconds=1)), 0, "dataEraseAt"),
        (_terms(hi_types=("Prescription",)), 0, "diagnostic reports"),
        (_terms(), 2, "allows 2 data request"),
        (_terms(date_to=NOW - timedelta(days=20)), 0, None),
    ]
    for terms, earlier, message in cases[:4]:
        with pytest.raises(ConsentRefused, match=message):
            check_data_request(
                terms,
                requested_from=NOW - timedelta(days=5),
                requested_to=NOW,
                now=NOW,
                earlier_requests_in_window=earlier,
            )
    with pytest.raises(ConsentRefused, match="outside"):
        check_data_request(
            cases[4][0],
            requested_from=NOW - timedelta(days=5),
            requested_to=NOW,
            now=NOW,
            earlier_requests_in_window=0,
        )
