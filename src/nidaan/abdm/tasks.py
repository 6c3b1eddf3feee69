"""ABDM jobs: process callbacks, send replies, link care contexts, push health information,
and keep pending requests and consents truthful.

Outbound calls are made outside the database transaction that decided them: the request row
is committed first (the callback may beat the 202), then the call, then its outcome.
Transient failures (ABDM unreachable, 5xx) retry with exponential backoff.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from procrastinate import JobContext
from sqlalchemy import select

from nidaan.abdm import clients
from nidaan.abdm.callbacks import handle
from nidaan.abdm.consent import consent_service, encrypt_entries, push_pages
from nidaan.abdm.domain import wire_timestamp
from nidaan.abdm.enums import (
    ConsentStatus,
    MessageStatus,
    RequestKind,
    TransferStatus,
)
from nidaan.abdm.exchanges import (
    facility_by_hip,
    mark_failed,
    mark_sent,
    open_request,
    outbound_recorder,
    time_out_requests,
)
from nidaan.abdm.gateway import GatewayError
from nidaan.abdm.linking import linking_service
from nidaan.abdm.models import AbdmCareContext, AbdmFacility, AbdmMessage, AbdmTransfer
from nidaan.config import get_settings
from nidaan.kit.db import session_scope
from nidaan.kit.jobs import actor, enqueue, periodic
from nidaan.kit.time import utcnow
from nidaan.patients.service import patients_service
from nidaan.reports.models import Report

logger = logging.getLogger(__name__)

PUSH_ATTEMPTS = 5


def _transient(exc: GatewayError) -> bool:
    return exc.status is None or exc.status >= 500 or exc.status == 429


@actor("abdm.process_callback", retry=5)
async def process_callback(message_id: str) -> None:
    """Apply one stored callback and queue its replies (once: the message is locked)."""
    async with session_scope(get_settings()) as session:
        message = await session.scalar(
            select(AbdmMessage).where(AbdmMessage.id == uuid.UUID(message_id)).with_for_update()
        )
        if message is None or message.status != MessageStatus.RECEIVED:
            return
        facility = await facility_by_hip(session, message.hip_id)
        if facility is None:
            message.status, message.error = MessageStatus.REJECTED.value, "unknown HIP id"
            return
        try:
            async with session.begin_nested():
                outcome = await handle(session, facility, message)
        except (ValueError, KeyError, TypeError) as exc:
            # Malformed for us: keep it with its error (never lost), do not retry.
            message.status, message.error = (
                MessageStatus.REJECTED.value,
                f"{type(exc).__name__}: {exc}",
            )
            return
        for reply in outcome.replies:
            await enqueue(
                session,
                send_reply,
                organisation_id=str(facility.organisation_id),
                hip_id=facility.hip_id,
                name=reply.name,
                body=reply.body,
                push_transfer_id=reply.push_transfer_id,
            )
        message.status, message.processed_at = MessageStatus.PROCESSED.value, utcnow()


@actor("abdm.reply", retry=6)
async def send_reply(
    organisation_id: str,
    hip_id: str,
    name: str,
    body: dict[str, Any],
    push_transfer_id: str | None = None,
) -> None:
    """Send one answer to the gateway (on-discover, on-notify, ...); retried while ABDM is down."""
    async with session_scope(get_settings()) as session:
        recorder = outbound_recorder(session, uuid.UUID(organisation_id))
    try:
        await clients.gateway(recorder).send(
            name, body, hip_id=hip_id, request_id=str(uuid.uuid4())
        )
    except GatewayError as exc:
        if _transient(exc):
            raise
        logger.error("ABDM refused our %s: %s", name, exc)
        return
    if push_transfer_id:
        async with session_scope(get_settings()) as session:
            await enqueue(session, push_health_information, transfer_id=push_transfer_id)


@actor("abdm.link_care_contexts", retry=5)
async def link_care_contexts(organisation_id: str, patient_id: str) -> None:
    """Next step of HIP-initiated linking for a patient: a link token, or the link itself."""
    org, patient = uuid.UUID(organisation_id), uuid.UUID(patient_id)
    settings = get_settings()
    config = clients.current_config(settings)
    async with session_scope(settings) as session:
        if await _open_linking_request(session, org, patient):
            return  # its callback queues the next step
        plan = await linking_service.linking_plan(session, org, patient)
        if plan is None:
            return
        request = await open_request(
            session,
            organisation_id=org,
            kind=plan["kind"],
            hip_id=plan["hip_id"],
            timeout_seconds=config.callback_timeout_seconds,
            patient_id=patient,
            subject={
                "care_context_ids": plan["care_context_ids"],
                "abha_address": plan["abha_address"],
            },
        )
        recorder = outbound_recorder(session, org)
    name = (
        "generate_token" if plan["kind"] == RequestKind.GENERATE_LINK_TOKEN else "link_carecontext"
    )
    try:
        await clients.gateway(recorder).send(
            name,
            plan["body"],
            hip_id=plan["hip_id"],
            request_id=str(request.request_id),
            link_token=plan.get("link_token"),
        )
    except GatewayError as exc:
        async with session_scope(settings) as session:
            await mark_failed(session, request.request_id, str(exc))
            if not _transient(exc):
                request = await session.merge(request)
                await linking_service.on_link_answer(
                    session, request, {}, f"{exc.code or ''} {exc}"
                )
        if _transient(exc):
            raise
        return
    async with session_scope(settings) as session:
        await mark_sent(session, request.request_id)


async def _open_linking_request(session: Any, org: uuid.UUID, patient: uuid.UUID) -> bool:
    from nidaan.abdm.enums import RequestStatus
    from nidaan.abdm.models import AbdmRequest

    return bool(
        await session.scalar(
            select(AbdmRequest.id)
            .where(
                AbdmRequest.organisation_id == org,
                AbdmRequest.patient_id == patient,
                AbdmRequest.kind.in_(
                    [RequestKind.GENERATE_LINK_TOKEN.value, RequestKind.LINK_CARE_CONTEXTS.value]
                ),
                AbdmRequest.status.in_([RequestStatus.PENDING.value, RequestStatus.SENT.value]),
                AbdmRequest.deadline_at > utcnow(),
            )
            .limit(1)
        )
    )


@actor("abdm.notify_care_context", retry=5)
async def notify_care_context(organisation_id: str, care_context_id: str) -> None:
    """Tell the patient's PHR that a linked care context has a new (amended) report."""
    org = uuid.UUID(organisation_id)
    settings = get_settings()
    async with session_scope(settings) as session:
        context = await session.get(AbdmCareContext, uuid.UUID(care_context_id))
        if context is None or context.organisation_id != org or not context.abha_address:
            return
        patient = await patients_service.get_in(session, org, context.patient_id)
        body = linking_service.context_notify_body(context, patient)
        request = await open_request(
            session,
            organisation_id=org,
            kind=RequestKind.CONTEXT_NOTIFY.value,
            hip_id=context.hip_id,
            timeout_seconds=clients.current_config(settings).callback_timeout_seconds,
            patient_id=patient.id,
            subject={"care_context_ids": [care_context_id]},
        )
        recorder = outbound_recorder(session, org)
    try:
        await clients.gateway(recorder).send(
            "context_notify", body, hip_id=context.hip_id, request_id=str(request.request_id)
        )
    except GatewayError as exc:
        async with session_scope(settings) as session:
            await mark_failed(session, request.request_id, str(exc))
        if _transient(exc):
            raise
        return
    async with session_scope(settings) as session:
        await mark_sent(session, request.request_id)


