"""Result entry, verification, corrections, holds, critical alerts, worklists and report lines.

Results never change once verified: a correction is a new row (``result_version`` + 1) and
the old one becomes ``superseded``. Every change writes an audit entry in the caller's
transaction; order tests and samples move through their own services.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from nidaan.audit.service import AuditEntry, audit_service
from nidaan.auth.models import User
from nidaan.auth.principal import Principal
from nidaan.catalog import domain as catalog_domain
from nidaan.catalog.enums import ResultType
from nidaan.catalog.models import CatalogTest, ReferenceRange
from nidaan.catalog.service import catalog_service
from nidaan.events.service import publish, publish_many
from nidaan.kit.db import any_of, get_in_organisation, set_if_each, transaction_state
from nidaan.kit.errors import Forbidden, InvalidInput, NidaanError, NotFound, VersionConflict
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.time import utcnow
from nidaan.orders.enums import OrderTestStatus, Priority
from nidaan.orders.models import Order, OrderTest
from nidaan.orders.service import orders_service
from nidaan.patients.models import Patient
from nidaan.patients.service import patients_service
from nidaan.results.domain import (
    Band,
    DeltaOutcome,
    Interpretation,
    InvalidValue,
    ReportLine,
    Signatory,
    can_verify,
    delta_check,
    interpret,
    round_display,
)
from nidaan.results.enums import CriticalAlertStatus, ResultSource, ResultStatus
from nidaan.results.errors import (
    AlreadyAcknowledged,
    CalculatedResult,
    ClientIdConflict,
    IllegalTransition,
    InvalidResultValue,
    NotAutoverified,
    OrderTestNotActive,
    ResultHeld,
    ResultVerified,
    SampleNotReady,
    SecondVerifierRequired,
    SelfVerificationNotAllowed,
    VerificationBlocked,
)
from nidaan.results.events import CriticalValueDetected, ResultsEntered, ResultsVerified
from nidaan.results.gates import verification_gates
from nidaan.results.models import CriticalAlert, Result, ResultVerification, VerificationGate
from nidaan.results.release import release
from nidaan.samples.enums import SampleStatus
from nidaan.samples.models import Sample
from nidaan.samples.service import samples_service
from nidaan.tenancy.models import Organisation

if TYPE_CHECKING:
    from nidaan.results.batch import BatchEntry

__all__ = ["ReportLine", "Signatory", "results_service"]

READY_SAMPLE_STATES = frozenset({SampleStatus.RECEIVED, SampleStatus.IN_PROCESS})
OPEN_TEST_STATES = frozenset({OrderTestStatus.ACTIVE, OrderTestStatus.RESULTED})
#: The signatory id a report shows for a result the system verified (autoverification).
AUTOVERIFIER_ID = uuid.UUID(int=0)
#: How far in the future a "notified at" time may be (clock skew of the caller's device).
NOTIFIED_AT_SKEW = timedelta(minutes=5)

_SNAPSHOT_FIELDS = (
    "status",
    "source",
    "result_version",
    "is_current",
    "entered_value",
    "entered_unit",
    "value_numeric",
    "value_text",
    "value_code",
    "unit",
    "flag",
    "reference_low",
    "reference_high",
    "reference_text",
    "delta_failed",
    "delta_previous_value",
    "hold_reason",
    "comment",
    "correction_reason",
    "entered_by_id",
    "verified_by_id",
    "verified_at",
    "instrument_id",
    "autoverified",
    "review_reason",
)


def _snapshot(result: Result) -> dict[str, Any]:
    return {name: getattr(result, name) for name in _SNAPSHOT_FIELDS}


def _alert_snapshot(alert: CriticalAlert) -> dict[str, Any]:
    return {
        "result_id": alert.result_id,
        "value": alert.value,
        "flag": alert.flag,
        "status": alert.status,
        "acknowledged_by_id": alert.acknowledged_by_id,
        "acknowledged_at": alert.acknowledged_at,
        "notified_person": alert.notified_person,
        "notified_at": alert.notified_at,
        "read_back": alert.read_back,
        "notes": alert.notes,
    }


def system_principal(organisation_id: uuid.UUID, label: str) -> Principal:
    """The system actor of ``organisation_id`` (audit kind ``system``), e.g. autoverification."""
    return Principal(
        kind="system",
        id=uuid.UUID(int=0),
        organisation_id=organisation_id,
        roles=frozenset({"system"}),
        label=label,
    )


def _user_id(caller: Principal) -> uuid.UUID | None:
    """The person behind the call (API keys act for nobody in particular)."""
    return caller.id if caller.kind == "user" else None


@dataclass(frozen=True)
class EntryOutcome:
    result: Result
    created: bool  # False: an unverified result was replaced, or a client-id replay
    #: Set when the entry was made now (not a replay): the result's test; it has no
    #: signatures then (a new value drops them).
    test: CatalogTest | None = None


@dataclass(frozen=True)
class Described:
    """A result with the test and signatures its API representation shows."""

    result: Result
    test: CatalogTest
    verifications: list[ResultVerification]


@dataclass(frozen=True)
class PendingEntry:
    order_test_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    priority: str
    sample_id: uuid.UUID
    accession: str
    sample_status: str
    received_at: datetime | None
    test_id: uuid.UUID
    test_code: str
    test_name: str
    department: str
    # Whom it is for: the worklist shows it, and ranges depend on sex and age.
    patient_id: uuid.UUID
    patient_name: str
    patient_sex: str
    patient_date_of_birth: date | None


@dataclass(frozen=True)
class PendingVerification:
    result_id: uuid.UUID
    order_test_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    priority: str
    test_code: str
    test_name: str
    department: str
    status: str
    value_text: str | None
    unit: str | None
    flag: str | None
    hold_reason: str | None
    review_reason: str | None
    blocked_reason: str | None
    result_version: int
    entered_at: datetime
    entered_by_id: uuid.UUID | None
    verifications_done: int
    verifications_required: int


@dataclass(frozen=True)
class TatBreach:
    order_test_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    priority: str
    accession: str
    test_code: str
    test_name: str
    department: str
    status: str
    received_at: datetime
    due_at: datetime
    minutes_overdue: int


@dataclass(frozen=True)
class _Previous:
    """The patient's last verified numeric result of a test (what a delta check needs)."""

    value_numeric: Decimal | None
    entered_at: datetime


@dataclass(frozen=True)
class _Delta:
    outcome: DeltaOutcome
    previous_value: Decimal | None = None
    previous_at: datetime | None = None


@dataclass
class _Context:
    """Everything entering a result of one ordered test needs."""

    order_test: OrderTest
    order: Order
    sample: Sample
    test: CatalogTest
    patient_id: uuid.UUID
    facts: Any  # patients' PatientFacts at collection time
    band: Band | None
    #: The current result of the ordered test, when read with the context (``current_loaded``).
    current: Result | None = None
    current_loaded: bool = False
    #: False: no calculated test on the order, so there is nothing to recalculate.
    has_calculated: bool = True
    #: The delta check's previous result, when read with the context (``previous_loaded``).
    previous: _Previous | None = None
    previous_loaded: bool = False


def _previous_result() -> Any:
    """The delta check's previous result of an ordered test, as a LATERAL subquery of the
    entry's context: the last verified numeric result of the same test for the order's
    patient or any record merged into it, directly or through others (as
    ``patients_service.history_ids``). Only looked up for tests with a delta rule."""
    organisation_id, order_test_id = bindparam("organisation_id"), bindparam("order_test_id")
    start_order, start_test = aliased(Order), aliased(OrderTest)
    history = (
        select(start_order.patient_id.label("id"))
        .join(start_test, start_test.order_id == start_order.id)
        .where(start_test.id == order_test_id, start_test.organisation_id == organisation_id)
        .cte("history", recursive=True)
    )
    merged = aliased(Patient)
    history = history.union(
        select(merged.id)
        .join(history, merged.merged_into_id == history.c.id)
        .where(merged.organisation_id == organisation_id)
    )
    earlier = aliased(Result)
    return (
        select(earlier.value_numeric, earlier.entered_at)
        .where(
            or_(CatalogTest.delta_percent.is_not(None), CatalogTest.delta_absolute.is_not(None)),
            earlier.organisation_id == organisation_id,
            earlier.patient_id.in_(select(history.c.id)),
            earlier.test_id == CatalogTest.id,
            earlier.is_current.is_(True),
            earlier.status == ResultStatus.VERIFIED,
            earlier.order_test_id != OrderTest.id,
            earlier.value_numeric.is_not(None),
        )
        .order_by(earlier.verified_at.desc())
        .limit(1)
        .lateral("previous")
    )


