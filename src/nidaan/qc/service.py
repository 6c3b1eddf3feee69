"""Quality control use cases: materials and lots, recording control results (from analyzers
and by hand) with z-scores and Westgard rules, corrective actions, and release blocking.

Release blocking goes through ``results.gates``: while the latest QC of an instrument and
analyte is in rejection, a gate ``qc`` keeps patient results of that instrument and analyte
entered since the last passing run from being verified (by a person: 409; by the system:
never). The gate is lifted once a run passes after the rejection and every rejection has
been answered with a corrective action; if the analyte (or an answering action) requires
re-runs, the results the gate blocked are then held for a re-run instead.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.catalog import domain as catalog_domain
from nidaan.catalog.models import CatalogTest
from nidaan.catalog.service import catalog_service
from nidaan.events.service import publish
from nidaan.integration.models import Instrument
from nidaan.integration.service import integration_service
from nidaan.kit.errors import InvalidInput, NidaanError, NotFound
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.time import utcnow
from nidaan.qc import domain
from nidaan.qc.enums import (
    RESETTING_ACTIONS,
    LotState,
    ResultOutcome,
    ResultSource,
    RunOutcome,
    TargetSource,
)
from nidaan.qc.errors import (
    ControlIdTaken,
    InvalidTarget,
    LotExpired,
    LotNotLive,
    MaterialExists,
    NothingToAnswer,
)
from nidaan.qc.events import QcRunRejected
from nidaan.qc.models import (
    QcCorrectiveAction,
    QcLot,
    QcMaterial,
    QcResult,
    QcRuleSetting,
    QcRun,
    QcUnmatched,
    QcViolation,
)
from nidaan.qc.schemas import CorrectiveActionIn, LotCreate, MaterialCreate, RuleSettingsIn
from nidaan.results.gates import Gate, verification_gates
from nidaan.results.models import Result
from nidaan.results.service import results_service, system_principal

__all__ = ["GATE_HOLDER", "qc_service"]

#: The name of quality control's gate on results (``results.gates``).
GATE_HOLDER = "qc"
#: Results entered before any passing run are blocked from this time on.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
#: Points of the analyte looked back at (10x needs ten; the run's other levels come along).
HISTORY = 60
QC_ACTOR_LABEL = "quality control"


def qc_actor() -> AuditActor:
    return AuditActor("system", None, QC_ACTOR_LABEL)


def _lock_key(instrument_id: uuid.UUID, test_id: uuid.UUID) -> int:
    digest = hashlib.blake2b(f"qc:{instrument_id}:{test_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def normalize_control_id(text: str) -> str:
    return text.strip().upper()


def _lot_snapshot(lot: QcLot) -> dict[str, Any]:
    return {
        name: getattr(lot, name)
        for name in (
            "material_id",
            "lot_number",
            "expires_on",
            "instrument_id",
            "test_id",
            "control_id",
            "target_source",
            "mean",
            "sd",
            "establish_runs",
            "state",
        )
    }


@dataclass(frozen=True)
class RuleSettings:
    test_id: uuid.UUID
    rules: dict[str, str]
    require_rerun: bool
    run_window_minutes: int


@dataclass(frozen=True)
class Recorded:
    result: QcResult
    run: QcRun
    violations: list[QcViolation]


@dataclass(frozen=True)
class Answered:
    action: QcCorrectiveAction
    violations: list[uuid.UUID]
    released: bool


@dataclass(frozen=True)
class Status:
    instrument_id: uuid.UUID
    test_id: uuid.UUID
    in_rejection: bool
    blocked_since: datetime | None
    reason: str | None
    open_violations: int
    last_run_at: datetime | None
    last_run_outcome: str | None
    live_lots: int


class QcService:
    # --- materials ---------------------------------------------------------------------

    async def create_material(
        self, session: AsyncSession, caller: Principal, data: MaterialCreate
    ) -> QcMaterial:
        material = QcMaterial(
            id=new_id(),
            organisation_id=caller.organisation_id,
            name=data.name.strip(),
            manufacturer=(data.manufacturer or "").strip() or None,
            level=data.level.strip(),
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        try:
            async with session.begin_nested():
                session.add(material)
                await session.flush()
        except IntegrityError:
            raise MaterialExists(
                f"{material.name} level {material.level} is already a control material.",
            ) from None
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="qc.material_created",
            entity_type="qc_material",
            entity_id=material.id,
            after={
                "name": material.name,
                "manufacturer": material.manufacturer,
                "level": material.level,
            },
        )
        return material

    async def list_materials(
        self, session: AsyncSession, caller: Principal, page: PageParams
    ) -> tuple[list[QcMaterial], int]:
        statement = (
            select(QcMaterial)
            .where(QcMaterial.organisation_id == caller.organisation_id)
            .order_by(QcMaterial.name, QcMaterial.level)
        )
        return await paginate(session, statement, page)

    async def _material(
        self, session: AsyncSession, organisation_id: uuid.UUID, material_id: uuid.UUID
    ) -> QcMaterial:
        material = await session.scalar(
            select(QcMaterial).where(
                QcMaterial.id == material_id, QcMaterial.organisation_id == organisation_id
            )
        )
        if material is None:
            raise NotFound("No such control material in your organisation.", entity="qc_material")
        return material

    # --- lots --------------------------------------------------------------------------

    async def create_lot(self, session: AsyncSession, caller: Principal, data: LotCreate) -> QcLot:
        """A lot of a material for one analyte on one instrument; active at once with the
        manufacturer's mean and SD, else establishing its own from the first N results."""
        await self._material(session, caller.organisation_id, data.material_id)
        await integration_service.get_instrument(session, caller, data.instrument_id)
        test = await catalog_service.get_test(session, caller, data.test_id)
        if data.expires_on < utcnow().date():
            raise LotExpired(f"Lot {data.lot_number} expired on {data.expires_on}.")
        manufacturer = data.target_source == TargetSource.MANUFACTURER
        if manufacturer and (data.mean is None or data.sd is None):
            raise InvalidTarget(
                "Manufacturer targets need the mean and SD from the insert.", field="mean"
            )
        if not manufacturer and (data.mean is not None or data.sd is not None):
            raise InvalidTarget(
                "An established target is computed from the lab's own results; leave mean "
                "and SD empty.",
                field="mean",
            )
        now = utcnow()
        lot = QcLot(
            id=new_id(),
            organisation_id=caller.organisation_id,
            material_id=data.material_id,
            lot_number=data.lot_number.strip(),
            expires_on=data.expires_on,
            instrument_id=data.instrument_id,
            test_id=test.id,
            control_id=normalize_control_id(data.control_id),
            target_source=data.target_source,
            mean=data.mean,
            sd=data.sd,
            establish_runs=data.establish_runs,
            state=LotState.ACTIVE if manufacturer else LotState.ESTABLISHING,
            activated_at=now if manufacturer else None,
        )
        try:
            async with session.begin_nested():
                session.add(lot)
                await session.flush()
        except IntegrityError:
            raise ControlIdTaken(
                f"Control id {lot.control_id} already names a lot of {test.code} in use on "
                "this instrument; expire that lot first or use another id.",
                control_id=lot.control_id,
            ) from None
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="qc.lot_created",
            entity_type="qc_lot",
            entity_id=lot.id,
            after=_lot_snapshot(lot),
        )
        return lot

    async def get_lot(self, session: AsyncSession, caller: Principal, lot_id: uuid.UUID) -> QcLot:
        lot = await self._lot(session, caller.organisation_id, lot_id)
        await _require_instrument_reach(session, caller, lot.instrument_id)
        return lot

    async def _lot(
        self, session: AsyncSession, organisation_id: uuid.UUID, lot_id: uuid.UUID
    ) -> QcLot:
        lot = await session.scalar(
            select(QcLot).where(QcLot.id == lot_id, QcLot.organisation_id == organisation_id)
        )
        if lot is None:
            raise NotFound("No such control lot in your organisation.", entity="qc_lot")
        return lot

    async def list_lots(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        instrument_id: uuid.UUID | None = None,
        test_id: uuid.UUID | None = None,
        state: LotState | None = None,
    ) -> tuple[list[QcLot], int]:
        statement = select(QcLot).where(
            QcLot.organisation_id == caller.organisation_id,
            *instruments_reached(caller, QcLot.instrument_id),
        )
        if instrument_id is not None:
            statement = statement.where(QcLot.instrument_id == instrument_id)
        if test_id is not None:
            statement = statement.where(QcLot.test_id == test_id)
        if state is not None:
            statement = statement.where(QcLot.state == state)
        return await paginate(session, statement.order_by(QcLot.created_at, QcLot.id), page)

    async def expire_lot(
        self, session: AsyncSession, caller: Principal, lot_id: uuid.UUID
    ) -> QcLot:
        """Take a lot out of use (expired): its results stay, new ones are refused."""
        lot = await self.get_lot(session, caller, lot_id)
        if lot.state == LotState.EXPIRED:
            return lot
        await self._expire(session, lot, caller.actor)
        await self._update_runs_and_gate(
            session, lot.organisation_id, lot.instrument_id, lot.test_id, caller.actor
        )
        return lot

    async def _expire(self, session: AsyncSession, lot: QcLot, actor: AuditActor) -> None:
        before = _lot_snapshot(lot)
        lot.state = LotState.EXPIRED
        lot.expired_at = utcnow()
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=lot.organisation_id,
            actor=actor,
            action="qc.lot_expired",
            entity_type="qc_lot",
            entity_id=lot.id,
            before=before,
            after=_lot_snapshot(lot),
        )

    async def expire_due_lots(self, session: AsyncSession, today: date | None = None) -> int:
        """Expire every lot past its expiry date (the daily job); how many."""
        today = today or utcnow().date()
        lots = list(
            await session.scalars(
                select(QcLot).where(QcLot.state != LotState.EXPIRED, QcLot.expires_on < today)
            )
        )
        for lot in lots:
            await self._expire(session, lot, qc_actor())
        return len(lots)

    async def _live_lots(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test_id: uuid.UUID,
        *,
        state: LotState | None = LotState.ACTIVE,
    ) -> list[QcLot]:
        statement = select(QcLot).where(
            QcLot.organisation_id == organisation_id,
            QcLot.instrument_id == instrument_id,
            QcLot.test_id == test_id,
            QcLot.state != LotState.EXPIRED,
        )
        if state is not None:
            statement = statement.where(QcLot.state == state)
        return list(await session.scalars(statement.order_by(QcLot.created_at)))

    # --- rule settings -----------------------------------------------------------------

    async def rule_settings(
        self, session: AsyncSession, organisation_id: uuid.UUID, test_id: uuid.UUID
    ) -> RuleSettings:
        row = await session.scalar(
            select(QcRuleSetting).where(
                QcRuleSetting.organisation_id == organisation_id, QcRuleSetting.test_id == test_id
            )
        )
        if row is None:
            return RuleSettings(test_id, dict(domain.DEFAULT_RULES), False, 60)
        return RuleSettings(
            test_id,
            {**domain.DEFAULT_RULES, **row.rules},
            row.require_rerun,
            row.run_window_minutes,
        )

    async def get_rules(
        self, session: AsyncSession, caller: Principal, test_id: uuid.UUID
    ) -> RuleSettings:
        await catalog_service.get_test(session, caller, test_id)
        return await self.rule_settings(session, caller.organisation_id, test_id)

    async def put_rules(
        self, session: AsyncSession, caller: Principal, test_id: uuid.UUID, data: RuleSettingsIn
    ) -> RuleSettings:
        """Switch rules per analyte (off / warning / reject) and set its re-run policy."""
        await catalog_service.get_test(session, caller, test_id)
        before = await self.rule_settings(session, caller.organisation_id, test_id)
        row = await session.scalar(
            select(QcRuleSetting).where(
                QcRuleSetting.organisation_id == caller.organisation_id,
                QcRuleSetting.test_id == test_id,
            )
        )
        rules = {**domain.DEFAULT_RULES, **{str(k): str(v) for k, v in data.rules.items()}}
        if row is None:
            row = QcRuleSetting(
                id=new_id(), organisation_id=caller.organisation_id, test_id=test_id, rules=rules
            )
            session.add(row)
        row.rules = rules
        row.require_rerun = data.require_rerun
        row.run_window_minutes = data.run_window_minutes
        await session.flush()
        after = await self.rule_settings(session, caller.organisation_id, test_id)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="qc.rules_changed",
            entity_type="catalog_test",
            entity_id=test_id,
            before=before.__dict__,
            after=after.__dict__,
        )
        return after

    # --- recording results -------------------------------------------------------------

    async def record_manual(
        self,
        session: AsyncSession,
        caller: Principal,
        lot_id: uuid.UUID,
        value: Decimal,
        measured_at: datetime | None,
        comment: str | None = None,
    ) -> Recorded:
        """A control result entered by hand (its run time defaults to now)."""
        lot = await self.get_lot(session, caller, lot_id)
        now = utcnow()
        if measured_at is not None and measured_at > now + timedelta(minutes=5):
            raise InvalidInput("measured_at is in the future.", field="measured_at")
        test = (await catalog_service.tests_by_ids(session, lot.organisation_id, [lot.test_id]))[
            lot.test_id
        ]
        return await self._record(
            session,
            lot,
            test,
            value,
            unit=test.unit,
            measured_at=measured_at or now,
            source=ResultSource.MANUAL,
            actor=caller.actor,
            entered_by_id=caller.id if caller.kind == "user" else None,
            raw={"comment": comment} if comment else None,
        )

    async def record_from_instrument(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        message_id: uuid.UUID,
        received_at: datetime,
        controls: Sequence[dict[str, Any]],
    ) -> tuple[list[Recorded], list[QcUnmatched]]:
        """The control results of one analyzer message: each recorded against the live lot
        its control id names, or kept as unmatched with the reason (nothing is dropped).
        Runs are timed by receipt, the clock patient results are entered by."""
        instrument = await session.scalar(
            select(Instrument).where(
                Instrument.id == instrument_id, Instrument.organisation_id == organisation_id
            )
        )
        if instrument is None:
            return [], []
        tests = await catalog_service.tests_by_ids(
            session,
            organisation_id,
            {uuid.UUID(c["test_id"]) for c in controls if c.get("test_id")},
        )
        recorded: list[Recorded] = []
        unmatched: list[QcUnmatched] = []
        for item in controls:
            control_id = normalize_control_id(str(item.get("control_id") or ""))
            test = tests.get(uuid.UUID(item["test_id"])) if item.get("test_id") else None
            try:
                if test is None:
                    raise _Unmatched(
                        f"code {item.get('instrument_code')!r} is not in this instrument's test map"
                    )
                lot = await self._lot_for_control(
                    session, organisation_id, instrument_id, test, control_id, item.get("lot")
                )
                value = _control_value(test, str(item.get("value") or ""), item.get("unit"))
                recorded.append(
                    await self._record_or_unmatched(
                        session,
                        lot,
                        test,
                        value,
                        unit=test.unit,
                        measured_at=received_at,
                        source=ResultSource.INSTRUMENT,
                        actor=AuditActor(
                            "instrument", instrument.id, f"instrument:{instrument.name}"
                        ),
                        message_id=message_id,
                        raw={
                            k: item.get(k)
                            for k in (
                                "value",
                                "unit",
                                "flags",
                                "status",
                                "completed_at",
                                "lot",
                                "segment",
                            )
                        },
                    )
                )
            except _Unmatched as why:
                row = QcUnmatched(
                    id=new_id(),
                    organisation_id=organisation_id,
                    instrument_id=instrument_id,
                    message_id=message_id,
                    control_id=control_id[:64] or "?",
                    instrument_code=str(item.get("instrument_code") or "")[:64],
                    test_id=test.id if test is not None else None,
                    value=str(item.get("value") or "")[:200],
                    unit=(str(item["unit"])[:32] if item.get("unit") else None),
                    measured_at=received_at,
                    reason=str(why)[:300],
                    created_at=utcnow(),
                )
                session.add(row)
                await session.flush()
                unmatched.append(row)
        return recorded, unmatched

    async def _record_or_unmatched(
        self, session: AsyncSession, *args: Any, **kwargs: Any
    ) -> Recorded:
        try:
            return await self._record(session, *args, **kwargs)
        except NidaanError as error:
            raise _Unmatched(error.detail) from None

    async def _lot_for_control(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test: CatalogTest,
        control_id: str,
        lot_number: str | None,
    ) -> QcLot:
        lots = [
            lot
            for lot in await self._live_lots(
                session, organisation_id, instrument_id, test.id, state=None
            )
            if lot.control_id == control_id
        ]
        if not lots:
            raise _Unmatched(f"no control lot in use for {test.code} with control id {control_id}")
        lot = lots[0]
        if lot_number and lot_number.strip() and lot.lot_number != lot_number.strip():
            raise _Unmatched(
                f"the analyzer ran control lot {lot_number.strip()}, but control id "
                f"{control_id} is lot {lot.lot_number} here"
            )
        if lot.expires_on < utcnow().date():
            await self._expire(session, lot, qc_actor())
            raise _Unmatched(f"control lot {lot.lot_number} expired on {lot.expires_on}")
        return lot

    async def _record(
        self,
        session: AsyncSession,
        lot: QcLot,
        test: CatalogTest,
        value: Decimal,
        *,
        unit: str | None,
        measured_at: datetime,
        source: ResultSource,
        actor: AuditActor,
        entered_by_id: uuid.UUID | None = None,
        message_id: uuid.UUID | None = None,
        raw: dict[str, Any] | None = None,
    ) -> Recorded:
        org = lot.organisation_id
        await session.execute(
            select(func.pg_advisory_xact_lock(_lock_key(lot.instrument_id, lot.test_id)))
        )
        await session.refresh(lot)
        if lot.state == LotState.EXPIRED:
            raise LotNotLive(f"Lot {lot.lot_number} is expired; it takes no more results.")
        if lot.expires_on < measured_at.date():
            raise LotExpired(f"Lot {lot.lot_number} expired on {lot.expires_on}.")
        settings = await self.rule_settings(session, org, lot.test_id)
        run = await self._run_for(session, lot, measured_at, settings.run_window_minutes)
        result = QcResult(
            id=new_id(),
            organisation_id=org,
            run_id=run.id,
            lot_id=lot.id,
            instrument_id=lot.instrument_id,
            test_id=lot.test_id,
            value=value,
            unit=unit,
            measured_at=measured_at,
            source=source,
            message_id=message_id,
            entered_by_id=entered_by_id,
            outcome=ResultOutcome.ESTABLISHING,
            raw=raw,
            created_at=utcnow(),
        )
        violations: list[QcViolation] = []
        if lot.state == LotState.ESTABLISHING:
            session.add(result)
            await session.flush()
            await self._maybe_establish(session, lot, actor)
        else:
            assert lot.mean is not None
            assert lot.sd is not None
            result.z = domain.z_score(value, lot.mean, lot.sd)
            history = await self._history(session, lot, measured_at, run.id)
            point = domain.Point(result.id, lot.id, run.id, float(result.z))
            found = domain.evaluate(history, point, settings.rules)
            result.outcome = _outcome(found)
            session.add(result)
            await session.flush()
            for violation in found:
                row = QcViolation(
                    id=new_id(),
                    organisation_id=org,
                    qc_result_id=result.id,
                    run_id=run.id,
                    lot_id=lot.id,
                    instrument_id=lot.instrument_id,
                    test_id=lot.test_id,
                    rule=violation.rule,
                    severity=violation.severity,
                    scope=violation.scope,
                    detail=violation.detail[:300],
                    z_values=[round(p.z, 4) for p in violation.points],
                    created_at=utcnow(),
                )
                session.add(row)
                violations.append(row)
            await session.flush()
        await audit_service.record(
            session,
            organisation_id=org,
            actor=actor,
            action="qc.result_recorded",
            entity_type="qc_result",
            entity_id=result.id,
            after={
                "lot_id": lot.id,
                "instrument_id": lot.instrument_id,
                "test_id": lot.test_id,
                "value": value,
                "z": result.z,
                "outcome": result.outcome,
                "violations": [f"{v.rule}:{v.severity}" for v in violations],
            },
        )
        await self._update_runs_and_gate(
            session, org, lot.instrument_id, lot.test_id, actor, test=test
        )
        await session.refresh(run)
        return Recorded(result, run, violations)

    async def _run_for(
        self, session: AsyncSession, lot: QcLot, measured_at: datetime, window_minutes: int
    ) -> QcRun:
        """The run this result belongs to: the latest run of the instrument and analyte that
        started within the window before it and has no result of this lot yet; else a new
        run."""
        window = timedelta(minutes=window_minutes)
        run = await session.scalar(
            select(QcRun)
            .where(
                QcRun.organisation_id == lot.organisation_id,
                QcRun.instrument_id == lot.instrument_id,
                QcRun.test_id == lot.test_id,
                QcRun.started_at <= measured_at,
                QcRun.started_at > measured_at - window,
            )
            .order_by(QcRun.started_at.desc(), QcRun.id.desc())
            .limit(1)
        )
        if run is not None:
            taken = await session.scalar(
                select(QcResult.id)
                .where(QcResult.run_id == run.id, QcResult.lot_id == lot.id)
                .limit(1)
            )
            if taken is None:
                return run
        run = QcRun(
            id=new_id(),
            organisation_id=lot.organisation_id,
            instrument_id=lot.instrument_id,
            test_id=lot.test_id,
            started_at=measured_at,
            outcome=RunOutcome.PENDING,
        )
        session.add(run)
        await session.flush()
        return run

    async def _history(
        self, session: AsyncSession, lot: QcLot, before: datetime, run_id: uuid.UUID
    ) -> list[domain.Point]:
        """Judged points of the analyte on this instrument before ``before``, oldest first:
        every live lot, after the last resetting corrective action, leaving out the points of
        rejected runs (other than this one)."""
        reset_at = await session.scalar(
            select(func.max(QcCorrectiveAction.performed_at)).where(
                QcCorrectiveAction.organisation_id == lot.organisation_id,
                QcCorrectiveAction.instrument_id == lot.instrument_id,
                QcCorrectiveAction.test_id == lot.test_id,
                QcCorrectiveAction.action.in_([str(a) for a in RESETTING_ACTIONS]),
            )
        )
        statement = (
            select(QcResult.id, QcResult.lot_id, QcResult.run_id, QcResult.z)
            .join(QcRun, QcRun.id == QcResult.run_id)
            .join(QcLot, QcLot.id == QcResult.lot_id)
            .where(
                QcResult.organisation_id == lot.organisation_id,
                QcResult.instrument_id == lot.instrument_id,
                QcResult.test_id == lot.test_id,
                QcResult.z.is_not(None),
                QcResult.outcome != ResultOutcome.ESTABLISHING,
                QcResult.measured_at <= before,
                QcLot.state == LotState.ACTIVE,
                (QcRun.outcome != RunOutcome.REJECTED) | (QcRun.id == run_id),
            )
            .order_by(QcResult.measured_at.desc(), QcResult.created_at.desc(), QcResult.id.desc())
            .limit(HISTORY)
        )
        if reset_at is not None:
            statement = statement.where(QcResult.measured_at > reset_at)
        rows = list(await session.execute(statement))
        return [domain.Point(r.id, r.lot_id, r.run_id, float(r.z)) for r in reversed(rows)]

    async def _maybe_establish(self, session: AsyncSession, lot: QcLot, actor: AuditActor) -> None:
        """After the lot's first N results: its own mean and SD, and it becomes active."""
        rows = list(
            await session.scalars(
                select(QcResult)
                .where(QcResult.lot_id == lot.id)
                .order_by(QcResult.measured_at, QcResult.created_at)
            )
        )
        if len(rows) < lot.establish_runs:
            return
        figures = domain.stats([r.value for r in rows[: lot.establish_runs]])
        if figures.sd is None or figures.sd <= 0 or figures.mean is None:
            return  # identical values: no spread to judge by yet; keep collecting
        before = _lot_snapshot(lot)
        lot.mean, lot.sd = figures.mean, figures.sd
        lot.state = LotState.ACTIVE
        lot.activated_at = utcnow()
        for row in rows:
            row.z = domain.z_score(row.value, figures.mean, figures.sd)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=lot.organisation_id,
            actor=actor,
            action="qc.lot_established",
            entity_type="qc_lot",
            entity_id=lot.id,
            before=before,
            after=_lot_snapshot(lot),
        )

    # --- runs and the gate -------------------------------------------------------------

    async def _update_runs_and_gate(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test_id: uuid.UUID,
        actor: AuditActor,
        *,
        test: CatalogTest | None = None,
    ) -> bool:
        """Recompute the outcome of open runs, then place or lift the gate; True when the
        instrument and analyte are out of rejection."""
        live = {
            lot.id
            for lot in await self._live_lots(session, organisation_id, instrument_id, test_id)
        }
        runs = list(
            await session.scalars(
                select(QcRun)
                .where(
                    QcRun.organisation_id == organisation_id,
                    QcRun.instrument_id == instrument_id,
                    QcRun.test_id == test_id,
                    QcRun.outcome == RunOutcome.PENDING,
                )
                .order_by(QcRun.started_at)
            )
        )
        runs += list(
            await session.scalars(
                select(QcRun)
                .where(
                    QcRun.organisation_id == organisation_id,
                    QcRun.instrument_id == instrument_id,
                    QcRun.test_id == test_id,
                    QcRun.outcome != RunOutcome.PENDING,
                )
                .order_by(QcRun.started_at.desc())
                .limit(1)
            )
        )
        for run in runs:
            results = list(await session.scalars(select(QcResult).where(QcResult.run_id == run.id)))
            outcomes = {r.outcome for r in results}
            measured = {r.lot_id for r in results}
            if ResultOutcome.REJECTED in outcomes:
                outcome = RunOutcome.REJECTED
            elif live and live <= measured:
                outcome = (
                    RunOutcome.WARNING if ResultOutcome.WARNING in outcomes else RunOutcome.PASSED
                )
            else:
                outcome = RunOutcome.PENDING
            if outcome != run.outcome:
                run.outcome = outcome
                if outcome == RunOutcome.REJECTED:
                    await publish(
                        session,
                        QcRunRejected(
                            organisation_id=organisation_id,
                            run_id=run.id,
                            instrument_id=instrument_id,
                            test_id=test_id,
                        ),
                    )
        await session.flush()
        return await self._reconcile_gate(
            session, organisation_id, instrument_id, test_id, actor, test=test
        )

    async def _reconcile_gate(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test_id: uuid.UUID,
        actor: AuditActor,
        *,
        test: CatalogTest | None = None,
    ) -> bool:
        runs = _RunQueries(organisation_id, instrument_id, test_id)
        last_rejected = await session.scalar(runs.latest(RunOutcome.REJECTED))
        open_rejects = list(
            await session.scalars(
                select(QcViolation)
                .where(
                    QcViolation.organisation_id == organisation_id,
                    QcViolation.instrument_id == instrument_id,
                    QcViolation.test_id == test_id,
                    QcViolation.severity == domain.Severity.REJECT,
                    QcViolation.corrective_action_id.is_(None),
                )
                .order_by(QcViolation.created_at.desc())
            )
        )
        passing_after = None
        if last_rejected is not None:
            passing_after = await session.scalar(
                runs.latest(RunOutcome.PASSED, RunOutcome.WARNING).where(
                    QcRun.started_at > last_rejected.started_at
                )
            )
        if last_rejected is None or (passing_after is not None and not open_rejects):
            gate = await verification_gates.lift(
                session, organisation_id, instrument_id, test_id, holder=GATE_HOLDER, actor=actor
            )
            if gate is not None:
                until = passing_after.started_at if passing_after is not None else utcnow()
                await self._hold_for_rerun(session, organisation_id, gate, until)
            return True
        violation = (
            open_rejects[0]
            if open_rejects
            else await session.scalar(
                select(QcViolation)
                .where(
                    QcViolation.run_id == last_rejected.id,
                    QcViolation.severity == domain.Severity.REJECT,
                )
                .order_by(QcViolation.created_at.desc())
                .limit(1)
            )
        )
        passed_before = await session.scalar(
            runs.latest(RunOutcome.PASSED, RunOutcome.WARNING).where(
                QcRun.started_at < last_rejected.started_at
            )
        )
        await verification_gates.block(
            session,
            organisation_id,
            instrument_id,
            test_id,
            holder=GATE_HOLDER,
            reason=await self._describe(session, violation, test, waiting=not open_rejects),
            since=passed_before.started_at if passed_before is not None else BEGINNING,
            details={
                "qc_violation_id": str(violation.id) if violation else None,
                "qc_rule": violation.rule if violation else None,
                "qc_run_id": str(last_rejected.id),
            },
            actor=actor,
        )
        return False

    async def _describe(
        self,
        session: AsyncSession,
        violation: QcViolation | None,
        test: CatalogTest | None,
        *,
        waiting: bool,
    ) -> str:
        """The gate's reason: the violation by rule, analyte, control and time."""
        if violation is None:
            return "QC rejected; waiting for a passing run"
        if test is None or test.id != violation.test_id:
            test = (
                await catalog_service.tests_by_ids(
                    session, violation.organisation_id, [violation.test_id]
                )
            )[violation.test_id]
        lot = await self._lot(session, violation.organisation_id, violation.lot_id)
        material = await self._material(session, violation.organisation_id, lot.material_id)
        when = violation.created_at or utcnow()
        text = (
            f"QC {violation.rule} rejection on {test.code} ({material.name} level "
            f"{material.level}, lot {lot.lot_number}) at {when:%Y-%m-%d %H:%M} UTC: "
            f"{violation.detail}"
        )
        suffix = (
            "; waiting for a passing run"
            if waiting
            else "; needs a corrective action and a passing run"
        )
        return (text + suffix)[:300]

    async def _hold_for_rerun(
        self, session: AsyncSession, organisation_id: uuid.UUID, gate: Gate, until: datetime
    ) -> int:
        """If a re-run is required, hold the unverified results the lifted gate blocked."""
        settings = await self.rule_settings(session, organisation_id, gate.test_id)
        asked = await session.scalar(
            select(QcCorrectiveAction.id)
            .where(
                QcCorrectiveAction.organisation_id == organisation_id,
                QcCorrectiveAction.instrument_id == gate.instrument_id,
                QcCorrectiveAction.test_id == gate.test_id,
                QcCorrectiveAction.performed_at >= gate.created_at,
                QcCorrectiveAction.require_rerun.is_(True),
            )
            .limit(1)
        )
        if not settings.require_rerun and asked is None:
            return 0
        caller = system_principal(organisation_id, QC_ACTOR_LABEL)
        results = await results_service.unverified_of_instrument(
            session,
            organisation_id,
            gate.instrument_id,
            gate.test_id,
            entered_from=gate.since,
            entered_before=until,
        )
        reason = f"Re-run required: {gate.reason}"[:300]
        for result in results:
            await results_service.hold(session, caller, result.id, reason)
        return len(results)

    # --- corrective actions ------------------------------------------------------------

    async def answer(
        self,
        session: AsyncSession,
        caller: Principal,
        violation_id: uuid.UUID,
        data: CorrectiveActionIn,
    ) -> Answered:
        """Answer a violation (and every open one of the same instrument and analyte, one
        incident) with a corrective action; the gate lifts if a run has passed since."""
        violation = await self._violation(session, caller.organisation_id, violation_id)
        await _require_instrument_reach(session, caller, violation.instrument_id)
        if violation.corrective_action_id is not None:
            raise NothingToAnswer(
                "This violation was already answered.",
                corrective_action_id=str(violation.corrective_action_id),
            )
        await session.execute(
            select(
                func.pg_advisory_xact_lock(_lock_key(violation.instrument_id, violation.test_id))
            )
        )
        action = QcCorrectiveAction(
            id=new_id(),
            organisation_id=caller.organisation_id,
            instrument_id=violation.instrument_id,
            test_id=violation.test_id,
            action=data.action,
            note=data.note.strip(),
            require_rerun=data.require_rerun,
            performed_by_id=caller.id,
            performed_at=utcnow(),
        )
        session.add(action)
        await session.flush()
        open_ones = list(
            await session.scalars(
                select(QcViolation).where(
                    QcViolation.organisation_id == caller.organisation_id,
                    QcViolation.instrument_id == violation.instrument_id,
                    QcViolation.test_id == violation.test_id,
                    QcViolation.corrective_action_id.is_(None),
                )
            )
        )
        for row in open_ones:
            row.corrective_action_id = action.id
        await session.flush()
        answered = sorted(row.id for row in open_ones)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="qc.corrective_action",
            entity_type="qc_violation",
            entity_id=violation.id,
            after={
                "action": data.action,
                "note": action.note,
                "require_rerun": data.require_rerun,
                "answered": answered,
            },
        )
        released = await self._reconcile_gate(
            session,
            caller.organisation_id,
            violation.instrument_id,
            violation.test_id,
            caller.actor,
        )
        return Answered(action, answered, released)

    # --- reads -------------------------------------------------------------------------

    async def _violation(
        self, session: AsyncSession, organisation_id: uuid.UUID, violation_id: uuid.UUID
    ) -> QcViolation:
        row = await session.scalar(
            select(QcViolation).where(
                QcViolation.id == violation_id, QcViolation.organisation_id == organisation_id
            )
        )
        if row is None:
            raise NotFound("No such QC violation in your organisation.", entity="qc_violation")
        return row

    async def get_violation(
        self, session: AsyncSession, caller: Principal, violation_id: uuid.UUID
    ) -> tuple[QcViolation, list[Result]]:
        """A violation with its look-back: patient results of the instrument and analyte
        verified since the last passing run before it."""
        violation = await self._violation(session, caller.organisation_id, violation_id)
        await _require_instrument_reach(session, caller, violation.instrument_id)
        run = await session.get(QcRun, violation.run_id)
        assert run is not None
        runs = _RunQueries(caller.organisation_id, violation.instrument_id, violation.test_id)
        passed_before = await session.scalar(
            runs.latest(RunOutcome.PASSED, RunOutcome.WARNING).where(
                QcRun.started_at < run.started_at
            )
        )
        look_back = await results_service.verified_of_instrument(
            session,
            caller.organisation_id,
            violation.instrument_id,
            violation.test_id,
            entered_from=passed_before.started_at if passed_before is not None else BEGINNING,
        )
        return violation, look_back

    async def list_violations(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        open_only: bool = False,
        instrument_id: uuid.UUID | None = None,
        test_id: uuid.UUID | None = None,
    ) -> tuple[list[QcViolation], int]:
        statement = select(QcViolation).where(
            QcViolation.organisation_id == caller.organisation_id,
            *instruments_reached(caller, QcViolation.instrument_id),
        )
        if open_only:
            statement = statement.where(QcViolation.corrective_action_id.is_(None))
        if instrument_id is not None:
            statement = statement.where(QcViolation.instrument_id == instrument_id)
        if test_id is not None:
            statement = statement.where(QcViolation.test_id == test_id)
        return await paginate(
            session, statement.order_by(QcViolation.created_at.desc(), QcViolation.id), page
        )

    async def violations_of(
        self, session: AsyncSession, organisation_id: uuid.UUID, result_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[QcViolation]]:
        found: dict[uuid.UUID, list[QcViolation]] = {i: [] for i in result_ids}
        if result_ids:
            for row in await session.scalars(
                select(QcViolation)
                .where(
                    QcViolation.organisation_id == organisation_id,
                    QcViolation.qc_result_id.in_(list(result_ids)),
                )
                .order_by(QcViolation.created_at, QcViolation.rule)
            ):
                found[row.qc_result_id].append(row)
        return found

    async def run_outcomes(
        self, session: AsyncSession, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        if not run_ids:
            return {}
        rows = await session.execute(
            select(QcRun.id, QcRun.outcome).where(QcRun.id.in_(list(run_ids)))
        )
        return {row.id: row.outcome for row in rows}

    def results_statement(
        self,
        organisation_id: uuid.UUID,
        *,
        lot_id: uuid.UUID | None = None,
        instrument_id: uuid.UUID | None = None,
        test_id: uuid.UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Select[tuple[QcResult]]:
        statement = select(QcResult).where(QcResult.organisation_id == organisation_id)
        if lot_id is not None:
            statement = statement.where(QcResult.lot_id == lot_id)
        if instrument_id is not None:
            statement = statement.where(QcResult.instrument_id == instrument_id)
        if test_id is not None:
            statement = statement.where(QcResult.test_id == test_id)
        if since is not None:
            statement = statement.where(QcResult.measured_at >= since)
        if until is not None:
            statement = statement.where(QcResult.measured_at < until)
        return statement

    async def list_results(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        **filters: Any,
    ) -> tuple[list[QcResult], int]:
        statement = self.results_statement(caller.organisation_id, **filters).where(
            *instruments_reached(caller, QcResult.instrument_id)
        )
        return await paginate(
            session, statement.order_by(QcResult.measured_at.desc(), QcResult.id), page
        )

    async def list_unmatched(
        self, session: AsyncSession, caller: Principal, page: PageParams
    ) -> tuple[list[QcUnmatched], int]:
        statement = (
            select(QcUnmatched)
            .where(
                QcUnmatched.organisation_id == caller.organisation_id,
                *instruments_reached(caller, QcUnmatched.instrument_id),
            )
            .order_by(QcUnmatched.created_at.desc(), QcUnmatched.id)
        )
        return await paginate(session, statement, page)

    async def last_passed(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        pairs: set[tuple[uuid.UUID, uuid.UUID]],
    ) -> dict[tuple[uuid.UUID, uuid.UUID], datetime]:
        """When a QC run of each (instrument, test) last passed (warnings count as passed)."""
        if not pairs:
            return {}
        rows = await session.execute(
            select(QcRun.instrument_id, QcRun.test_id, func.max(QcRun.started_at))
            .where(
                QcRun.organisation_id == organisation_id,
                QcRun.instrument_id.in_({i for i, _ in pairs}),
                QcRun.test_id.in_({t for _, t in pairs}),
                QcRun.outcome.in_([RunOutcome.PASSED, RunOutcome.WARNING]),
            )
            .group_by(QcRun.instrument_id, QcRun.test_id)
        )
        return {(i, t): at for i, t, at in rows if (i, t) in pairs}

    async def runs_between(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        since: datetime,
        until: datetime,
    ) -> list[QcRun]:
        """Judged runs (passed, warning, rejected) that started in a period, oldest first
        (what the autoverification simulation replays)."""
        return list(
            await session.scalars(
                select(QcRun)
                .where(
                    QcRun.organisation_id == organisation_id,
                    QcRun.started_at < until,
                    QcRun.started_at >= since - timedelta(days=7),
                    QcRun.outcome != RunOutcome.PENDING,
                )
                .order_by(QcRun.started_at)
            )
        )

    async def status(
        self,
        session: AsyncSession,
        caller: Principal,
        *,
        instrument_id: uuid.UUID | None = None,
        test_id: uuid.UUID | None = None,
    ) -> list[Status]:
        """Per instrument and analyte with live lots: in rejection or not, since when results
        are blocked and why, open violations and the last run."""
        org = caller.organisation_id
        statement = select(QcLot.instrument_id, QcLot.test_id, func.count()).where(
            QcLot.organisation_id == org,
            QcLot.state != LotState.EXPIRED,
            *instruments_reached(caller, QcLot.instrument_id),
        )
        if instrument_id is not None:
            statement = statement.where(QcLot.instrument_id == instrument_id)
        if test_id is not None:
            statement = statement.where(QcLot.test_id == test_id)
        pairs = list(await session.execute(statement.group_by(QcLot.instrument_id, QcLot.test_id)))
        gates = {
            (g.instrument_id, g.test_id): g
            for g in await verification_gates.gates(session, org, instrument_id=instrument_id)
            if g.holder == GATE_HOLDER
        }
        out = []
        for instrument, test, live in sorted(pairs, key=lambda p: (str(p[0]), str(p[1]))):
            last = await session.scalar(
                select(QcRun)
                .where(
                    QcRun.organisation_id == org,
                    QcRun.instrument_id == instrument,
                    QcRun.test_id == test,
                )
                .order_by(QcRun.started_at.desc())
                .limit(1)
            )
            open_count = await session.scalar(
                select(func.count()).where(
                    QcViolation.organisation_id == org,
                    QcViolation.instrument_id == instrument,
                    QcViolation.test_id == test,
                    QcViolation.corrective_action_id.is_(None),
                )
            )
            gate = gates.get((instrument, test))
            out.append(
                Status(
                    instrument,
                    test,
                    gate is not None,
                    gate.since if gate else None,
                    gate.reason if gate else None,
                    int(open_count or 0),
                    last.started_at if last else None,
                    last.outcome if last else None,
                    int(live),
                )
            )
        return out


class _Unmatched(Exception):
    """A control result no live lot can take (kept in ``qc_unmatched`` with the reason)."""


def _control_value(test: CatalogTest, text: str, unit: Any) -> Decimal:
    text = text.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Unmatched(f"value {text!r} is not a number") from None
    if not value.is_finite():
        raise _Unmatched(f"value {text!r} is not a number")
    try:
        return catalog_domain.convert_unit(test, value, str(unit) if unit else None)
    except NidaanError as error:
        raise _Unmatched(str(error)) from None


def _outcome(found: Sequence[domain.Violation]) -> ResultOutcome:
    severities = {v.severity for v in found}
    if domain.Severity.REJECT in severities:
        return ResultOutcome.REJECTED
    if domain.Severity.WARNING in severities:
        return ResultOutcome.WARNING
    return ResultOutcome.ACCEPTED


@dataclass(frozen=True)
class _RunQueries:
    organisation_id: uuid.UUID
    instrument_id: uuid.UUID
    test_id: uuid.UUID

    def latest(self, *outcomes: str) -> Select[tuple[QcRun]]:
        return (
            select(QcRun)
            .where(
                QcRun.organisation_id == self.organisation_id,
                QcRun.instrument_id == self.instrument_id,
                QcRun.test_id == self.test_id,
                QcRun.outcome.in_([str(o) for o in outcomes]),
            )
            .order_by(QcRun.started_at.desc(), QcRun.id.desc())
            .limit(1)
        )


qc_service = QcService()


# ---- branch limits: QC belongs to the instrument, and the instrument to its branch ----


def instruments_reached(caller: Principal, column: Any) -> list[Any]:
    """A filter keeping rows of instruments at the caller's branches (none if unlimited)."""
    if caller.branch_ids is None:
        return []
    return [
        column.in_(select(Instrument.id).where(Instrument.branch_id.in_(sorted(caller.branch_ids))))
    ]


async def _require_instrument_reach(
    session: AsyncSession, caller: Principal, instrument_id: uuid.UUID
) -> None:
    if caller.branch_ids is None:
        return
    branch_id = await session.scalar(
        select(Instrument.branch_id).where(Instrument.id == instrument_id)
    )
    caller.require_reach([branch_id], "QC record")