@actor("abdm.push_health_information", retry=PUSH_ATTEMPTS, pass_context=True)
async def push_health_information(context: JobContext, transfer_id: str) -> None:
    """Build the consented bundles, encrypt them for the requester, push, then notify."""
    settings = get_settings()
    final_attempt = (context.job.attempts if context.job else 0) + 1 >= PUSH_ATTEMPTS
    async with session_scope(settings) as session:
        transfer = await session.scalar(
            select(AbdmTransfer).where(AbdmTransfer.id == uuid.UUID(transfer_id)).with_for_update()
        )
        if transfer is None or transfer.status != TransferStatus.ACKNOWLEDGED:
            return
        consent, contexts = await consent_service.transfer_contexts(session, transfer)
        transfer.attempts += 1
        org, hip_id = transfer.organisation_id, transfer.hip_id
        if consent is None or consent.status != ConsentStatus.GRANTED.value:
            # Revoked (or expired) between the request and the push: send nothing.
            await _finish(session, transfer, [], "consent is no longer granted")
            return
        bundles = []
        for care_context in contexts:
            report = (
                await session.get(Report, care_context.report_id)
                if care_context.report_id
                else None
            )
            if report is None:
                continue
            from nidaan.fhir.service import fhir_service

            current = report
            if not report.is_current:
                current = (
                    await session.scalar(
                        select(Report).where(
                            Report.order_id == report.order_id, Report.is_current.is_(True)
                        )
                    )
                    or report
                )
            bundles.append(
                (
                    care_context.reference,
                    await fhir_service.report_bundle(session, org, current, facility_id=hip_id),
                )
            )
        key_material = dict(transfer.key_material)
        push_url = transfer.data_push_url
        recorder = outbound_recorder(session, org)
        pages = push_pages(transfer, *encrypt_entries(bundles, key_material))
    try:
        gateway = clients.gateway(recorder)
        for page in pages:
            await gateway.push(push_url, page, hip_id=hip_id)
    except GatewayError as exc:
        async with session_scope(settings) as session:
            transfer = await session.get(AbdmTransfer, uuid.UUID(transfer_id))
            assert transfer is not None
            transfer.last_error = str(exc)[:2000]
            if final_attempt or not _transient(exc):
                await _finish(session, transfer, [ref for ref, _ in bundles], f"push failed: {exc}")
                return
        raise
    async with session_scope(settings) as session:
        transfer = await session.get(AbdmTransfer, uuid.UUID(transfer_id))
        assert transfer is not None
        await _finish(session, transfer, [ref for ref, _ in bundles], None)


