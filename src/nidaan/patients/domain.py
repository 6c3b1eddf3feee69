"""Pure patient rules: names, MRNs, ABHA identifiers, ages and duplicate scoring.

Nothing here touches the database.

ABHA number: 14 digits, shown in groups 2-4-4-4 (``91-1234-5678-9012``). ABDM's own
enrolment validator checks only that pattern (no check digit is published), so we check
only the digits.
Aadhaar numbers (12 digits) are never accepted or stored.
"""

from __future__ import annotations

import calendar
import difflib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from nidaan.kit.time import IST

MRN_PREFIX = "MRN-"

#: ISO 639-1 codes of the languages reports and messages can use.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "hi": "Hindi",
    "bn": "Bengali",
    "gu": "Gujarati",
    "kn": "Kannada",
    "ml": "Malayalam",
    "mr": "Marathi",
    "or": "Odia",
    "pa": "Punjabi",
    "ta": "Tamil",
    "te": "Telugu",
    "ur": "Urdu",
    "as": "Assamese",
}

# Words people put before names; ignored when comparing names for duplicates.
_TITLES = frozenset(
    {"mr", "mrs", "ms", "miss", "dr", "smt", "shri", "shree", "sri", "kumari", "km", "master"}
)
_NAME_PUNCTUATION = re.compile(r"[.,;:'\"`]+")
_SPACES = re.compile(r"\s+")
_ABHA_SEPARATORS = re.compile(r"[\s\-]")
_ABHA_ADDRESS = re.compile(r"^[a-z0-9](?:[a-z0-9._]{1,30}[a-z0-9])?@(abdm|sbx)$")

NAME_SIMILARITY = 0.8
DUPLICATE_THRESHOLD = 70


class InvalidAbha(ValueError):
    """An ABHA number or address in the wrong form; the message is safe to show and log."""


def format_mrn(value: int) -> str:
    """``123`` -> ``MRN-000123`` (six digits, growing beyond when needed)."""
    return f"{MRN_PREFIX}{value:06d}"


