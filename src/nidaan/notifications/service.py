"""Notifications: consent, policy, doctors' contacts, and turning events into messages.

A trigger (report finalised, critical value, payment, appointment) becomes one row per
recipient and channel, keyed by a ``dedupe_key`` unique in the organisation: however often
an event is delivered, the message is created once, and its send job is enqueued in the same
transaction. Sending, retries and fallback are in ``dispatch``; webhooks in ``webhooks``.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.auth.enums import ALL_ROLES
from nidaan.auth.principal import Principal
from nidaan.catalog.service import catalog_service
from nidaan.config import Settings, get_settings
from nidaan.kit import tracing
from nidaan.kit.blind_index import blind_index
from nidaan.kit.db import get_in_organisation, raw_connection
from nidaan.kit.errors import InvalidInput
from nidaan.kit.ids import new_id
from nidaan.kit.jobs import job_app
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.kit.time import IST, utcnow
from nidaan.notifications.enums import (
    Channel,
    MessageKind,
    NotificationStatus,
    RecipientType,
    TemplateName,
)
from nidaan.notifications.errors import (
    NotificationNotFound,
    ResendAlreadyQueued,
    ResendNotAllowed,
)
from nidaan.notifications.models import (
    DoctorContact,
    Notification,
    NotificationConsent,
    NotificationEvent,
    NotificationPolicy,
)
from nidaan.notifications.templates import (
    TEMPLATES,
    clean_parameter,
    format_inr,
    join_names,
    pick_language,
    render,
)
from nidaan.orders.service import orders_service
from nidaan.patients.domain import normalize_name
from nidaan.patients.models import Patient
from nidaan.patients.service import patients_service
from nidaan.reports.release import report_release
from nidaan.reports.service import reports_service
from nidaan.results.service import results_service

logger = logging.getLogger(__name__)

SEND_TASK = "notifications.send"
SEND_QUEUE = "notifications"
ADDRESS_CONTEXT = "notifications.to_address"
#: Appointment reminders go out at this local time the evening before.
REMINDER_TIME = time(18, 0)


def system_caller(organisation_id: uuid.UUID) -> Principal:
    return Principal(
        kind="system",
        id=uuid.UUID(int=0),
        organisation_id=organisation_id,
        roles=ALL_ROLES,
        label="notifications",
    )


def address_index(channel: Channel | str, address: str) -> str:
    return blind_index(f"{channel}:{address.lower()}", ADDRESS_CONTEXT)


@dataclass(frozen=True)
class Recipient:
    type: RecipientType
    name: str
    language: str
    addresses: dict[Channel, str]  # channel -> address the person agreed to be messaged on
    patient_id: uuid.UUID | None = None
    doctor_contact_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Draft:
    """A message to create: what, to whom, about what."""

    template: TemplateName
    kind: MessageKind
    parameters: tuple[str, ...]
    subject: tuple[str, uuid.UUID]
    dedupe_base: str
    file_id: uuid.UUID | None = None
    not_before: datetime | None = None


async def enqueue_send(
    session: AsyncSession | None, notification_id: uuid.UUID, at: datetime | None = None
) -> None:
    """Queue the send job: in ``session``'s transaction when given (it exists only if the
    message row commits), else on its own. One queued job per notification at a time."""
    options: dict[str, Any] = {"queue": SEND_QUEUE, "queueing_lock": f"notify:{notification_id}"}
    if at is not None:
        options["schedule_at"] = at
    if session is not None:
        # A new message has no job yet, so the lock cannot clash inside the transaction.
        options["connection"] = await raw_connection(session)
    try:
        arguments: dict[str, Any] = {"notification_id": str(notification_id)}
        tracing.inject(arguments)  # the send (and its outbound call) joins the caller's trace
        await job_app.configure_task(SEND_TASK, **options).defer_async(**arguments)
    except AlreadyEnqueued:
        logger.debug("Send job for %s is already queued", notification_id)


def parse_channel(raw: str) -> Channel:
    try:
        return Channel(raw)
    except ValueError:
        raise InvalidInput(
            f"channel must be one of: {', '.join(c.value for c in Channel)}.", field="channel"
        ) from None


class NotificationsService:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    # ---------------------------------------------------------------- consent

    async def consents(
        self, session: AsyncSession, caller: Principal, patient_id: uuid.UUID
    ) -> list[NotificationConsent]:
        await patients_service.get(session, caller, patient_id)
        return list(
            await session.scalars(
                select(NotificationConsent)
                .where(
                    NotificationConsent.organisation_id == caller.organisation_id,
                    NotificationConsent.patient_id == patient_id,
                )
                .order_by(NotificationConsent.channel)
            )
        )

    async def set_consent(
        self,
        session: AsyncSession,
        caller: Principal,
        patient_id: uuid.UUID,
        channel: Channel,
        *,
        opted_in: bool,
        source: str = "desk",
        notice_version: str | None = None,
    ) -> NotificationConsent:
        """Record an opt-in or opt-out for one channel (audited); takes effect on the next
        message sent, including ones already queued."""
        await patients_service.get(session, caller, patient_id)
        return await self._write_consent(
            session,
            caller.organisation_id,
            patient_id,
            channel,
            opted_in=opted_in,
            source=source,
            notice_version=notice_version,
            actor=caller,
        )

    async def record_consent(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        patient_id: uuid.UUID,
        channel: Channel,
        *,
        opted_in: bool,
        source: str,
        notice_version: str | None,
        notice_language: str | None,
        actor: Principal | None,
    ) -> NotificationConsent:
        """The one record of whether a patient may be messaged on ``channel``: the DPDP
        consent for the messaging purposes (compliance) writes it here too."""
        return await self._write_consent(
            session,
            organisation_id,
            patient_id,
            channel,
            opted_in=opted_in,
            source=source,
            notice_version=notice_version,
            notice_language=notice_language,
            actor=actor,
        )

    async def _write_consent(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        patient_id: uuid.UUID,
        channel: Channel,
        *,
        opted_in: bool,
        source: str,
        notice_version: str | None,
        actor: Principal | None,
        notice_language: str | None = None,
    ) -> NotificationConsent:
        now = utcnow()
        row = await session.scalar(
            select(NotificationConsent)
            .where(
                NotificationConsent.organisation_id == organisation_id,
                NotificationConsent.patient_id == patient_id,
                NotificationConsent.channel == channel.value,
            )
            .with_for_update(key_share=True)
        )
        before = _consent_snapshot(row) if row is not None else None
        if row is None:
            row = NotificationConsent(
                organisation_id=organisation_id,
                patient_id=patient_id,
                channel=channel.value,
                opted_in=opted_in,
                source=source,
            )
            session.add(row)
        row.opted_in = opted_in
        row.source = source[:32]
        row.notice_version = notice_version
        row.notice_language = notice_language
        row.recorded_by_id = actor.id if actor is not None and actor.kind == "user" else None
        row.updated_at = now
        if opted_in:
            row.opted_in_at = now
        else:
            row.opted_out_at = now
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor.actor if actor is not None else SYSTEM_ACTOR,
            action="notification_consent.granted" if opted_in else "notification_consent.withdrawn",
            entity_type="patient",
            entity_id=patient_id,
            before=before,
            after=_consent_snapshot(row),
        )
        return row

    async def opted_in_channels(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID
    ) -> set[Channel]:
        rows = await session.scalars(
            select(NotificationConsent.channel).where(
                NotificationConsent.organisation_id == organisation_id,
                NotificationConsent.patient_id == patient_id,
                NotificationConsent.opted_in.is_(True),
            )
        )
        return {Channel(c) for c in rows}

    async def opt_out_address(
        self, session: AsyncSession, channel: Channel, to_index: str, source: str
    ) -> int:
        """A person replied STOP: withdraw that channel's consent for every patient we have
        messaged at this address (in any organisation). Returns how many."""
        pairs = (
            await session.execute(
                select(Notification.organisation_id, Notification.patient_id)
                .where(
                    Notification.channel == channel.value,
                    Notification.to_index == to_index,
                    Notification.recipient_type == RecipientType.PATIENT.value,
                    Notification.patient_id.is_not(None),
                )
                .distinct()
            )
        ).all()
        for organisation_id, patient_id in pairs:
            await self._write_consent(
                session,
                organisation_id,
                patient_id,
                channel,
                opted_in=False,
                source=source,
                notice_version=None,
                actor=None,
            )
        return len(pairs)

    # ---------------------------------------------------------------- policy, doctors

    async def policy(self, session: AsyncSession, organisation_id: uuid.UUID) -> NotificationPolicy:
        """The lab's policy (defaults until an administrator saves one)."""
        row = await session.scalar(
            select(NotificationPolicy).where(NotificationPolicy.organisation_id == organisation_id)
        )
        if row is not None:
            return row
        return NotificationPolicy(
            id=uuid.UUID(int=0),
            organisation_id=organisation_id,
            report_to_patient=True,
            report_to_doctor=False,
            send_report_document=True,
            critical_to_patient=False,
            critical_to_doctor=True,
            payment_confirmation=True,
            appointment_reminder=True,
            channels=[c.value for c in Channel],
            updated_at=utcnow(),
        )

    async def update_policy(
        self, session: AsyncSession, caller: Principal, changes: dict[str, Any]
    ) -> NotificationPolicy:
        if "channels" in changes and changes["channels"] is not None:
            channels = [parse_channel(c).value for c in changes["channels"]]
            if not channels or len(set(channels)) != len(channels):
                raise InvalidInput(
                    "channels must list each channel at most once.", field="channels"
                )
            changes["channels"] = channels
        row = await session.scalar(
            select(NotificationPolicy)
            .where(NotificationPolicy.organisation_id == caller.organisation_id)
            .with_for_update(key_share=True)
        )
        before = _policy_snapshot(row) if row is not None else None
        if row is None:
            defaults = await self.policy(session, caller.organisation_id)
            row = NotificationPolicy(
                organisation_id=caller.organisation_id,
                **{k: getattr(defaults, k) for k in _POLICY_FIELDS},
            )
            session.add(row)
        for key, value in changes.items():
            if key in _POLICY_FIELDS and value is not None:
                setattr(row, key, value)
        row.updated_at = utcnow()
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="notification_policy.updated",
            entity_type="notification_policy",
            entity_id=row.id,
            before=before,
            after=_policy_snapshot(row),
        )
        return row

    async def doctors(self, session: AsyncSession, caller: Principal) -> list[DoctorContact]:
        return list(
            await session.scalars(
                select(DoctorContact)
                .where(DoctorContact.organisation_id == caller.organisation_id)
                .order_by(DoctorContact.name)
            )
        )

    async def save_doctor(
        self,
        session: AsyncSession,
        caller: Principal,
        *,
        name: str,
        mobile: str | None,
        email: str | None,
        channels: list[str],
        preferred_language: str = "en",
        is_active: bool = True,
    ) -> DoctorContact:
        """Create or update (by name) a referring doctor's contact and opted-in channels."""
        display = " ".join(name.split())
        if not display:
            raise InvalidInput("name is required.", field="name")
        normalized = normalize_name(display)
        try:
            number = normalize_mobile(mobile) if mobile else None
        except InvalidPhoneNumber as exc:
            raise InvalidInput(str(exc), field="mobile") from None
        chosen = sorted({parse_channel(c).value for c in channels})
        row = await session.scalar(
            select(DoctorContact)
            .where(
                DoctorContact.organisation_id == caller.organisation_id,
                DoctorContact.name_normalized == normalized,
            )
            .with_for_update(key_share=True)
        )
        before = _doctor_snapshot(row) if row is not None else None
        if row is None:
            row = DoctorContact(organisation_id=caller.organisation_id, name_normalized=normalized)
            session.add(row)
        row.name = display
        row.mobile = number
        row.email = (email or "").strip() or None
        row.channels = chosen
        row.preferred_language = pick_language(preferred_language)
        row.is_active = is_active
        row.updated_at = utcnow()
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="doctor_contact.saved",
            entity_type="doctor_contact",
            entity_id=row.id,
            before=before,
            after=_doctor_snapshot(row),
        )
        return row

    async def _doctor_named(
        self, session: AsyncSession, organisation_id: uuid.UUID, name: str | None
    ) -> DoctorContact | None:
        if not name or not name.strip():
            return None
        return await session.scalar(
            select(DoctorContact).where(
                DoctorContact.organisation_id == organisation_id,
                DoctorContact.name_normalized == normalize_name(name),
                DoctorContact.is_active.is_(True),
            )
        )

    # ---------------------------------------------------------------- recipients

    async def patient_recipient(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient: Patient
    ) -> Recipient:
        """The patient with the addresses of the channels they opted in to."""
        consented = await self.opted_in_channels(session, organisation_id, patient.id)
        addresses: dict[Channel, str] = {}
        if patient.mobile:
            for channel in (Channel.WHATSAPP, Channel.SMS):
                if channel in consented:
                    addresses[channel] = patient.mobile
        if patient.email and Channel.EMAIL in consented:
            addresses[Channel.EMAIL] = patient.email
        return Recipient(
            type=RecipientType.PATIENT,
            name=patient.full_name,
            language=pick_language(patient.preferred_language),
            addresses=addresses,
            patient_id=patient.id,
        )

    @staticmethod
    def doctor_recipient(doctor: DoctorContact) -> Recipient:
        addresses: dict[Channel, str] = {}
        for raw in doctor.channels:
            channel = Channel(raw)
            if channel in (Channel.WHATSAPP, Channel.SMS) and doctor.mobile:
                addresses[channel] = doctor.mobile
            if channel is Channel.EMAIL and doctor.email:
                addresses[channel] = doctor.email
        return Recipient(
            type=RecipientType.DOCTOR,
            name=doctor.name,
            language=pick_language(doctor.preferred_language),
            addresses=addresses,
            doctor_contact_id=doctor.id,
        )

    # ---------------------------------------------------------------- creating messages

    async def queue(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        recipient: Recipient,
        draft: Draft,
        *,
        about_patient_id: uuid.UUID | None,
        channels: list[Channel],
        fallback_of: Notification | None = None,
        dedupe_key: str | None = None,
    ) -> Notification | None:
        """Create the message on the first of ``channels`` the recipient can get it on, or
        a ``skipped`` row saying why not. None if it already exists (a redelivery)."""
        channel = next((c for c in channels if c in recipient.addresses), None)
        key = dedupe_key or f"{draft.dedupe_base}:{recipient.type}:{draft.kind}"
        # The PDF travels as a WhatsApp document; elsewhere the template carries the link.
        if (
            draft.kind is MessageKind.DOCUMENT
            and channel is not Channel.WHATSAPP
            and fallback_of is None
        ):
            return None
        now = utcnow()
        address = recipient.addresses.get(channel) if channel else None
        status = NotificationStatus.PENDING if channel else NotificationStatus.SKIPPED
        values = {
            "id": new_id(),
            "organisation_id": organisation_id,
            "dedupe_key": key[:200],
            "template": draft.template.value,
            "kind": draft.kind.value,
            "language": recipient.language,
            "channel": (channel or channels[0] if channels else Channel.WHATSAPP).value,
            "recipient_type": recipient.type.value,
            "patient_id": about_patient_id,
            "doctor_contact_id": recipient.doctor_contact_id,
            "to_address": address,
            "to_index": address_index(channel, address) if channel and address else None,
            "parameters": json.dumps(list(draft.parameters), ensure_ascii=False),
            "subject_type": draft.subject[0],
            "subject_id": draft.subject[1],
            "file_id": draft.file_id,
            "status": status.value,
            "attempts": 0,
            "next_attempt_at": draft.not_before,
            "fallback_of_id": fallback_of.id if fallback_of else None,
            "created_at": now,
        }
        # Rendering checks WhatsApp's parameter rules before anything is queued.
        render(TEMPLATES[draft.template], recipient.language, draft.parameters)
        created_id = await session.scalar(
            insert(Notification)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["organisation_id", "dedupe_key"])
            .returning(Notification.id)
        )
        if created_id is None:
            return None
        detail = None
        if channel is None:
            detail = _skip_reason(recipient, channels)
        session.add(
            NotificationEvent(
                organisation_id=organisation_id,
                notification_id=created_id,
                status=status.value,
                source="system",
                occurred_at=now,
                detail=detail
                or (f"fallback after {fallback_of.error_code}" if fallback_of else None),
            )
        )
        await session.flush()
        row = await session.get(Notification, created_id)
        assert row is not None
        if channel is not None:
            await enqueue_send(session, created_id, draft.not_before)
        return row

    # ---------------------------------------------------------------- triggers

    async def on_report_finalized(
        self, session: AsyncSession, organisation_id: uuid.UUID, report_id: uuid.UUID
    ) -> list[Notification]:
        """Result-ready template (with a download link) and the PDF as a WhatsApp document,
        to the patient, and to the referring doctor if the lab's policy says so."""
        policy = await self.policy(session, organisation_id)
        caller = system_caller(organisation_id)
        report = await reports_service.get(session, caller, report_id)
        order = await orders_service.get(session, caller, report.order_id)
        patient = await patients_service.get_in(session, organisation_id, order.patient_id)
        lines = await results_service.report_lines(session, organisation_id, order.id)
        channels = [Channel(c) for c in policy.channels]
        base = f"report:{report.id}"
        created: list[Notification] = []
        recipients: list[Recipient] = []
        if policy.report_to_patient:
            recipients.append(await self.patient_recipient(session, organisation_id, patient))
        doctor = await self._doctor_named(
            session, organisation_id, order.referring_doctor or patient.referring_doctor
        )
        if policy.report_to_doctor and doctor is not None:
            recipients.append(self.doctor_recipient(doctor))
        for recipient in recipients:
            names = join_names(
                list(dict.fromkeys(line.test_name for line in lines)), recipient.language
            )
            # The link is made when the message is sent (fresh expiry); "{link}" marks it.
            parameters = (clean_parameter(patient.full_name), names, LINK_PLACEHOLDER)
            for kind in (MessageKind.TEMPLATE, MessageKind.DOCUMENT):
                if kind is MessageKind.DOCUMENT and not policy.send_report_document:
                    continue
                row = await self.queue(
                    session,
                    organisation_id,
                    recipient,
                    Draft(
                        template=TemplateName.TEST_RESULT_READY,
                        kind=kind,
                        parameters=parameters,
                        subject=("report", report.id),
                        dedupe_base=base,
                        file_id=report.file_id,
                    ),
                    about_patient_id=patient.id,
                    channels=channels,
                )
                if row is not None:
                    created.append(row)
        return created

    async def resend_report(
        self, session: AsyncSession, caller: Principal, report_id: uuid.UUID, channel: Channel
    ) -> Notification:
        """Send a report's result-ready message to the patient again, on ``channel``, because
        someone at the desk asked (lost message, new phone). Only on a channel the patient
        opted in to; one waiting resend per report and channel at a time."""
        organisation_id = caller.organisation_id
        report = await reports_service.get(session, caller, report_id)
        if not report.is_current:
            raise ResendNotAllowed("This report was replaced by a newer version: send that one.")
        # A release hold (e.g. an unpaid invoice) keeps the report from the patient: a manual
        # resend must not go round it.
        holds = await report_release.holds(session, organisation_id, report.order_id)
        if holds:
            raise ResendNotAllowed(
                f"The report is held from the patient: {holds[0].reason}.", holder=holds[0].holder
            )
        order = await orders_service.get(session, caller, report.order_id)
        patient = await patients_service.get_in(session, organisation_id, order.patient_id)
        recipient = await self.patient_recipient(session, organisation_id, patient)
        if channel not in recipient.addresses:
            consented = channel in await self.opted_in_channels(
                session, organisation_id, patient.id
            )
            reason = (
                f"the patient has no {'e-mail address' if channel is Channel.EMAIL else 'mobile'}"
                " on record"
                if consented
                else f"the patient has not agreed to messages on {channel}"
            )
            raise ResendNotAllowed(f"Cannot send on {channel}: {reason}.", channel=channel.value)
        prefix = f"report:{report.id}:resend:{channel}:"
        waiting = await session.scalar(
            select(Notification.id).where(
                Notification.organisation_id == organisation_id,
                Notification.dedupe_key.startswith(prefix),
                Notification.status.in_(
                    [NotificationStatus.PENDING.value, NotificationStatus.SENDING.value]
                ),
            )
        )
        if waiting is not None:
            raise ResendAlreadyQueued(
                "A resend on this channel is already waiting to go out.",
                notification_id=str(waiting),
            )
        lines = await results_service.report_lines(session, organisation_id, order.id)
        names = join_names(
            list(dict.fromkeys(line.test_name for line in lines)), recipient.language
        )
        row = await self.queue(
            session,
            organisation_id,
            recipient,
            Draft(
                template=TemplateName.TEST_RESULT_READY,
                kind=MessageKind.TEMPLATE,
                parameters=(clean_parameter(patient.full_name), names, LINK_PLACEHOLDER),
                subject=("report", report.id),
                dedupe_base=f"report:{report.id}",
                file_id=report.file_id,
            ),
            about_patient_id=patient.id,
            channels=[channel],
            dedupe_key=f"{prefix}{new_id()}",
        )
        assert row is not None  # a fresh key never clashes
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=caller.actor,
            action="notification.resent",
            entity_type="report",
            entity_id=report.id,
            before=None,
            after={"channel": channel.value, "notification_id": str(row.id)},
        )
        return row

    async def on_critical_value(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        alert_id: uuid.UUID,
        patient_id: uuid.UUID,
        test_id: uuid.UUID,
        value: str,
        order_referring_doctor: str | None = None,
    ) -> list[Notification]:
        """The critical-value alert to the referring doctor and/or the patient as the lab's
        policy says, each logged against the critical alert in the audit trail."""
        policy = await self.policy(session, organisation_id)
        caller = system_caller(organisation_id)
        patient = await patients_service.get_in(session, organisation_id, patient_id)
        test = await catalog_service.get_test(session, caller, test_id)
        channels = [Channel(c) for c in policy.channels]
        recipients: list[Recipient] = []
        if policy.critical_to_doctor:
            doctor = await self._doctor_named(
                session, organisation_id, order_referring_doctor or patient.referring_doctor
            )
            if doctor is not None:
                recipients.append(self.doctor_recipient(doctor))
        if policy.critical_to_patient:
            recipients.append(await self.patient_recipient(session, organisation_id, patient))
        created: list[Notification] = []
        for recipient in recipients:
            parameters = (
                clean_parameter(patient.full_name),
                clean_parameter(test.name),
                clean_parameter(value),
            )
            row = await self.queue(
                session,
                organisation_id,
                recipient,
                Draft(
                    template=TemplateName.CRITICAL_VALUE_ALERT,
                    kind=MessageKind.TEMPLATE,
                    parameters=parameters,
                    subject=("critical_alert", alert_id),
                    dedupe_base=f"critical:{alert_id}",
                ),
                about_patient_id=patient.id,
                channels=channels,
            )
            if row is None:
                continue
            created.append(row)
            await audit_service.record(
                session,
                organisation_id=organisation_id,
                actor=SYSTEM_ACTOR,
                action="critical_alert.notification_queued",
                entity_type="critical_alert",
                entity_id=alert_id,
                after={
                    "notification_id": row.id,
                    "recipient_type": row.recipient_type,
                    "channel": row.channel,
                    "status": row.status,
                },
            )
        return created

    async def on_payment_captured(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        payment_id: uuid.UUID,
        order_id: uuid.UUID | None,
        amount: Decimal,
        receipt_file_id: uuid.UUID | None,
        reference: str | None = None,
    ) -> list[Notification]:
        """Confirm a payment to the patient of the order it paid for (``reference``: the
        invoice number, shown when there is no order, e.g. a client's monthly invoice)."""
        policy = await self.policy(session, organisation_id)
        if not policy.payment_confirmation or order_id is None:
            # A B2B client's consolidated invoice has no patient to confirm it to.
            return []
        caller = system_caller(organisation_id)
        order = await orders_service.get(session, caller, order_id)
        patient = await patients_service.get_in(session, organisation_id, order.patient_id)
        recipient = await self.patient_recipient(session, organisation_id, patient)
        receipt = LINK_PLACEHOLDER if receipt_file_id else NO_RECEIPT[recipient.language]
        row = await self.queue(
            session,
            organisation_id,
            recipient,
            Draft(
                template=TemplateName.PAYMENT_CONFIRMATION,
                kind=MessageKind.TEMPLATE,
                parameters=(format_inr(amount), order.order_number, receipt),
                subject=("payment", payment_id),
                dedupe_base=f"payment:{payment_id}",
                file_id=receipt_file_id,
            ),
            about_patient_id=patient.id,
            channels=[Channel(c) for c in policy.channels],
        )
        return [row] if row is not None else []

    async def request_appointment_reminder(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        appointment_id: uuid.UUID,
        patient_id: uuid.UUID,
        starts_at: datetime,
        place: str,
        send_at: datetime | None = None,
        occasion: str = "evening",
    ) -> Notification | None:
        """The entry point for the appointments module: remind the patient of a home
        collection, by default at 18:00 IST the day before. A rescheduled appointment (new
        ``starts_at``) gets a new reminder; the same one asked twice is created once.
        ``occasion`` tells apart several reminders of one visit (evening before, morning)."""
        if starts_at.tzinfo is None:
            raise InvalidInput("starts_at needs a time zone.", field="starts_at")
        policy = await self.policy(session, organisation_id)
        if not policy.appointment_reminder:
            return None
        patient = await patients_service.get_in(session, organisation_id, patient_id)
        recipient = await self.patient_recipient(session, organisation_id, patient)
        local = starts_at.astimezone(IST)
        when = send_at or datetime.combine(
            local.date() - timedelta(days=1), REMINDER_TIME, tzinfo=IST
        )
        if when <= utcnow():
            when = utcnow()
        date_text, time_text = _local_date_time(local, recipient.language)
        return await self.queue(
            session,
            organisation_id,
            recipient,
            Draft(
                template=TemplateName.APPOINTMENT_REMINDER,
                kind=MessageKind.TEMPLATE,
                parameters=(date_text, time_text, clean_parameter(place)),
                subject=("appointment", appointment_id),
                dedupe_base=(
                    f"appointment:{appointment_id}:{starts_at.isoformat()}"
                    + ("" if occasion == "evening" else f":{occasion}")
                ),
                not_before=when,
            ),
            about_patient_id=patient.id,
            channels=[Channel(c) for c in policy.channels],
        )

    async def send_one_time_code(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        mobile: str,
        code: str,
        minutes_valid: int,
        language: str,
        challenge_id: uuid.UUID,
    ) -> Notification | None:
        """A booking code to a mobile number that asked for it (no consent record: the
        person typed the number to receive this one message), by SMS, else WhatsApp."""
        recipient = Recipient(
            type=RecipientType.PATIENT,
            name="",
            language=pick_language(language),
            addresses={Channel.SMS: mobile, Channel.WHATSAPP: mobile},
        )
        policy = await self.policy(session, organisation_id)
        configured = [Channel(c) for c in policy.channels if c != Channel.EMAIL]
        channels = [Channel.SMS, *[c for c in configured if c is not Channel.SMS]]
        return await self.queue(
            session,
            organisation_id,
            recipient,
            Draft(
                template=TemplateName.BOOKING_OTP,
                kind=MessageKind.TEMPLATE,
                parameters=(code, str(minutes_valid)),
                subject=("booking_otp", challenge_id),
                dedupe_base=f"booking_otp:{challenge_id}",
            ),
            about_patient_id=None,
            channels=channels,
        )

    async def notify_on_the_way(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        appointment_id: uuid.UUID,
        patient_id: uuid.UUID,
        phlebotomist_name: str,
        window: str,
        reschedule_link: str,
    ) -> Notification | None:
        """ "Phlebotomist on the way" to the patient, in their language, once per visit."""
        policy = await self.policy(session, organisation_id)
        if not policy.appointment_reminder:
            return None
        patient = await patients_service.get_in(session, organisation_id, patient_id)
        recipient = await self.patient_recipient(session, organisation_id, patient)
        return await self.queue(
            session,
            organisation_id,
            recipient,
            Draft(
                template=TemplateName.PHLEBOTOMIST_ON_THE_WAY,
                kind=MessageKind.TEMPLATE,
                parameters=(
                    clean_parameter(phlebotomist_name) or "Our phlebotomist",
                    clean_parameter(window),
                    clean_parameter(reschedule_link),
                ),
                subject=("appointment", appointment_id),
                dedupe_base=f"appointment:{appointment_id}:on_the_way",
            ),
            about_patient_id=patient.id,
            channels=[Channel(c) for c in policy.channels],
        )

    async def withdraw_pending(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        subject_type: str,
        subject_id: uuid.UUID,
        reason: str,
    ) -> int:
        """Skip messages about a subject that are not sent yet (a cancelled or moved
        appointment's reminders); their send jobs then find nothing to send."""
        rows = list(
            await session.scalars(
                select(Notification)
                .where(
                    Notification.organisation_id == organisation_id,
                    Notification.subject_type == subject_type,
                    Notification.subject_id == subject_id,
                    Notification.status == NotificationStatus.PENDING.value,
                )
                .with_for_update()
            )
        )
        now = utcnow()
        for row in rows:
            row.status = NotificationStatus.SKIPPED.value
            session.add(
                NotificationEvent(
                    organisation_id=organisation_id,
                    notification_id=row.id,
                    status=NotificationStatus.SKIPPED.value,
                    source="system",
                    occurred_at=now,
                    detail=reason[:300],
                )
            )
        await session.flush()
        return len(rows)

    # ---------------------------------------------------------------- reading

    async def list(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        patient_id: uuid.UUID | None = None,
        subject_id: uuid.UUID | None = None,
        status: str | None = None,
        channel: str | None = None,
    ) -> tuple[list[Notification], int, dict[uuid.UUID, list[NotificationEvent]]]:
        """Messages newest first, each with its status history."""
        statement: Select[Any] = select(Notification).where(
            Notification.organisation_id == caller.organisation_id
        )
        if patient_id is not None:
            await patients_service.get(session, caller, patient_id)
            statement = statement.where(Notification.patient_id == patient_id)
        if subject_id is not None:
            statement = statement.where(Notification.subject_id == subject_id)
        if status is not None:
            statement = statement.where(Notification.status == status)
        if channel is not None:
            statement = statement.where(Notification.channel == parse_channel(channel).value)
        statement = statement.order_by(Notification.created_at.desc(), Notification.id.desc())
        rows, total = await paginate(session, statement, page)
        return rows, total, await self.histories(session, [r.id for r in rows])

    async def get(
        self, session: AsyncSession, caller: Principal, notification_id: uuid.UUID
    ) -> tuple[Notification, list[NotificationEvent]]:
        row = await get_in_organisation(
            session, Notification, notification_id, caller.organisation_id
        )
        if row is None:
            raise NotificationNotFound("No such notification in your organisation.")
        return row, (await self.histories(session, [row.id])).get(row.id, [])

    async def histories(
        self, session: AsyncSession, ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, list[NotificationEvent]]:
        if not ids:
            return {}
        events = await session.scalars(
            select(NotificationEvent)
            .where(NotificationEvent.notification_id.in_(ids))
            .order_by(NotificationEvent.recorded_at, NotificationEvent.occurred_at)
        )
        found: dict[uuid.UUID, list[NotificationEvent]] = {i: [] for i in ids}
        for event in events:
            found[event.notification_id].append(event)
        return found