async def _finish(
    session: Any, transfer: AbdmTransfer, references: list[str], failure: str | None
) -> None:
    """Record the outcome, audit the disclosure and queue the transfer notification."""
    before = transfer.status
    transfer.status = (TransferStatus.FAILED if failure else TransferStatus.TRANSFERRED).value
    transfer.entries = [
        {
            "careContextReference": ref,
            "hiStatus": "ERRORED" if failure else "DELIVERED",
            "description": failure or "Delivered",
        }
        for ref in references
    ]
    if failure:
        transfer.last_error = failure
    else:
        transfer.pushed_at = utcnow()
    await consent_service._audit_transfer(session, transfer, before)
    body = {
        "notification": {
            "consentId": transfer.consent_id,
            "transactionId": transfer.transaction_id,
            "doneAt": wire_timestamp(),
            "notifier": {"type": "HIP", "id": transfer.hip_id},
            "statusNotification": {
                "sessionStatus": "FAILED" if failure else "TRANSFERRED",
                "hipId": transfer.hip_id,
                "statusResponses": transfer.entries,
            },
        }
    }
    transfer.notified_at = utcnow()
    await enqueue(
        session,
        send_reply,
        organisation_id=str(transfer.organisation_id),
        hip_id=transfer.hip_id,
        name="hi_notify",
        body=body,
    )


@actor("abdm.register_bridge", retry=5)
async def register_bridge(bridge_url: str) -> None:
    """Tell the gateway our callback URL and every active HIP id we serve there."""
    async with session_scope(get_settings()) as session:
        facilities = list(await session.scalars(select(AbdmFacility).where(AbdmFacility.is_active)))
        services = [(f.hip_id, f.name) for f in facilities]
        recorder = outbound_recorder(session, None)
    try:
        await clients.gateway(recorder).register_bridge(bridge_url, services)
    except GatewayError as exc:
        if _transient(exc):
            raise
        logger.error("ABDM refused the bridge registration: %s", exc)


@periodic(cron="* * * * *", periodic_id="abdm.housekeeping")
@actor("abdm.housekeeping", retry=0)
async def housekeeping(timestamp: int) -> None:
    """Time out requests whose callback never came; expire consents past their erase-at."""
    async with session_scope(get_settings()) as session:
        timed_out = await time_out_requests(session)
        expired = await consent_service.expire_due(session)
        for request in timed_out:
            if request.kind in (RequestKind.GENERATE_LINK_TOKEN, RequestKind.LINK_CARE_CONTEXTS):
                await linking_service.on_link_answer(
                    session,
                    request,
                    {},
                    "No answer from ABDM in time; will retry on the next report or by hand.",
                )
    if timed_out or expired:
        logger.info(
            "ABDM housekeeping: %d requests timed out, %d consents expired", len(timed_out), expired
        )
