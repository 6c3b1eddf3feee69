"""Pure ABDM rules: Aadhaar checks, ABHA formats, gateway timestamps and error codes,
consent artefact states and whether a consent allows a given data request.

Nothing here touches the database or the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nidaan.abdm.enums import ConsentStatus, FrequencyUnit

# ---- Aadhaar (passes through to ABDM only; never stored or logged) ---------------------------

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_AADHAAR_SEPARATORS = re.compile(r"[\s-]")


class InvalidAadhaar(ValueError):
    """Not a valid Aadhaar number; the message never contains the number."""


def verhoeff_valid(digits: str) -> bool:
    """True when the last digit is the Verhoeff check digit of the others."""
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(char)]]
    return check == 0


def verhoeff_digit(digits: str) -> str:
    """The Verhoeff check digit to append to ``digits`` (tests and the simulator)."""
    for candidate in "0123456789":
        if verhoeff_valid(digits + candidate):
            return candidate
    raise AssertionError("unreachable: one digit always fits")


def normalize_aadhaar(raw: str) -> str:
    """12 digits, not starting with 0 or 1, Verhoeff-valid, not a palindrome (UIDAI rules)."""
    digits = _AADHAAR_SEPARATORS.sub("", raw or "")
    if len(digits) != 12 or not digits.isdigit() or not digits.isascii():
        raise InvalidAadhaar("An Aadhaar number has 12 digits.")
    if digits[0] in "01":
        raise InvalidAadhaar("Aadhaar numbers never start with 0 or 1.")
    if digits == digits[::-1]:
        raise InvalidAadhaar("This is not a valid Aadhaar number.")
    if not verhoeff_valid(digits):
        raise InvalidAadhaar(
            "This is not a valid Aadhaar number (its check digit does not match); "
            "please check the number on the card."
        )
    return digits


def mask_aadhaar(digits: str) -> str:
    """Only the last four digits: ``XXXX-XXXX-1234``."""
    return f"XXXX-XXXX-{digits[-4:]}" if len(digits) >= 4 else "XXXX-XXXX-XXXX"


# ---- ABHA identifiers as ABDM's APIs want them ------------------------------------------------


def dashed_abha_number(digits: str) -> str:
    """``91123456789012`` -> ``91-1234-5678-9012`` (the ABHA login APIs refuse bare digits)."""
    return f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}"


def bare_abha_number(value: str | int | None) -> str | None:
    """Digits only (the gateway linking APIs want no dashes; samples even send an int)."""
    if value is None:
        return None
    digits = re.sub(r"\D", "", str(value))
    return digits if len(digits) == 14 else None


GENDERS = {"male": "M", "female": "F", "other": "O", "unknown": "O"}
SEXES = {"M": "male", "F": "female", "O": "other"}


def abdm_gender(sex: str) -> str:
    return GENDERS.get(sex, "O")


# ---- time on the wire -----------------------------------------------------------------------


def wire_timestamp(at: datetime | None = None) -> str:
    """UTC ISO-8601 with milliseconds and ``Z`` (local time is refused, sometimes as 404)."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_wire_time(value: str | None) -> datetime | None:
    """Parse leniently: with or without ``Z``/offset/fraction; no zone means UTC."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python 3.11 accepts 1-6 fraction digits; trim longer ones (nanoseconds from Java).
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def error_code(raw: str | None) -> str | None:
    """``"ABDM-9999: "`` -> ``ABDM-9999``: codes arrive with trailing punctuation."""
    if not raw:
        return None
    match = re.match(r"\s*([A-Za-z]+-?\d+)", str(raw))
    return match.group(1).upper() if match else str(raw).strip() or None


# ---- consent --------------------------------------------------------------------------------

#: Transitions of a consent artefact as the HIP sees them.
CONSENT_TRANSITIONS: dict[ConsentStatus | None, frozenset[ConsentStatus]] = {
    None: frozenset(ConsentStatus),
    ConsentStatus.REQUESTED: frozenset(
        {ConsentStatus.GRANTED, ConsentStatus.DENIED, ConsentStatus.EXPIRED}
    ),
    ConsentStatus.GRANTED: frozenset({ConsentStatus.REVOKED, ConsentStatus.EXPIRED}),
    ConsentStatus.DENIED: frozenset(),
    ConsentStatus.REVOKED: frozenset(),
    ConsentStatus.EXPIRED: frozenset(),
}


def consent_transition_allowed(current: ConsentStatus | None, new: ConsentStatus) -> bool:
    """A revoked, denied or expired consent never comes back; a repeat is not a change."""
    return current == new or new in CONSENT_TRANSITIONS[current]


_FREQUENCY_SPAN = {
    FrequencyUnit.HOUR: timedelta(hours=1),
    FrequencyUnit.DAY: timedelta(days=1),
    FrequencyUnit.WEEK: timedelta(weeks=1),
    FrequencyUnit.MONTH: timedelta(days=30),
    FrequencyUnit.YEAR: timedelta(days=365),
}


@dataclass(frozen=True)
class ConsentTerms:
    status: ConsentStatus
    hi_types: tuple[str, ...]
    date_from: datetime
    date_to: datetime
    data_erase_at: datetime | None
    frequency_unit: FrequencyUnit | None
    frequency_value: int | None
    frequency_repeats: int | None


class ConsentRefused(ValueError):
    """The consent does not allow this request; ``code`` is the ABDM error code to answer."""

    def __init__(self, message: str, code: str = "ABDM-1016") -> None:
        super().__init__(message)
        self.code = code


def frequency_window(terms: ConsentTerms) -> timedelta | None:
    if terms.frequency_unit is None or not terms.frequency_value:
        return None
    return _FREQUENCY_SPAN[terms.frequency_unit] * terms.frequency_value


def check_data_request(
    terms: ConsentTerms,
    *,
    requested_from: datetime,
    requested_to: datetime,
    now: datetime,
    earlier_requests_in_window: int,
) -> tuple[datetime, datetime]:
    """The date range to send, or :class:`ConsentRefused` saying why not.

    A request must come under a GRANTED, unexpired consent for diagnostic reports, its range
    must overlap the permitted one (and is clipped to it), and it must stay within the
    consent's frequency (``repeats`` requests per ``value`` ``unit``).
    """
    if terms.status is not ConsentStatus.GRANTED:
        raise ConsentRefused(f"The consent is {terms.status.value}.", "ABDM-1017")
    if terms.data_erase_at is not None and terms.data_erase_at <= now:
        raise ConsentRefused("Consent EXPIRED: exceeded dataEraseAt.", "ABDM-1017")
    if "DiagnosticReport" not in terms.hi_types:
        raise ConsentRefused("The consent does not cover diagnostic reports.", "ABDM-1016")
    if requested_from > requested_to:
        raise ConsentRefused("The requested date range ends before it starts.", "ABDM-1016")
    start, end = max(requested_from, terms.date_from), min(requested_to, terms.date_to)
    if start > end:
        raise ConsentRefused("The requested date range is outside the consented one.", "ABDM-1016")
    if terms.frequency_repeats and earlier_requests_in_window >= terms.frequency_repeats:
        raise ConsentRefused(
            f"The consent allows {terms.frequency_repeats} data request(s) per "
            f"{terms.frequency_value} {terms.frequency_unit}; that many were already made.",
            "ABDM-1018",
        )
    return start, end