def normalize_name(name: str) -> str:
    """Lower-case, NFC, punctuation removed, single-spaced: for search and duplicates."""
    text = unicodedata.normalize("NFC", name).casefold()
    text = _NAME_PUNCTUATION.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def clean_display_name(name: str) -> str:
    """The name as entered, with surrounding and repeated spaces removed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", name)).strip()


def _name_tokens(normalized: str) -> list[str]:
    tokens = normalized.split()
    while len(tokens) > 1 and tokens[0] in _TITLES:
        tokens = tokens[1:]
    return tokens


def names_similar(a: str, b: str) -> bool:
    """Same person's name written differently ("Sunita Devi" / "Sunita D.", "Md Ali" / ...).

    True when the normalised names (titles dropped) have a difflib ratio of at least 0.8,
    or share the same first token of three letters or more.
    """
    ta, tb = _name_tokens(normalize_name(a)), _name_tokens(normalize_name(b))
    if not ta or not tb:
        return False
    if difflib.SequenceMatcher(None, " ".join(ta), " ".join(tb)).ratio() >= NAME_SIMILARITY:
        return True
    return ta[0] == tb[0] and len(ta[0]) >= 3


def normalize_abha_number(raw: str) -> str:
    """14 digits (spaces and dashes allowed) -> the bare digits; else :class:`InvalidAbha`."""
    digits = _ABHA_SEPARATORS.sub("", raw)
    if not digits.isdigit() or not digits.isascii():
        raise InvalidAbha(
            "An ABHA number has 14 digits, written like 91-1234-5678-9012; it has no letters."
        )
    if len(digits) == 12:
        raise InvalidAbha(
            "ABHA numbers have 14 digits; a 12-digit number looks like an Aadhaar number, "
            "which Nidaan never accepts or stores."
        )
    if len(digits) != 14:
        raise InvalidAbha("ABHA numbers have 14 digits, written like 91-1234-5678-9012.")
    return digits


def format_abha_number(digits: str) -> str:
    """``91123456789012`` -> ``91-1234-5678-9012``."""
    return f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}"


def mask_abha_number(digits: str) -> str:
    """Only the last four digits: ``**-****-****-9012`` (safe for responses and logs)."""
    if len(digits) != 14 or not digits.isdigit():
        return "**-****-****-****"
    return f"**-****-****-{digits[10:]}"


def normalize_abha_address(raw: str) -> str:
    """``Name.1990@abdm`` -> ``name.1990@abdm``; only ``@abdm`` (and sandbox ``@sbx``)."""
    address = raw.strip().lower()
    if not _ABHA_ADDRESS.match(address):
        raise InvalidAbha(
            "An ABHA address looks like name@abdm (sandbox: name@sbx): letters, digits, "
            "'.' or '_' before the @, not starting or ending with '.' or '_'."
        )
    return address


def local_date(at: datetime) -> date:
    """The calendar date in India of an aware instant (ages count in the lab's days)."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    return at.astimezone(IST).date()


def age_days(date_of_birth: date | None, at: date) -> int | None:
    """Days from birth to ``at`` (0 on the day of birth); None when unknown."""
    if date_of_birth is None:
        return None
    return max(0, (at - date_of_birth).days)


def age_years(date_of_birth: date | None, at: date) -> int | None:
    """Completed calendar years at ``at``; None when unknown."""
    if date_of_birth is None:
        return None
    years = at.year - date_of_birth.year
    if (at.month, at.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return max(0, years)


def estimated_date_of_birth(
    today: date, years: int | None, months: int | None = None, days: int | None = None
) -> date:
    """A date of birth from a stated age.

    Years only ("about 45"): 1 July of ``today.year - years`` (mid-year, so the error is at
    most six months), never after ``today``. With months or days (infants), counted back
    exactly from ``today``.
    """
    years, months, days = years or 0, months or 0, days or 0
    if months == 0 and days == 0:
        return min(date(today.year - years, 7, 1), today)
    total_months = today.year * 12 + (today.month - 1) - years * 12 - months
    year, month = divmod(total_months, 12)
    day = min(today.day, calendar.monthrange(year, month + 1)[1])
    return date(year, month + 1, day) - timedelta(days=days)


@dataclass(frozen=True)
class PatientFacts:
    """What reference ranges and formulas need to know about a patient at one instant."""

    sex: str
    age_days: int | None
    age_years: int | None
    pregnant: bool | None
    weight_kg: Decimal | None
    preferred_language: str


@dataclass(frozen=True)
class PersonKeys:
    """The fields duplicate detection compares (mobile/ABHA by blind index only)."""

    name: str
    sex: str
    date_of_birth: date | None
    dob_estimated: bool
    mobile_index: str | None
    abha_number_index: str | None


@dataclass(frozen=True)
class DuplicateScore:
    score: int
    reasons: tuple[str, ...]

    @property
    def is_likely(self) -> bool:
        return self.score >= DUPLICATE_THRESHOLD


def _dob_relation(a: PersonKeys, b: PersonKeys) -> str | None:
    if a.date_of_birth is None or b.date_of_birth is None:
        return None
    if a.date_of_birth == b.date_of_birth:
        return "same date of birth"
    if (a.dob_estimated or b.dob_estimated) and abs(
        (a.date_of_birth - b.date_of_birth).days
    ) <= 366:
        return "date of birth within a year (estimated)"
    return None


def score_duplicate(new: PersonKeys, existing: PersonKeys) -> DuplicateScore:
    """How likely ``existing`` is the same person as ``new`` (0-100) and why.

    - Same ABHA number: 100 (one person, one ABHA number).
    - Otherwise families share mobiles, so a likely duplicate needs a similar name and the
      same (or, when estimated, within a year) date of birth, plus the same mobile (95) or
      an identical name with an exact date of birth (75). Different known sexes never match.
    """
    if new.abha_number_index and new.abha_number_index == existing.abha_number_index:
        return DuplicateScore(100, ("same ABHA number",))
    known = {"male", "female"}
    if new.sex in known and existing.sex in known and new.sex != existing.sex:
        return DuplicateScore(0, ())
    reasons: list[str] = []
    score = 0
    same_mobile = bool(new.mobile_index) and new.mobile_index == existing.mobile_index
    if same_mobile:
        score += 40
        reasons.append("same mobile")
    same_name = normalize_name(new.name) == normalize_name(existing.name)
    if same_name:
        score += 35
        reasons.append("same name")
    elif names_similar(new.name, existing.name):
        score += 30
        reasons.append("similar name")
    dob = _dob_relation(new, existing)
    if dob == "same date of birth":
        score += 25 if same_mobile or not same_name else 40
        reasons.append(dob)
    elif dob is not None:
        score += 25
        reasons.append(dob)
    name_matches = same_name or "similar name" in reasons
    likely = (same_mobile and name_matches and dob is not None) or (
        same_name and dob == "same date of birth"
    )
    if not likely:
        score = min(score, DUPLICATE_THRESHOLD - 1)
    return DuplicateScore(score, tuple(reasons))
