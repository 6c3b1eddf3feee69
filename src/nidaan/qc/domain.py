"""Westgard multirules and QC statistics: pure functions, no database.

A control result is a :class:`Point`: its z-score ((value - mean) / SD against its lot's
target), its level (the lot: one control material at one concentration) and its run (the
controls of one analyte measured together on one instrument). :func:`evaluate` judges a new
point against the points before it (chronological, every level of the same analyte and
instrument) and returns the rules it completes:

========  =========  =================================================================
rule      default    the new point completes...
========  =========  =================================================================
1-2s      warning    ``|z| > 2``
1-3s      reject     ``|z| > 3``
2-2s      reject     two consecutive points beyond 2 SD on the same side: the new point and
                     another level in the same run (within run), or the new point and the
                     previous point of its level (across runs)
R-4s      reject     in the same run, one point above +2 SD and another below -2 SD
4-1s      reject     four consecutive points beyond 1 SD on the same side: the last four of
                     its level (across runs), or the last four of the analyte (across levels)
10x       reject     ten consecutive points on the same side of the mean: the last ten of its
                     level (across runs), or the last ten of the analyte (across levels)
========  =========  =================================================================

"Beyond" is strict (``z > 2``, a point exactly on the line does not count); a point exactly on
the mean (``z == 0``) is on neither side. R-4s is a within-run rule only (Westgard: it detects
random error within a run; across runs it would mix systematic changes in).
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "DEFAULT_RULES",
    "Point",
    "Rule",
    "Severity",
    "Stats",
    "Violation",
    "evaluate",
    "stats",
    "z_score",
]


class Rule(enum.StrEnum):
    R1_2S = "1-2s"
    R1_3S = "1-3s"
    R2_2S = "2-2s"
    R_4S = "R-4s"
    R4_1S = "4-1s"
    R10X = "10x"


class Severity(enum.StrEnum):
    OFF = "off"
    WARNING = "warning"
    REJECT = "reject"


class Scope(enum.StrEnum):
    POINT = "point"  # the new point alone (1-2s, 1-3s)
    WITHIN_RUN = "within_run"
    ACROSS_RUNS = "across_runs"  # one level, consecutive runs
    ACROSS_LEVELS = "across_levels"  # every level of the analyte, chronological


#: Every rule on, 1-2s as a warning (the Westgard multirule with 10x).
DEFAULT_RULES: dict[str, str] = {
    Rule.R1_2S: Severity.WARNING,
    Rule.R1_3S: Severity.REJECT,
    Rule.R2_2S: Severity.REJECT,
    Rule.R_4S: Severity.REJECT,
    Rule.R4_1S: Severity.REJECT,
    Rule.R10X: Severity.REJECT,
}


@dataclass(frozen=True)
class Point:
    key: Hashable  # the QC result's id
    level: Hashable  # the lot (control material and level)
    run: Hashable
    z: float


@dataclass(frozen=True)
class Violation:
    rule: Rule
    severity: Severity
    scope: Scope
    points: tuple[Point, ...]  # the points making the pattern, oldest first, the new one last
    detail: str


def z_score(value: Decimal, mean: Decimal, sd: Decimal) -> Decimal:
    """(value - mean) / SD, to four decimals."""
    if sd <= 0:
        raise ValueError("SD must be positive")
    return ((value - mean) / sd).quantize(Decimal("0.0001"))


def _side(z: float, limit: float) -> int:
    """+1 beyond +limit, -1 beyond -limit, 0 inside (strictly)."""
    if z > limit:
        return 1
    if z < -limit:
        return -1
    return 0


def _all_beyond(points: Sequence[Point], limit: float, count: int) -> bool:
    if len(points) < count:
        return False
    sides = {_side(p.z, limit) for p in points[-count:]}
    return len(sides) == 1 and 0 not in sides


def _sign(z: float) -> str:
    return "+" if z > 0 else "-"


def evaluate(
    history: Sequence[Point], new: Point, rules: Mapping[str, str] | None = None
) -> list[Violation]:
    """The rules ``new`` completes, given the points before it (``history``, chronological).

    ``rules`` maps rule -> off / warning / reject (missing rules: :data:`DEFAULT_RULES`). Each
    rule is reported at most once, with the first scope that shows it (within run, then across
    runs, then across levels).
    """
    settings = {**DEFAULT_RULES, **(rules or {})}
    same_level = [p for p in history if p.level == new.level]
    same_run = [p for p in history if p.run == new.run and p.level != new.level]
    level_series = [*same_level, new]
    all_series = [*history, new]
    found: list[Violation] = []

    def add(rule: Rule, scope: Scope, points: Sequence[Point], detail: str) -> None:
        severity = Severity(settings.get(rule, Severity.OFF))
        if severity != Severity.OFF:
            found.append(Violation(rule, severity, scope, tuple(points), detail))

    z = new.z
    if abs(z) > 2:
        add(Rule.R1_2S, Scope.POINT, [new], f"z = {z:+.2f} beyond 2 SD")
    if abs(z) > 3:
        add(Rule.R1_3S, Scope.POINT, [new], f"z = {z:+.2f} beyond 3 SD")

    side2 = _side(z, 2)
    if side2:
        partner = next((p for p in reversed(same_run) if _side(p.z, 2) == side2), None)
        if partner is not None:
            add(
                Rule.R2_2S,
                Scope.WITHIN_RUN,
                [partner, new],
                f"two levels in one run beyond {_sign(z)}2 SD",
            )
        elif same_level and _side(same_level[-1].z, 2) == side2:
            add(
                Rule.R2_2S,
                Scope.ACROSS_RUNS,
                [same_level[-1], new],
                f"two consecutive runs of this level beyond {_sign(z)}2 SD",
            )
        opposite = next((p for p in reversed(same_run) if _side(p.z, 2) == -side2), None)
        if opposite is not None:
            add(
                Rule.R_4S,
                Scope.WITHIN_RUN,
                [opposite, new],
                f"one level beyond +2 SD and another beyond -2 SD in one run "
                f"(range {abs(z - opposite.z):.2f} SD)",
            )

    if _all_beyond(level_series, 1, 4):
        add(
            Rule.R4_1S,
            Scope.ACROSS_RUNS,
            level_series[-4:],
            f"four consecutive results of this level beyond {_sign(z)}1 SD",
        )
    elif _all_beyond(all_series, 1, 4):
        add(
            Rule.R4_1S,
            Scope.ACROSS_LEVELS,
            all_series[-4:],
            f"four consecutive results across levels beyond {_sign(z)}1 SD",
        )

    if _all_beyond(level_series, 0, 10):
        add(
            Rule.R10X,
            Scope.ACROSS_RUNS,
            level_series[-10:],
            f"ten consecutive results of this level {'above' if z > 0 else 'below'} the mean",
        )
    elif _all_beyond(all_series, 0, 10):
        add(
            Rule.R10X,
            Scope.ACROSS_LEVELS,
            all_series[-10:],
            f"ten consecutive results across levels {'above' if z > 0 else 'below'} the mean",
        )
    return found


@dataclass(frozen=True)
class Stats:
    n: int
    mean: Decimal | None
    sd: Decimal | None
    cv_percent: Decimal | None


def stats(values: Sequence[Decimal]) -> Stats:
    """Mean, sample SD (n - 1) and CV% of control values (rounded to 6, 6 and 2 places)."""
    n = len(values)
    if n == 0:
        return Stats(0, None, None, None)
    mean = statistics.fmean(float(v) for v in values)
    mean_d = Decimal(repr(mean)).quantize(Decimal("0.000001"))
    if n < 2:
        return Stats(n, mean_d, None, None)
    sd = statistics.stdev(float(v) for v in values)
    sd_d = Decimal(repr(sd)).quantize(Decimal("0.000001"))
    cv = None
    if mean and math.isfinite(sd / mean):
        cv = Decimal(repr(abs(sd / mean) * 100)).quantize(Decimal("0.01"))
    return Stats(n, mean_d, sd_d, cv)