#: Stands for the download link, which is presigned when the message is sent.
LINK_PLACEHOLDER = "{link}"
NO_RECEIPT = {"en": "available at the lab counter", "hi": "लैब काउंटर पर उपलब्ध"}
HINDI_MONTHS = (
    "जनवरी",
    "फ़रवरी",
    "मार्च",
    "अप्रैल",
    "मई",
    "जून",
    "जुलाई",
    "अगस्त",
    "सितंबर",
    "अक्टूबर",
    "नवंबर",
    "दिसंबर",
)


def _local_date_time(local: datetime, language: str) -> tuple[str, str]:
    if language == "hi":
        return f"{local.day} {HINDI_MONTHS[local.month - 1]} {local.year}", local.strftime("%H:%M")
    return local.strftime("%a %d %b %Y"), local.strftime("%I:%M %p").lstrip("0")


def _skip_reason(recipient: Recipient, channels: list[Channel]) -> str:
    if not recipient.addresses:
        return f"no opted-in channel with an address for this {recipient.type}"
    return f"none of the lab's channels ({', '.join(channels)}) is opted in"


_POLICY_FIELDS = (
    "report_to_patient",
    "report_to_doctor",
    "send_report_document",
    "critical_to_patient",
    "critical_to_doctor",
    "payment_confirmation",
    "appointment_reminder",
    "channels",
)


def _policy_snapshot(row: NotificationPolicy) -> dict[str, Any]:
    return {k: getattr(row, k) for k in _POLICY_FIELDS}


def _consent_snapshot(row: NotificationConsent) -> dict[str, Any]:
    return {
        "channel": row.channel,
        "opted_in": row.opted_in,
        "source": row.source,
        "notice_version": row.notice_version,
        "notice_language": row.notice_language,
    }


def _doctor_snapshot(row: DoctorContact) -> dict[str, Any]:
    return {
        "name": row.name,
        "mobile": "[redacted]" if row.mobile else None,
        "email": "[redacted]" if row.email else None,
        "channels": list(row.channels or []),
        "is_active": row.is_active,
    }


notifications_service = NotificationsService()
