"""Pure result rules: parsing entered values, display rounding, flags, delta checks and
who may verify. Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from nidaan.results.enums import Flag, ResultStatus

#: Comparison prefixes a numeric result may carry ("<0.01", ">= 500"), normalised.
QUALIFIERS = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "≤": "<=", "≥": ">="}
_NUMBER = re.compile(
    r"^(?P<q><=|>=|<|>|≤|≥)?\s*(?P<n>[+-]?[0-9][0-9,]*(?:\.[0-9]*)?|[+-]?\.[0-9]+)$"
)
_MAX_DECIMALS = 6


class InvalidValue(ValueError):
    """The entered value cannot be a result of this test (the message says why)."""

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.data = data


@dataclass(frozen=True)
class NumericValue:
    """A parsed number; ``qualifier`` is "<", "<=", ">" or ">=" for censored values."""

    value: Decimal
    qualifier: str | None = None

    @property
    def exact(self) -> bool:
        return self.qualifier is None


@dataclass(frozen=True)
class CodedValue:
    code: str
    text: str
    abnormal: bool


def parse_numeric(entered: str) -> NumericValue:
    """Parse "5.6", "5,6", "1,234.5", "<0.01", "> 500" into a number and optional qualifier.

    A single comma with no point is a decimal comma ("5,6" is 5.6); with a point present,
    or more than one comma ("1,23,456"), commas are digit grouping.
    """
    text = entered.strip().replace(" ", "")
    match = _NUMBER.match(text)
    if match is None:
        raise InvalidValue(f"{entered.strip()!r} is not a number.", entered=entered)
    number = match.group("n")
    if "," in number:
        if "." not in number and number.count(",") == 1:
            number = number.replace(",", ".")
        else:
            number = number.replace(",", "")
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise InvalidValue(f"{entered.strip()!r} is not a number.", entered=entered) from None
    if not value.is_finite():
        raise InvalidValue(f"{entered.strip()!r} is not a number.", entered=entered)
    qualifier = match.group("q")
    return NumericValue(value=value, qualifier=QUALIFIERS[qualifier] if qualifier else None)


def parse_coded(entered: str, choices: Sequence[Mapping[str, Any]]) -> CodedValue:
    """Match ``entered`` to one of the test's choices by code or text, ignoring case."""
    wanted = " ".join(entered.split()).casefold()
    for choice in choices:
        code = str(choice.get("code", ""))
        text = str(choice.get("text") or code)
        if wanted in (code.casefold(), text.casefold()):
            return CodedValue(code=code, text=text, abnormal=bool(choice.get("abnormal", False)))
    allowed = [str(c.get("code")) for c in choices]
    listed = ", ".join(f"{c.get('code')} ({c.get('text') or c.get('code')})" for c in choices)
    raise InvalidValue(
        f"{entered.strip()!r} is not one of this test's choices: {listed}.",
        entered=entered,
        choices=allowed,
    )


def round_display(value: Decimal, decimals: int) -> Decimal:
    """``value`` rounded half-up to the test's number of decimals (what is reported)."""
    return value.quantize(Decimal(1).scaleb(-max(0, decimals)), rounding=ROUND_HALF_UP)


def format_number(value: Decimal, decimals: int) -> str:
    return f"{round_display(value, decimals):f}"


def format_value(numeric: NumericValue, decimals: int) -> str:
    """What a report prints: "5.6", "<0.01" (a bound keeps its own precision if finer)."""
    if numeric.exact:
        return format_number(numeric.value, decimals)
    places = max(decimals, _places(numeric.value))
    return f"{numeric.qualifier}{format_number(numeric.value, min(places, _MAX_DECIMALS))}"


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def store_precision(value: Decimal) -> Decimal:
    """Quantise to the six decimals the ``value_numeric`` column keeps."""
    return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def numeric_flag(
    numeric: NumericValue,
    *,
    low: Decimal | None,
    high: Decimal | None,
    critical_low: Decimal | None = None,
    critical_high: Decimal | None = None,
) -> Flag | None:
    """The flag of a number against an interval; None when no interval applies.

    Limits are inclusive, as in ``catalog.domain.numeric_flag``: a value equal to ``high``
    is normal, equal to ``critical_high`` is high (not critical).

    A censored value is flagged only when its direction settles it: "<0.5" with low 1 is L,
    ">500" with high 200 is H, "<0.01" with no (or a zero) lower limit and high 0.04 is N; a
    bound that straddles a limit ("<10" with low 5) gives no flag.
    """
    if low is None and high is None and critical_low is None and critical_high is None:
        return None
    value, q = numeric.value, numeric.qualifier
    if q is None:
        if critical_low is not None and value < critical_low:
            return Flag.CRITICAL_LOW
        if critical_high is not None and value > critical_high:
            return Flag.CRITICAL_HIGH
        if low is not None and value < low:
            return Flag.LOW
        if high is not None and value > high:
            return Flag.HIGH
        return Flag.NORMAL
    if q in ("<", "<="):  # the true value is below `value`
        if critical_low is not None and value <= critical_low:
            return Flag.CRITICAL_LOW
        if low is not None and value <= low:
            return Flag.LOW
        if (low is None or low <= 0) and (high is None or value <= high):
            return Flag.NORMAL
        return None
    # ">" or ">=": the true value is above `value`
    if critical_high is not None and value >= critical_high:
        return Flag.CRITICAL_HIGH
    if high is not None and value >= high:
        return Flag.HIGH
    if high is None and (low is None or value >= low):
        return Flag.NORMAL
    return None


