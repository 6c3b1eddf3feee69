"""Simulation over history (CLSI AUTO15: validate before go-live): "had these rules been on
last month, N% would have been autoverified, and these M would have been wrongly released".

Every result entered in the period (each version: what the analyzer or a person entered then)
of a test with rules is judged as it stood when it was entered: the patient's previous
verified result at that time, its sample's results, its serum indices and its instrument's QC
then (a rejected last run before it blocks; the last passing run before it counts). A result
the rules would have released counts as *wrongly released* when the people who handled it
later corrected it (a newer version with a correction reason: a rerun, a recollected sample,
a retracted autoverification). Nothing is written.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.autoverify import domain, facts
from nidaan.autoverify.service import parse_rules
from nidaan.catalog.models import CatalogTest
from nidaan.catalog.service import catalog_service
from nidaan.kit.db import any_of
from nidaan.kit.errors import InvalidInput
from nidaan.kit.time import utcnow
from nidaan.qc.enums import RunOutcome
from nidaan.qc.service import qc_service
from nidaan.results.models import Result


@dataclass
class TestFigures:
    test_code: str
    results: int = 0
    autoverified: int = 0
    wrongly_released: int = 0

    @property
    def percent(self) -> float:
        return round(100 * self.autoverified / self.results, 1) if self.results else 0.0


@dataclass
class Simulation:
    since: datetime
    until: datetime
    results: int = 0
    autoverified: int = 0
    stopped_by: Counter[str] = field(default_factory=Counter)
    by_test: dict[str, TestFigures] = field(default_factory=dict)
    wrongly_released: list[dict[str, Any]] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return round(100 * self.autoverified / self.results, 1) if self.results else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "results": self.results,
            "autoverified": self.autoverified,
            "percent": self.percent,
            "stopped_by": dict(self.stopped_by.most_common()),
            "by_test": [
                {
                    "test_code": f.test_code,
                    "results": f.results,
                    "autoverified": f.autoverified,
                    "percent": f.percent,
                    "wrongly_released": f.wrongly_released,
                }
                for f in sorted(self.by_test.values(), key=lambda f: f.test_code)
            ],
            "wrongly_released": self.wrongly_released,
        }


async def simulate(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    since: datetime,
    until: datetime | None = None,
    rules_by_code: dict[str, Any] | None = None,
) -> Simulation:
    """Replay the rule sets (``rules_by_code``, else the lab's current ones) over the period."""
    until = until or utcnow()
    if until <= since:
        raise InvalidInput("until must be after since.", field="until")
    rules, tests = await _rule_sets(session, organisation_id, rules_by_code)
    report = Simulation(since, until)
    if not rules:
        return report
    rows = list(
        await session.scalars(
            select(Result)
            .where(
                Result.organisation_id == organisation_id,
                any_of(Result.test_id, set(rules)),
                Result.entered_at >= since,
                Result.entered_at < until,
            )
            .order_by(Result.entered_at, Result.id)
        )
    )
    if not rows:
        return report
    corrections = {
        row.supersedes_id: row
        for row in await session.scalars(
            select(Result).where(
                Result.organisation_id == organisation_id,
                any_of(Result.supersedes_id, {r.id for r in rows}),
            )
        )
    }
    history = await facts.previous_results(
        session,
        organisation_id,
        {r.patient_id for r in rows},
        {r.test_id for r in rows},
        depth=50,
    )
    sample_rows = list(
        await session.scalars(
            select(Result).where(
                Result.organisation_id == organisation_id,
                any_of(Result.sample_id, {r.sample_id for r in rows if r.sample_id}),
            )
        )
    )
    codes = {t.id: t.code for t in tests.values()}
    missing = {r.test_id for r in sample_rows} - codes.keys()
    if missing:
        codes.update(
            {
                t.id: t.code
                for t in (
                    await catalog_service.tests_by_ids(session, organisation_id, missing)
                ).values()
            }
        )
    qc = _QcTimeline(await qc_service.runs_between(session, organisation_id, since, until))
    for result in rows:
        sample = _sample_at(result, sample_rows, codes)
        blocked, passed = qc.at(result)
        decision = domain.evaluate(
            rules[result.test_id],
            facts.facts_of(
                result,
                facts.previous_for(result, history),
                sample,
                qc_blocked=blocked,
                qc_passed_at=passed,
            ),
        )
        code = codes[result.test_id]
        figures = report.by_test.setdefault(code, TestFigures(code))
        figures.results += 1
        report.results += 1
        if not decision.autoverify:
            report.stopped_by[decision.decided_by.split(":", 1)[-1]] += 1
            continue
        figures.autoverified += 1
        report.autoverified += 1
        why = _what_people_found(result, corrections.get(result.id))
        if why is not None:
            figures.wrongly_released += 1
            report.wrongly_released.append(
                {
                    "result_id": result.id,
                    "test_code": code,
                    "value": result.value_text,
                    "entered_at": result.entered_at,
                    "why": why,
                }
            )
    return report


async def _rule_sets(
    session: AsyncSession, organisation_id: uuid.UUID, rules_by_code: dict[str, Any] | None
) -> tuple[dict[uuid.UUID, list[domain.Rule]], dict[uuid.UUID, CatalogTest]]:
    if rules_by_code is None:
        from nidaan.autoverify.models import RuleSet

        stored = list(
            await session.scalars(select(RuleSet).where(RuleSet.organisation_id == organisation_id))
        )
        tests = await catalog_service.tests_by_ids(
            session, organisation_id, {r.test_id for r in stored}
        )
        return {r.test_id: parse_rules(r.rules) for r in stored}, tests
    found = await catalog_service.tests_by_codes(session, organisation_id, rules_by_code)
    unknown = sorted({c.strip().upper() for c in rules_by_code} - found.keys())
    if unknown:
        raise InvalidInput(f"Unknown test codes: {', '.join(unknown)}.", field="rules")
    rules = {
        found[code.strip().upper()].id: parse_rules(spec) for code, spec in rules_by_code.items()
    }
    return rules, {t.id: t for t in found.values()}


def _sample_at(
    result: Result, sample_rows: list[Result], codes: dict[uuid.UUID, str]
) -> dict[str, Decimal]:
    """The sample's numeric results as they stood when ``result`` was entered: per test, the
    latest version entered by then (this one for its own test)."""
    latest: dict[uuid.UUID, Result] = {}
    for row in sample_rows:
        if row.sample_id != result.sample_id or row.entered_at > result.entered_at:
            continue
        known = latest.get(row.test_id)
        if known is None or row.entered_at > known.entered_at:
            latest[row.test_id] = row
    latest[result.test_id] = result
    return {
        codes[t]: r.value_numeric
        for t, r in latest.items()
        if r.value_numeric is not None and t in codes
    }


def _what_people_found(result: Result, successor: Result | None) -> str | None:
    """Why releasing ``result`` as it was would have been wrong: people corrected it (a
    newer version with a reason: a rerun, a recollection, a retraction)."""
    if successor is not None and successor.correction_reason:
        return f"corrected to {successor.value_text}: {successor.correction_reason}"[:300]
    return None


class _QcTimeline:
    """QC runs per (instrument, test) in time order: the last judged run before a moment."""

    def __init__(self, runs: list[Any]) -> None:
        self.runs: dict[tuple[uuid.UUID, uuid.UUID], list[Any]] = {}
        for run in runs:
            self.runs.setdefault((run.instrument_id, run.test_id), []).append(run)
        self.starts = {k: [r.started_at for r in v] for k, v in self.runs.items()}

    def at(self, result: Result) -> tuple[str | None, datetime | None]:
        if result.instrument_id is None:
            return None, None
        key = (result.instrument_id, result.test_id)
        runs = self.runs.get(key, [])
        before = runs[: bisect_right(self.starts.get(key, []), result.entered_at)]
        if not before:
            return None, None
        passed = next(
            (
                r.started_at
                for r in reversed(before)
                if r.outcome in (RunOutcome.PASSED, RunOutcome.WARNING)
            ),
            None,
        )
        if before[-1].outcome == RunOutcome.REJECTED:
            return f"QC run of {before[-1].started_at:%Y-%m-%d %H:%M} UTC rejected", passed
        return None, passed
