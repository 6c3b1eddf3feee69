"""The rule engine against its contract, over generated rule sets and results (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nidaan.autoverify.domain import (
    RULE_DOCS,
    RULE_TYPES,
    Expression,
    Facts,
    RuleError,
    evaluate,
    parse,
)

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
VALUES = st.decimals(min_value=-50, max_value=500, places=1, allow_nan=False, allow_infinity=False)


@st.composite
def rule_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid rule of any type with random parameters."""
    kind = draw(st.sampled_from(sorted(RULE_TYPES)))
    low = draw(st.integers(min_value=-20, max_value=200))
    high = low + draw(st.integers(min_value=0, max_value=300))
    if kind in ("reportable_range", "autoverification_range"):
        return {"type": kind, "low": low, "high": high}
    if kind == "delta":
        return {"type": kind, "percent": draw(st.integers(min_value=1, max_value=100))}
    if kind == "specimen_indices":
        return {"type": kind, "H": draw(st.integers(min_value=0, max_value=500))}
    if kind == "consistency":
        return {"type": kind, "expression": f"value <= {high}", "missing": "stop"}
    if kind == "qc":
        return {"type": kind, "max_age_hours": draw(st.integers(min_value=1, max_value=72))}
    return {"type": kind}


@st.composite
def facts(draw: st.DrawFn) -> Facts:
    value = draw(st.one_of(st.none(), VALUES))
    previous = draw(st.one_of(st.none(), VALUES))
    return Facts(
        value_text=None if value is None else draw(st.sampled_from(["", "<", ">"])) + str(value),
        value_numeric=value,
        flag=draw(st.sampled_from([None, "N", "H", "L", "HH", "LL"])),
        reference_low=draw(st.sampled_from([None, Decimal("70")])),
        reference_high=Decimal("110"),
        instrument_flags=tuple(
            draw(st.lists(st.sampled_from(["H", "EDIT", "N", ">"]), max_size=2))
        ),
        comment=draw(st.sampled_from([None, "", "lipaemic"])),
        source=draw(st.sampled_from(["instrument", "manual"])),
        entered_at=NOW,
        previous_value=previous,
        previous_at=None if previous is None else NOW - timedelta(days=draw(st.integers(1, 200))),
        instrument_id=draw(st.sampled_from([None, "c311"])),
        qc_blocked=draw(st.sampled_from([None, "QC 2-2s rejection"])),
        qc_passed_at=draw(
            st.sampled_from([None, NOW - timedelta(hours=3), NOW - timedelta(days=3)])
        ),
        indices={"H": str(draw(st.integers(0, 600)))} if draw(st.booleans()) else {},
        sample={"TG": draw(VALUES)},
    )


@given(st.lists(rule_specs(), max_size=8), facts())
def test_autoverified_only_when_every_rule_holds(specs: list[dict[str, Any]], case: Facts) -> None:
    rules = parse(specs)
    decision = evaluate(rules, case)
    assert [o.type for o in decision.trail] == [s["type"] for s in specs]  # every rule, in order
    assert [o.index for o in decision.trail] == list(range(len(specs)))
    held = all(o.passed for o in decision.trail)
    assert decision.autoverify == (held and bool(specs))
    if decision.autoverify:
        assert decision.decided_by == "all"
    elif specs:
        first = next(o for o in decision.trail if not o.passed)
        assert decision.decided_by == f"{first.index + 1}:{first.type}"
        assert decision.reason.startswith(f"Rule {first.index + 1} ({first.type}): ")
    else:
        assert decision.decided_by == "none"  # an empty rule set verifies nothing


@given(st.lists(rule_specs(), min_size=1, max_size=6), facts(), st.randoms())
def test_the_order_decides_only_which_rule_is_named(
    specs: list[dict[str, Any]], case: Facts, rng: Any
) -> None:
    shuffled = list(specs)
    rng.shuffle(shuffled)
    a, b = evaluate(parse(specs), case), evaluate(parse(shuffled), case)
    assert a.autoverify == b.autoverify
    assert sorted((o.type, o.passed) for o in a.trail) == sorted(
        (o.type, o.passed) for o in b.trail
    )


@given(st.lists(rule_specs(), min_size=1, max_size=5), rule_specs(), facts())
def test_adding_a_rule_never_releases_a_stopped_result(
    specs: list[dict[str, Any]], extra: dict[str, Any], case: Facts
) -> None:
    before = evaluate(parse(specs), case)
    after = evaluate(parse([*specs, extra]), case)
    assert not (after.autoverify and not before.autoverify)


