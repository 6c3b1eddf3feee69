"""DPDP use cases: consent per purpose (messaging consent is the notifications module's own
record, so there is one answer to "may we message this patient"), rights requests with
their clock, erasure within legal retention, nominees, legal holds, retention runs, the
breach register, the access summary and the patient's data export."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.models import AbdmCareContext
from nidaan.audit.models import AccessLogEntry
from nidaan.audit.schemas import SYSTEM_ACTOR, AuditActor
from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.billing.models import Invoice
from nidaan.compliance import domain
from nidaan.compliance.domain import CHANNEL_OF, NOTICE_VERSION, NOTICES, RETENTION_BY_CLASS
from nidaan.compliance.enums import (
    BreachStatus,
    ConsentSource,
    DataClass,
    Purpose,
    RequestKind,
    RequestStatus,
)
from nidaan.compliance.errors import (
    BreachNotFound,
    InvalidCorrection,
    LegalHoldNotFound,
    PrivacyLinkInvalid,
    RequestClosed,
    RequestNotFound,
)
from nidaan.compliance.events import BreachRecorded, RightsRequestEscalated
from nidaan.compliance.models import (
    Breach,
    DpdpConsent,
    LegalHold,
    Nominee,
    PatientLink,
    RightsRequest,
)
from nidaan.events.service import publish
from nidaan.fhir import mappers as fhir_mappers
from nidaan.fhir.service import fhir_service, patient_facts
from nidaan.kit.errors import Conflict
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.kit.time import utcnow
from nidaan.notifications.enums import Channel
from nidaan.notifications.models import Notification, NotificationConsent
from nidaan.notifications.service import notifications_service
from nidaan.orders.models import Order
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientUpdate
from nidaan.patients.service import patients_service
from nidaan.reports.models import Report
from nidaan.reports.service import reports_service
from nidaan.tenancy.service import tenancy_service

#: How long a patient's privacy link works.
LINK_DAYS = 30

#: Fields an erasure request removes (contact details and health ids); identity and
#: clinical data stay under the medical-record retention (see ``domain.RETENTION``).
ERASABLE_FIELDS = ("mobile", "email", "address", "city", "pincode", "abha_number", "abha_address")


class LegalHoldActive(Conflict):
    code = "legal_hold_active"
    title = "The patient's records are under a legal hold"


@dataclass(frozen=True)
class ConsentState:
    purpose: Purpose
    title: str
    description: str
    granted: bool
    recorded: bool
    source: str | None
    notice_version: str | None
    notice_language: str | None
    granted_at: datetime | None
    withdrawn_at: datetime | None


def _actor(caller: Principal | None) -> AuditActor:
    return caller.actor if caller is not None else SYSTEM_ACTOR


def _user_id(caller: Principal | None) -> uuid.UUID | None:
    return caller.id if caller is not None and caller.kind == "user" else None


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mask_mobile(mobile: str | None) -> str | None:
    if not mobile:
        return None
    return f"{mobile[:3]}{'*' * max(0, len(mobile) - 7)}{mobile[-4:]}"


class ComplianceService:
    # ------------------------------------------------------------------ consent

    async def consents(
        self, session: AsyncSession, patient: Patient, language: str | None = None
    ) -> list[ConsentState]:
        """Every purpose with the patient's current answer, in the notice's language."""
        notice = NOTICES[domain.notice_language(language or patient.preferred_language)]
        own = {
            row.purpose: row
            for row in await session.scalars(
                select(DpdpConsent).where(
                    DpdpConsent.organisation_id == patient.organisation_id,
                    DpdpConsent.patient_id == patient.id,
                )
            )
        }
        channels = {
            row.channel: row
            for row in await session.scalars(
                select(NotificationConsent).where(
                    NotificationConsent.organisation_id == patient.organisation_id,
                    NotificationConsent.patient_id == patient.id,
                )
            )
        }
        states = []
        for purpose in Purpose:
            text = notice[purpose]
            if purpose in CHANNEL_OF:
                channel_row = channels.get(CHANNEL_OF[purpose])
                states.append(
                    ConsentState(
                        purpose,
                        text.title,
                        text.description,
                        granted=bool(channel_row and channel_row.opted_in),
                        recorded=channel_row is not None,
                        source=channel_row.source if channel_row else None,
                        notice_version=channel_row.notice_version if channel_row else None,
                        notice_language=channel_row.notice_language if channel_row else None,
                        granted_at=channel_row.opted_in_at if channel_row else None,
                        withdrawn_at=channel_row.opted_out_at if channel_row else None,
                    )
                )
                continue
            row = own.get(purpose.value)
            states.append(
                ConsentState(
                    purpose,
                    text.title,
                    text.description,
                    granted=bool(row and row.granted),
                    recorded=row is not None,
                    source=row.source if row else None,
                    notice_version=row.notice_version if row else None,
                    notice_language=row.notice_language if row else None,
                    granted_at=row.granted_at if row else None,
                    withdrawn_at=row.withdrawn_at if row else None,
                )
            )
        return states

    async def set_consent(
        self,
        session: AsyncSession,
        patient: Patient,
        purpose: Purpose,
        *,
        granted: bool,
        source: ConsentSource,
        caller: Principal | None,
        language: str | None = None,
    ) -> None:
        """Give or withdraw consent for one purpose (audited; the audit chain is the
        history). Withdrawal takes effect on the next message, queued ones included."""
        shown = domain.notice_language(language or patient.preferred_language)
        if purpose in CHANNEL_OF:
            await notifications_service.record_consent(
                session,
                patient.organisation_id,
                patient.id,
                Channel(CHANNEL_OF[purpose]),
                opted_in=granted,
                source=source.value,
                notice_version=NOTICE_VERSION,
                notice_language=shown,
                actor=caller,
            )
            return
        now = utcnow()
        row = await session.scalar(
            select(DpdpConsent)
            .where(
                DpdpConsent.organisation_id == patient.organisation_id,
                DpdpConsent.patient_id == patient.id,
                DpdpConsent.purpose == purpose.value,
            )
            .with_for_update()
        )
        before = _consent_snapshot(row) if row is not None else None
        if row is None:
            row = DpdpConsent(
                id=new_id(),
                organisation_id=patient.organisation_id,
                patient_id=patient.id,
                purpose=purpose.value,
            )
            session.add(row)
        row.granted = granted
        row.source = source.value
        row.notice_version = NOTICE_VERSION
        row.notice_language = shown
        row.recorded_by_id = _user_id(caller)
        row.updated_at = now
        if granted:
            row.granted_at = now
        else:
            row.withdrawn_at = now
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=patient.organisation_id,
            actor=_actor(caller),
            action="dpdp_consent.granted" if granted else "dpdp_consent.withdrawn",
            entity_type="patient",
            entity_id=patient.id,
            before=before,
            after=_consent_snapshot(row),
        )

    async def may_pursue(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        patient_id: uuid.UUID,
        purpose: Purpose,
    ) -> bool:
        """Whether the patient's consent for ``purpose`` stands right now."""
        if purpose in CHANNEL_OF:
            channels = await notifications_service.opted_in_channels(
                session, organisation_id, patient_id
            )
            return Channel(CHANNEL_OF[purpose]) in channels
        granted = await session.scalar(
            select(DpdpConsent.granted).where(
                DpdpConsent.organisation_id == organisation_id,
                DpdpConsent.patient_id == patient_id,
                DpdpConsent.purpose == purpose.value,
            )
        )
        return bool(granted)

    async def withdrawn(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        patient_id: uuid.UUID,
        purpose: Purpose,
    ) -> bool:
        """Whether the patient said no to ``purpose`` (recorded and not granted)."""
        granted = await session.scalar(
            select(DpdpConsent.granted).where(
                DpdpConsent.organisation_id == organisation_id,
                DpdpConsent.patient_id == patient_id,
                DpdpConsent.purpose == purpose.value,
            )
        )
        return granted is False

    # ------------------------------------------------------------------ requests

    async def create_request(
        self,
        session: AsyncSession,
        patient: Patient,
        kind: RequestKind,
        *,
        description: str | None,
        changes: dict[str, Any] | None,
        source: ConsentSource,
        caller: Principal | None,
    ) -> RightsRequest:
        now = utcnow()
        if kind == RequestKind.CORRECTION:
            _check_correction(changes or {}, patient.version)
        row = RightsRequest(
            id=new_id(),
            organisation_id=patient.organisation_id,
            patient_id=patient.id,
            kind=kind.value,
            status=RequestStatus.OPEN.value,
            source=source.value,
            description=description,
            changes=changes,
            received_at=now,
            due_at=domain.response_due(now),
            recorded_by_id=_user_id(caller),
        )
        session.add(row)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=patient.organisation_id,
            actor=_actor(caller),
            action=f"dpdp_request.{kind.value}",
            entity_type="patient",
            entity_id=patient.id,
            after={"request_id": str(row.id), "kind": kind.value, "source": source.value},
        )
        return row

    async def list_requests(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        patient_id: uuid.UUID | None = None,
        open_only: bool = False,
    ) -> tuple[list[RightsRequest], int]:
        statement = select(RightsRequest).where(
            RightsRequest.organisation_id == caller.organisation_id
        )
        if patient_id is not None:
            statement = statement.where(RightsRequest.patient_id == patient_id)
        if open_only:
            statement = statement.where(
                RightsRequest.status.in_([RequestStatus.OPEN.value, RequestStatus.ESCALATED.value])
            )
        return await paginate(
            session, statement.order_by(RightsRequest.due_at, RightsRequest.id), page
        )

    async def get_request(
        self, session: AsyncSession, caller: Principal, request_id: uuid.UUID
    ) -> RightsRequest:
        row = await session.scalar(
            select(RightsRequest).where(
                RightsRequest.id == request_id,
                RightsRequest.organisation_id == caller.organisation_id,
            )
        )
        if row is None:
            raise RequestNotFound("No such request in your organisation.", entity="dpdp_request")
        return row

    async def close_request(
        self,
        session: AsyncSession,
        caller: Principal,
        request_id: uuid.UUID,
        *,
        status: RequestStatus,
        resolution: str,
    ) -> RightsRequest:
        """Answer a request. Completing an erasure erases what the law lets go and names
        what is kept and why; completing a correction applies the changes."""
        row = await self.get_request(session, caller, request_id)
        if row.status in (RequestStatus.COMPLETED.value, RequestStatus.REFUSED.value):
            raise RequestClosed(f"This request was already {row.status}.", entity="dpdp_request")
        patient = await patients_service.get(session, caller, row.patient_id)
        outcome: dict[str, Any] | None = None
        if status == RequestStatus.COMPLETED:
            if row.kind == RequestKind.ERASURE.value:
                outcome = await self.erase(session, caller, patient)
            elif row.kind == RequestKind.CORRECTION.value:
                outcome = await self._apply_correction(session, caller, patient, row.changes or {})
            elif row.kind == RequestKind.ACCESS.value:
                outcome = {"summary": await self.summary_document(session, caller, patient)}
        before = {"status": row.status}
        row.status = status.value
        row.resolution = resolution
        row.outcome = outcome
        row.closed_at = utcnow()
        row.closed_by_id = _user_id(caller)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action=f"dpdp_request.{status.value}",
            entity_type="patient",
            entity_id=patient.id,
            before=before,
            after={"status": status.value, "request_id": str(row.id)},
        )
        return row

    async def requests_of(self, session: AsyncSession, patient: Patient) -> list[RightsRequest]:
        return list(
            await session.scalars(
                select(RightsRequest)
                .where(
                    RightsRequest.organisation_id == patient.organisation_id,
                    RightsRequest.patient_id == patient.id,
                )
                .order_by(RightsRequest.received_at.desc())
            )
        )

    async def escalate_overdue(self, session: AsyncSession, now: datetime | None = None) -> int:
        """Mark requests unanswered past the escalation point (all organisations), with an
        audit entry each, so they head the administrators' list. Idempotent."""
        now = now or utcnow()
        rows = list(
            await session.scalars(
                select(RightsRequest)
                .where(
                    RightsRequest.status == RequestStatus.OPEN.value,
                    RightsRequest.received_at <= now - timedelta(days=domain.ESCALATE_AFTER_DAYS),
                )
                .with_for_update(skip_locked=True)
            )
        )
        for row in rows:
            row.status = RequestStatus.ESCALATED.value
            row.escalated_at = now
            await audit_service.record(
                session,
                organisation_id=row.organisation_id,
                actor=SYSTEM_ACTOR,
                action="dpdp_request.escalated",
                entity_type="patient",
                entity_id=row.patient_id,
                before={"status": RequestStatus.OPEN.value},
                after={
                    "status": RequestStatus.ESCALATED.value,
                    "request_id": str(row.id),
                    "due_at": row.due_at.isoformat(),
                },
            )
            await publish(
                session,
                RightsRequestEscalated(
                    organisation_id=row.organisation_id,
                    request_id=row.id,
                    kind=row.kind,
                    due_at=row.due_at,
                ),
            )
        await session.flush()
        return len(rows)

    async def _apply_correction(
        self, session: AsyncSession, caller: Principal, patient: Patient, changes: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            update_data = PatientUpdate.model_validate({**changes, "version": patient.version})
        except ValidationError as exc:
            raise InvalidCorrection(
                "The requested correction is not a valid patient change: "
                + "; ".join(e["msg"] for e in exc.errors())
            ) from None
        await patients_service.update(session, caller, patient.id, update_data)
        return {"applied": sorted(changes)}

    # ------------------------------------------------------------------ erasure

    async def erase(
        self, session: AsyncSession, caller: Principal, patient: Patient
    ) -> dict[str, Any]:
        """Erase what the law lets go (contact details, health ids, optional consents, the
        nominee) and name what is kept, until when and under which rule (s.8(7), s.12)."""
        if await self.active_hold(session, patient.organisation_id, patient.id) is not None:
            raise LegalHoldActive(
                "The patient's records are under a legal hold; release it before erasing.",
                entity="patient",
            )
        erased = [field for field in ERASABLE_FIELDS if getattr(patient, field)]
        if erased:
            await patients_service.update(
                session,
                caller,
                patient.id,
                PatientUpdate.model_validate(
                    {"version": patient.version, **{field: None for field in erased}}
                ),
            )
        withdrawn = []
        for state in await self.consents(session, patient):
            if state.purpose != Purpose.CARE and state.granted:
                await self.set_consent(
                    session,
                    patient,
                    state.purpose,
                    granted=False,
                    source=ConsentSource.DESK,
                    caller=caller,
                )
                withdrawn.append(state.purpose.value)
        nominee = await self._nominee(session, patient)
        if nominee is not None:
            await session.delete(nominee)
            erased.append("nominee")
        last_order = await session.scalar(
            select(func.max(Order.created_at)).where(
                Order.organisation_id == patient.organisation_id, Order.patient_id == patient.id
            )
        )
        last_activity = last_order or patient.created_at
        retained = []
        for record_class in ("clinical_records", "billing_records", "consent_records", "audit_log"):
            rule = RETENTION_BY_CLASS[record_class]
            retained.append(
                {
                    "record_class": rule.record_class,
                    "what": rule.description,
                    "until": domain.retained_until(rule, last_activity).date().isoformat(),
                    "basis": rule.basis,
                }
            )
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=patient.organisation_id,
            actor=caller.actor,
            action="dpdp.erased",
            entity_type="patient",
            entity_id=patient.id,
            after={"erased": erased, "withdrawn": withdrawn},
        )
        return {"erased": erased, "withdrawn": withdrawn, "retained": retained}

    # ------------------------------------------------------------------ nominee

    async def _nominee(self, session: AsyncSession, patient: Patient) -> Nominee | None:
        return await session.scalar(
            select(Nominee).where(
                Nominee.organisation_id == patient.organisation_id,
                Nominee.patient_id == patient.id,
            )
        )

    async def nominee(self, session: AsyncSession, patient: Patient) -> Nominee | None:
        return await self._nominee(session, patient)

    async def set_nominee(
        self,
        session: AsyncSession,
        caller: Principal | None,
        patient: Patient,
        *,
        full_name: str,
        relationship: str,
        mobile: str | None,
        email: str | None,
    ) -> Nominee:
        if mobile:
            try:
                mobile = normalize_mobile(mobile)
            except InvalidPhoneNumber as exc:
                raise InvalidCorrection(str(exc), field="mobile") from None
        row = await self._nominee(session, patient)
        if row is None:
            row = Nominee(
                id=new_id(), organisation_id=patient.organisation_id, patient_id=patient.id
            )
            session.add(row)
        row.full_name = full_name
        row.relationship = relationship
        row.mobile = mobile
        row.email = email.lower() if email else None
        row.recorded_at = utcnow()
        row.recorded_by_id = _user_id(caller)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=patient.organisation_id,
            actor=_actor(caller),
            action="dpdp.nominee_set",
            entity_type="patient",
            entity_id=patient.id,
            after={"nominee": full_name, "relationship": relationship, "mobile": mobile},
            sensitive=frozenset({"mobile"}),
        )
        return row

    # ------------------------------------------------------------------ legal holds

    async def active_hold(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID
    ) -> LegalHold | None:
        return await session.scalar(
            select(LegalHold)
            .where(
                LegalHold.organisation_id == organisation_id,
                LegalHold.patient_id == patient_id,
                LegalHold.released_at.is_(None),
            )
            .limit(1)
        )

    async def place_hold(
        self, session: AsyncSession, caller: Principal, patient: Patient, reason: str
    ) -> LegalHold:
        row = LegalHold(
            id=new_id(),
            organisation_id=caller.organisation_id,
            patient_id=patient.id,
            reason=reason,
            placed_at=utcnow(),
            placed_by_id=_user_id(caller),
        )
        session.add(row)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="dpdp.legal_hold_placed",
            entity_type="patient",
            entity_id=patient.id,
            after={"hold_id": str(row.id), "reason": reason},
        )
        return row

    async def release_hold(
        self, session: AsyncSession, caller: Principal, hold_id: uuid.UUID
    ) -> LegalHold:
        row = await session.scalar(
            select(LegalHold).where(
                LegalHold.id == hold_id, LegalHold.organisation_id == caller.organisation_id
            )
        )
        if row is None:
            raise LegalHoldNotFound("No such legal hold in your organisation.")
        if row.released_at is None:
            row.released_at = utcnow()
            row.released_by_id = _user_id(caller)
            await session.flush()
            await audit_service.record(
                session,
                organisation_id=caller.organisation_id,
                actor=caller.actor,
                action="dpdp.legal_hold_released",
                entity_type="patient",
                entity_id=row.patient_id,
                after={"hold_id": str(row.id)},
            )
        return row

    async def holds(self, session: AsyncSession, caller: Principal) -> list[LegalHold]:
        return list(
            await session.scalars(
                select(LegalHold)
                .where(LegalHold.organisation_id == caller.organisation_id)
                .order_by(LegalHold.placed_at.desc())
            )
        )

    # ------------------------------------------------------------------ retention

    async def run_retention(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        dry_run: bool,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Apply the retention table: count what is past its period, and unless this is
        a dry run delete the "purge" classes (rows of patients under a legal hold stay)."""
        now = now or utcnow()
        held = select(LegalHold.patient_id).where(
            LegalHold.organisation_id == organisation_id, LegalHold.released_at.is_(None)
        )
        report = []
        for rule in domain.RETENTION:
            cutoff = domain.retention_cutoff(rule, now)
            table, at_column, patient_column = _RETENTION_TARGETS.get(
                rule.record_class, (None, None, None)
            )
            past = held_count = purged = 0
            if table is not None:
                old = [table.organisation_id == organisation_id, at_column < cutoff]
                past = await session.scalar(select(func.count()).where(*old)) or 0
                held_count = (
                    await session.scalar(select(func.count()).where(*old, patient_column.in_(held)))
                    or 0
                )
                if rule.action == "purge" and not dry_run and past > held_count:
                    doomed = [*old, or_(patient_column.is_(None), patient_column.not_in(held))]
                    if table is Notification:
                        # A newer fallback message may point at a purged one.
                        await session.execute(
                            update(Notification)
                            .where(
                                Notification.fallback_of_id.in_(
                                    select(Notification.id).where(*doomed)
                                )
                            )
                            .values(fallback_of_id=None)
                            .execution_options(synchronize_session=False)
                        )
                    result = await session.execute(
                        delete(table).where(*doomed).execution_options(synchronize_session=False)
                    )
                    purged = result.rowcount or 0  # type: ignore[attr-defined]
            report.append(
                {
                    "record_class": rule.record_class,
                    "action": rule.action,
                    "cutoff": cutoff,
                    "past_period": past,
                    "held": held_count,
                    "purged": purged,
                }
            )
        if not dry_run and any(r["purged"] for r in report):
            await audit_service.record(
                session,
                organisation_id=organisation_id,
                actor=SYSTEM_ACTOR,
                action="dpdp.retention_run",
                entity_type="organisation",
                entity_id=organisation_id,
                after={r["record_class"]: r["purged"] for r in report if r["purged"]},
            )
        return report

    # ------------------------------------------------------------------ breaches

    async def create_breach(
        self, session: AsyncSession, caller: Principal, **fields: Any
    ) -> Breach:
        row = Breach(
            id=new_id(),
            organisation_id=caller.organisation_id,
            status=BreachStatus.OPEN.value,
            created_by_id=_user_id(caller),
            created_at=utcnow(),
            **fields,
        )
        session.add(row)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="dpdp.breach_recorded",
            entity_type="breach",
            entity_id=row.id,
            after={"title": row.title, "data_classes": list(row.data_classes)},
        )
        await publish(
            session,
            BreachRecorded(
                organisation_id=row.organisation_id,
                breach_id=row.id,
                title=row.title,
                cert_in_due=domain.cert_in_due(row.aware_at),
                board_report_due=domain.board_report_due(row.aware_at),
            ),
        )
        return row

    async def get_breach(
        self, session: AsyncSession, caller: Principal, breach_id: uuid.UUID
    ) -> Breach:
        row = await session.scalar(
            select(Breach).where(
                Breach.id == breach_id, Breach.organisation_id == caller.organisation_id
            )
        )
        if row is None:
            raise BreachNotFound("No such breach in your organisation.", entity="breach")
        return row

    async def list_breaches(self, session: AsyncSession, caller: Principal) -> list[Breach]:
        return list(
            await session.scalars(
                select(Breach)
                .where(Breach.organisation_id == caller.organisation_id)
                .order_by(Breach.aware_at.desc())
            )
        )

    async def update_breach(
        self,
        session: AsyncSession,
        caller: Principal,
        breach_id: uuid.UUID,
        changes: dict[str, Any],
    ) -> Breach:
        row = await self.get_breach(session, caller, breach_id)
        before = {k: _jsonable(getattr(row, k)) for k in changes if k != "closed"}
        closed = changes.pop("closed", None)
        for key, value in changes.items():
            setattr(row, key, value)
        if closed is not None:
            row.status = BreachStatus.CLOSED.value if closed else BreachStatus.OPEN.value
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="dpdp.breach_updated",
            entity_type="breach",
            entity_id=row.id,
            before=before,
            after={**{k: _jsonable(v) for k, v in changes.items()}, "status": row.status},
        )
        return row

    async def affected(
        self, session: AsyncSession, caller: Principal, breach: Breach, scope: str
    ) -> list[tuple[Patient, list[str]]]:
        """Who a breach touched. ``held``: patients whose data of the breach's classes the
        lab held during the window; ``accessed``: patients whose record or report was
        opened during the window (the read-access log)."""
        org = caller.organisation_id
        found: dict[uuid.UUID, set[str]] = {}

        def add(ids: Any, data_class: str) -> None:
            for pid in ids:
                if pid is not None:
                    found.setdefault(pid, set()).add(data_class)

        if scope == "accessed":
            rows = await session.execute(
                select(AccessLogEntry.patient_id, AccessLogEntry.entity_type)
                .where(
                    AccessLogEntry.organisation_id == org,
                    AccessLogEntry.at >= breach.occurred_from,
                    AccessLogEntry.at <= breach.occurred_to,
                )
                .distinct()
            )
            for pid, entity_type in rows:
                add([pid], "reports" if entity_type == "report" else "identity")
        else:
            end = breach.occurred_to
            for data_class in breach.data_classes:
                if data_class in (DataClass.IDENTITY, DataClass.CONTACT, DataClass.HEALTH_IDS):
                    ids = await session.scalars(
                        select(Patient.id).where(
                            Patient.organisation_id == org, Patient.created_at <= end
                        )
                    )
                elif data_class == DataClass.CLINICAL:
                    ids = await session.scalars(
                        select(Order.patient_id)
                        .where(Order.organisation_id == org, Order.created_at <= end)
                        .distinct()
                    )
                elif data_class == DataClass.REPORTS:
                    ids = await session.scalars(
                        select(Order.patient_id)
                        .join(Report, Report.order_id == Order.id)
                        .where(Report.organisation_id == org, Report.created_at <= end)
                        .distinct()
                    )
                elif data_class == DataClass.BILLING:
                    ids = await session.scalars(
                        select(Invoice.patient_id)
                        .where(Invoice.organisation_id == org, Invoice.created_at <= end)
                        .distinct()
                    )
                else:  # messages sent in the window
                    ids = await session.scalars(
                        select(Notification.patient_id)
                        .where(
                            Notification.organisation_id == org,
                            Notification.created_at >= breach.occurred_from,
                            Notification.created_at <= end,
                        )
                        .distinct()
                    )
                add(ids, data_class)
        if not found:
            return []
        patients = await session.scalars(
            select(Patient)
            .where(Patient.organisation_id == org, Patient.id.in_(list(found)))
            .order_by(Patient.mrn)
        )
        return [(p, sorted(found[p.id])) for p in patients]

    # ------------------------------------------------------------------ access summary

    async def access_summary(
        self, session: AsyncSession, caller: Principal, patient: Patient
    ) -> dict[str, Any]:
        """s.11: a summary of what we hold about the patient, why, and with whom shared."""
        org = patient.organisation_id
        ids = await patients_service.history_ids(session, caller, patient.id)
        consents = await self.consents(session, patient)
        granted = {c.purpose.value for c in consents if c.granted}

        async def count(statement: Any) -> int:
            return int(await session.scalar(statement) or 0)

        orders = await count(
            select(func.count()).where(Order.organisation_id == org, Order.patient_id.in_(ids))
        )
        reports = await count(
            select(func.count())
            .select_from(Report)
            .join(Order, Order.id == Report.order_id)
            .where(Report.organisation_id == org, Order.patient_id.in_(ids))
        )
        invoices = await count(
            select(func.count()).where(Invoice.organisation_id == org, Invoice.patient_id.in_(ids))
        )
        contact = [
            f for f in ("mobile", "email", "address", "city", "pincode") if getattr(patient, f)
        ]
        health_ids = [f for f in ("abha_number", "abha_address") if getattr(patient, f)]
        clinical = RETENTION_BY_CLASS["clinical_records"].basis
        held = [
            {
                "data_class": DataClass.IDENTITY.value,
                "what": "name, sex, date of birth, MRN",
                "count": 1,
                "purposes": [Purpose.CARE.value],
                "retained_under": clinical,
            },
            {
                "data_class": DataClass.CONTACT.value,
                "what": ", ".join(contact) or "none",
                "count": len(contact),
                "purposes": sorted({Purpose.CARE.value} | (granted & set(CHANNEL_OF_VALUES))),
                "retained_under": RETENTION_BY_CLASS["contact_details"].basis,
            },
            {
                "data_class": DataClass.HEALTH_IDS.value,
                "what": ", ".join(health_ids) or "none",
                "count": len(health_ids),
                "purposes": [Purpose.ABDM_SHARING.value],
                "retained_under": RETENTION_BY_CLASS["contact_details"].basis,
            },
            {
                "data_class": DataClass.CLINICAL.value,
                "what": "orders with their samples and results",
                "count": orders,
                "purposes": [Purpose.CARE.value],
                "retained_under": clinical,
            },
            {
                "data_class": DataClass.REPORTS.value,
                "what": "issued report versions (signed PDFs)",
                "count": reports,
                "purposes": [Purpose.CARE.value],
                "retained_under": clinical,
            },
            {
                "data_class": DataClass.BILLING.value,
                "what": "invoices and payments",
                "count": invoices,
                "purposes": [Purpose.CARE.value],
                "retained_under": RETENTION_BY_CLASS["billing_records"].basis,
            },
        ]
        shared: list[dict[str, Any]] = []
        sent = await session.execute(
            select(Notification.channel, Notification.recipient_type, func.count())
            .where(
                Notification.organisation_id == org,
                Notification.patient_id.in_(ids),
                Notification.sent_at.is_not(None),
            )
            .group_by(Notification.channel, Notification.recipient_type)
        )
        for channel, recipient_type, n in sent:
            if recipient_type == "doctor":
                shared.append(
                    {
                        "recipient": "Referring doctor",
                        "why": f"report alerts by {channel}",
                        "count": n,
                    }
                )
            else:
                processor = {
                    "whatsapp": "Meta Platforms (WhatsApp Business)",
                    "sms": "SMS provider",
                    "email": "E-mail provider",
                }.get(channel, channel)
                shared.append({"recipient": processor, "why": "messages to you", "count": n})
        linked = await count(
            select(func.count()).where(
                AbdmCareContext.organisation_id == org,
                AbdmCareContext.patient_id.in_(ids),
                AbdmCareContext.linked_at.is_not(None),
            )
        )
        if linked:
            shared.append(
                {
                    "recipient": "ABDM (National Health Authority) and apps you chose",
                    "why": "reports linked to your ABHA",
                    "count": linked,
                }
            )
        reads = await count(
            select(func.count()).where(
                AccessLogEntry.organisation_id == org,
                AccessLogEntry.patient_id.in_(ids),
                AccessLogEntry.at >= utcnow() - timedelta(days=366),
            )
        )
        open_requests = await count(
            select(func.count()).where(
                RightsRequest.organisation_id == org,
                RightsRequest.patient_id == patient.id,
                RightsRequest.status.in_([RequestStatus.OPEN.value, RequestStatus.ESCALATED.value]),
            )
        )
        nominee = await self._nominee(session, patient)
        return {
            "patient_id": patient.id,
            "generated_at": utcnow(),
            "held": held,
            "consents": consents,
            "shared_with": shared,
            "nominee": nominee,
            "legal_hold": await self.active_hold(session, org, patient.id) is not None,
            "open_requests": open_requests,
            "reads_last_year": reads,
        }

    async def summary_document(
        self, session: AsyncSession, caller: Principal, patient: Patient
    ) -> dict[str, Any]:
        """The access summary as plain JSON values (kept with the answer, put in exports)."""
        summary = await self.access_summary(session, caller, patient)
        nominee = summary["nominee"]
        summary["nominee"] = (
            {"full_name": nominee.full_name, "relationship": nominee.relationship}
            if nominee is not None
            else None
        )
        return json.loads(json.dumps(summary, default=_jsonable))

    # ------------------------------------------------------------------ export

    async def export(self, session: AsyncSession, caller: Principal, patient: Patient) -> bytes:
        """A ZIP of the patient's data: a FHIR R4 collection Bundle (the Patient and each
        current report as a document Bundle), the report PDFs, the consents, the
        access summary and the read-access log."""
        now = utcnow()
        ids = await patients_service.history_ids(session, caller, patient.id)
        orders = list(
            await session.scalars(
                select(Order.id).where(
                    Order.organisation_id == patient.organisation_id, Order.patient_id.in_(ids)
                )
            )
        )
        reports = await reports_service.current_reports(session, patient.organisation_id, orders)
        entries: list[dict[str, Any]] = [
            {
                "fullUrl": f"urn:uuid:{patient.id}",
                "resource": json.loads(
                    json.dumps(fhir_mappers.patient_resource(patient_facts(patient)), default=str)
                ),
            }
        ]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for report in reports:
                record = await fhir_service.report_record(
                    session, patient.organisation_id, report, with_pdf=False
                )
                document = fhir_mappers.report_bundle(record, timestamp=now)
                entries.append(
                    {
                        "fullUrl": f"urn:uuid:{document.get('id', report.id)}",
                        "resource": json.loads(json.dumps(document, default=str)),
                    }
                )
                pdf = await reports_service.pdf(session, caller, report.id)
                archive.writestr(f"reports/{report.report_number}.pdf", pdf.data)
            bundle = {
                "resourceType": "Bundle",
                "id": str(new_id()),
                "type": "collection",
                "timestamp": now.isoformat(),
                "entry": entries,
            }
            archive.writestr("fhir/bundle.json", json.dumps(bundle, ensure_ascii=False, indent=1))
            summary = await self.summary_document(session, caller, patient)
            archive.writestr("summary.json", json.dumps(summary, ensure_ascii=False, indent=1))
            log = await session.scalars(
                select(AccessLogEntry)
                .where(
                    AccessLogEntry.organisation_id == patient.organisation_id,
                    AccessLogEntry.patient_id.in_(ids),
                )
                .order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc())
            )
            archive.writestr(
                "access-log.json",
                json.dumps(
                    [
                        {
                            "at": e.at.isoformat(),
                            "by": e.actor_label,
                            "what": e.entity_type,
                            "action": e.action,
                        }
                        for e in log
                    ],
                    ensure_ascii=False,
                    indent=1,
                ),
            )
        await audit_service.record_access(
            session,
            organisation_id=patient.organisation_id,
            actor=caller.actor,
            patient_id=patient.id,
            entity_type="dpdp_export",
            entity_id=patient.id,
            action="export",
        )
        return buffer.getvalue()

    # ------------------------------------------------------------------ patient link

    async def create_link(
        self, session: AsyncSession, caller: Principal, patient: Patient
    ) -> tuple[str, PatientLink]:
        """A new privacy link for the patient (earlier ones stop working)."""
        now = utcnow()
        await session.execute(
            update(PatientLink)
            .where(
                PatientLink.organisation_id == patient.organisation_id,
                PatientLink.patient_id == patient.id,
                PatientLink.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        token = secrets.token_urlsafe(32)
        row = PatientLink(
            id=new_id(),
            organisation_id=patient.organisation_id,
            patient_id=patient.id,
            token_hash=_hash_token(token),
            created_at=now,
            expires_at=now + timedelta(days=LINK_DAYS),
            created_by_id=_user_id(caller),
        )
        session.add(row)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=patient.organisation_id,
            actor=caller.actor,
            action="dpdp.privacy_link_issued",
            entity_type="patient",
            entity_id=patient.id,
            after={"expires_at": row.expires_at.isoformat()},
        )
        return token, row

    async def patient_by_link(self, session: AsyncSession, token: str) -> Patient:
        row = await session.scalar(
            select(PatientLink).where(PatientLink.token_hash == _hash_token(token))
        )
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            raise PrivacyLinkInvalid(
                "This privacy link is unknown or has expired; ask the lab for a new one."
            )
        return await patients_service.get_in(session, row.organisation_id, row.patient_id)

    async def lab_contact(self, session: AsyncSession, organisation_id: uuid.UUID) -> str:
        organisation = await tenancy_service.get_organisation_unscoped(session, organisation_id)
        parts = [organisation.name, organisation.email, organisation.phone]
        return ", ".join(p for p in parts if p)


CHANNEL_OF_VALUES = frozenset(p.value for p in CHANNEL_OF)


def _check_correction(changes: dict[str, Any], version: int) -> None:
    try:
        PatientUpdate.model_validate({**changes, "version": version})
    except ValidationError as exc:
        raise InvalidCorrection(
            "The requested correction is not a valid patient change: "
            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None


def _consent_snapshot(row: DpdpConsent) -> dict[str, Any]:
    return {
        "purpose": row.purpose,
        "granted": row.granted,
        "source": row.source,
        "notice_version": row.notice_version,
        "notice_language": row.notice_language,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


#: Where each purgeable record class lives: (table, time column, patient column).
_RETENTION_TARGETS: dict[str, tuple[Any, Any, Any]] = {
    "access_log": (AccessLogEntry, AccessLogEntry.at, AccessLogEntry.patient_id),
    "message_log": (Notification, Notification.created_at, Notification.patient_id),
}

compliance_service = ComplianceService()
