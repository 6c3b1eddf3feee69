"""Sending one notification: claim it, wait for the rate limit, call the channel, record.

Three short transactions around one provider call, so no row lock is held across HTTP:

1. claim: lock the row (skip if another worker has it), re-check consent (an opt-out stops
   queued messages too), pace messages to one recipient, then mark it ``sending`` and
   commit. A message is claimed once: a second job for it finds it no longer ``pending``.
2. the rate-limit token (shared bucket) and the provider call, outside any transaction.
3. record: ``sent`` with the provider id; a retryable error puts it back to ``pending``
   with backoff; a final error marks it ``failed`` and queues the fallback channel; an
   ambiguous one (the request may have been taken) marks it ``uncertain``: never sent twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import Settings
from nidaan.files.errors import FileDeleted, FileMissingFromStore, FileNotFound
from nidaan.files.models import StoredFile
from nidaan.files.service import files_service
from nidaan.kit.db import get_engine, session_scope
from nidaan.kit.errors import NidaanError
from nidaan.kit.time import utcnow
from nidaan.notifications import ratelimit
from nidaan.notifications.channels.base import (
    ChannelError,
    Document,
    NotificationChannel,
    OutboundMessage,
    SendResult,
)
from nidaan.notifications.channels.registry import channel_for, rate_for
from nidaan.notifications.domain import MAX_ATTEMPTS, Backoff, combined
from nidaan.notifications.enums import (
    Channel,
    MessageKind,
    NotificationStatus,
    RecipientType,
    TemplateName,
)
from nidaan.notifications.errors import TemplateParameterError
from nidaan.notifications.models import DoctorContact, Notification, NotificationEvent
from nidaan.notifications.service import (
    LINK_PLACEHOLDER,
    Draft,
    enqueue_send,
    notifications_service,
)
from nidaan.notifications.templates import TEMPLATES, render, safe_document_filename

logger = logging.getLogger(__name__)

S = NotificationStatus
BACKOFF = Backoff()
#: A claimed message with no outcome after this long is marked uncertain by the sweeper.
STUCK_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Claimed:
    notification_id: uuid.UUID
    channel: Channel
    adapter: NotificationChannel
    message: OutboundMessage


@dataclass(frozen=True)
class Later:
    at: datetime


def add_event(
    session: AsyncSession,
    row: Notification,
    status: NotificationStatus,
    *,
    source: str = "system",
    occurred_at: datetime | None = None,
    detail: str | None = None,
    error_code: str | None = None,
    error_title: str | None = None,
) -> None:
    session.add(
        NotificationEvent(
            organisation_id=row.organisation_id,
            notification_id=row.id,
            status=status.value,
            source=source,
            occurred_at=occurred_at or utcnow(),
            detail=detail[:300] if detail else None,
            error_code=error_code,
            error_title=error_title[:300] if error_title else None,
        )
    )


async def send(notification_id: uuid.UUID, settings: Settings) -> NotificationStatus | None:
    """Run one notification through claim -> rate limit -> provider -> record; returns the
    status it was left in (None when another job owns it or it was already handled)."""
    async with session_scope(settings) as session:
        claimed = await _claim(session, notification_id, settings)
    if claimed is None:
        return None
    if isinstance(claimed, Later):
        await enqueue_send(None, notification_id, claimed.at)
        return S.PENDING
    await ratelimit.acquire(
        get_engine(settings), f"send:{claimed.channel}", rate_for(claimed.channel, settings)
    )
    try:
        result = await claimed.adapter.send(claimed.message)
    except ChannelError as error:
        return await _record_error(claimed, error, settings)
    return await _record_sent(claimed, result, settings)


async def _claim(
    session: AsyncSession, notification_id: uuid.UUID, settings: Settings
) -> Claimed | Later | None:
    row = await session.scalar(
        select(Notification)
        .where(Notification.id == notification_id)
        .with_for_update(skip_locked=True)
    )
    if row is None or row.status != S.PENDING:
        return None
    now = utcnow()
    if row.next_attempt_at is not None and row.next_attempt_at > now + timedelta(seconds=0.5):
        return Later(row.next_attempt_at)
    channel = Channel(row.channel)
    adapter = channel_for(channel, settings)
    if adapter is None:
        _skip(session, row, f"the {channel} channel is not configured on this installation")
        return None
    if not await _still_wanted(session, row, channel):
        _skip(session, row, f"{row.recipient_type} opted out of {channel} before it was sent")
        return None
    if channel is Channel.WHATSAPP and row.to_index and settings.whatsapp_pair_interval_seconds:
        # One message per recipient per interval (Meta's pair rate limit, 131056).
        await session.execute(select(func.pg_advisory_xact_lock(_lock_key(row.to_index))))
        last = await session.scalar(
            select(func.max(Notification.claimed_at)).where(
                Notification.channel == row.channel,
                Notification.to_index == row.to_index,
                Notification.id != row.id,
            )
        )
        interval = timedelta(seconds=settings.whatsapp_pair_interval_seconds)
        if last is not None and now - last < interval:
            row.next_attempt_at = last + interval
            return Later(row.next_attempt_at)
    row.status = S.SENDING.value
    row.claimed_at = now
    row.attempts += 1
    add_event(session, row, S.SENDING, detail=f"attempt {row.attempts}")
    try:
        message = await _message(session, row, settings)
    except (TemplateParameterError, FileDeleted, FileMissingFromStore, FileNotFound) as error:
        code = getattr(error, "code", "invalid")
        _fail(session, row, code, error.detail)
        return None
    return Claimed(row.id, channel, adapter, message)


async def _still_wanted(session: AsyncSession, row: Notification, channel: Channel) -> bool:
    if row.recipient_type == RecipientType.PATIENT and row.patient_id is not None:
        consented = await notifications_service.opted_in_channels(
            session, row.organisation_id, row.patient_id
        )
        return channel in consented
    if row.recipient_type == RecipientType.DOCTOR and row.doctor_contact_id is not None:
        doctor = await session.get(DoctorContact, row.doctor_contact_id)
        return doctor is not None and doctor.is_active and channel.value in doctor.channels
    return True


async def _message(session: AsyncSession, row: Notification, settings: Settings) -> OutboundMessage:
    parameters = list(json.loads(row.parameters))
    template = TEMPLATES[TemplateName(row.template)]
    kind = MessageKind(row.kind)
    channel = Channel(row.channel)
    document = None
    if row.file_id is not None:
        stored = await session.get(StoredFile, row.file_id)
        if stored is None or stored.organisation_id != row.organisation_id:
            raise FileNotFound("The message's file is gone.")
        link = files_service.link_for(stored, settings.notification_link_hours * 3600)
        data = None
        if channel is Channel.EMAIL:
            _, data = await files_service.read_bytes(session, row.organisation_id, stored.id)
        document = Document(
            filename=safe_document_filename(f"Report_{stored.filename}")
            if stored.purpose == "report"
            else safe_document_filename(stored.filename),
            link=link.url,
            data=data,
            content_type=stored.content_type,
        )
        parameters = [link.url if p == LINK_PLACEHOLDER else p for p in parameters]
    text = render(template, row.language, tuple(parameters))
    if kind is MessageKind.DOCUMENT and channel is Channel.WHATSAPP:
        assert document is not None
        text = document.filename.removesuffix(".pdf").replace("_", " ")
    return OutboundMessage(
        notification_id=row.id,
        channel=channel,
        kind=kind,
        to=row.to_address or "",
        template=row.template,
        language=row.language,
        parameters=tuple(parameters),
        text=text,
        subject=template.texts[row.language].email_subject,
        document=document,
    )


async def _record_sent(
    claimed: Claimed, result: SendResult, settings: Settings
) -> NotificationStatus:
    async with session_scope(settings) as session:
        row = await _locked(session, claimed.notification_id)
        if row.provider_message_id is None:
            row.provider_message_id = result.provider_message_id[:200]
        row.status = combined(S(row.status), S.SENT).value
        row.sent_at = row.sent_at or utcnow()
        add_event(session, row, S.SENT, detail="accepted by the provider")
        return S(row.status)


async def _record_error(
    claimed: Claimed, error: ChannelError, settings: Settings
) -> NotificationStatus:
    retry_at: datetime | None = None
    async with session_scope(settings) as session:
        row = await _locked(session, claimed.notification_id)
        if error.uncertain:
            row.status = combined(S(row.status), S.UNCERTAIN).value
            row.error_code, row.error_title = error.code[:32], error.title
            add_event(
                session,
                row,
                S.UNCERTAIN,
                error_code=error.code,
                error_title=error.title,
                detail="the provider may have the message; not sent again",
            )
            logger.warning("Notification %s outcome unknown: %s", row.id, error.code)
        elif error.retryable and row.attempts < MAX_ATTEMPTS:
            delay = BACKOFF.delay(row.attempts, error.retry_after)
            retry_at = utcnow() + timedelta(seconds=delay)
            if row.status == S.SENDING:
                row.status = S.PENDING.value
            row.next_attempt_at = retry_at
            row.error_code, row.error_title = error.code[:32], error.title
            add_event(
                session,
                row,
                S.PENDING,
                error_code=error.code,
                error_title=error.title,
                detail=f"retry in {delay:.0f} s",
            )
        else:
            _fail(session, row, error.code, error.title)
            try:
                async with session.begin_nested():
                    await queue_fallback(session, row)
            except NidaanError as problem:
                logger.warning("No fallback for notification %s: %s", row.id, problem.code)
        status = S(row.status)
    if retry_at is not None:
        await enqueue_send(None, claimed.notification_id, retry_at)
    return status


def _fail(session: AsyncSession, row: Notification, code: str, title: str) -> None:
    row.status = combined(S(row.status), S.FAILED).value
    row.error_code, row.error_title = code[:32], title[:300]
    row.failed_at = row.failed_at or utcnow()
    add_event(session, row, S.FAILED, error_code=code, error_title=title)
    logger.info("Notification %s failed on %s: %s", row.id, row.channel, code)


def _skip(session: AsyncSession, row: Notification, reason: str) -> None:
    row.status = S.SKIPPED.value
    add_event(session, row, S.SKIPPED, detail=reason)


async def queue_fallback(session: AsyncSession, row: Notification) -> Notification | None:
    """After a final failure, the same message on the next channel in the lab's order that
    the person opted in to (a WhatsApp document falls back to e-mail with the PDF)."""
    policy = await notifications_service.policy(session, row.organisation_id)
    order = [Channel(c) for c in policy.channels]
    failed = Channel(row.channel)
    later = order[order.index(failed) + 1 :] if failed in order else []
    if row.kind == MessageKind.DOCUMENT:
        later = [c for c in later if c is Channel.EMAIL]
    if not later:
        return None
    if row.recipient_type == RecipientType.DOCTOR and row.doctor_contact_id is not None:
        doctor = await session.get(DoctorContact, row.doctor_contact_id)
        if doctor is None:
            return None
        recipient = notifications_service.doctor_recipient(doctor)
    elif row.patient_id is not None:
        patient = await _patient(session, row)
        recipient = await notifications_service.patient_recipient(
            session, row.organisation_id, patient
        )
    else:
        return None
    draft = Draft(
        template=TemplateName(row.template),
        kind=MessageKind(row.kind),
        parameters=tuple(json.loads(row.parameters)),
        subject=(row.subject_type or "", row.subject_id or row.id),
        dedupe_base=row.dedupe_key,
        file_id=row.file_id,
    )
    created = await notifications_service.queue(
        session,
        row.organisation_id,
        recipient,
        draft,
        about_patient_id=row.patient_id,
        channels=later,
        fallback_of=row,
        dedupe_key=f"{row.dedupe_key}:fallback",
    )
    if created is not None:
        add_event(session, row, S.FAILED, detail=f"fell back to {created.channel}")
    return created


async def _patient(session: AsyncSession, row: Notification):  # type: ignore[no-untyped-def]
    from nidaan.patients.service import patients_service

    assert row.patient_id is not None
    return await patients_service.get_in(session, row.organisation_id, row.patient_id)


async def _locked(session: AsyncSession, notification_id: uuid.UUID) -> Notification:
    row = await session.scalar(
        select(Notification).where(Notification.id == notification_id).with_for_update()
    )
    assert row is not None
    return row


def _lock_key(to_index: str) -> int:
    return int.from_bytes(
        hashlib.sha256(b"notify-recipient:" + to_index.encode()).digest()[:8], "big", signed=True
    )


_NO_QUEUED_JOB = text(
    "NOT EXISTS (SELECT 1 FROM procrastinate_jobs AS j "
    "WHERE j.queueing_lock = 'notify:' || notifications.id::text "
    "AND j.status IN ('todo', 'doing'))"
)


async def sweep(settings: Settings) -> tuple[int, int]:
    """Re-queue due messages that lost their job, and mark long-stuck sends uncertain.
    Returns (requeued, marked uncertain)."""
    now = utcnow()
    async with session_scope(settings) as session:
        due = list(
            await session.scalars(
                select(Notification.id)
                .where(
                    Notification.status == S.PENDING.value,
                    Notification.created_at < now - timedelta(minutes=1),
                    (Notification.next_attempt_at.is_(None))
                    | (Notification.next_attempt_at < now - timedelta(minutes=1)),
                    # ... and whose send job is gone (not merely waiting in a long queue).
                    _NO_QUEUED_JOB,
                )
                .limit(1000)
            )
        )
        stuck = list(
            await session.scalars(
                select(Notification)
                .where(
                    Notification.status == S.SENDING.value,
                    Notification.claimed_at < now - STUCK_AFTER,
                )
                .with_for_update(skip_locked=True)
                .limit(1000)
            )
        )
        for row in stuck:
            row.status = S.UNCERTAIN.value
            add_event(
                session, row, S.UNCERTAIN, detail="no outcome recorded after the send started"
            )
    for notification_id in due:
        await enqueue_send(None, notification_id)
    return len(due), len(stuck)
