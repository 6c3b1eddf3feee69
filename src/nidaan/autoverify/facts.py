"""What the rules and the second opinion look at, read for many results at once.

For each result: its value and flags, the patient's previous verified result of the test
(delta), its sample's other results (consistency rules, the panel), serum indices the analyzer
sent, and its instrument's QC (a standing block, the last passing run). A handful of
set-based queries for a whole analyzer message, not a few per result.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.autoverify.domain import Facts
from nidaan.autoverify.second_opinion import PanelCase
from nidaan.catalog.models import CatalogTest
from nidaan.kit.db import any_of
from nidaan.patients.models import Patient
from nidaan.qc.service import qc_service
from nidaan.results.enums import ResultStatus
from nidaan.results.gates import Gate, verification_gates
from nidaan.results.models import Result

#: Verified results per patient and test kept for the delta (the latest few suffice).
PREVIOUS_DEPTH = 4


@dataclass(frozen=True)
class Context:
    """The facts of results read together, by result id, with the tests by id."""

    facts: dict[uuid.UUID, Facts]
    tests: dict[uuid.UUID, CatalogTest]
    panels: dict[uuid.UUID, PanelCase]  # by sample id (the second opinion's input)


async def previous_results(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    patient_ids: Iterable[uuid.UUID],
    test_ids: Iterable[uuid.UUID],
    depth: int = PREVIOUS_DEPTH,
) -> dict[tuple[uuid.UUID, uuid.UUID], list[Result]]:
    """The latest ``depth`` verified numeric results per (patient, test), newest first."""
    patients, tests = set(patient_ids), set(test_ids)
    if not patients or not tests:
        return {}
    rank = (
        func.row_number()
        .over(partition_by=(Result.patient_id, Result.test_id), order_by=Result.verified_at.desc())
        .label("rank")
    )
    ranked = (
        select(Result.id, rank)
        .where(
            Result.organisation_id == organisation_id,
            any_of(Result.patient_id, patients),
            any_of(Result.test_id, tests),
            Result.status == ResultStatus.VERIFIED,
            Result.value_numeric.is_not(None),
            Result.verified_at.is_not(None),
        )
        .subquery()
    )
    rows = await session.scalars(
        select(Result).join(ranked, ranked.c.id == Result.id).where(ranked.c.rank <= depth)
    )
    found: dict[tuple[uuid.UUID, uuid.UUID], list[Result]] = {}
    for row in rows:
        found.setdefault((row.patient_id, row.test_id), []).append(row)
    for rows_ in found.values():
        rows_.sort(key=lambda r: r.verified_at or datetime.min, reverse=True)
    return found


def previous_for(
    result: Result, history: dict[tuple[uuid.UUID, uuid.UUID], list[Result]]
) -> Result | None:
    """The latest verified result of the patient and test before ``result`` was entered,
    on another ordered test."""
    for row in history.get((result.patient_id, result.test_id), []):
        if (
            row.order_test_id != result.order_test_id
            and row.verified_at is not None
            and row.verified_at <= result.entered_at
        ):
            return row
    return None


def _flags(text: str | None) -> tuple[str, ...]:
    return tuple(f for f in (text or "").split("~") if f.strip())


def _indices(result: Result) -> dict[str, str]:
    raw = result.raw or {}
    found = raw.get("indices") if isinstance(raw, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _age_years(born: date | None, at: datetime) -> float | None:
    if born is None:
        return None
    return (at.date() - born).days / 365.25


def facts_of(
    result: Result,
    previous: Result | None,
    sample: dict[str, Decimal],
    *,
    qc_blocked: str | None,
    qc_passed_at: datetime | None,
) -> Facts:
    return Facts(
        value_text=result.value_text,
        value_numeric=result.value_numeric,
        flag=result.flag,
        reference_low=result.reference_low,
        reference_high=result.reference_high,
        instrument_flags=_flags(result.instrument_flags),
        comment=result.comment,
        source=result.source,
        entered_at=result.entered_at,
        previous_value=previous.value_numeric if previous is not None else None,
        previous_at=previous.verified_at if previous is not None else None,
        instrument_id=result.instrument_id,
        qc_blocked=qc_blocked,
        qc_passed_at=qc_passed_at,
        indices=_indices(result),
        sample=sample,
    )


async def gather(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    results: Sequence[Result],
    tests: dict[uuid.UUID, CatalogTest],
    *,
    panel_analytes: Sequence[str] = (),
) -> Context:
    """Facts of live results (entered now): their sample, history, QC; and the panel of each
    sample for the second opinion (``panel_analytes``: catalogue codes)."""
    sample_ids = {r.sample_id for r in results if r.sample_id is not None}
    sample_rows = list(
        await session.scalars(
            select(Result).where(
                Result.organisation_id == organisation_id,
                any_of(Result.sample_id, sample_ids),
                Result.is_current.is_(True),
            )
        )
    )
    codes_by_id = {t.id: t.code for t in tests.values()}
    missing = {r.test_id for r in sample_rows} - codes_by_id.keys()
    if missing:
        from nidaan.catalog.service import catalog_service

        more = await catalog_service.tests_by_ids(session, organisation_id, missing)
        tests = {**tests, **more}
        codes_by_id.update({t.id: t.code for t in more.values()})
    by_sample: dict[uuid.UUID, dict[str, Decimal]] = {}
    for row in sample_rows:
        if row.value_numeric is not None and row.sample_id is not None:
            by_sample.setdefault(row.sample_id, {})[codes_by_id[row.test_id]] = row.value_numeric
    panel_tests = {t.id for t in tests.values() if t.code in panel_analytes}
    history = await previous_results(
        session,
        organisation_id,
        {r.patient_id for r in results},
        {r.test_id for r in results} | panel_tests,
    )
    gates = await verification_gates.gates(
        session, organisation_id, test_ids={r.test_id for r in results}
    )
    pairs = {(r.instrument_id, r.test_id) for r in results if r.instrument_id is not None}
    passed = await qc_service.last_passed(session, organisation_id, pairs)  # type: ignore[arg-type]
    facts: dict[uuid.UUID, Facts] = {}
    for result in results:
        blocking: Gate | None = next((g for g in gates if g.blocks(result)), None)
        facts[result.id] = facts_of(
            result,
            previous_for(result, history),
            by_sample.get(result.sample_id, {}) if result.sample_id else {},
            qc_blocked=blocking.reason if blocking else None,
            qc_passed_at=passed.get((result.instrument_id, result.test_id))
            if result.instrument_id
            else None,
        )
    panels: dict[uuid.UUID, PanelCase] = {}
    if panel_analytes:
        patients = {
            p.id: p
            for p in await session.scalars(
                select(Patient).where(
                    Patient.organisation_id == organisation_id,
                    any_of(Patient.id, {r.patient_id for r in results}),
                )
            )
        }
        for result in results:
            if result.sample_id is None or result.sample_id in panels:
                continue
            values = by_sample.get(result.sample_id, {})
            previous: dict[str, float] = {}
            for test_id in panel_tests:
                probe = [
                    row
                    for row in history.get((result.patient_id, test_id), [])
                    if row.sample_id != result.sample_id
                    and row.verified_at is not None
                    and row.verified_at <= result.entered_at
                ]
                if probe and probe[0].value_numeric is not None:
                    previous[codes_by_id[test_id]] = float(probe[0].value_numeric)
            patient = patients.get(result.patient_id)
            panels[result.sample_id] = PanelCase(
                {code: float(v) for code, v in values.items() if code in panel_analytes},
                previous,
                _age_years(patient.date_of_birth, result.entered_at) if patient else None,
                patient.sex if patient else None,
            )
    return Context(facts, tests, panels)