def coded_flag(value: CodedValue) -> Flag:
    return Flag.ABNORMAL if value.abnormal else Flag.NORMAL


def reference_text(
    *, text: str | None, low: Decimal | None, high: Decimal | None, decimals: int
) -> str | None:
    """How a report prints the interval: its text, "low - high", "< high" or "> low"."""
    if text:
        return text
    if low is not None and high is not None:
        return f"{_limit(low, decimals)} - {_limit(high, decimals)}"
    if high is not None:
        return f"< {_limit(high, decimals)}"
    if low is not None:
        return f"> {_limit(low, decimals)}"
    return None


def _limit(value: Decimal, decimals: int) -> str:
    """A limit at the test's decimals, unless that would hide digits the limit has."""
    return format_number(value, max(decimals, _places(value)))


# --- interpretation ----------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """The reference interval that applies (a copy of the catalogue's range row)."""

    low: Decimal | None = None
    high: Decimal | None = None
    critical_low: Decimal | None = None
    critical_high: Decimal | None = None
    text: str | None = None


@dataclass(frozen=True)
class Interpretation:
    """What an entered value becomes: the stored values, the flag and the interval used."""

    value_numeric: Decimal | None  # exact numbers only, rounded to the test's decimals
    value_text: str  # what the report prints
    value_code: str | None
    unit: str | None
    flag: Flag | None
    reference_low: Decimal | None
    reference_high: Decimal | None
    reference_text: str | None

    @property
    def critical(self) -> bool:
        return self.flag in (Flag.CRITICAL_LOW, Flag.CRITICAL_HIGH)


def interpret(
    entered: str,
    *,
    result_type: str,
    decimals: int,
    unit: str | None,
    choices: Sequence[Mapping[str, Any]],
    band: Band | None,
    convert: Callable[[Decimal], Decimal] = lambda value: value,
) -> Interpretation:
    """Parse ``entered`` for a test of ``result_type``; ``convert`` maps it to the test unit.

    Numbers are rounded half-up to ``decimals`` before flagging, so the flag agrees with
    the printed value; a censored value ("<0.01") keeps no number (it feeds no delta check
    or formula) but is flagged when its direction settles it.
    """
    band = band or Band()
    ref_text = reference_text(text=band.text, low=band.low, high=band.high, decimals=decimals)
    common = {
        "unit": unit,
        "reference_low": band.low,
        "reference_high": band.high,
        "reference_text": ref_text,
    }
    if result_type in ("numeric", "calculated"):
        parsed = parse_numeric(entered)
        converted = NumericValue(round_display(convert(parsed.value), decimals), parsed.qualifier)
        if parsed.qualifier is not None:
            converted = NumericValue(convert(parsed.value), parsed.qualifier)
        flag = numeric_flag(
            converted,
            low=band.low,
            high=band.high,
            critical_low=band.critical_low,
            critical_high=band.critical_high,
        )
        return Interpretation(
            value_numeric=converted.value if converted.exact else None,
            value_text=format_value(converted, decimals),
            value_code=None,
            flag=flag,
            **common,
        )
    if result_type == "coded":
        coded = parse_coded(entered, choices)
        return Interpretation(
            value_numeric=None,
            value_text=coded.text,
            value_code=coded.code,
            flag=coded_flag(coded),
            **common,
        )
    text = entered.strip()
    if not text:
        raise InvalidValue("The result is empty.", entered=entered)
    return Interpretation(value_numeric=None, value_text=text, value_code=None, flag=None, **common)


# --- delta check -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeltaOutcome:
    checked: bool  # False: no previous result in the window, or no thresholds configured
    failed: bool
    change: Decimal | None = None  # current - previous
    change_percent: Decimal | None = None  # None when the previous value was 0
    reason: str | None = None


