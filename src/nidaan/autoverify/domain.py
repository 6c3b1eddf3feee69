"""The autoverification rule engine (CLSI AUTO10 style): pure, no database.

A rule set is data: an ordered list of rules, each ``{"type": ..., <parameters>}``, e.g.::

    [
      {"type": "source", "allowed": ["instrument"]},
      {"type": "reportable_range", "low": 10, "high": 600},
      {"type": "no_critical"},
      {"type": "autoverification_range", "low": 60, "high": 200},
      {"type": "delta", "percent": 30, "window_days": 90},
      {"type": "instrument_flags"},
      {"type": "qc", "max_age_hours": 24},
      {"type": "specimen_indices", "H": 100, "I": 20, "L": 300},
      {"type": "no_comment"},
      {"type": "consistency", "expression": "TG < 400", "message": "LDL needs TG < 400"}
    ]

:func:`parse` checks a rule set (unknown types, missing or wrong parameters, bad
expressions) and returns typed rules; :func:`evaluate` runs them, in order, over the
:class:`Facts` of one result. Every rule is run, so the trail says which rules held and which
did not; the first rule that did not hold is the one that stopped the result. A result is
autoverified only when every rule held (an empty rule set stops everything).
"""

from __future__ import annotations

import ast
import enum
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "RULE_TYPES",
    "Decision",
    "Facts",
    "Rule",
    "RuleError",
    "evaluate",
    "parse",
]

CRITICAL_FLAGS = frozenset({"LL", "HH"})
#: Analyzer flags that say nothing against the value (abnormal-range flags, which other
#: rules judge); anything else (instrument alarms such as EDIT, EXP, >, <) stops a result.
DEFAULT_ALLOWED_FLAGS = ("N", "L", "H", "LL", "HH", "A")


class RuleError(ValueError):
    """A rule set that cannot be used; ``problems`` lists each (index, message)."""

    def __init__(self, problems: list[tuple[int | None, str]]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"rule {i + 1}: {m}" if i is not None else m for i, m in problems)
        )


class Missing(enum.StrEnum):
    PASS = "pass"
    STOP = "stop"


@dataclass(frozen=True)
class Facts:
    """What the rules may look at for one result (gathered by the service)."""

    value_text: str | None
    value_numeric: Decimal | None
    flag: str | None = None
    reference_low: Decimal | None = None
    reference_high: Decimal | None = None
    instrument_flags: tuple[str, ...] = ()
    comment: str | None = None
    source: str = "instrument"
    entered_at: datetime | None = None
    #: The patient's previous verified result of the test (value, verified at).
    previous_value: Decimal | None = None
    previous_at: datetime | None = None
    #: The instrument (None: entered by hand) and its QC: why results are blocked now (a
    #: standing QC rejection), and when a run last passed.
    instrument_id: Any = None
    qc_blocked: str | None = None
    qc_passed_at: datetime | None = None
    #: Serum indices the analyzer sent with the sample: {"H": "50", "I": "2", "L": "30"}.
    indices: Mapping[str, str] = field(default_factory=dict)
    #: The sample's current numeric results by test code (this one included).
    sample: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    index: int
    type: str
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.index + 1,
            "type": self.type,
            "passed": self.passed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Decision:
    autoverify: bool
    decided_by: str  # "3:delta" (the rule that stopped it) or "all"
    reason: str
    trail: tuple[Outcome, ...]


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    index: int
    type: str
    check: Callable[[Facts], tuple[bool, str]]
    spec: Mapping[str, Any]


def _number(spec: Mapping[str, Any], name: str, *, required: bool) -> Decimal | None:
    value = spec.get(name)
    if value is None:
        if required:
            raise ValueError(f"needs {name!r}")
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name!r} must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name!r} must be a number") from None
    if not number.is_finite():
        raise ValueError(f"{name!r} must be a finite number")
    return number


def _missing(spec: Mapping[str, Any], default: Missing) -> Missing:
    try:
        return Missing(spec.get("missing", default))
    except ValueError:
        raise ValueError("'missing' must be 'pass' or 'stop'") from None