@given(VALUES, st.integers(-20, 200), st.integers(0, 300))
def test_range_rules_hold_exactly_inside_their_bounds(value: Decimal, low: int, width: int) -> None:
    high = low + width
    case = Facts(value_text=str(value), value_numeric=value)
    for kind in ("reportable_range", "autoverification_range"):
        [outcome] = evaluate(parse([{"type": kind, "low": low, "high": high}]), case).trail
        assert outcome.passed == (low <= value <= high)
    comparator = Facts(value_text=f">{value}", value_numeric=value)
    [outcome] = evaluate(
        parse([{"type": "reportable_range", "low": -1000, "high": 1000}]), comparator
    ).trail
    assert not outcome.passed  # beyond the measuring range, whatever the number


@given(VALUES, VALUES, st.integers(1, 100), st.integers(1, 400))
def test_delta_rule_matches_its_definition(
    value: Decimal, previous: Decimal, percent: int, days_ago: int
) -> None:
    case = Facts(
        value_text=str(value),
        value_numeric=value,
        entered_at=NOW,
        previous_value=previous,
        previous_at=NOW - timedelta(days=days_ago),
    )
    [outcome] = evaluate(
        parse([{"type": "delta", "percent": percent, "window_days": 90}]), case
    ).trail
    if days_ago > 90:
        expected = True  # no previous result in the window: passes by default
    elif previous == 0:
        expected = value == 0
    else:
        expected = abs(value - previous) / abs(previous) * 100 <= percent
    assert outcome.passed == expected


@given(
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=5), st.none())),
    st.text(max_size=12),
)
def test_garbage_rule_sets_are_refused_with_rule_error(spec: dict[str, Any], kind: str) -> None:
    for rules in ([spec], [{**spec, "type": kind}], spec, kind, [kind]):
        # Refused with the problems listed, or (a valid combination) parsed: never a crash.
        assert _problems(rules) is None or _problems(rules)


def _problems(rules: Any) -> list[tuple[int | None, str]] | None:
    try:
        parse(rules)
    except RuleError as error:
        return error.problems
    return None


@given(VALUES, VALUES, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
def test_consistency_expressions_compare_like_arithmetic(a: Decimal, b: Decimal, op: str) -> None:
    expression = Expression(f"TG {op} [LDL-C] + 0")
    result = expression.evaluate({"TG": a, "LDL-C": b})
    assert result == eval(f"a {op} b")


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "TG.real > 1",
        "open('x')",
        "TG ** 2 > 1",
        "[x for x in TG]",
        "lambda: 1",
        "TG if TG else 1",
        "'a' < 'b'",
    ],
)
def test_expressions_refuse_anything_but_arithmetic_and_comparisons(text: str) -> None:
    with pytest.raises(RuleError):
        parse([{"type": "consistency", "expression": text}])


def test_consistency_rule_for_calculated_ldl_and_the_sodium_chloride_gap() -> None:
    rules = parse(
        [
            {"type": "consistency", "expression": "TG < 400", "message": "LDL needs TG < 400"},
            {"type": "consistency", "expression": "NA - CL >= 25 and NA - CL <= 45"},
        ]
    )
    ok = Facts(
        value_text="120",
        value_numeric=Decimal("120"),
        sample={"TG": Decimal("180"), "NA": Decimal("140"), "CL": Decimal("104")},
    )
    assert evaluate(rules, ok).autoverify
    high_tg = Facts(
        value_text="120",
        value_numeric=Decimal("120"),
        sample={"TG": Decimal("450"), "NA": Decimal("140"), "CL": Decimal("104")},
    )
    decision = evaluate(rules, high_tg)
    assert decision.reason == "Rule 1 (consistency): LDL needs TG < 400"
    gap = Facts(
        value_text="120",
        value_numeric=Decimal("120"),
        sample={"TG": Decimal("100"), "NA": Decimal("152"), "CL": Decimal("100")},
    )
    assert evaluate(rules, gap).decided_by == "2:consistency"
    missing = Facts(
        value_text="120",
        value_numeric=Decimal("120"),
        sample={"NA": Decimal("140"), "CL": Decimal("104")},
    )
    assert "no result for TG" in evaluate(rules, missing).reason


def test_invalid_rule_sets_list_every_problem() -> None:
    with pytest.raises(RuleError) as caught:
        parse(
            [
                {"type": "reportable_range", "low": 10},
                {"type": "telepathy"},
                {"type": "delta"},
                {"type": "reportable_range", "low": 50, "high": 5},
                "no",
            ]
        )
    assert [i for i, _ in caught.value.problems] == [0, 1, 2, 3, 4]
    assert "needs 'high'" in caught.value.problems[0][1]


def test_every_rule_type_is_documented() -> None:
    assert set(RULE_DOCS) == set(RULE_TYPES)
