"""Pure catalogue rules: reference-range selection, ages, units, flags and formulas.

Nothing here touches the database; the functions take model instances (or anything with
the same attributes) and plain values.

Ages are whole days. ``parse_age`` turns the shorthand labs write ("18y", "6m", "2w",
"28d", "12h", "1y6m") into days with fixed lengths: a year is 365.25 days, a month 30.4375
days (a year / 12), a week 7 days, an hour 1/24 day; the total is rounded down. So "18y"
is 6574 days. A patient's age in days is counted on the calendar (see
``nidaan.patients.domain.age_days``), which can differ from this by a day around a
birthday; a band's bound is still exact to the day for a given number.
"""

from __future__ import annotations

import ast
import decimal
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol, TypeVar

from nidaan.catalog.enums import Flag, ResultType
from nidaan.catalog.errors import FormulaError
from nidaan.kit.errors import InvalidInput
from nidaan.kit.ucum import same_unit

# ---- reference ranges ----------------------------------------------------------------


class RangeLike(Protocol):
    """The fields of ``catalog.models.ReferenceRange`` that selection and flags read."""

    @property
    def sex(self) -> str | None: ...
    @property
    def age_min_days(self) -> int | None: ...
    @property
    def age_max_days(self) -> int | None: ...
    @property
    def pregnant(self) -> bool | None: ...
    @property
    def low(self) -> Decimal | None: ...
    @property
    def high(self) -> Decimal | None: ...
    @property
    def critical_low(self) -> Decimal | None: ...
    @property
    def critical_high(self) -> Decimal | None: ...
    @property
    def text(self) -> str | None: ...


def range_matches(
    rng: RangeLike, *, sex: str | None, age_days: int | None, pregnant: bool | None
) -> bool:
    """Whether every condition of the band holds for this patient.

    An unknown age matches only bands without age bounds; an unknown pregnancy status
    matches only bands without a pregnancy condition.
    """
    if rng.sex is not None and rng.sex != sex:
        return False
    if rng.age_min_days is not None or rng.age_max_days is not None:
        if age_days is None:
            return False
        if rng.age_min_days is not None and age_days < rng.age_min_days:
            return False
        if rng.age_max_days is not None and age_days >= rng.age_max_days:
            return False
    return rng.pregnant is None or rng.pregnant == pregnant


def _specificity(rng: RangeLike) -> tuple[Any, ...]:
    """Sort key: smaller is more specific.

    Order of importance: a pregnancy condition, then the narrower age band (a neonatal
    band beats a sex-specific band without ages), then more age bounds set, then a sex
    condition. Ties (badly configured catalogues) break on the higher lower bound, then on
    the band's values, so the answer never depends on row order.
    """
    lower = rng.age_min_days or 0
    width = math.inf if rng.age_max_days is None else rng.age_max_days - lower
    bounds = (rng.age_min_days is not None) + (rng.age_max_days is not None)
    return (
        rng.pregnant is None,
        width,
        -bounds,
        rng.sex is None,
        -lower,
        str(rng.low),
        str(rng.high),
        str(getattr(rng, "id", "")),
    )


R = TypeVar("R", bound=RangeLike)


def select_range(
    ranges: Iterable[R], *, sex: str | None, age_days: int | None, pregnant: bool | None
) -> R | None:
    """The most specific band matching the patient, or None when none matches."""
    matching = [
        r for r in ranges if range_matches(r, sex=sex, age_days=age_days, pregnant=pregnant)
    ]
    if not matching:
        return None
    return min(matching, key=_specificity)


def numeric_flag(value: Decimal, rng: RangeLike | None) -> str | None:
    """``"LL"``/``"HH"`` beyond a critical limit, ``"L"``/``"H"`` outside the band, else ``"N"``.

    Limits are inclusive (a value equal to ``high`` is normal; equal to ``critical_high``
    is high, not critical). None when there is no band or it has no numeric limits.
    """
    if rng is None or all(
        limit is None for limit in (rng.low, rng.high, rng.critical_low, rng.critical_high)
    ):
        return None
    if rng.critical_low is not None and value < rng.critical_low:
        return Flag.CRITICAL_LOW.value
    if rng.critical_high is not None and value > rng.critical_high:
        return Flag.CRITICAL_HIGH.value
    if rng.low is not None and value < rng.low:
        return Flag.LOW.value
    if rng.high is not None and value > rng.high:
        return Flag.HIGH.value
    return Flag.NORMAL.value