def delta_check(
    current: Decimal,
    previous: Decimal | None,
    previous_at: datetime | None,
    now: datetime,
    *,
    percent: Decimal | None,
    absolute: Decimal | None,
    window_days: int | None,
) -> DeltaOutcome:
    """Compare a result with the patient's previous one of the same test.

    Fails when the change exceeds either configured threshold (strictly: a change equal to
    the threshold passes) and the previous result is within ``window_days`` (no window: any
    age). A previous value of 0 has no percentage change; any move from 0 fails a percent
    threshold.
    """
    if previous is None or previous_at is None or (percent is None and absolute is None):
        return DeltaOutcome(checked=False, failed=False)
    if window_days is not None and now - previous_at > timedelta(days=window_days):
        return DeltaOutcome(checked=False, failed=False)
    change = current - previous
    change_percent = (
        (change / abs(previous) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
        if previous != 0
        else None
    )
    reasons = []
    if absolute is not None and abs(change) > absolute:
        reasons.append(f"changed by {_signed(change)} (limit {absolute.normalize():f})")
    if percent is not None:
        if change_percent is None and change != 0:
            reasons.append(f"changed from 0 to {current.normalize():f} (limit {percent:f}%)")
        elif change_percent is not None and abs(change_percent) > percent:
            reasons.append(
                f"changed by {_signed(change_percent)}% (limit {percent.normalize():f}%)"
            )
    if not reasons:
        return DeltaOutcome(True, False, change, change_percent)
    reason = (
        f"Delta check: {previous.normalize():f} -> {current.normalize():f} since "
        f"{previous_at.date().isoformat()}: " + "; ".join(reasons)
    )
    return DeltaOutcome(True, True, change, change_percent, reason[:300])


def _signed(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text if value < 0 else f"+{text}"


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    allowed: bool
    final: bool = False  # this signature completes the verification
    level: int = 0  # 1 for the first signature, 2 for the second...
    code: str | None = None  # why not, as an error code
    reason: str | None = None


def can_verify(
    entered_by: UUID | None,
    verifier: UUID,
    previous_verifiers: Collection[UUID],
    required: int,
    allow_self: bool,
) -> Decision:
    """May ``verifier`` add a signature to a result needing ``required`` distinct ones?"""
    required = max(1, required)
    if len(previous_verifiers) >= required:
        return Decision(False, code="already_verified", reason="The result is already verified.")
    if verifier in previous_verifiers:
        return Decision(
            False,
            code="second_verifier_required",
            reason=(
                f"This test needs {required} verifications by different people; "
                "you have already verified it."
            ),
        )
    if entered_by is not None and verifier == entered_by and not allow_self:
        return Decision(
            False,
            code="self_verification_not_allowed",
            reason=(
                "You entered this result; another pathologist must verify it "
                "(the organisation does not allow self-verification)."
            ),
        )
    level = len(previous_verifiers) + 1
    return Decision(True, final=level >= required, level=level)


# --- state machine -----------------------------------------------------------------------

TRANSITIONS: dict[str, frozenset[str]] = {
    ResultStatus.ENTERED: frozenset(
        {ResultStatus.ENTERED, ResultStatus.HELD, ResultStatus.VERIFIED, ResultStatus.SUPERSEDED}
    ),
    ResultStatus.HELD: frozenset({ResultStatus.ENTERED, ResultStatus.HELD}),
    ResultStatus.VERIFIED: frozenset({ResultStatus.SUPERSEDED}),
    ResultStatus.SUPERSEDED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


# --- what reports print ------------------------------------------------------------------


@dataclass(frozen=True)
class Signatory:
    user_id: UUID
    full_name: str
    qualification: str | None
    signed_at: datetime | None
    registration_number: str | None = None  # medical council registration
    signature_key: str | None = None  # stored signature image, printed on reports


@dataclass(frozen=True)
class ReportLine:
    """One verified current result as a report prints it."""

    result_id: UUID
    order_test_id: UUID
    sample_id: UUID | None
    test_id: UUID
    test_code: str
    test_name: str
    loinc: str | None
    department: str
    method: str | None
    accredited: bool
    sort_order: int
    result_type: str
    value: str  # display value, rounded to the test's decimals ("5.6", "<0.01", "Positive")
    value_numeric: Decimal | None
    unit: str | None
    reference_text: str | None
    flag: str | None
    comment: str | None
    entered_by: Signatory | None
    verified_by: Signatory | None  # who gave the final verification (authorised release)
    verifiers: tuple[Signatory, ...]  # every verification, in level order
    verified_at: datetime | None
    result_version: int
    corrected: bool  # result_version > 1: this line amends an earlier report
    correction_reason: str | None
    # The numeric interval that applied (FHIR referenceRange); None for text-only ranges.
    reference_low: Decimal | None = None
    reference_high: Decimal | None = None
    value_code: str | None = None
    referral_lab: str | None = None  # the laboratory a referred test was sent to
