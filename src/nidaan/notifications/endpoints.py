"""HTTP handlers: the message log, consent, policy, doctors' contacts, and the WhatsApp
webhook (public, signature-checked)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.config import get_settings
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.notifications import webhooks
from nidaan.notifications.errors import (
    NotificationNotFound,
    ResendAlreadyQueued,
    ResendNotAllowed,
    WebhookNotConfigured,
    WebhookSignatureInvalid,
    WebhookSignatureMissing,
)
from nidaan.notifications.models import (
    DoctorContact,
    Notification,
    NotificationConsent,
    NotificationEvent,
    NotificationPolicy,
)
from nidaan.notifications.schemas import (
    ConsentIn,
    ConsentOut,
    DoctorIn,
    DoctorOut,
    NotificationEventOut,
    NotificationOut,
    PolicyOut,
    PolicyUpdate,
    ResendIn,
)
from nidaan.notifications.service import notifications_service, parse_channel

router = APIRouter(tags=["notifications"])
public_router = APIRouter(tags=["notifications"])

readers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST, Role.AUDITOR)
consent_readers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.AUDITOR)
consent_writers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST)
admins = require_roles(Role.ADMIN)
policy_readers = require_roles(Role.ADMIN, Role.AUDITOR)
doctor_editors = require_roles(Role.ADMIN, Role.FRONT_DESK)
resenders = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST)


def mask(address: str | None) -> str | None:
    """Enough to recognise, not enough to use: +91••••••3210, s•••@example.com."""
    if not address:
        return None
    if "@" in address:
        user, _, domain = address.partition("@")
        return f"{user[:1]}•••@{domain}"
    return f"{address[:3]}{'•' * max(0, len(address) - 7)}{address[-4:]}"


def notification_out(row: Notification, history: list[NotificationEvent]) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        template=row.template,
        kind=row.kind,
        language=row.language,
        channel=row.channel,
        recipient_type=row.recipient_type,
        to=mask(row.to_address),
        patient_id=row.patient_id,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        status=row.status,
        attempts=row.attempts,
        provider_message_id=row.provider_message_id,
        error_code=row.error_code,
        error_title=row.error_title,
        fallback_of_id=row.fallback_of_id,
        created_at=row.created_at,
        sent_at=row.sent_at,
        delivered_at=row.delivered_at,
        read_at=row.read_at,
        failed_at=row.failed_at,
        history=[NotificationEventOut.model_validate(e) for e in history],
    )


def policy_out(row: NotificationPolicy) -> PolicyOut:
    return PolicyOut.model_validate(row)


def doctor_out(row: DoctorContact) -> DoctorOut:
    return DoctorOut(
        id=row.id,
        name=row.name,
        mobile=mask(row.mobile),
        email=row.email,
        channels=list(row.channels or []),
        preferred_language=row.preferred_language,
        is_active=row.is_active,
    )


def consent_out(row: NotificationConsent) -> ConsentOut:
    return ConsentOut.model_validate(row)


@router.get(
    "/notifications",
    response_model=ListResource[NotificationOut],
    operation_id="notifications:list",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def list_notifications(
    patient: uuid.UUID | None = Query(None, description="Only messages about this patient"),
    subject_id: uuid.UUID | None = Query(None, description="Report, critical alert, payment"),
    status: str | None = Query(None, max_length=16),
    channel: str | None = Query(None, max_length=16),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[NotificationOut]:
    """Every message (newest first) with its status history: queued, sent, delivered, read,
    failed with the provider's error code, fallbacks."""
    rows, total, histories = await notifications_service.list(
        session,
        principal,
        page,
        patient_id=patient,
        subject_id=subject_id,
        status=status,
        channel=channel,
    )
    return ListResource[NotificationOut].build(
        [notification_out(r, histories.get(r.id, [])) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/notifications/{notification_id}",
    response_model=NotificationOut,
    operation_id="notifications:get",
    responses={**AUTH_ERRORS, **problem_responses(NotificationNotFound)},
)
async def get_notification(
    notification_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> NotificationOut:
    row, history = await notifications_service.get(session, principal, notification_id)
    return notification_out(row, history)


@router.post(
    "/reports/{report_id}/notifications",
    status_code=201,
    response_model=NotificationOut,
    operation_id="notifications:resend_report",
    responses={
        **AUTH_ERRORS,
        **problem_responses(NotFound, ResendNotAllowed, ResendAlreadyQueued),
    },
)
async def resend_report(
    report_id: uuid.UUID,
    body: ResendIn,
    principal: Principal = Depends(resenders),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> NotificationOut:
    """Send the report's result-ready message (with a fresh download link) to the patient
    again on one channel. Refused (409) on a channel the patient has not opted in to, or
    while an earlier resend on that channel is still waiting; audited."""
    row = await notifications_service.resend_report(session, principal, report_id, body.channel)
    history = (await notifications_service.histories(session, [row.id])).get(row.id, [])
    return notification_out(row, history)


@router.get(
    "/patients/{patient_id}/notification-consents",
    response_model=ListResource[ConsentOut],
    operation_id="notifications:list_consents",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def list_consents(
    patient_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(consent_readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ConsentOut]:
    """The patient's opt-in or opt-out per channel (no row: never asked, nothing is sent)."""
    rows = await notifications_service.consents(session, principal, patient_id)
    return ListResource[ConsentOut].page_of([consent_out(r) for r in rows], page)


@router.put(
    "/patients/{patient_id}/notification-consents/{channel}",
    response_model=ConsentOut,
    operation_id="notifications:set_consent",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def set_consent(
    patient_id: uuid.UUID,
    channel: str,
    body: ConsentIn,
    principal: Principal = Depends(consent_writers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ConsentOut:
    """Record the patient's opt-in or opt-out for WhatsApp, SMS or e-mail (audited)."""
    row = await notifications_service.set_consent(
        session,
        principal,
        patient_id,
        parse_channel(channel),
        opted_in=body.opted_in,
        source=body.source,
        notice_version=body.notice_version,
    )
    return consent_out(row)


@router.get(
    "/notification-policy",
    response_model=PolicyOut,
    operation_id="notifications:get_policy",
    responses={**AUTH_ERRORS},
)
async def get_policy(
    principal: Principal = Depends(policy_readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PolicyOut:
    return policy_out(await notifications_service.policy(session, principal.organisation_id))


@router.patch(
    "/notification-policy",
    response_model=PolicyOut,
    operation_id="notifications:update_policy",
    responses={**AUTH_ERRORS},
)
async def update_policy(
    body: PolicyUpdate,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PolicyOut:
    """Who is notified of what, and the channel order for fallbacks."""
    changes = body.model_dump(exclude_unset=True)
    return policy_out(await notifications_service.update_policy(session, principal, changes))


@router.get(
    "/notification-doctors",
    response_model=ListResource[DoctorOut],
    operation_id="notifications:list_doctors",
    responses={**AUTH_ERRORS},
)
async def list_doctors(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(doctor_editors),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[DoctorOut]:
    rows = await notifications_service.doctors(session, principal)
    return ListResource[DoctorOut].page_of([doctor_out(r) for r in rows], page)


@router.put(
    "/notification-doctors",
    response_model=DoctorOut,
    operation_id="notifications:save_doctor",
    responses={**AUTH_ERRORS},
)
async def save_doctor(
    body: DoctorIn,
    principal: Principal = Depends(doctor_editors),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> DoctorOut:
    """Create or update (by name, as written on orders) a referring doctor's contact."""
    row = await notifications_service.save_doctor(
        session,
        principal,
        name=body.name,
        mobile=body.mobile,
        email=body.email,
        channels=body.channels,
        preferred_language=body.preferred_language,
        is_active=body.is_active,
    )
    return doctor_out(row)


# ------------------------------------------------------------------------ webhooks


@public_router.get(
    "/webhooks/whatsapp", include_in_schema=True, operation_id="webhooks:whatsapp_verify"
)
async def whatsapp_verify(
    mode: str | None = Query(None, alias="hub.mode"),
    token: str | None = Query(None, alias="hub.verify_token"),
    challenge: str | None = Query(None, alias="hub.challenge", max_length=200),
) -> Response:
    """Meta's subscription check: echo ``hub.challenge`` only for the right verify token."""
    if webhooks.check_verify_token(get_settings(), mode, token) and challenge is not None:
        return PlainTextResponse(challenge)
    return PlainTextResponse("Forbidden", status_code=403)


@public_router.post(
    "/webhooks/whatsapp",
    operation_id="webhooks:whatsapp",
    responses=problem_responses(
        WebhookSignatureMissing, WebhookSignatureInvalid, WebhookNotConfigured
    ),
)
async def whatsapp_webhook(
    request: Request, session: AsyncSession = Depends(get_session, scope="function")
) -> PlainTextResponse:
    """Delivery statuses and replies. The signature is checked over the exact bytes
    received before anything is stored; a bad one changes nothing."""
    body = await request.body()
    webhooks.verify_signature(get_settings(), body, request.headers.get("x-hub-signature-256"))
    await webhooks.receive(session, body)
    return PlainTextResponse("EVENT_RECEIVED")