def _fmt(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


def _numeric(facts: Facts) -> tuple[Decimal | None, str]:
    if facts.value_numeric is None:
        return None, f"{facts.value_text or 'the value'} is not a number"
    text = (facts.value_text or "").strip()
    if text[:1] in ("<", ">"):
        return None, f"{text} is outside the measuring range"
    return facts.value_numeric, ""


def _range_rule(
    name: str, low: Decimal | None, high: Decimal | None
) -> Callable[[Facts], tuple[bool, str]]:
    def check(facts: Facts) -> tuple[bool, str]:
        value, why = _numeric(facts)
        if value is None:
            return False, why
        if low is not None and value < low:
            return False, f"{_fmt(value)} is below the {name} ({_fmt(low)}-{_fmt(high)})"
        if high is not None and value > high:
            return False, f"{_fmt(value)} is above the {name} ({_fmt(low)}-{_fmt(high)})"
        return True, f"{_fmt(value)} within the {name} ({_fmt(low)}-{_fmt(high)})"

    return check


def _reportable_range(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    low, high = _number(spec, "low", required=True), _number(spec, "high", required=True)
    assert low is not None
    assert high is not None
    if low > high:
        raise ValueError("'low' is above 'high'")
    return _range_rule("reportable range", low, high)


def _autoverification_range(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    low, high = _number(spec, "low", required=False), _number(spec, "high", required=False)
    if low is None and high is None:
        raise ValueError("needs 'low' or 'high'")
    if low is not None and high is not None and low > high:
        raise ValueError("'low' is above 'high'")
    return _range_rule("autoverification range", low, high)


def _reference_range(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    missing = _missing(spec, Missing.STOP)

    def check(facts: Facts) -> tuple[bool, str]:
        if facts.reference_low is None and facts.reference_high is None:
            return missing == Missing.PASS, "no reference interval for this patient"
        flag = (facts.flag or "").upper()
        if flag in ("", "N"):
            return True, "within the reference interval"
        return False, f"flagged {flag} against the reference interval"

    return check


def _no_critical(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    def check(facts: Facts) -> tuple[bool, str]:
        if (facts.flag or "").upper() in CRITICAL_FLAGS:
            return False, f"critical value (flag {facts.flag})"
        return True, "no critical limit crossed"

    return check


def _delta(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    percent = _number(spec, "percent", required=False)
    absolute = _number(spec, "absolute", required=False)
    if percent is None and absolute is None:
        raise ValueError("needs 'percent' or 'absolute'")
    window = spec.get("window_days", 90)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError("'window_days' must be a whole number of days (1 or more)")
    no_previous = Missing(spec.get("no_previous", Missing.PASS))

    def check(facts: Facts) -> tuple[bool, str]:
        value, why = _numeric(facts)
        if value is None:
            return False, why
        previous, at = facts.previous_value, facts.previous_at
        now = facts.entered_at
        if (
            previous is None
            or at is None
            or (now is not None and now - at > timedelta(days=window))
        ):
            return no_previous == Missing.PASS, f"no previous result within {window} days"
        change = abs(value - previous)
        limits = []
        if absolute is not None and change > absolute:
            limits.append(f"more than {_fmt(absolute)}")
        if percent is not None:
            if previous == 0:
                if change != 0:
                    limits.append(f"from 0 (limit {_fmt(percent)}%)")
            elif change / abs(previous) * 100 > percent:
                pct = (change / abs(previous) * 100).quantize(Decimal("1"))
                limits.append(f"{pct}% (limit {_fmt(percent)}%)")
        when = f"{at:%Y-%m-%d}"
        if limits:
            return False, f"changed {' and '.join(limits)} since {_fmt(previous)} on {when}"
        return True, f"delta against {_fmt(previous)} on {when} within limits"

    return check


def _instrument_flags(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    allowed_spec = spec.get("allowed", list(DEFAULT_ALLOWED_FLAGS))
    if not isinstance(allowed_spec, list) or not all(isinstance(f, str) for f in allowed_spec):
        raise ValueError("'allowed' must be a list of flags")
    allowed = {f.strip().upper() for f in allowed_spec}

    def check(facts: Facts) -> tuple[bool, str]:
        bad = [f for f in facts.instrument_flags if f.strip() and f.strip().upper() not in allowed]
        if bad:
            return False, f"instrument flag {', '.join(bad)}"
        return True, "no instrument error flag"

    return check


def _qc(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    max_age = spec.get("max_age_hours", 24)
    if not isinstance(max_age, int | float) or isinstance(max_age, bool) or max_age <= 0:
        raise ValueError("'max_age_hours' must be a positive number")
    manual = _missing({"missing": spec.get("manual", Missing.STOP)}, Missing.STOP)

    def check(facts: Facts) -> tuple[bool, str]:
        if facts.instrument_id is None:
            return manual == Missing.PASS, "entered by hand: no instrument QC to rely on"
        if facts.qc_blocked:
            return False, facts.qc_blocked
        if facts.qc_passed_at is None:
            return False, "no passing QC run for this test on this instrument"
        now = facts.entered_at
        if now is not None and now - facts.qc_passed_at > timedelta(hours=max_age):
            return (
                False,
                f"last passing QC run {facts.qc_passed_at:%Y-%m-%d %H:%M} UTC is older "
                f"than {max_age} h",
            )
        return True, f"QC passed at {facts.qc_passed_at:%Y-%m-%d %H:%M} UTC"

    return check


def _specimen_indices(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    limits = {k: _number(spec, k, required=False) for k in ("H", "I", "L")}
    if all(v is None for v in limits.values()):
        raise ValueError("needs a limit for at least one of 'H', 'I', 'L'")
    missing = _missing(spec, Missing.PASS)
    names = {"H": "haemolysis", "I": "icterus", "L": "lipaemia"}

    def check(facts: Facts) -> tuple[bool, str]:
        checked = []
        for kind, limit in limits.items():
            if limit is None:
                continue
            text = facts.indices.get(kind)
            if text is None:
                if missing == Missing.STOP:
                    return False, f"no {names[kind]} index from the analyzer"
                continue
            try:
                value = Decimal(str(text).strip())
            except InvalidOperation:
                return False, f"{names[kind]} index {text!r} is not a number"
            if value > limit:
                return False, f"{names[kind]} index {_fmt(value)} above {_fmt(limit)}"
            checked.append(f"{kind} {_fmt(value)}")
        return True, ("indices " + ", ".join(checked)) if checked else "no indices sent"

    return check


def _no_comment(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    def check(facts: Facts) -> tuple[bool, str]:
        if facts.comment and facts.comment.strip():
            return False, "has a comment a person should read"
        return True, "no comment"

    return check


def _source(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    allowed = spec.get("allowed", ["instrument"])
    if not isinstance(allowed, list) or not allowed or not all(isinstance(s, str) for s in allowed):
        raise ValueError("'allowed' must be a list such as ['instrument']")

    def check(facts: Facts) -> tuple[bool, str]:
        if facts.source in allowed:
            return True, f"source {facts.source}"
        return False, f"source {facts.source} is not autoverified"

    return check


def _consistency(spec: Mapping[str, Any]) -> Callable[[Facts], tuple[bool, str]]:
    text = spec.get("expression")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("needs an 'expression' such as 'TG < 400'")
    expression = Expression(text)
    message = spec.get("message")
    if message is not None and not isinstance(message, str):
        raise ValueError("'message' must be text")
    missing = _missing(spec, Missing.STOP)

    def check(facts: Facts) -> tuple[bool, str]:
        values = dict(facts.sample)
        if facts.value_numeric is not None:
            values["value"] = facts.value_numeric
        absent = sorted(expression.names - values.keys())
        if absent:
            return missing == Missing.PASS, f"{text}: no result for {', '.join(absent)}"
        try:
            held = expression.evaluate(values)
        except (ArithmeticError, ValueError):
            return False, f"{text}: cannot be computed from these values"
        if held:
            return True, f"{text} holds"
        return False, message or f"{text} does not hold"

    return check


RULE_TYPES: dict[str, Callable[[Mapping[str, Any]], Callable[[Facts], tuple[bool, str]]]] = {
    "source": _source,
    "reportable_range": _reportable_range,
    "no_critical": _no_critical,
    "reference_range": _reference_range,
    "autoverification_range": _autoverification_range,
    "delta": _delta,
    "instrument_flags": _instrument_flags,
    "qc": _qc,
    "specimen_indices": _specimen_indices,
    "no_comment": _no_comment,
    "consistency": _consistency,
}


def parse(rules: Any) -> list[Rule]:
    """Typed rules from a rule set's data; RuleError lists every problem."""
    if not isinstance(rules, list):
        raise RuleError([(None, "a rule set is a list of rules")])
    problems: list[tuple[int | None, str]] = []
    parsed: list[Rule] = []
    for index, spec in enumerate(rules):
        if not isinstance(spec, dict):
            problems.append((index, "a rule is an object with a 'type'"))
            continue
        kind = spec.get("type")
        factory = RULE_TYPES.get(kind) if isinstance(kind, str) else None
        if factory is None:
            problems.append((index, f"unknown type {kind!r}; known: {', '.join(RULE_TYPES)}"))
            continue
        try:
            parsed.append(Rule(index, kind, factory(spec), dict(spec)))  # type: ignore[arg-type]
        except ValueError as error:
            problems.append((index, f"{kind}: {error}"))
    if problems:
        raise RuleError(problems)
    return parsed


def evaluate(rules: Sequence[Rule], facts: Facts) -> Decision:
    """Run every rule in order; autoverify only when all hold."""
    trail = []
    for rule in rules:
        try:
            passed, reason = rule.check(facts)
        except (ArithmeticError, ValueError, TypeError) as error:
            passed, reason = False, f"could not be checked: {error}"
        trail.append(Outcome(rule.index, rule.type, passed, reason))
    if not trail:
        return Decision(False, "none", "no rules: nothing is autoverified", ())
    first = next((o for o in trail if not o.passed), None)
    if first is None:
        return Decision(True, "all", "every rule held", tuple(trail))
    return Decision(
        False,
        f"{first.index + 1}:{first.type}",
        f"Rule {first.index + 1} ({first.type}): {first.reason}"[:300],
        tuple(trail),
    )


# --- expressions (consistency rules) -------------------------------------------------------

#: ``[LDL-C]``: a test code that is not a plain name (letters, digits, - _ . /).
_BRACKETED = re.compile(r"\[([A-Za-z0-9_./-]{1,32})\]")
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max}


class Expression:
    """A safe comparison over test codes: ``TG < 400``, ``NA - CL >= 25 and NA - CL <= 45``,
    ``[LDL-C] <= [CHOL]``, ``abs(value - 5) < 2`` (``value``: the result being checked).
    Numbers, + - * /, comparisons, and/or/not, abs/min/max; nothing else is accepted."""

    def __init__(self, text: str) -> None:
        if len(text) > 500:
            raise ValueError("the expression is too long (500 characters at most)")
        names: dict[str, str] = {}

        def bracket(match: re.Match[str]) -> str:
            code = match.group(1).strip().upper()
            placeholder = f"_code{len(names)}"
            names[placeholder] = code
            return placeholder

        source = _BRACKETED.sub(bracket, text)
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError:
            raise ValueError(f"cannot read the expression {text!r}") from None
        self._codes = names
        self.names: set[str] = set()
        self._check(tree.body)
        self._tree = tree.body

    def _name(self, identifier: str) -> str:
        if identifier in self._codes:
            return self._codes[identifier]
        return identifier if identifier == "value" else identifier.upper()

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp | ast.Compare | ast.BinOp | ast.UnaryOp):
            if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
                raise ValueError("only + - * / are allowed")
            if isinstance(node, ast.UnaryOp) and not isinstance(
                node.op, ast.Not | ast.USub | ast.UAdd
            ):
                raise ValueError("unsupported operator")
            if isinstance(node, ast.Compare) and any(type(op) not in _COMPARE for op in node.ops):
                raise ValueError("only < <= > >= == != comparisons are allowed")
            for child in ast.iter_child_nodes(node):
                if not isinstance(child, ast.operator | ast.cmpop | ast.boolop | ast.unaryop):
                    self._check(child)
            return
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
        ):
            return
        if isinstance(node, ast.Name):
            self.names.add(self._name(node.id))
            return
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and not node.keywords
            and node.args
        ):
            for arg in node.args:
                self._check(arg)
            return
        raise ValueError(f"{type(node).__name__} is not allowed in an expression")

    def evaluate(self, values: Mapping[str, Decimal]) -> bool:
        return bool(self._eval(self._tree, values))

    def _eval(self, node: ast.AST, values: Mapping[str, Decimal]) -> Any:
        if isinstance(node, ast.Constant):
            return Decimal(str(node.value))
        if isinstance(node, ast.Name):
            return values[self._name(node.id)]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](
                self._eval(node.left, values), self._eval(node.right, values)
            )
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, values)
            if isinstance(node.op, ast.Not):
                return not operand
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(v, values) for v in node.values)
            return any(self._eval(v, values) for v in node.values)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, values)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, values)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return _FUNCTIONS[node.func.id](*(self._eval(a, values) for a in node.args))
        raise ValueError("unsupported expression")


#: What each rule type takes and checks (served by GET /api/v1/autoverify/rule-types).
RULE_DOCS: dict[str, tuple[str, str]] = {
    "source": ("allowed: list, default ['instrument']", "the value came from an allowed source"),
    "reportable_range": (
        "low, high (required)",
        "the value is a number inside the analytical measuring range (no '<' or '>')",
    ),
    "no_critical": ("none", "the value crossed no critical (panic) limit (flag LL/HH)"),
    "reference_range": (
        "missing: stop|pass (no interval for the patient), default stop",
        "the value is within the patient's reference interval (flag N)",
    ),
    "autoverification_range": (
        "low and/or high",
        "the value is inside a range the lab validated for autoverification",
    ),
    "delta": (
        "percent and/or absolute; window_days (default 90); no_previous: pass|stop",
        "the change since the patient's previous verified result is within the limits",
    ),
    "instrument_flags": (
        "allowed: list of flags, default N, L, H, LL, HH, A",
        "the analyzer sent no other flag (instrument alarms such as EDIT, >, EXP stop)",
    ),
    "qc": (
        "max_age_hours (default 24); manual: stop|pass (results entered by hand)",
        "the instrument's QC for the test is not in rejection and a run passed recently",
    ),
    "specimen_indices": (
        "H, I, L limits (at least one); missing: pass|stop",
        "haemolysis, icterus and lipaemia indices are at or below the limits",
    ),
    "no_comment": ("none", "the result carries no free-text comment"),
    "consistency": (
        "expression (e.g. 'TG < 400', 'NA - CL >= 25 and NA - CL <= 45', '[LDL-C] < [CHOL]'); "
        "message; missing: stop|pass",
        "a relation across the sample's results holds ('value' is this result)",
    ),
}