def is_critical(flag: str | None) -> bool:
    return flag in (Flag.CRITICAL_LOW.value, Flag.CRITICAL_HIGH.value)


def _plain(value: Decimal, decimals: int | None) -> str:
    if decimals is not None:
        value = value.quantize(Decimal(1).scaleb(-decimals))
    text = format(value, "f")
    if decimals is None and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def range_text(rng: RangeLike | None, decimals: int | None = None) -> str:
    """What a report prints: the band's text, else ``"12.0 - 15.0"``, ``"< 5.0"``, ``"> 40"``."""
    if rng is None:
        return ""
    if rng.text:
        return rng.text
    if rng.low is not None and rng.high is not None:
        return f"{_plain(rng.low, decimals)} - {_plain(rng.high, decimals)}"
    if rng.high is not None:
        return f"< {_plain(rng.high, decimals)}"
    if rng.low is not None:
        return f"> {_plain(rng.low, decimals)}"
    return ""


# ---- coded results -------------------------------------------------------------------


class TestLike(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def unit_conversions(self) -> Mapping[str, Any]: ...
    @property
    def result_type(self) -> str: ...
    @property
    def choices(self) -> Sequence[Mapping[str, Any]]: ...


def find_choice(test: TestLike, value: str) -> Mapping[str, Any]:
    """The choice whose code or text equals ``value`` (case-insensitive); else InvalidInput."""
    wanted = value.strip().casefold()
    for choice in test.choices:
        if wanted in (str(choice["code"]).casefold(), str(choice.get("text", "")).casefold()):
            return choice
    accepted = [str(c["code"]) for c in test.choices]
    raise InvalidInput(
        f"{test.code} accepts one of: {', '.join(accepted)}.",
        field="value",
        accepted=accepted,
    )


def coded_flag(test: TestLike, code: str) -> str | None:
    """``"A"`` for a choice marked abnormal, ``"N"`` for a normal one; None if not coded.

    An unknown choice raises InvalidInput listing the accepted codes.
    """
    if test.result_type != ResultType.CODED:
        return None
    choice = find_choice(test, code)
    return Flag.ABNORMAL.value if choice.get("abnormal") else Flag.NORMAL.value


# ---- ages and units ------------------------------------------------------------------

_AGE_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([ymwdh])", re.IGNORECASE)
_AGE_DAYS = {
    "y": Fraction(36525, 100),
    "m": Fraction(36525, 1200),
    "w": Fraction(7),
    "d": Fraction(1),
    "h": Fraction(1, 24),
}


def parse_age(text: str) -> int:
    """``"18y"`` -> 6574, ``"6m"`` -> 182, ``"2w"`` -> 14, ``"28d"`` -> 28, ``"1y6m"`` -> 547.

    See the module docstring for the day lengths used. Raises InvalidInput otherwise.
    """
    compact = text.strip().replace(" ", "")
    parts = _AGE_PART.findall(compact)
    if not compact or not parts or "".join(n + u for n, u in parts) != compact:
        raise InvalidInput(
            f"{text!r} is not an age; write a number and a unit: y (years), m (months), "
            "w (weeks), d (days) or h (hours), e.g. 18y, 6m, 28d or 1y6m.",
            field="age",
        )
    total = sum(Fraction(number) * _AGE_DAYS[unit.lower()] for number, unit in parts)
    return math.floor(total)


def _unit_key(unit: str) -> str:
    # "µmol/L" (micro sign), "μmol/L" (Greek mu) and "umol/l" are the same unit.
    return unit.strip().replace("\u00b5", "u").replace("\u03bc", "u").casefold()


def accepted_units(test: TestLike) -> list[str]:
    units = [test.unit] if test.unit else []
    return units + [u for u in test.unit_conversions if u not in units]


def convert_unit(test: TestLike, value: Decimal, unit: str | None) -> Decimal:
    """``value`` in ``unit`` expressed in the test's own unit.

    None, empty or the test's unit returns ``value`` unchanged; a unit listed in
    ``unit_conversions`` multiplies by its factor (a factor of 1 declares an alias). Units
    compare by meaning (``kit.ucum``: ``10*3/uL``, ``10^3/µL`` and ``10^9/L`` are one unit),
    else as text, case-insensitively with µ/μ/u alike. Anything else raises InvalidInput
    naming the accepted units.
    """
    if unit is None or not unit.strip():
        return value
    key = _unit_key(unit)
    if test.unit is not None and (key == _unit_key(test.unit) or same_unit(unit, test.unit)):
        return value
    for other, factor in test.unit_conversions.items():
        if key == _unit_key(other) or same_unit(unit, other):
            return value * Decimal(str(factor))
    accepted = accepted_units(test)
    raise InvalidInput(
        f"{test.code} is reported in {test.unit or 'no unit'}; "
        f"values can be entered in: {', '.join(accepted) or 'no unit'} (got {unit!r}).",
        field="unit",
        accepted_units=accepted,
    )


# ---- formulas ------------------------------------------------------------------------

PATIENT_VARIABLES = frozenset({"AGE_YEARS", "SEX_FEMALE", "WEIGHT_KG"})
MAX_FORMULA_LENGTH = 1000
MAX_FORMULA_NODES = 300
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


def _fn_min(*args: Decimal) -> Decimal:
    return min(args)


def _fn_max(*args: Decimal) -> Decimal:
    return max(args)


FUNCTIONS: dict[str, tuple[Callable[..., Decimal], int | None]] = {
    # name: (implementation, number of arguments or None for 1 or more)
    "min": (_fn_min, None),
    "max": (_fn_max, None),
    "exp": (lambda x: x.exp(), 1),
    "ln": (lambda x: x.ln(), 1),
    "log10": (lambda x: x.log10(), 1),
    "sqrt": (lambda x: x.sqrt(), 1),
    "abs": (lambda x: abs(x), 1),
}

_BINARY: dict[type[ast.operator], Callable[[Decimal, Decimal], Decimal]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


class SubjectFacts(Protocol):
    """What a formula may read about the patient (``patients.domain.PatientFacts`` fits)."""

    @property
    def sex(self) -> str: ...
    @property
    def age_days(self) -> int | None: ...
    @property
    def age_years(self) -> int | None: ...
    @property
    def weight_kg(self) -> Decimal | None: ...


@dataclass(frozen=True)
class _Parsed:
    tree: ast.Expression
    names: frozenset[str]


def _check(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, ast.Expression):
        _check(node.body, names)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise FormulaError(
                f"Operator {type(node.op).__name__} is not allowed; use + - * / ** and brackets."
            )
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise FormulaError("Only unary minus and plus are allowed.")
        _check(node.operand, names)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError("Only numbers may appear as constants.")
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise FormulaError("Numbers in a formula must be finite.")
    elif isinstance(node, ast.Name):
        if node.id not in PATIENT_VARIABLES and not _CODE.match(node.id):
            raise FormulaError(
                f"{node.id!r} is not a test code (upper case) or one of "
                f"{', '.join(sorted(PATIENT_VARIABLES))}."
            )
        names.add(node.id)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise FormulaError(
                f"Only these functions may be called: {', '.join(sorted(FUNCTIONS))}."
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise FormulaError(f"{node.func.id}() takes plain arguments only.")
        arity = FUNCTIONS[node.func.id][1]
        if (arity is None and not node.args) or (arity is not None and len(node.args) != arity):
            expected = "one or more arguments" if arity is None else f"{arity} argument"
            raise FormulaError(f"{node.func.id}() takes {expected}.")
        for arg in node.args:
            _check(arg, names)
    else:
        raise FormulaError(
            f"{type(node).__name__} is not allowed in a formula; use numbers, test codes, "
            "+ - * / **, brackets and " + ", ".join(sorted(FUNCTIONS)) + "."
        )


@functools.lru_cache(maxsize=512)
def _parse(formula: str) -> _Parsed:
    if not formula or not formula.strip():
        raise FormulaError("The formula is empty.")
    if len(formula) > MAX_FORMULA_LENGTH:
        raise FormulaError(f"A formula may have at most {MAX_FORMULA_LENGTH} characters.")
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise FormulaError("The formula is not a valid arithmetic expression.") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_FORMULA_NODES:
        raise FormulaError("The formula is too long.")
    names: set[str] = set()
    _check(tree, names)
    return _Parsed(tree, frozenset(names))


def validate_formula(formula: str) -> None:
    """Raise FormulaError unless ``formula`` is a safe arithmetic expression."""
    _parse(formula)


def formula_inputs(formula: str) -> set[str]:
    """The test codes a formula reads (patient variables excluded)."""
    return set(_parse(formula).names - PATIENT_VARIABLES)


def formula_patient_variables(formula: str) -> set[str]:
    return set(_parse(formula).names & PATIENT_VARIABLES)


_CONTEXT = decimal.Context(
    prec=28,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999999,
    Emax=999999,
    traps=[decimal.DivisionByZero, decimal.InvalidOperation, decimal.Overflow],
)


def _patient_values(names: frozenset[str], patient: SubjectFacts | None) -> dict[str, Decimal]:
    values: dict[str, Decimal] = {}
    if "AGE_YEARS" in names:
        years = getattr(patient, "age_years", None) if patient is not None else None
        if years is None and patient is not None and patient.age_days is not None:
            years = int(Fraction(patient.age_days) / Fraction(36525, 100))
        if years is None:
            raise FormulaError("This calculation needs the patient's age.", missing=["AGE_YEARS"])
        values["AGE_YEARS"] = Decimal(years)
    if "SEX_FEMALE" in names:
        sex = patient.sex if patient is not None else None
        if sex not in ("male", "female"):
            raise FormulaError(
                "This calculation needs the patient's sex (male or female).",
                missing=["SEX_FEMALE"],
            )
        values["SEX_FEMALE"] = Decimal(1 if sex == "female" else 0)
    if "WEIGHT_KG" in names:
        weight = patient.weight_kg if patient is not None else None
        if weight is None:
            raise FormulaError(
                "This calculation needs the patient's weight.", missing=["WEIGHT_KG"]
            )
        values["WEIGHT_KG"] = Decimal(weight)
    return values


def _evaluate(node: ast.AST, env: Mapping[str, Decimal]) -> Decimal:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, env)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.Constant):
        return Decimal(str(node.value))
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        function = FUNCTIONS[node.func.id][0]
        return function(*(_evaluate(a, env) for a in node.args))
    raise FormulaError(f"{type(node).__name__} is not allowed in a formula.")  # pragma: no cover


def evaluate_formula(
    formula: str, values: Mapping[str, Decimal], patient: SubjectFacts | None = None
) -> Decimal:
    """Compute ``formula`` over test results (by code) and the patient's facts.

    Variables: test codes, ``AGE_YEARS`` (completed years), ``SEX_FEMALE`` (1 or 0; other
    or unknown sex cannot be used) and ``WEIGHT_KG``. Raises FormulaError naming missing
    inputs, or when the arithmetic is undefined (division by zero, log of a negative...).
    The result is not rounded; round with the test's ``decimals``.
    """
    parsed = _parse(formula)
    missing = sorted(
        n for n in parsed.names - PATIENT_VARIABLES if n not in values or values[n] is None
    )
    if missing:
        raise FormulaError(
            f"This calculation needs results for: {', '.join(missing)}.", missing=missing
        )
    env = {n: Decimal(values[n]) for n in parsed.names - PATIENT_VARIABLES}
    env.update(_patient_values(parsed.names, patient))
    try:
        with decimal.localcontext(_CONTEXT):
            result = _evaluate(parsed.tree, env)
    except (decimal.DecimalException, ValueError, ArithmeticError):
        raise FormulaError(
            "The calculation is undefined for these values (e.g. division by zero)."
        ) from None
    if not result.is_finite():
        raise FormulaError("The calculation is undefined for these values.")
    return result


#: How people name the containers (labels, collection slips); the codes stay internal.
CONTAINER_WORDS = {
    "edta_lavender": "EDTA (lavender top)",
    "sst_yellow": "Serum (yellow top)",
    "plain_red": "Plain (red top)",
    "fluoride_grey": "Fluoride (grey top)",
    "citrate_blue": "Citrate (blue top)",
    "heparin_green": "Heparin (green top)",
    "urine_container": "Urine container",
    "sterile_container": "Sterile container",
    "stool_container": "Stool container",
}


def container_words(code: str) -> str:
    """``sst_yellow`` -> ``Serum (yellow top)``; an unknown code reads as plain words."""
    return CONTAINER_WORDS.get(code, code.replace("_", " ").strip().capitalize())