#: Rows kept referenced until the transaction ends (see ``ResultsService._context``).
_KEPT = "results.kept_rows"
_CALCULATED_TEST = aliased(CatalogTest)
_CALCULATED_ORDER_TEST = aliased(OrderTest)
#: Whether the order has a calculated test (not cancelled): entering another result may
#: then have to recalculate it.
_HAS_CALCULATED = (
    select(_CALCULATED_ORDER_TEST.id)
    .join(_CALCULATED_TEST, _CALCULATED_TEST.id == _CALCULATED_ORDER_TEST.test_id)
    .where(
        _CALCULATED_ORDER_TEST.order_id == OrderTest.order_id,
        _CALCULATED_ORDER_TEST.status != OrderTestStatus.CANCELLED,
        _CALCULATED_TEST.result_type == ResultType.CALCULATED,
    )
    .exists()
    .label("has_calculated")
)


_PREVIOUS = _previous_result()
#: What entering a result of one ordered test reads (``ResultsService._context``), built
#: once: aliased entities are costly to build per call. Parameters: ``order_test_id``,
#: ``organisation_id``.
_CONTEXT = (
    select(
        OrderTest,
        Order,
        Sample,
        CatalogTest,
        Patient,
        Result,
        _HAS_CALCULATED,
        _PREVIOUS.c.value_numeric,
        _PREVIOUS.c.entered_at,
        ReferenceRange,
    )
    .join(Order, Order.id == OrderTest.order_id)
    .join(CatalogTest, CatalogTest.id == OrderTest.test_id)
    .join(Patient, Patient.id == Order.patient_id)
    .outerjoin(Sample, Sample.id == OrderTest.sample_id)
    .outerjoin(
        Result,
        and_(
            Result.order_test_id == OrderTest.id,
            Result.organisation_id == OrderTest.organisation_id,
            Result.is_current.is_(True),
        ),
    )
    .outerjoin(_PREVIOUS, true())
    .outerjoin(ReferenceRange, ReferenceRange.test_id == CatalogTest.id)
    .where(
        OrderTest.id == bindparam("order_test_id"),
        OrderTest.organisation_id == bindparam("organisation_id"),
    )
    # The order ``catalog_service.ranges_for_tests`` gives (ties between equally specific
    # bands go to the first).
    .order_by(ReferenceRange.id)
)


_SIGNED = (
    select(func.count(ResultVerification.id))
    .where(
        ResultVerification.result_id == Result.id,
        ResultVerification.organisation_id == Result.organisation_id,
    )
    .scalar_subquery()
)
#: What verifying a result reads (``ResultsService.verify_described``), built once: the
#: result, its test, the lab's self-verification rule, whether anyone signed already, its
#: ordered test and tube, and its order, locked (as ``orders_service.lock_with_tests``: a
#: final signature moves the order's status on from its tests, which the next statement
#: reads with the lock held). Parameters: ``result_id``, ``organisation_id``.
_VERIFY_READ = (
    select(
        Result,
        CatalogTest,
        Organisation.allow_self_verification,
        _SIGNED,
        Order,
        OrderTest,
        Sample,
    )
    .join(CatalogTest, CatalogTest.id == Result.test_id)
    .join(Organisation, Organisation.id == Result.organisation_id)
    .join(Order, Order.id == Result.order_id)
    .join(OrderTest, OrderTest.id == Result.order_test_id)
    .outerjoin(Sample, Sample.id == Result.sample_id)
    .where(
        Result.id == bindparam("result_id"),
        Result.organisation_id == bindparam("organisation_id"),
    )
    .with_for_update(of=Order, key_share=True)
    .execution_options(populate_existing=True)
)


def band_for(ranges: Sequence[Any], facts: Any) -> Band | None:
    """The reference band of the patient (``facts``) among a test's ranges."""
    chosen = catalog_domain.select_range(
        ranges, sex=facts.sex, age_days=facts.age_days, pregnant=facts.pregnant
    )
    if chosen is None:
        return None
    return Band(
        low=chosen.low,
        high=chosen.high,
        critical_low=chosen.critical_low,
        critical_high=chosen.critical_high,
        text=chosen.text,
    )


def delta_against(
    test: CatalogTest, interpretation: Interpretation, previous: Result | _Previous | None
) -> _Delta:
    """The delta check of a new value against the patient's last verified result."""
    if previous is None or interpretation.value_numeric is None:
        return _Delta(DeltaOutcome(checked=False, failed=False))
    assert previous.value_numeric is not None  # the query asks for numeric results
    outcome = delta_check(
        interpretation.value_numeric,
        previous.value_numeric,
        previous.entered_at,
        utcnow(),
        percent=test.delta_percent,
        absolute=test.delta_absolute,
        window_days=test.delta_window_days,
    )
    if not outcome.checked:
        return _Delta(outcome)
    return _Delta(outcome, previous.value_numeric, previous.entered_at)


def needs_delta(test: CatalogTest, interpretation: Interpretation) -> bool:
    return interpretation.value_numeric is not None and (
        test.delta_percent is not None or test.delta_absolute is not None
    )


def entry_fields(
    caller: Principal,
    interpretation: Interpretation,
    delta: _Delta,
    *,
    value: str,
    unit: str | None,
    comment: str | None,
    source: str,
    instrument_flags: str | None,
    raw: dict[str, Any] | None,
) -> dict[str, Any]:
    """The columns an entry (new or replacing an unverified result) writes."""
    return {
        "status": ResultStatus.HELD if delta.outcome.failed else ResultStatus.ENTERED,
        "source": source,
        "entered_value": value,
        "entered_unit": unit,
        "value_numeric": interpretation.value_numeric,
        "value_text": interpretation.value_text,
        "value_code": interpretation.value_code,
        "unit": interpretation.unit,
        "flag": interpretation.flag,
        "reference_low": interpretation.reference_low,
        "reference_high": interpretation.reference_high,
        "reference_text": interpretation.reference_text,
        "delta_failed": delta.outcome.failed,
        "delta_previous_value": delta.previous_value,
        "delta_previous_at": delta.previous_at,
        "hold_reason": delta.outcome.reason if delta.outcome.failed else None,
        "instrument_flags": instrument_flags,
        "comment": comment,
        "raw": raw,
        "entered_at": utcnow(),
        "entered_by_id": _user_id(caller),
        # An analyzer enters as itself: its results are gated by its quality control.
        "instrument_id": caller.id if caller.kind == "instrument" else None,
        "review_reason": None,
    }


