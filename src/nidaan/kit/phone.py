"""Mobile number normalisation to E.164 and masking for display and logs.

Indian mobiles are accepted in the ways people write them (``98765 43210``,
``+91-98765-43210``, ``098765 43210``, ``(+91) 9876543210``); other countries only with an
explicit ``+<country code>``. Deliberately small instead of pulling in ``phonenumbers``:
a lab mostly needs Indian mobiles, and one canonical form so the blind index matches.
"""

from __future__ import annotations

import re
import unicodedata

INDIA_CODE = "91"
_INDIAN_MOBILE = re.compile(r"^[6-9]\d{9}$")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# Separators people type; removed before validation. Includes Unicode dashes and NBSP
# because numbers are often pasted from documents and messaging apps.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212().]")

EXPECTED_FORMAT = (
    "Enter a 10-digit Indian mobile number starting with 6, 7, 8 or 9 "
    "(for example 98765 43210, optionally with +91 or 0 in front), "
    "or an international number starting with + and the country code (8 to 15 digits)."
)


class InvalidPhoneNumber(ValueError):
    """The input is not a mobile number we accept; the message says what is expected.

    The rejected input is never included, so the message is safe to log.
    """

    def __init__(self, message: str = EXPECTED_FORMAT) -> None:
        super().__init__(message)


def _ascii_digits(text: str) -> str:
    # Devanagari and other Unicode decimal digits become ASCII; letters stay and fail later.
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def normalize_mobile(raw: str) -> str:
    """Return ``raw`` as E.164 (``+919876543210``) or raise :class:`InvalidPhoneNumber`."""
    if not isinstance(raw, str):
        raise InvalidPhoneNumber()
    text = _SEPARATORS.sub("", _ascii_digits(raw))
    has_plus = text.startswith("+")
    digits = text[1:] if has_plus else text
    if not digits.isdigit() or not digits.isascii():
        raise InvalidPhoneNumber()

    if has_plus:
        if digits.startswith(INDIA_CODE):
            national = digits[len(INDIA_CODE) :]
            if not _INDIAN_MOBILE.match(national):
                raise InvalidPhoneNumber(
                    "An Indian mobile number after +91 must have 10 digits starting with "
                    "6, 7, 8 or 9 (for example +91 98765 43210)."
                )
            return f"+{INDIA_CODE}{national}"
        candidate = f"+{digits}"
        if not _E164.match(candidate):
            raise InvalidPhoneNumber()
        return candidate

    # No '+': only Indian forms, since a bare number is ambiguous across countries.
    if len(digits) == 12 and digits.startswith(INDIA_CODE):
        national = digits[2:]
    elif len(digits) == 11 and digits.startswith("0"):
        national = digits[1:]
    else:
        national = digits
    if not _INDIAN_MOBILE.match(national):
        raise InvalidPhoneNumber()
    return f"+{INDIA_CODE}{national}"


def mask_mobile(e164: str) -> str:
    """Show only the country code (India) and last four digits: ``+91******3210``.

    Anything that is not a valid number is fully masked, so this is always safe to log.
    """
    try:
        number = normalize_mobile(e164)
    except InvalidPhoneNumber:
        return "****"
    digits = number[1:]
    if digits.startswith(INDIA_CODE) and len(digits) == 12:
        return f"+{INDIA_CODE}{'*' * 6}{digits[-4:]}"
    # Country-code length varies (1-3 digits), so mask everything but the last four.
    return f"+{'*' * (len(digits) - 4)}{digits[-4:]}"
