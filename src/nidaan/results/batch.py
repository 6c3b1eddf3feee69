"""Entering many results in one go (all results of one analyzer message).

``enter_many`` gives every entry exactly what ``ResultsService.enter_with_outcome`` gives it
(ranges, unit conversion, flags, delta holds, critical alerts, calculated tests, status
changes, audit entries, events), as if the entries were entered one after another, each in
its own savepoint: an entry that fails returns its error and changes nothing. What differs
is the cost: the entries' context is read with a few set-based queries and the rows and
audit entries are written in bulk, instead of ~25 statements per result.

Entries are handled in runs. A run ends before an ordered test repeats (the second value
replaces the first, a re-entry) and an entry whose test feeds a calculated test of its order
runs alone, in a savepoint, followed by the recalculation: that must see exactly the results
entered before it, as one-by-one entry would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from nidaan.audit.service import AuditEntry, audit_service
from nidaan.auth.principal import Principal
from nidaan.catalog import domain as catalog_domain
from nidaan.catalog.enums import ResultType
from nidaan.catalog.models import CatalogTest
from nidaan.catalog.service import catalog_service
from nidaan.events.service import publish
from nidaan.kit.aio import pause_every
from nidaan.kit.db import any_of, transaction_state
from nidaan.kit.errors import NidaanError, NotFound
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow
from nidaan.orders.enums import OrderTestStatus
from nidaan.orders.models import Order, OrderTest
from nidaan.orders.service import orders_service
from nidaan.patients.models import Patient
from nidaan.patients.service import patients_service
from nidaan.results.bulk import insert_results
from nidaan.results.domain import DeltaOutcome, Interpretation
from nidaan.results.enums import ResultSource, ResultStatus
from nidaan.results.errors import CalculatedResult, ResultVerified, SampleNotReady
from nidaan.results.events import ResultsEntered
from nidaan.results.models import Result
from nidaan.results.service import (
    EntryOutcome,
    ResultsService,
    _Context,
    _Delta,
    _snapshot,
    band_for,
    delta_against,
    entry_fields,
    needs_delta,
    results_service,
)
from nidaan.samples.enums import SampleStatus
from nidaan.samples.models import Sample
from nidaan.samples.service import samples_service

__all__ = ["BatchEntry", "BatchOutcome", "enter_many"]

_M = TypeVar("_M", OrderTest, Order, CatalogTest, Sample, Patient)
_KEPT = "results.batch.kept_rows"


@dataclass(frozen=True)
class BatchEntry:
    """The arguments of one ``enter`` call."""

    order_test_id: uuid.UUID
    value: str
    unit: str | None
    comment: str | None = None
    source: str = ResultSource.MANUAL
    instrument_flags: str | None = None
    raw: dict[str, Any] | None = None
    #: Who enters this one (e.g. the analyzer it came from); None: the batch's caller. Must
    #: be of the batch caller's organisation.
    caller: Principal | None = None


BatchOutcome = EntryOutcome | NidaanError


@dataclass
class _Plan:
    """A validated entry waiting to be written."""

    index: int
    entry: BatchEntry
    context: _Context
    current: Result | None
    interpretation: Interpretation
    delta: _Delta | None = None


async def enter_many(
    session: AsyncSession, caller: Principal, entries: Sequence[BatchEntry]
) -> list[BatchOutcome]:
    """``enter_with_outcome`` for each entry in turn: its outcome, or the NidaanError that
    ``enter`` would have raised (nothing of a failed entry is written). An entry with its own
    ``caller`` is entered (and audited) as that caller."""
    for entry in entries:
        if entry.caller is not None and entry.caller.organisation_id != caller.organisation_id:
            raise ValueError("every entry's caller must be of the batch caller's organisation")
    return await _Batch(session, caller, results_service).run(entries)


class _Batch:
    def __init__(self, session: AsyncSession, caller: Principal, service: ResultsService):
        self.session = session
        self.caller = caller
        self.service = service
        self.org = caller.organisation_id
        self.order_tests: dict[uuid.UUID, OrderTest] = {}
        self.by_order: dict[uuid.UUID, list[OrderTest]] = {}
        self.orders: dict[uuid.UUID, Order] = {}
        self.tests: dict[uuid.UUID, CatalogTest] = {}
        self.samples: dict[uuid.UUID, Sample] = {}
        self.patients: dict[uuid.UUID, Patient] = {}
        self.ranges: dict[uuid.UUID, list[Any]] = {}
        self.history: dict[uuid.UUID, list[uuid.UUID]] = {}

    async def run(self, entries: Sequence[BatchEntry]) -> list[BatchOutcome]:
        outcomes: dict[int, BatchOutcome] = {}
        if not entries:
            return []
        await self._load(entries)
        for run, alone in self._runs(entries):
            if not alone:
                await self._run(entries, run, outcomes)
                continue
            # Recalculation may fail after the entry was written: a savepoint keeps the
            # entry all-or-nothing, as in one-by-one entry.
            try:
                async with self.session.begin_nested():
                    await self._run(entries, run, outcomes, recalculate=True)
            except NidaanError as error:
                outcomes[run[0]] = error
                # The rollback expired what the savepoint touched: read it all again.
                await self._load(entries, refresh=True)
        return [outcomes[i] for i in range(len(entries))]

    # --- reading -------------------------------------------------------------------------

    async def _load(self, entries: Sequence[BatchEntry], *, refresh: bool = False) -> None:
        """The ordered tests (with every test of their orders), orders, catalogue tests,
        samples, patients and reference ranges the entries need."""
        ids = {e.order_test_id for e in entries}
        of_entries = select(OrderTest.order_id).where(
            any_of(OrderTest.id, ids), OrderTest.organisation_id == self.org
        )
        statement = (
            select(OrderTest)
            .where(OrderTest.organisation_id == self.org, OrderTest.order_id.in_(of_entries))
            .order_by(OrderTest.created_at, OrderTest.id)
        )
        if refresh:
            statement = statement.execution_options(populate_existing=True)
        self.by_order = {}
        self.order_tests = {}
        for row in await self.session.scalars(statement):
            self.by_order.setdefault(row.order_id, []).append(row)
            self.order_tests[row.id] = row
        mine = [self.order_tests[i] for i in ids if i in self.order_tests]
        self.orders = await self._fetch(Order, self.by_order, refresh)
        self.tests = await self._fetch(
            CatalogTest, {t.test_id for ts in self.by_order.values() for t in ts}, refresh
        )
        self.samples = await self._fetch(
            Sample, {t.sample_id for t in mine if t.sample_id is not None}, refresh
        )
        self.patients = await self._fetch(
            Patient, {o.patient_id for o in self.orders.values()}, refresh
        )
        self.ranges = await catalog_service.ranges_for_tests(
            self.session, {t.test_id for t in mine}
        )
        # The session's identity map holds rows weakly: keep these until the transaction
        # ends, so commit-time hooks (sync capture reads each result's order) need no query.
        kept: list[Any] = transaction_state(self.session, _KEPT, list)
        kept.extend([*self.orders.values(), *self.samples.values(), *self.patients.values()])

    async def _fetch(self, model: type[_M], ids: Iterable[Any], refresh: bool) -> dict[Any, _M]:
        """Rows by id in the caller's organisation; loaded rows come from the session (as
        ``session.get`` would), the rest with one query."""
        found: dict[Any, _M] = {}
        missing = []
        identity_map = self.session.sync_session.identity_map
        for row_id in set(ids):
            row = None if refresh else identity_map.get(identity_key(model, row_id))
            if row is not None and not inspect(row).expired:
                found[row_id] = row
            else:
                missing.append(row_id)
        if missing:
            statement = select(model).where(any_of(model.id, missing))
            if refresh:
                statement = statement.execution_options(populate_existing=True)
            for row in await self.session.scalars(statement):
                found[row.id] = row
        return {k: v for k, v in found.items() if v.organisation_id == self.org}

    def _feeds_calculation(self, entry: BatchEntry) -> bool:
        """Whether entering ``entry`` recalculates something (``_recalculate`` not a no-op)."""
        order_test = self.order_tests.get(entry.order_test_id)
        if entry.source == ResultSource.CALCULATED or order_test is None:
            return False
        test = self.tests.get(order_test.test_id)
        if test is None:
            return False
        for other in self.by_order.get(order_test.order_id, []):
            calculated = self.tests.get(other.test_id)
            if (
                other.status != OrderTestStatus.CANCELLED
                and calculated is not None
                and calculated.result_type == ResultType.CALCULATED
                and calculated.formula
                and test.code in catalog_domain.formula_inputs(calculated.formula)
            ):
                return True
        return False

    def _runs(self, entries: Sequence[BatchEntry]) -> Iterator[tuple[list[int], bool]]:
        """Entry indexes in runs; ``True``: a single entry followed by a recalculation."""
        run: list[int] = []
        seen: set[uuid.UUID] = set()
        for index, entry in enumerate(entries):
            alone = self._feeds_calculation(entry)
            if run and (alone or entry.order_test_id in seen):
                yield run, False
                run, seen = [], set()
            if alone:
                yield [index], True
                continue
            run.append(index)
            seen.add(entry.order_test_id)
        if run:
            yield run, False

    def _context(self, entry: BatchEntry) -> _Context:
        """``ResultsService._context`` from what ``_load`` read (same errors, same order)."""
        order_test = self.order_tests.get(entry.order_test_id)
        if order_test is None:
            raise NotFound("No such ordered test in your organisation.", entity="order_test")
        order = self.orders.get(order_test.order_id)
        if order is None:
            raise NotFound("No such order in your organisation.", entity="order")
        test = self.tests[order_test.test_id]
        sample = None
        if order_test.sample_id is not None:
            sample = self.samples.get(order_test.sample_id)
            if sample is None:
                raise NotFound("No such sample in your organisation.", entity="sample")
        if sample is None:
            raise SampleNotReady(
                f"{test.code} has no sample; results need a received sample.",
                order_test_id=str(order_test.id),
            )
        patient = self.patients.get(order.patient_id)
        if patient is None:
            raise NotFound("No such patient in your organisation.", entity="patient")
        facts = patients_service.facts(
            patient, sample.collected_at or sample.received_at or utcnow()
        )
        band = band_for(self.ranges.get(test.id, []), facts)
        return _Context(order_test, order, sample, test, patient.id, facts, band)

    def _check(self, entry: BatchEntry, current: dict[uuid.UUID, Result]) -> _Plan:
        context = self._context(entry)
        test = context.test
        if test.result_type == ResultType.CALCULATED and entry.source != ResultSource.CALCULATED:
            raise CalculatedResult(
                f"{test.code} is calculated from other results ({test.formula}); "
                "enter those instead.",
                formula=test.formula,
            )
        self.service._check_open(context)
        existing = current.get(context.order_test.id)
        if existing is not None and existing.status == ResultStatus.VERIFIED:
            raise ResultVerified(
                f"The result of {test.code} is verified and cannot change; correct it instead.",
                result_id=str(existing.id),
            )
        interpretation = self.service._interpret(context, entry.value, entry.unit)
        return _Plan(0, entry, context, existing, interpretation)

    async def _lock(self, order_tests: list[OrderTest]) -> None:
        """Lock (and re-read) what one-by-one entry would lock: active ordered tests (their
        first result) and received samples (their first result starts processing)."""
        active = [t.id for t in order_tests if t.status == OrderTestStatus.ACTIVE]
        if active:
            await orders_service.lock_tests(self.session, self.org, active)
        received = {
            s.id
            for t in order_tests
            if t.sample_id is not None
            and (s := self.samples.get(t.sample_id)) is not None
            and s.status == SampleStatus.RECEIVED
        }
        if received:
            await samples_service.lock_many(self.session, self.caller, received)

    async def _current(self, order_test_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Result]:
        rows = await self.session.scalars(
            select(Result).where(
                Result.organisation_id == self.org,
                any_of(Result.order_test_id, set(order_test_ids)),
                Result.is_current.is_(True),
            )
        )
        return {row.order_test_id: row for row in rows}

    async def _history(self, patient_ids: Iterable[uuid.UUID]) -> None:
        """``patients_service.history_ids`` for several patients: each plus the records
        merged into it, directly or through others."""
        roots = [p for p in set(patient_ids) if p not in self.history]
        found = {root: [root] for root in roots}
        frontier: dict[uuid.UUID, set[uuid.UUID]] = {root: {root} for root in roots}
        while frontier:
            rows = await self.session.execute(
                select(Patient.id, Patient.merged_into_id).where(
                    Patient.organisation_id == self.org,
                    any_of(Patient.merged_into_id, frontier),
                )
            )
            following: dict[uuid.UUID, set[uuid.UUID]] = {}
            for child, parent in rows:
                for root in frontier.get(parent, ()):
                    if child not in found[root]:
                        found[root].append(child)
                        following.setdefault(child, set()).add(root)
            frontier = following
        self.history.update(found)

    async def _deltas(self, plans: list[_Plan]) -> None:
        """``ResultsService._delta`` for every plan: the last verified numeric result of the
        test for the patient (and merged records), on another ordered test."""
        wanted = [p for p in plans if needs_delta(p.context.test, p.interpretation)]
        for plan in plans:
            plan.delta = _Delta(DeltaOutcome(checked=False, failed=False))
        if not wanted:
            return
        await self._history(p.context.patient_id for p in wanted)
        patients = {h for p in wanted for h in self.history[p.context.patient_id]}
        tests = {p.context.test.id for p in wanted}
        # Each plan skips only its own ordered test, so per patient and test the first
        # len(wanted) + 1 rows hold every plan's answer.
        rank = (
            func.row_number()
            .over(
                partition_by=(Result.patient_id, Result.test_id),
                order_by=Result.verified_at.desc(),
            )
            .label("rank")
        )
        ranked = (
            select(Result.id, rank)
            .where(
                Result.organisation_id == self.org,
                any_of(Result.patient_id, patients),
                any_of(Result.test_id, tests),
                Result.is_current.is_(True),
                Result.status == ResultStatus.VERIFIED,
                Result.value_numeric.is_not(None),
            )
            .subquery()
        )
        rows = list(
            await self.session.scalars(
                select(Result)
                .join(ranked, ranked.c.id == Result.id)
                .where(ranked.c.rank <= len(wanted) + 1)
            )
        )
        for plan in wanted:
            history = set(self.history[plan.context.patient_id])
            candidates = [
                r
                for r in rows
                if r.patient_id in history
                and r.test_id == plan.context.test.id
                and r.order_test_id != plan.context.order_test.id
            ]
            # ORDER BY verified_at DESC puts NULLs first in PostgreSQL.
            candidates.sort(
                key=lambda r: (r.verified_at is None, r.verified_at or utcnow()), reverse=True
            )
            previous = candidates[0] if candidates else None
            plan.delta = delta_against(plan.context.test, plan.interpretation, previous)

    # --- writing -------------------------------------------------------------------------

    async def _run(
        self,
        entries: Sequence[BatchEntry],
        run: list[int],
        outcomes: dict[int, BatchOutcome],
        *,
        recalculate: bool = False,
    ) -> None:
        known = [
            self.order_tests[entries[i].order_test_id]
            for i in run
            if entries[i].order_test_id in self.order_tests
        ]
        await self._lock(known)
        current = await self._current(t.id for t in known)
        plans: list[_Plan] = []
        for index in run:
            try:
                plan = self._check(entries[index], current)
            except NidaanError as error:
                outcomes[index] = error
                continue
            plan.index = index
            plans.append(plan)
        if not plans:
            return
        await self._deltas(plans)
        await self._write(plans, outcomes, set_based=not recalculate)
        if recalculate:
            await self.service._recalculate(
                self.session, self._caller_of(plans[0]), plans[0].context
            )

    def _caller_of(self, plan: _Plan) -> Principal:
        return plan.entry.caller or self.caller

    async def _write(
        self, plans: list[_Plan], outcomes: dict[int, BatchOutcome], *, set_based: bool
    ) -> None:
        """Write the plans' results. ``set_based``: new rows in one statement
        (``insert_results``); else through the ORM, whose savepoint rollback (an entry
        entered alone, before its recalculation) also forgets the objects it added."""
        session = self.session
        created: list[tuple[Result, Principal]] = []
        new_rows: list[tuple[_Plan, dict[str, Any], Principal]] = []
        # Stamped here rather than by the server: every column is given, none is read back.
        now = utcnow()
        for index, plan in enumerate(plans):
            await pause_every(index)
            entry, context = plan.entry, plan.context
            caller = self._caller_of(plan)
            assert plan.delta is not None
            fields = entry_fields(
                caller,
                plan.interpretation,
                plan.delta,
                value=entry.value,
                unit=entry.unit,
                comment=entry.comment,
                source=entry.source,
                instrument_flags=entry.instrument_flags,
                raw=entry.raw,
            )
            if plan.current is None:
                row = {
                    "id": new_id(),
                    "organisation_id": self.org,
                    "order_test_id": context.order_test.id,
                    "order_id": context.order.id,
                    "sample_id": context.sample.id,
                    "test_id": context.test.id,
                    "patient_id": context.patient_id,
                    "result_version": 1,
                    "is_current": True,
                    "supersedes_id": None,
                    "correction_reason": None,
                    "verified_at": None,
                    "verified_by_id": None,
                    "autoverified": False,
                    "created_at": now,
                    "updated_at": now,
                    **fields,
                }
                new_rows.append((plan, row, caller))
            else:
                result = plan.current
                before = _snapshot(result)
                for name, value in fields.items():
                    setattr(result, name, value)
                # Signatures were given to the old value.
                await self.service._unsign_and_audit(
                    session, caller, result, before, "result.reentered"
                )
                outcomes[plan.index] = EntryOutcome(result, created=False)
        if set_based:
            results = await insert_results(session, [row for _, row, _ in new_rows])
        else:
            results = [Result(**row) for _, row, _ in new_rows]
            session.add_all(results)
        for (plan, _, caller), result in zip(new_rows, results, strict=True):
            created.append((result, caller))
            outcomes[plan.index] = EntryOutcome(result, created=True)
        # First results: ordered tests become resulted, received samples in process, each
        # in the name of the first entry that touches it (one UPDATE per caller).
        tests: dict[Principal, dict[uuid.UUID, OrderTest]] = {}
        samples: dict[Principal, dict[uuid.UUID, Sample]] = {}
        seen: set[uuid.UUID] = set()
        for plan in plans:
            caller, context = self._caller_of(plan), plan.context
            tests.setdefault(caller, {}).setdefault(context.order_test.id, context.order_test)
            if context.sample.id not in seen:
                seen.add(context.sample.id)
                samples.setdefault(caller, {})[context.sample.id] = context.sample
        marked: list[AuditEntry] = []
        for caller, started in tests.items():
            marked += await orders_service.mark_resulted(
                session, started.values(), actor=caller.actor
            )
        for caller, touched in samples.items():
            marked += await samples_service.start_processing_locked(
                session, caller, touched.values()
            )
        await session.flush()
        audit = [
            AuditEntry(
                organisation_id=self.org,
                actor=caller.actor,
                action="result.entered",
                entity_type="result",
                entity_id=result.id,
                after=_snapshot(result),
            )
            for result, caller in created
        ]
        await audit_service.record_many(session, audit + marked)
        for plan in plans:
            if plan.interpretation.critical:
                outcome = outcomes[plan.index]
                assert isinstance(outcome, EntryOutcome)
                await self.service._raise_critical(
                    session, self._caller_of(plan), outcome.result, plan.interpretation
                )
        entered = tuple(
            outcome.result.id
            for plan in plans
            if isinstance(outcome := outcomes[plan.index], EntryOutcome)
        )
        await publish(session, ResultsEntered(organisation_id=self.org, result_ids=entered))
