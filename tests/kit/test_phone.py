"""Mobile normalisation to E.164 and masking."""

from __future__ import annotations

import pytest

from nidaan.kit.phone import EXPECTED_FORMAT, InvalidPhoneNumber, mask_mobile, normalize_mobile


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9876543210", "+919876543210"),
        ("6000000000", "+916000000000"),
        ("7012345678", "+917012345678"),
        ("8123456789", "+918123456789"),
        ("98765 43210", "+919876543210"),
        ("98765-43210", "+919876543210"),
        ("  9876543210  ", "+919876543210"),
        ("+919876543210", "+919876543210"),
        ("+91 98765 43210", "+919876543210"),
        ("+91-98765-43210", "+919876543210"),
        ("(+91) 98765 43210", "+919876543210"),
        ("+91 (987) 654-3210", "+919876543210"),
        ("919876543210", "+919876543210"),
        ("91 98765 43210", "+919876543210"),
        ("09876543210", "+919876543210"),
        ("0 98765 43210", "+919876543210"),
        ("9123456789", "+919123456789"),  # a mobile that itself starts with 91
        ("98765\u00a043210", "+919876543210"),  # non-breaking space from a pasted document
        ("98765\u201343210", "+919876543210"),  # en dash
        ("९८७६५४३२१०", "+919876543210"),  # Devanagari digits
        ("+1 415 555 2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+971 50 123 4567", "+971501234567"),
        ("+6512345678", "+6512345678"),  # 10 digits incl. country code
        ("+12345678", "+12345678"),  # 8 digits: the minimum
        ("+123456789012345", "+123456789012345"),  # 15 digits: the E.164 maximum
    ],
)
def test_valid(raw: str, expected: str) -> None:
    assert normalize_mobile(raw) == expected
    assert normalize_mobile(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "+",
        "5876543210",  # Indian mobiles start with 6-9
        "1234567890",
        "987654321",  # 9 digits
        "98765432100",  # 11 digits without a 0 prefix
        "019876543210",
        "929876543210",  # 12 digits but not 91
        "915876543210",  # 91 + invalid mobile
        "+915876543210",
        "+9198765432",
        "+91987654321012",
        "0091 98765 43210",  # international prefix: write +91
        "4155552671",  # a US number without +1 is ambiguous
        "+1234567",  # 7 digits: too short
        "+1234567890123456",  # 16 digits: too long
        "+0123456789",  # country codes never start with 0
        "++919876543210",
        "98765+43210",
        "98765x43210",
        "9876543210 ext 12",
        "tel:9876543210",
        "98765/43210",
    ],
)
def test_invalid(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize_mobile(raw)
    message = str(info.value)
    assert "10-digit" in message or "+91" in message
    if len(raw.strip()) > 3:
        assert raw not in message  # rejected input is never echoed (safe to log)


def test_invalid_is_a_value_error_with_guidance() -> None:
    with pytest.raises(ValueError, match="10-digit Indian mobile"):
        normalize_mobile("12345")
    assert "+" in EXPECTED_FORMAT
    assert "country code" in EXPECTED_FORMAT


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_mobile(9876543210)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+919876543210", "+91******3210"),
        ("98765 43210", "+91******3210"),
        ("+14155552671", "+*******2671"),
        ("+442079460958", "+********0958"),
        ("not a number", "****"),
        ("", "****"),
    ],
)
def test_mask(number: str, masked: str) -> None:
    assert mask_mobile(number) == masked
