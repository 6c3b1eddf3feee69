"""Westgard rules against their definitions, over generated QC series (hypothesis).

A series is a sequence of runs; each run measures some of the levels (control lots) in some
order, each point with a z-score. For every point, the rules it completes are computed here
straight from the textbook definitions (index arithmetic over the whole series) and compared
with ``qc.domain.evaluate`` given the points before it.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from nidaan.qc.domain import DEFAULT_RULES, Point, Rule, Severity, evaluate, stats, z_score

# z-scores with the boundaries (exactly 1, 2, 3 SD, the mean) over-represented.
Z = st.one_of(
    st.floats(min_value=-5, max_value=5, allow_nan=False),
    st.sampled_from([0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5, 1.5, -1.5, 0.5, -0.5]),
)


@st.composite
def series(draw: st.DrawFn, max_runs: int = 14) -> list[Point]:
    levels = draw(st.integers(min_value=1, max_value=3))
    points: list[Point] = []
    for run in range(draw(st.integers(min_value=1, max_value=max_runs))):
        measured = draw(st.permutations(range(levels)))
        measured = measured[: draw(st.integers(min_value=1, max_value=levels))]
        for level in measured:
            points.append(Point(key=len(points), level=level, run=run, z=draw(Z)))
    return points


def expected(points: list[Point], i: int) -> set[Rule]:
    """The rules point ``i`` completes, from the definitions."""
    new = points[i]
    z = new.z
    fired: set[Rule] = set()
    if abs(z) > 2:
        fired.add(Rule.R1_2S)
    if abs(z) > 3:
        fired.add(Rule.R1_3S)
    same_run_others = [p for p in points[:i] if p.run == new.run and p.level != new.level]
    previous_same_level = [p for p in points[:i] if p.level == new.level]
    if any((p.z > 2 and z > 2) or (p.z < -2 and z < -2) for p in same_run_others):
        fired.add(Rule.R2_2S)
    if previous_same_level:
        last = previous_same_level[-1]
        if (last.z > 2 and z > 2) or (last.z < -2 and z < -2):
            fired.add(Rule.R2_2S)
    if any((p.z > 2 and z < -2) or (p.z < -2 and z > 2) for p in same_run_others):
        fired.add(Rule.R_4S)
    level_window = [*previous_same_level, new]
    for window in (level_window[-4:], points[max(0, i - 3) : i + 1]):
        if len(window) == 4 and (all(p.z > 1 for p in window) or all(p.z < -1 for p in window)):
            fired.add(Rule.R4_1S)
    for window in (level_window[-10:], points[max(0, i - 9) : i + 1]):
        if len(window) == 10 and (all(p.z > 0 for p in window) or all(p.z < 0 for p in window)):
            fired.add(Rule.R10X)
    return fired


ALL_ON = {rule: Severity.REJECT for rule in Rule}


@given(series())
def test_every_rule_fires_exactly_when_its_definition_holds(points: list[Point]) -> None:
    for i, new in enumerate(points):
        found = evaluate(points[:i], new, ALL_ON)
        assert {v.rule for v in found} == expected(points, i), (i, [p.z for p in points])
        assert len(found) == len({v.rule for v in found}), "a rule is reported once"


@given(series())
def test_reported_points_make_the_pattern(points: list[Point]) -> None:
    for i, new in enumerate(points):
        for violation in evaluate(points[:i], new, ALL_ON):
            pattern = violation.points
            assert pattern[-1] == new
            # Oldest first, all from the series before (or being) the new point.
            keys = [p.key for p in pattern]
            assert keys == sorted(keys)
            zs = [p.z for p in pattern]
            if violation.rule == Rule.R2_2S:
                assert len(pattern) == 2
                assert all(v > 2 for v in zs) or all(v < -2 for v in zs)
            if violation.rule == Rule.R_4S:
                assert len(pattern) == 2
                assert pattern[0].run == new.run
                assert max(zs) > 2
                assert min(zs) < -2
            if violation.rule == Rule.R4_1S:
                assert len(pattern) == 4
                assert all(v > 1 for v in zs) or all(v < -1 for v in zs)
            if violation.rule == Rule.R10X:
                assert len(pattern) == 10
                assert all(v > 0 for v in zs) or all(v < 0 for v in zs)
            if violation.scope == "across_runs":
                assert {p.level for p in pattern} == {new.level}


@given(series())
def test_mirroring_the_series_fires_the_same_rules(points: list[Point]) -> None:
    mirrored = [Point(p.key, p.level, p.run, -p.z) for p in points]
    for i in range(len(points)):
        original = {v.rule for v in evaluate(points[:i], points[i], ALL_ON)}
        flipped = {v.rule for v in evaluate(mirrored[:i], mirrored[i], ALL_ON)}
        assert original == flipped


@given(series(), st.dictionaries(st.sampled_from(list(Rule)), st.sampled_from(list(Severity))))
def test_switching_rules_only_removes_or_relabels_them(
    points: list[Point], switches: dict[Rule, Severity]
) -> None:
    settings = {**DEFAULT_RULES, **switches}
    for i, new in enumerate(points):
        everything = {v.rule for v in evaluate(points[:i], new, ALL_ON)}
        chosen = evaluate(points[:i], new, settings)
        assert {v.rule for v in chosen} == {r for r in everything if settings[r] != Severity.OFF}
        assert all(v.severity == settings[v.rule] for v in chosen)


@given(
    series(max_runs=6),
    st.integers(min_value=0, max_value=2),
    st.sampled_from([1, -1]),
    st.lists(st.floats(min_value=0.01, max_value=2.9), min_size=10, max_size=10),
)
def test_a_planted_shift_of_one_level_is_caught_by_10x(
    points: list[Point], level: int, side: int, magnitudes: list[float]
) -> None:
    """Ten runs in a row with one level on one side of the mean: 10x (across runs) at the
    tenth, whatever came before."""
    start = (max((p.run for p in points), default=-1)) + 1
    history = list(points)
    for n, magnitude in enumerate(magnitudes):
        new = Point(key=len(history), level=level, run=start + n, z=side * magnitude)
        found = evaluate(history, new, ALL_ON)
        history.append(new)
    assert Rule.R10X in {v.rule for v in found}


def test_an_in_control_series_fires_nothing() -> None:
    points = [Point(i, i % 2, i // 2, z) for i, z in enumerate([0.4, -0.3, -0.8, 0.9, 1.2, -1.4])]
    for i, new in enumerate(points):
        assert evaluate(points[:i], new, ALL_ON) == []


def test_the_textbook_cases() -> None:
    """Westgard's own examples: two levels, one run."""
    run = [Point(1, "L1", "r1", 2.3)]
    assert [v.rule for v in evaluate(run, Point(2, "L2", "r1", 2.1))] == ["1-2s", "2-2s"]
    r4 = evaluate(run, Point(2, "L2", "r1", -2.4))
    assert [(v.rule, v.severity, v.scope) for v in r4] == [
        ("1-2s", "warning", "point"),
        ("R-4s", "reject", "within_run"),
    ]
    assert [v.rule for v in evaluate([], Point(1, "L1", "r1", 3.2))] == ["1-2s", "1-3s"]
    # Exactly on the 2 SD line is not beyond it.
    assert evaluate([], Point(1, "L1", "r1", 2.0)) == []


def test_z_score_and_statistics() -> None:
    assert z_score(Decimal("110"), Decimal("100"), Decimal("4")) == Decimal("2.5000")
    result = stats([Decimal("98"), Decimal("100"), Decimal("102"), Decimal("100")])
    assert (result.n, result.mean, result.sd, result.cv_percent) == (
        4,
        Decimal("100.000000"),
        Decimal("1.632993"),
        Decimal("1.63"),
    )
    assert stats([]).mean is None
    assert stats([Decimal("5")]).sd is None