class ResultsService:
    # --- reads -----------------------------------------------------------------------------

    async def get(self, session: AsyncSession, caller: Principal, result_id: uuid.UUID) -> Result:
        result = await session.scalar(
            select(Result).where(
                Result.id == result_id, Result.organisation_id == caller.organisation_id
            )
        )
        if result is None:
            raise NotFound("No such result in your organisation.", entity="result")
        await self._require_order_reach(session, caller, result.order_id)
        return result

    async def _require_order_reach(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> None:
        """Refuse a result or alert of an order at branches the caller does not work at."""
        if caller.branch_ids is None:
            return
        order = await get_in_organisation(session, Order, order_id, caller.organisation_id)
        if order is not None:
            await orders_service.require_reach(session, caller, order)

    @staticmethod
    def _within_reach(caller: Principal, order_id: Any) -> ColumnElement[bool]:
        """SQL condition keeping a list to the caller's branches (true when unlimited)."""
        if caller.branch_ids is None:
            return true()
        return order_id.in_(orders_service.ids_reaching(caller.branch_ids))

    async def list_for_order(
        self,
        session: AsyncSession,
        caller: Principal,
        order_id: uuid.UUID,
        *,
        include_history: bool = False,
    ) -> list[Result]:
        """The order's current results (with ``include_history``, every version), in report
        order: department, then the catalogue's sort order, then version."""
        await orders_service.get(session, caller, order_id)
        statement = self._order_results(caller.organisation_id, order_id, include_history)
        return list(await session.scalars(statement))

    async def page_for_order(
        self,
        session: AsyncSession,
        caller: Principal,
        order_id: uuid.UUID,
        page: PageParams,
        *,
        include_history: bool = False,
    ) -> tuple[list[Result], int]:
        """One page of ``list_for_order`` and the total count."""
        await orders_service.get(session, caller, order_id)
        statement = self._order_results(caller.organisation_id, order_id, include_history)
        return await paginate(session, statement, page)

    @staticmethod
    def _order_results(
        organisation_id: uuid.UUID, order_id: uuid.UUID, include_history: bool
    ) -> Select[tuple[Result]]:
        statement = (
            select(Result)
            .join(CatalogTest, CatalogTest.id == Result.test_id)
            .where(Result.organisation_id == organisation_id, Result.order_id == order_id)
            .order_by(
                CatalogTest.department,
                CatalogTest.sort_order,
                CatalogTest.code,
                Result.result_version,
                Result.id,
            )
        )
        if not include_history:
            statement = statement.where(Result.is_current.is_(True))
        return statement

    async def test_labels(
        self, session: AsyncSession, organisation_id: uuid.UUID, test_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[str, str]]:
        """``{test id: (code, name)}`` of catalogue tests, so results describe themselves."""
        ids = list(set(test_ids))
        if not ids:
            return {}
        rows = await session.execute(
            select(CatalogTest.id, CatalogTest.code, CatalogTest.name).where(
                CatalogTest.organisation_id == organisation_id, any_of(CatalogTest.id, ids)
            )
        )
        return {row.id: (row.code, row.name) for row in rows}

    async def verifications_for(
        self, session: AsyncSession, organisation_id: uuid.UUID, result_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, list[ResultVerification]]:
        ids = list(result_ids)
        found: dict[uuid.UUID, list[ResultVerification]] = defaultdict(list)
        if not ids:
            return found
        rows = await session.scalars(
            select(ResultVerification)
            .where(
                ResultVerification.organisation_id == organisation_id,
                ResultVerification.result_id.in_(ids),
            )
            .order_by(ResultVerification.level)
        )
        for row in rows:
            found[row.result_id].append(row)
        return found

    async def list_critical_alerts(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        status: CriticalAlertStatus | None = None,
    ) -> tuple[list[CriticalAlert], int]:
        statement = select(CriticalAlert).where(
            CriticalAlert.organisation_id == caller.organisation_id,
            self._within_reach(caller, CriticalAlert.order_id),
        )
        if status is not None:
            statement = statement.where(CriticalAlert.status == status)
        return await paginate(session, statement.order_by(CriticalAlert.created_at.desc()), page)

    # --- entry -----------------------------------------------------------------------------

    async def enter(
        self,
        session: AsyncSession,
        caller: Principal,
        order_test_id: uuid.UUID,
        value: str,
        unit: str | None,
        comment: str | None = None,
        source: str = ResultSource.MANUAL,
        instrument_flags: str | None = None,
        raw: dict[str, Any] | None = None,
        *,
        result_id: uuid.UUID | None = None,
    ) -> Result:
        """Enter (or, before verification, replace) the result of an ordered test."""
        outcome = await self.enter_with_outcome(
            session,
            caller,
            order_test_id,
            value,
            unit,
            comment,
            source,
            instrument_flags,
            raw,
            result_id=result_id,
        )
        return outcome.result

    async def enter_with_outcome(
        self,
        session: AsyncSession,
        caller: Principal,
        order_test_id: uuid.UUID,
        value: str,
        unit: str | None,
        comment: str | None = None,
        source: str = ResultSource.MANUAL,
        instrument_flags: str | None = None,
        raw: dict[str, Any] | None = None,
        *,
        result_id: uuid.UUID | None = None,
    ) -> EntryOutcome:
        """``enter``, telling whether a row was created (the API answers 201 or 200)."""
        if result_id is not None:
            # Every organisation's: another tenant's id is "taken", like one of ours.
            existing = await session.get(Result, result_id)
            if existing is not None:
                same = (
                    existing.organisation_id == caller.organisation_id
                    and existing.order_test_id == order_test_id
                    and existing.entered_value == value
                    and existing.entered_unit == unit
                    and existing.comment == comment
                )
                if not same:
                    raise ClientIdConflict(
                        "A result with this id already exists with different content.",
                        id=str(result_id),
                    )
                return EntryOutcome(existing, created=False)
        context = await self._context(session, caller, order_test_id)
        if context.test.result_type == ResultType.CALCULATED and source != ResultSource.CALCULATED:
            raise CalculatedResult(
                f"{context.test.code} is calculated from other results ({context.test.formula}); "
                "enter those instead.",
                formula=context.test.formula,
            )
        outcome = await self._enter(
            session,
            caller,
            context,
            value=value,
            unit=unit,
            comment=comment,
            source=source,
            instrument_flags=instrument_flags,
            raw=raw,
            result_id=result_id,
        )
        if source != ResultSource.CALCULATED and context.has_calculated:
            await self._recalculate(session, caller, context)
        return outcome

    async def enter_many(
        self, session: AsyncSession, caller: Principal, entries: Sequence[BatchEntry]
    ) -> list[EntryOutcome | NidaanError]:
        """``enter_with_outcome`` for each entry in turn, with a few set-based statements
        (an analyzer message): each entry's outcome or the error ``enter`` would raise."""
        from nidaan.results.batch import enter_many  # batch builds on this module

        return await enter_many(session, caller, entries)

    async def _context(
        self, session: AsyncSession, caller: Principal, order_test_id: uuid.UUID
    ) -> _Context:
        """The ordered test with its order, sample, catalogue test, patient, current result,
        reference ranges and the delta check's previous result, in one query (one row per
        reference range). The rows land in the identity map, so the services asked below
        answer from it."""
        rows = (
            await session.execute(
                _CONTEXT,
                {"order_test_id": order_test_id, "organisation_id": caller.organisation_id},
            )
        ).all()
        if not rows:
            raise NotFound("No such ordered test in your organisation.", entity="order_test")
        order_test, order, sample, test, patient, current, has_calculated = rows[0][:7]
        previous_value, previous_at = rows[0][7:9]
        ranges = [row[9] for row in rows if row[9] is not None]
        # The same checks (and errors) as loading each through its own service.
        order = await orders_service.get(session, caller, order.id)
        if sample is None:
            raise SampleNotReady(
                f"{test.code} has no sample; results need a received sample.",
                order_test_id=str(order_test.id),
            )
        sample = await samples_service.get(session, caller, sample.id)
        at = sample.collected_at or sample.received_at or utcnow()
        facts = patients_service.facts(patient, at)
        context = _Context(
            order_test, order, sample, test, patient.id, facts, band_for(ranges, facts)
        )
        context.current, context.current_loaded = current, True
        context.has_calculated = bool(has_calculated)
        context.previous_loaded = True
        if previous_at is not None:
            context.previous = _Previous(previous_value, previous_at)
        # The identity map holds rows weakly: keep them for this transaction, so later steps
        # (and sync capture at commit, which reads each result's order) need no query.
        transaction_state(session, _KEPT, list).extend([order, sample, patient, test])
        return context

    def _check_open(self, context: _Context) -> None:
        order_test, sample, test = context.order_test, context.sample, context.test
        if order_test.status == OrderTestStatus.VERIFIED:
            raise ResultVerified(
                f"The result of {test.code} is verified and cannot change; correct it instead.",
                order_test_id=str(order_test.id),
            )
        if order_test.status not in OPEN_TEST_STATES:
            raise OrderTestNotActive(
                f"{test.code} is {order_test.status} on this order; it takes no results.",
                order_test_id=str(order_test.id),
                order_test_status=order_test.status,
            )
        if sample.status not in READY_SAMPLE_STATES:
            raise SampleNotReady(
                f"Sample {sample.accession} is {sample.status}; results can be entered only "
                "once the lab has received it.",
                accession=sample.accession,
                sample_status=sample.status,
            )

    def _interpret(self, context: _Context, value: str, unit: str | None) -> Interpretation:
        test = context.test
        try:
            return interpret(
                value,
                result_type=test.result_type,
                decimals=test.decimals,
                unit=test.unit,
                choices=test.choices or [],
                band=context.band,
                convert=lambda number: catalog_domain.convert_unit(test, number, unit),
            )
        except InvalidValue as error:
            raise InvalidResultValue(str(error), field="value", **error.data) from None

    async def _enter(
        self,
        session: AsyncSession,
        caller: Principal,
        context: _Context,
        *,
        value: str,
        unit: str | None,
        comment: str | None,
        source: str,
        instrument_flags: str | None = None,
        raw: dict[str, Any] | None = None,
        result_id: uuid.UUID | None = None,
    ) -> EntryOutcome:
        self._check_open(context)
        current = (
            context.current
            if context.current_loaded
            else await self._current(session, context.order_test)
        )
        if current is not None and current.status == ResultStatus.VERIFIED:
            raise ResultVerified(
                f"The result of {context.test.code} is verified and cannot change; "
                "correct it instead.",
                result_id=str(current.id),
            )
        interpretation = self._interpret(context, value, unit)
        delta = await self._delta(session, caller, context, interpretation)
        fields = entry_fields(
            caller,
            interpretation,
            delta,
            value=value,
            unit=unit,
            comment=comment,
            source=source,
            instrument_flags=instrument_flags,
            raw=raw,
        )
        # Status changes first: their audit entries then go into the same INSERT as the
        # result's (written with the next flush).
        marked = await self._mark_in_progress(session, caller, context)
        if current is None:
            result = Result(
                id=result_id or new_id(),
                organisation_id=caller.organisation_id,
                order_test_id=context.order_test.id,
                order_id=context.order.id,
                sample_id=context.sample.id,
                test_id=context.test.id,
                patient_id=context.patient_id,
                result_version=1,
                is_current=True,
                autoverified=False,  # the column's default, for the snapshot before the INSERT
                **fields,
            )
            session.add(result)
            await audit_service.record(
                session,
                organisation_id=caller.organisation_id,
                actor=caller.actor,
                action="result.entered",
                entity_type="result",
                entity_id=result.id,
                after=_snapshot(result),
            )
            created = True
        else:
            result = current
            before = _snapshot(result)
            for name, new_value in fields.items():
                setattr(result, name, new_value)
            # Signatures were given to the old value.
            await self._unsign_and_audit(session, caller, result, before, "result.reentered")
            created = False
        for entry in marked:
            await audit_service.record_entry(session, entry)
        await self._raise_critical(session, caller, result, interpretation)
        await publish(
            session,
            ResultsEntered(organisation_id=caller.organisation_id, result_ids=(result.id,)),
        )
        return EntryOutcome(result, created, context.test)

    async def _current(self, session: AsyncSession, order_test: OrderTest) -> Result | None:
        return await session.scalar(
            select(Result).where(
                Result.organisation_id == order_test.organisation_id,
                Result.order_test_id == order_test.id,
                Result.is_current.is_(True),
            )
        )

    async def _unsign_and_audit(
        self,
        session: AsyncSession,
        caller: Principal,
        result: Result,
        before: dict[str, Any],
        action: str,
    ) -> None:
        """Drop signatures given to the result's previous value and audit the change."""
        dropped = await self._drop_verifications(session, result)
        await session.flush()
        after = _snapshot(result)
        if dropped:
            before["verifications"], after["verifications"] = dropped, 0
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action=action,
            entity_type="result",
            entity_id=result.id,
            before=before,
            after=after,
        )

    async def _drop_verifications(self, session: AsyncSession, result: Result) -> int:
        rows = list(
            await session.scalars(
                select(ResultVerification).where(ResultVerification.result_id == result.id)
            )
        )
        for row in rows:
            await session.delete(row)
        return len(rows)

    async def _delta(
        self,
        session: AsyncSession,
        caller: Principal,
        context: _Context,
        interpretation: Interpretation,
    ) -> _Delta:
        """Compare with the patient's (and merged records') last verified result of the test."""
        test = context.test
        if not needs_delta(test, interpretation):
            return _Delta(DeltaOutcome(checked=False, failed=False))
        if context.previous_loaded:
            return delta_against(test, interpretation, context.previous)
        # The patient and every record merged into it, directly or through others
        # (``patients_service.history_ids``), in the same statement as the lookup.
        history = (
            select(Patient.id)
            .where(Patient.id == context.patient_id)
            .cte("history", recursive=True)
        )
        merged = aliased(Patient)
        history = history.union(
            select(merged.id)
            .join(history, merged.merged_into_id == history.c.id)
            .where(merged.organisation_id == caller.organisation_id)
        )
        previous = await session.scalar(
            select(Result)
            .where(
                Result.organisation_id == caller.organisation_id,
                Result.patient_id.in_(select(history.c.id)),
                Result.test_id == test.id,
                Result.is_current.is_(True),
                Result.status == ResultStatus.VERIFIED,
                Result.order_test_id != context.order_test.id,
                Result.value_numeric.is_not(None),
            )
            .order_by(Result.verified_at.desc())
            .limit(1)
        )
        return delta_against(test, interpretation, previous)

    async def _raise_critical(
        self,
        session: AsyncSession,
        caller: Principal,
        result: Result,
        interpretation: Interpretation,
    ) -> CriticalAlert | None:
        """Open a critical alert for a critical value (unless one is open for this value)."""
        if not interpretation.critical:
            return None
        already = await session.scalar(
            select(CriticalAlert.id).where(
                CriticalAlert.organisation_id == result.organisation_id,
                CriticalAlert.result_id == result.id,
                CriticalAlert.status == CriticalAlertStatus.OPEN,
                CriticalAlert.value == interpretation.value_text,
                CriticalAlert.flag == interpretation.flag,
            )
        )
        if already is not None:
            return None
        alert = CriticalAlert(
            id=new_id(),
            organisation_id=result.organisation_id,
            result_id=result.id,
            order_id=result.order_id,
            patient_id=result.patient_id,
            test_id=result.test_id,
            value=interpretation.value_text,
            flag=str(interpretation.flag),
            status=CriticalAlertStatus.OPEN,
        )
        session.add(alert)
        await session.flush()
        await publish(
            session,
            CriticalValueDetected(
                organisation_id=result.organisation_id,
                alert_id=alert.id,
                result_id=result.id,
                patient_id=result.patient_id,
                test_id=result.test_id,
                value=alert.value,
                flag=alert.flag,
            ),
        )
        await audit_service.record(
            session,
            organisation_id=result.organisation_id,
            actor=caller.actor,
            action="critical_alert.created",
            entity_type="critical_alert",
            entity_id=alert.id,
            after=_alert_snapshot(alert),
        )
        return alert

    async def _mark_in_progress(
        self, session: AsyncSession, caller: Principal, context: _Context
    ) -> list[AuditEntry]:
        """A first result: the ordered test becomes resulted and its sample in process (a
        compare-and-set UPDATE each, both in one statement); returns their audit entries to
        record."""
        changes = [
            orders_service.first_result_change(context.order_test, actor=caller.actor),
            samples_service.start_processing_change(caller, context.sample),
        ]
        return await set_if_each(session, [change for change in changes if change is not None])

    async def _recalculate(
        self, session: AsyncSession, caller: Principal, context: _Context
    ) -> None:
        """Compute the order's calculated tests that use ``context.test`` once all inputs
        have numeric results; a verified calculated result is corrected instead."""
        changed_code = context.test.code
        order_tests = [
            ot
            for ot in await orders_service.tests_of(session, caller, context.order.id)
            if ot.status != OrderTestStatus.CANCELLED
        ]
        tests = await catalog_service.tests_by_ids(
            session, caller.organisation_id, list({ot.test_id for ot in order_tests})
        )
        by_code = {tests[ot.test_id].code: ot for ot in order_tests}
        for order_test in order_tests:
            test = tests[order_test.test_id]
            if test.result_type != ResultType.CALCULATED or not test.formula:
                continue
            inputs = catalog_domain.formula_inputs(test.formula)
            if changed_code not in inputs:
                continue
            values: dict[str, Decimal] = {}
            for code in inputs & by_code.keys():
                current = await self._current(session, by_code[code])
                if current is not None and current.value_numeric is not None:
                    values[code] = current.value_numeric
            existing = await self._current(session, order_test)
            missing = sorted(inputs - values.keys())
            problem = f"no numeric result for {', '.join(missing)}" if missing else None
            if problem is None:
                try:
                    computed = catalog_domain.evaluate_formula(test.formula, values, context.facts)
                except (ArithmeticError, ValueError, NidaanError) as error:
                    problem = str(error) or "the formula is undefined for these values"
            if problem is not None:
                # A value computed from inputs that changed since must not go out unnoticed.
                if existing is not None and existing.status in (
                    ResultStatus.ENTERED,
                    ResultStatus.HELD,
                ):
                    await self._hold(
                        session, caller, existing, f"Cannot recalculate {test.code}: {problem}"
                    )
                continue
            calc_context = await self._context(session, caller, order_test.id)
            text = f"{computed:f}"
            if existing is not None and existing.status == ResultStatus.VERIFIED:
                if existing.value_numeric == round_display(computed, test.decimals):
                    continue
                await self._correct(
                    session,
                    caller,
                    existing,
                    calc_context,
                    value=text,
                    unit=None,
                    reason=f"Recalculated after {changed_code} was corrected",
                    comment=existing.comment,
                )
                continue
            if existing is not None and existing.entered_value == text:
                continue
            try:
                await self._enter(
                    session,
                    caller,
                    calc_context,
                    value=text,
                    unit=None,
                    comment=existing.comment if existing is not None else None,
                    source=ResultSource.CALCULATED,
                )
            except (SampleNotReady, OrderTestNotActive):
                continue

    async def _hold(
        self, session: AsyncSession, caller: Principal, result: Result, reason: str
    ) -> None:
        if result.status == ResultStatus.HELD and result.hold_reason == reason[:300]:
            return
        before = _snapshot(result)
        result.status = ResultStatus.HELD
        result.hold_reason = reason[:300]
        await self._unsign_and_audit(session, caller, result, before, "result.held")

    # --- verification ----------------------------------------------------------------------

    async def verify(
        self, session: AsyncSession, caller: Principal, result_id: uuid.UUID
    ) -> Result:
        """Add the caller's signature; the last required one verifies the result."""
        return (await self.verify_described(session, caller, result_id)).result

    async def verify_described(
        self, session: AsyncSession, caller: Principal, result_id: uuid.UUID
    ) -> Described:
        """``verify``, with the result's test and signatures (the API shows them)."""
        row = (
            await session.execute(
                _VERIFY_READ, {"result_id": result_id, "organisation_id": caller.organisation_id}
            )
        ).one_or_none()
        if row is None:
            raise NotFound("No such result in your organisation.", entity="result")
        result, test, allow_self_verification, signatures, order, order_test, sample = row
        await self._require_order_reach(session, caller, result.order_id)
        if result.status == ResultStatus.HELD:
            raise ResultHeld(
                f"The result is on hold ({result.hold_reason}); release the hold first.",
                hold_reason=result.hold_reason,
            )
        if result.status != ResultStatus.ENTERED:
            raise IllegalTransition(
                f"A {result.status} result cannot be verified.",
                **{"from": result.status, "to": ResultStatus.VERIFIED},
            )
        await self._check_gates(session, result)
        verifier = _user_id(caller)
        if verifier is None:
            raise Forbidden(
                "Verification is a person's signature; API keys cannot verify.",
                code_detail="person_required",
            )
        previous = (
            (await self.verifications_for(session, caller.organisation_id, [result.id]))[result.id]
            if signatures
            else []
        )
        decision = can_verify(
            result.entered_by_id,
            verifier,
            [row.user_id for row in previous],
            test.required_verifications,
            allow_self_verification,
        )
        if not decision.allowed:
            if decision.code == "self_verification_not_allowed":
                raise SelfVerificationNotAllowed(decision.reason or "")
            if decision.code == "second_verifier_required":
                raise SecondVerifierRequired(
                    decision.reason or "", required_verifications=test.required_verifications
                )
            raise IllegalTransition(decision.reason or "", code_detail=decision.code)
        now = utcnow()
        before = _snapshot(result)
        signature = ResultVerification(
            id=new_id(),
            organisation_id=caller.organisation_id,
            result_id=result.id,
            user_id=verifier,
            level=decision.level,
            verified_at=now,
        )
        events: list[Any] = []
        released: list[AuditEntry] = []
        if decision.final and order_test.status in OPEN_TEST_STATES:
            # Stored by the statement that releases the result (not added to the session).
            released = await self._release(
                session, caller, result, signature, test, order, order_test, sample, events
            )
        else:
            session.add(signature)
            if decision.final:  # a test not open (cancelled: refused; verified: no change)
                result.status = ResultStatus.VERIFIED
                result.verified_at = now
                result.verified_by_id = verifier
                released = await self._after_verification(session, caller, result, test, events)
        after = _snapshot(result)
        after["verification_level"] = decision.level
        # Entries are recorded in the order things happened; written together (one INSERT).
        entries = [
            AuditEntry(
                organisation_id=caller.organisation_id,
                actor=caller.actor,
                action="result.verified" if decision.final else "result.signed",
                entity_type="result",
                entity_id=result.id,
                before=before,
                after=after,
            ),
            *released,
        ]
        for entry in entries:
            await audit_service.record_entry(session, entry)
        await publish_many(session, events)
        return Described(result, test, [*previous, signature])

    async def _release(
        self,
        session: AsyncSession,
        caller: Principal,
        result: Result,
        signature: ResultVerification,
        test: CatalogTest,
        order: Order,
        order_test: OrderTest,
        sample: Sample | None,
        events: list[Any],
    ) -> list[AuditEntry]:
        """The final signature: ``_after_verification`` in one statement (``release``), with
        the order locked by the caller's read. Returns the audit entries of the ordered test,
        order and tube; adds ``ResultsVerified`` for a department (and the order) complete
        now to ``events``."""
        # Sync capture at commit reads each result's order: keep it referenced.
        transaction_state(session, _KEPT, list).append(order)
        test_before = orders_service.test_snapshot(order_test)
        order_before = orders_service.order_snapshot(order)
        sample_before = samples_service.audit_snapshot(sample) if sample is not None else None
        done = await release(
            session,
            result=result,
            signature=signature,
            order=order,
            order_test=order_test,
            sample=sample,
            department=test.department,
            now=signature.verified_at,
        )
        if not done.result_verified:
            raise VersionConflict("The result changed meanwhile; reload it and try again.")
        if not done.test_verified:  # the order's lock keeps status changes out; not all do
            raise VersionConflict(
                "The ordered test changed meanwhile; try again.",
                current_version=order_test.version,
            )
        entries = [orders_service.test_status_changed(order_test, test_before, caller.actor)]
        if done.order_previous_status is not None:
            entries.append(
                orders_service.order_status_changed(
                    order, order_before, done.order_previous_status, caller.actor
                )
            )
        if done.sample_completed:
            assert sample is not None
            assert sample_before is not None
            # ``samples_service.complete_unlocked``'s check: refused, the transaction rolls
            # the whole verification back.
            await samples_service.require_reach(session, caller, sample, None)
            entries.append(samples_service.completed_entry(caller, sample, sample_before))
        amended = result.result_version > 1
        reason = result.correction_reason if amended else None
        for complete, department in (
            (done.department_verified, test.department),
            (done.order_verified, None),
        ):
            if complete:
                events.append(
                    ResultsVerified(
                        organisation_id=caller.organisation_id,
                        order_id=result.order_id,
                        department=department,
                        amended=amended,
                        reason=reason,
                    )
                )
        return entries

    async def _check_gates(self, session: AsyncSession, result: Result) -> None:
        gate = await verification_gates.blocking(session, result)
        if gate is not None:
            raise VerificationBlocked(
                f"Results of this test from this instrument cannot be verified: {gate.reason}",
                holder=gate.holder,
                reason=gate.reason,
                blocked_since=gate.since.isoformat(),
                instrument_id=str(gate.instrument_id),
                **{k: v for k, v in gate.details.items() if k not in {"holder", "reason"}},
            )

    async def verify_by_system(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        result_id: uuid.UUID,
        *,
        entered_at: datetime,
        label: str,
        note: str,
    ) -> Result:
        """Verify an entered result as the system actor (autoverification): never a person,
        never the instrument that entered it. Refuses what a person could not verify (held,
        gated, already verified) and tests needing more than one signature; the value must
        still be the one entered at ``entered_at``. Released exactly like a person's
        verification (order and sample states, ``results.verified``)."""
        caller = system_principal(organisation_id, label)
        result = await self.get(session, caller, result_id)
        if not result.is_current or result.entered_at != entered_at:
            raise IllegalTransition(
                "The result changed since it was evaluated.", code_detail="result_changed"
            )
        if result.status == ResultStatus.HELD:
            raise ResultHeld(
                f"The result is on hold ({result.hold_reason}).", hold_reason=result.hold_reason
            )
        if result.status != ResultStatus.ENTERED:
            raise IllegalTransition(
                f"A {result.status} result cannot be verified.",
                **{"from": result.status, "to": ResultStatus.VERIFIED},
            )
        await self._check_gates(session, result)
        test = (await catalog_service.tests_by_ids(session, organisation_id, [result.test_id]))[
            result.test_id
        ]
        if test.required_verifications > 1:
            raise SecondVerifierRequired(
                f"{test.code} needs {test.required_verifications} verifications by people.",
                required_verifications=test.required_verifications,
            )
        before = _snapshot(result)
        result.status = ResultStatus.VERIFIED
        result.verified_at = utcnow()
        result.verified_by_id = None
        result.autoverified = True
        result.review_reason = None
        await session.flush()
        after = _snapshot(result)
        after["autoverification"] = note[:300]
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=caller.actor,
            action="result.autoverified",
            entity_type="result",
            entity_id=result.id,
            before=before,
            after=after,
        )
        events: list[Any] = []
        for entry in await self._after_verification(session, caller, result, test, events):
            await audit_service.record_entry(session, entry)
        await publish_many(session, events)
        return result

    async def retract_autoverified(
        self, session: AsyncSession, caller: Principal, result_id: uuid.UUID, reason: str
    ) -> Result:
        """Take back a system verification: a new version with the same value, held for a
        person with the reason (a report already issued is amended when it is verified)."""
        result = await self.get(session, caller, result_id)
        reason = reason.strip()
        if not reason:
            raise InvalidInput("Say why the autoverification is retracted.", field="reason")
        if not (
            result.is_current and result.status == ResultStatus.VERIFIED and result.autoverified
        ):
            raise NotAutoverified(
                "Only a current result verified by the system can be retracted.",
                result_status=result.status,
                autoverified=result.autoverified,
            )
        context = await self._context(session, caller, result.order_test_id)
        new = await self._correct(
            session,
            caller,
            result,
            context,
            value=result.entered_value,
            unit=result.entered_unit,
            reason=f"Autoverification retracted: {reason}",
            comment=result.comment,
        )
        await self._hold(session, caller, new, f"Autoverification retracted: {reason}")
        return new

    async def hold(
        self, session: AsyncSession, caller: Principal, result_id: uuid.UUID, reason: str
    ) -> Result:
        """Hold an unverified result for a person's review (released with ``release_hold``)."""
        result = await self.get(session, caller, result_id)
        if not result.is_current or result.status not in (ResultStatus.ENTERED, ResultStatus.HELD):
            raise IllegalTransition(
                f"A {result.status} result cannot be held.",
                **{"from": result.status, "to": ResultStatus.HELD},
            )
        await self._hold(session, caller, result, reason)
        return result

    async def mark_for_review(
        self, session: AsyncSession, caller: Principal, result_id: uuid.UUID, reason: str
    ) -> Result:
        """Note why an unverified result waits for a person (shown on the worklist)."""
        result = await self.get(session, caller, result_id)
        if result.status not in (ResultStatus.ENTERED, ResultStatus.HELD):
            raise IllegalTransition(
                f"A {result.status} result is not waiting for review.",
                **{"from": result.status, "to": result.status},
            )
        if result.review_reason == reason[:300]:
            return result
        before = {"review_reason": result.review_reason}
        result.review_reason = reason[:300]
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="result.review_requested",
            entity_type="result",
            entity_id=result.id,
            before=before,
            after={"review_reason": result.review_reason},
        )
        return result

    async def unverified_of_instrument(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test_id: uuid.UUID,
        *,
        entered_from: datetime,
        entered_before: datetime | None = None,
    ) -> list[Result]:
        """Current unverified results of an instrument and test entered in a window."""
        statement = select(Result).where(
            Result.organisation_id == organisation_id,
            Result.instrument_id == instrument_id,
            Result.test_id == test_id,
            Result.is_current.is_(True),
            Result.status.in_([ResultStatus.ENTERED, ResultStatus.HELD]),
            Result.entered_at >= entered_from,
        )
        if entered_before is not None:
            statement = statement.where(Result.entered_at < entered_before)
        return list(await session.scalars(statement.order_by(Result.entered_at, Result.id)))

    async def verified_of_instrument(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test_id: uuid.UUID,
        *,
        entered_from: datetime,
        limit: int = 200,
    ) -> list[Result]:
        """Current verified results of an instrument and test entered since a time (the
        look-back after a QC failure: what was released before the failure was known)."""
        statement = (
            select(Result)
            .where(
                Result.organisation_id == organisation_id,
                Result.instrument_id == instrument_id,
                Result.test_id == test_id,
                Result.is_current.is_(True),
                Result.status == ResultStatus.VERIFIED,
                Result.entered_at >= entered_from,
            )
            .order_by(Result.entered_at, Result.id)
            .limit(limit)
        )
        return list(await session.scalars(statement))

    async def _after_verification(
        self,
        session: AsyncSession,
        caller: Principal,
        result: Result,
        test: CatalogTest,
        events: list[Any],
    ) -> list[AuditEntry]:
        """The ordered test becomes verified (the order completed when it was the last), the
        sample completed when all its tests are; ``ResultsVerified`` for a department (and
        the order) complete now is added to ``events``. Returns the audit entries."""
        order, rows = await orders_service.lock_with_tests(
            session, caller.organisation_id, result.order_id
        )
        # Sync capture at commit reads each result's order: keep it referenced.
        transaction_state(session, _KEPT, list).append(order)
        order_tests = [ot for ot, _, _ in rows]
        mine = next((ot for ot in order_tests if ot.id == result.order_test_id), None)
        if mine is None:
            raise NotFound("No such ordered test.", entity="order_test")
        entries = await orders_service.set_test_status_locked(
            session, order, order_tests, mine, OrderTestStatus.VERIFIED, actor=caller.actor
        )
        active = [(ot, t, s) for ot, t, s in rows if ot.status != OrderTestStatus.CANCELLED]
        department = test.department
        amended = result.result_version > 1
        reason = result.correction_reason if amended else None

        def verified(ots: Iterable[OrderTest]) -> bool:
            return all(ot.status == OrderTestStatus.VERIFIED for ot in ots)

        if verified(ot for ot, t, _ in active if t.department == department):
            events.append(
                ResultsVerified(
                    organisation_id=caller.organisation_id,
                    order_id=result.order_id,
                    department=department,
                    amended=amended,
                    reason=reason,
                )
            )
        if verified(ot for ot, _, _ in active):
            events.append(
                ResultsVerified(
                    organisation_id=caller.organisation_id,
                    order_id=result.order_id,
                    department=None,
                    amended=amended,
                    reason=reason,
                )
            )
        if result.sample_id is not None:
            sample = next((s for ot, _, s in rows if ot.sample_id == result.sample_id), None)
            if sample is None:
                sample = await samples_service.get(session, caller, result.sample_id)
            same_sample = [ot for ot, _, _ in active if ot.sample_id == result.sample_id]
            if sample.status == SampleStatus.IN_PROCESS and verified(same_sample):
                completed = await samples_service.complete_unlocked(session, caller, sample)
                if completed is not None:
                    entries.append(completed)
        return entries

    async def release_hold(
        self, session: AsyncSession, caller: Principal, result_id: uuid.UUID, note: str
    ) -> Result:
        """Release a held result (a pathologist reviewed the delta) so it can be verified."""
        result = await self.get(session, caller, result_id)
        if result.status != ResultStatus.HELD:
            raise IllegalTransition(
                f"Only held results can be released; this one is {result.status}.",
                **{"from": result.status, "to": ResultStatus.ENTERED},
            )
        note = note.strip()
        if not note:
            raise InvalidInput("Say why the hold is released.", field="note")
        before = _snapshot(result)
        result.status = ResultStatus.ENTERED
        await session.flush()
        after = _snapshot(result)
        after["release_note"] = note
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="result.released",
            entity_type="result",
            entity_id=result.id,
            before=before,
            after=after,
        )
        return result

    # --- corrections -----------------------------------------------------------------------

    async def correct(
        self,
        session: AsyncSession,
        caller: Principal,
        result_id: uuid.UUID,
        value: str,
        unit: str | None,
        reason: str,
        comment: str | None = None,
    ) -> Result:
        """Replace a verified (or entered) result by a new version that needs verification."""
        result = await self.get(session, caller, result_id)
        reason = reason.strip()
        if not reason:
            raise InvalidInput("A correction needs a reason.", field="reason")
        if not result.is_current or result.status not in (
            ResultStatus.VERIFIED,
            ResultStatus.ENTERED,
        ):
            hint = (
                "release the hold first"
                if result.status == ResultStatus.HELD
                else "correct the current version"
            )
            raise IllegalTransition(
                f"A {result.status} result cannot be corrected; {hint}.",
                **{"from": result.status, "to": ResultStatus.SUPERSEDED},
            )
        context = await self._context(session, caller, result.order_test_id)
        if context.test.result_type == ResultType.CALCULATED:
            raise CalculatedResult(
                f"{context.test.code} is calculated ({context.test.formula}); correct its inputs.",
                formula=context.test.formula,
            )
        new = await self._correct(
            session,
            caller,
            result,
            context,
            value=value,
            unit=unit,
            reason=reason,
            comment=comment if comment is not None else result.comment,
        )
        await self._recalculate(session, caller, context)
        return new

    async def _correct(
        self,
        session: AsyncSession,
        caller: Principal,
        old: Result,
        context: _Context,
        *,
        value: str,
        unit: str | None,
        reason: str,
        comment: str | None,
    ) -> Result:
        interpretation = self._interpret(context, value, unit)
        delta = await self._delta(session, caller, context, interpretation)
        before = _snapshot(old)
        old.status = ResultStatus.SUPERSEDED
        old.is_current = False
        await session.flush()  # the partial unique index allows one current row
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="result.superseded",
            entity_type="result",
            entity_id=old.id,
            before=before,
            after=_snapshot(old),
        )
        new = Result(
            id=new_id(),
            organisation_id=old.organisation_id,
            order_test_id=old.order_test_id,
            order_id=old.order_id,
            sample_id=old.sample_id,
            test_id=old.test_id,
            patient_id=old.patient_id,
            result_version=old.result_version + 1,
            is_current=True,
            supersedes_id=old.id,
            correction_reason=reason[:500],
            status=ResultStatus.HELD if delta.outcome.failed else ResultStatus.ENTERED,
            source=old.source,
            entered_value=value,
            entered_unit=unit,
            value_numeric=interpretation.value_numeric,
            value_text=interpretation.value_text,
            value_code=interpretation.value_code,
            unit=interpretation.unit,
            flag=interpretation.flag,
            reference_low=interpretation.reference_low,
            reference_high=interpretation.reference_high,
            reference_text=interpretation.reference_text,
            delta_failed=delta.outcome.failed,
            delta_previous_value=delta.previous_value,
            delta_previous_at=delta.previous_at,
            hold_reason=delta.outcome.reason if delta.outcome.failed else None,
            comment=comment,
            entered_at=utcnow(),
            entered_by_id=_user_id(caller),
        )
        session.add(new)
        await session.flush()
        after = _snapshot(new)
        after["supersedes_id"] = old.id
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="result.corrected",
            entity_type="result",
            entity_id=new.id,
            before={k: before[k] for k in before if k in after},
            after=after,
        )
        if context.order_test.status == OrderTestStatus.VERIFIED:
            await orders_service.set_test_status(
                session,
                caller.organisation_id,
                context.order_test.id,
                OrderTestStatus.RESULTED,
                actor=caller.actor,
            )
        await self._raise_critical(session, caller, new, interpretation)
        return new

    # --- critical alerts -------------------------------------------------------------------

    async def acknowledge_critical(
        self,
        session: AsyncSession,
        caller: Principal,
        alert_id: uuid.UUID,
        notified_person: str,
        notified_at: datetime,
        read_back: bool,
        notes: str | None,
    ) -> CriticalAlert:
        """Record who was told about a critical value, when, and whether they read it back."""
        alert = await session.scalar(
            select(CriticalAlert).where(
                CriticalAlert.id == alert_id,
                CriticalAlert.organisation_id == caller.organisation_id,
            )
        )
        if alert is None:
            raise NotFound("No such critical alert in your organisation.", entity="critical_alert")
        await self._require_order_reach(session, caller, alert.order_id)
        if alert.status == CriticalAlertStatus.ACKNOWLEDGED:
            raise AlreadyAcknowledged(
                f"This alert was acknowledged at {alert.acknowledged_at:%Y-%m-%d %H:%M} UTC "
                f"(notified: {alert.notified_person}).",
                acknowledged_at=alert.acknowledged_at.isoformat()
                if alert.acknowledged_at
                else None,
            )
        if notified_at.tzinfo is None:
            raise InvalidInput("notified_at needs a time zone.", field="notified_at")
        now = utcnow()
        if notified_at > now + NOTIFIED_AT_SKEW:
            raise InvalidInput("notified_at is in the future.", field="notified_at")
        person = notified_person.strip()
        if not person:
            raise InvalidInput("Say who was notified.", field="notified_person")
        before = _alert_snapshot(alert)
        alert.status = CriticalAlertStatus.ACKNOWLEDGED
        alert.acknowledged_at = now
        alert.acknowledged_by_id = _user_id(caller)
        alert.notified_person = person
        alert.notified_at = notified_at
        alert.read_back = read_back
        alert.notes = notes
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="critical_alert.acknowledged",
            entity_type="critical_alert",
            entity_id=alert.id,
            before=before,
            after=_alert_snapshot(alert),
        )
        return alert

    # --- worklists -------------------------------------------------------------------------

    async def pending_entry(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        department: str | None = None,
    ) -> tuple[list[PendingEntry], int]:
        """Ordered tests waiting for a result whose sample is in the lab (STAT first)."""
        org = caller.organisation_id
        statement = (
            select(
                OrderTest.id.label("order_test_id"),
                Order.id.label("order_id"),
                Order.order_number,
                Order.priority,
                Sample.id.label("sample_id"),
                Sample.accession,
                Sample.status.label("sample_status"),
                Sample.received_at,
                CatalogTest.id.label("test_id"),
                CatalogTest.code.label("test_code"),
                CatalogTest.name.label("test_name"),
                CatalogTest.department,
                Patient.id.label("patient_id"),
                Patient.full_name.label("patient_name"),
                Patient.sex.label("patient_sex"),
                Patient.date_of_birth.label("patient_date_of_birth"),
            )
            .join(Order, Order.id == OrderTest.order_id)
            .join(Sample, Sample.id == OrderTest.sample_id)
            .join(CatalogTest, CatalogTest.id == OrderTest.test_id)
            .join(Patient, Patient.id == Order.patient_id)
            .where(
                OrderTest.organisation_id == org,
                OrderTest.status == OrderTestStatus.ACTIVE,
                Sample.status.in_(list(READY_SAMPLE_STATES)),
                CatalogTest.result_type != ResultType.CALCULATED,
                self._within_reach(caller, Order.id),
            )
            .order_by(
                _priority_rank(),
                Sample.received_at,
                Order.order_number,
                CatalogTest.sort_order,
                CatalogTest.code,
            )
        )
        if department:
            statement = statement.where(CatalogTest.department == department)
        rows, total = await _paginate_rows(session, statement, page)
        return [PendingEntry(**row._mapping) for row in rows], total

    async def pending_verification(
        self, session: AsyncSession, caller: Principal, page: PageParams
    ) -> tuple[list[PendingVerification], int]:
        """Current results awaiting verification (held ones included, marked), STAT first."""
        org = caller.organisation_id
        done = (
            select(func.count(ResultVerification.id))
            .where(ResultVerification.result_id == Result.id)
            .correlate(Result)
            .scalar_subquery()
        )
        blocked = (
            select(VerificationGate.reason)
            .where(
                VerificationGate.organisation_id == Result.organisation_id,
                VerificationGate.instrument_id == Result.instrument_id,
                VerificationGate.test_id == Result.test_id,
                VerificationGate.since <= Result.entered_at,
            )
            .order_by(VerificationGate.created_at)
            .limit(1)
            .correlate(Result)
            .scalar_subquery()
        )
        statement = (
            select(
                Result.id.label("result_id"),
                Result.order_test_id,
                Order.id.label("order_id"),
                Order.order_number,
                Order.priority,
                CatalogTest.code.label("test_code"),
                CatalogTest.name.label("test_name"),
                CatalogTest.department,
                Result.status,
                Result.value_text,
                Result.unit,
                Result.flag,
                Result.hold_reason,
                Result.review_reason,
                blocked.label("blocked_reason"),
                Result.result_version,
                Result.entered_at,
                Result.entered_by_id,
                done.label("verifications_done"),
                CatalogTest.required_verifications.label("verifications_required"),
            )
            .join(Order, Order.id == Result.order_id)
            .join(CatalogTest, CatalogTest.id == Result.test_id)
            .where(
                Result.organisation_id == org,
                Result.is_current.is_(True),
                Result.status.in_([ResultStatus.ENTERED, ResultStatus.HELD]),
                self._within_reach(caller, Order.id),
            )
            .order_by(_priority_rank(), Result.entered_at, CatalogTest.sort_order)
        )
        rows, total = await _paginate_rows(session, statement, page)
        return [PendingVerification(**row._mapping) for row in rows], total

    async def open_critical_alerts(
        self, session: AsyncSession, caller: Principal, page: PageParams
    ) -> tuple[list[CriticalAlert], int]:
        """Unacknowledged critical alerts, oldest first (the first to phone through)."""
        statement = (
            select(CriticalAlert)
            .where(
                CriticalAlert.organisation_id == caller.organisation_id,
                CriticalAlert.status == CriticalAlertStatus.OPEN,
                self._within_reach(caller, CriticalAlert.order_id),
            )
            .order_by(CriticalAlert.created_at, CriticalAlert.id)
        )
        return await paginate(session, statement, page)

    async def tat_breaches(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        now: datetime | None = None,
    ) -> tuple[list[TatBreach], int]:
        """Ordered tests not yet verified whose sample arrived longer ago than the test's
        turnaround time; STAT orders first, then the most overdue."""
        now = now or utcnow()
        due = Sample.received_at + func.make_interval(0, 0, 0, 0, 0, CatalogTest.tat_minutes)
        statement = (
            select(
                OrderTest.id.label("order_test_id"),
                Order.id.label("order_id"),
                Order.order_number,
                Order.priority,
                Sample.accession,
                CatalogTest.code.label("test_code"),
                CatalogTest.name.label("test_name"),
                CatalogTest.department,
                OrderTest.status,
                Sample.received_at,
                due.label("due_at"),
            )
            .join(Order, Order.id == OrderTest.order_id)
            .join(Sample, Sample.id == OrderTest.sample_id)
            .join(CatalogTest, CatalogTest.id == OrderTest.test_id)
            .where(
                OrderTest.organisation_id == caller.organisation_id,
                OrderTest.status.in_(list(OPEN_TEST_STATES)),
                Sample.received_at.is_not(None),
                due < now,
                self._within_reach(caller, Order.id),
            )
            .order_by(_priority_rank(), due, Order.order_number)
        )
        rows, total = await _paginate_rows(session, statement, page)
        return [
            TatBreach(
                **row._mapping,
                minutes_overdue=int((now - row.due_at).total_seconds() // 60),
            )
            for row in rows
        ], total

    # --- reports ---------------------------------------------------------------------------

    async def report_lines(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> list[ReportLine]:
        """The order's verified current results as a report prints them (report order)."""
        rows = (
            await session.execute(
                select(Result, CatalogTest)
                .join(CatalogTest, CatalogTest.id == Result.test_id)
                .where(
                    Result.organisation_id == organisation_id,
                    Result.order_id == order_id,
                    Result.is_current.is_(True),
                    Result.status == ResultStatus.VERIFIED,
                )
                .order_by(CatalogTest.department, CatalogTest.sort_order, CatalogTest.code)
            )
        ).all()
        results = [row[0] for row in rows]
        verifications = await self.verifications_for(
            session, organisation_id, [r.id for r in results]
        )
        user_ids = {r.entered_by_id for r in results if r.entered_by_id} | {
            v.user_id for rows_ in verifications.values() for v in rows_
        }
        users = await _users(session, organisation_id, user_ids)

        def signatory(user_id: uuid.UUID | None, at: datetime | None) -> Signatory | None:
            user = users.get(user_id) if user_id else None
            if user is None:
                return None
            return Signatory(
                user.id,
                user.full_name,
                user.qualification,
                at,
                registration_number=user.registration_number,
                signature_key=user.signature_key,
            )

        lines = []
        for result, test in rows:
            verified_by = (
                Signatory(AUTOVERIFIER_ID, "Autoverified by Nidaan", None, result.verified_at)
                if result.autoverified
                else signatory(result.verified_by_id, result.verified_at)
            )
            signed = tuple(
                s
                for s in (signatory(v.user_id, v.verified_at) for v in verifications[result.id])
                if s is not None
            )
            lines.append(
                ReportLine(
                    result_id=result.id,
                    order_test_id=result.order_test_id,
                    sample_id=result.sample_id,
                    test_id=test.id,
                    test_code=test.code,
                    test_name=test.name,
                    loinc=test.loinc,
                    department=test.department,
                    method=test.method,
                    accredited=test.accredited,
                    sort_order=test.sort_order,
                    result_type=test.result_type,
                    value=result.value_text or "",
                    value_numeric=result.value_numeric,
                    unit=result.unit,
                    reference_text=result.reference_text,
                    flag=result.flag,
                    comment=result.comment,
                    entered_by=signatory(result.entered_by_id, result.entered_at),
                    verified_by=verified_by,
                    verifiers=signed,
                    verified_at=result.verified_at,
                    result_version=result.result_version,
                    corrected=result.result_version > 1,
                    correction_reason=result.correction_reason,
                    reference_low=result.reference_low,
                    reference_high=result.reference_high,
                    value_code=result.value_code,
                    referral_lab=test.referral_lab,
                )
            )
        return lines


def _priority_rank() -> Any:
    return case(
        (Order.priority == Priority.STAT, 0),
        (Order.priority == Priority.URGENT, 1),
        else_=2,
    )


async def _paginate_rows(
    session: AsyncSession, statement: Select[Any], page: PageParams
) -> tuple[Sequence[Any], int]:
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    rows = (
        await session.execute(statement.limit(page.limit).offset((page.page - 1) * page.limit))
    ).all()
    return rows, int(total or 0)


async def _users(
    session: AsyncSession, organisation_id: uuid.UUID, ids: set[uuid.UUID]
) -> dict[uuid.UUID, User]:
    if not ids:
        return {}
    rows = await session.scalars(
        select(User).where(User.organisation_id == organisation_id, User.id.in_(ids))
    )
    return {user.id: user for user in rows}


results_service = ResultsService()
