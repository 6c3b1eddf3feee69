"""Facilities (our HIP ids), the exchange log and the tracking of asynchronous requests.

Outbound exchanges are logged in their own short transaction, so a call that fails (and
rolls back the work that made it) still leaves its record. Requests waiting for a callback
are committed *before* the call goes out: the callback may arrive before the 202 does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.enums import MessageDirection, MessageStatus, RequestStatus
from nidaan.abdm.errors import FacilityNotFound, HipIdTaken, NoFacility
from nidaan.abdm.gateway import Exchange, Recorder
from nidaan.abdm.models import AbdmFacility, AbdmMessage, AbdmRequest
from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.kit.db import autonomous_engine
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.time import utcnow

logger = logging.getLogger(__name__)

MAX_STORED_BODY = 1_000_000


# ---- facilities -----------------------------------------------------------------------------


async def facility_by_hip(session: AsyncSession, hip_id: str | None) -> AbdmFacility | None:
    if not hip_id:
        return None
    return await session.scalar(
        select(AbdmFacility).where(AbdmFacility.hip_id == hip_id, AbdmFacility.is_active)
    )


async def facility_of(session: AsyncSession, organisation_id: uuid.UUID) -> AbdmFacility:
    """The organisation's (first active) HIP facility, or :class:`NoFacility`."""
    facility = await session.scalar(
        select(AbdmFacility)
        .where(AbdmFacility.organisation_id == organisation_id, AbdmFacility.is_active)
        .order_by(AbdmFacility.created_at)
        .limit(1)
    )
    if facility is None:
        raise NoFacility("This organisation has no ABDM facility (HIP id) registered.")
    return facility


async def list_facilities(session: AsyncSession, organisation_id: uuid.UUID) -> list[AbdmFacility]:
    return list(
        await session.scalars(
            select(AbdmFacility)
            .where(AbdmFacility.organisation_id == organisation_id)
            .order_by(AbdmFacility.created_at)
        )
    )


async def get_facility(
    session: AsyncSession, organisation_id: uuid.UUID, facility_id: uuid.UUID
) -> AbdmFacility:
    facility = await session.get(AbdmFacility, facility_id)
    if facility is None or facility.organisation_id != organisation_id:
        raise FacilityNotFound("No such ABDM facility in your organisation.")
    return facility


async def create_facility(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    *,
    hip_id: str,
    name: str,
    branch_id: uuid.UUID | None,
    counter_code: str,
    actor: AuditActor,
) -> AbdmFacility:
    if await session.scalar(select(AbdmFacility.id).where(AbdmFacility.hip_id == hip_id)):
        raise HipIdTaken(f"HIP id {hip_id} is already registered.", field="hip_id")
    facility = AbdmFacility(
        organisation_id=organisation_id,
        hip_id=hip_id,
        name=name,
        branch_id=branch_id,
        counter_code=counter_code,
        is_active=True,
    )
    session.add(facility)
    await session.flush()
    await audit_service.record(
        session,
        organisation_id=organisation_id,
        actor=actor,
        action="abdm_facility.registered",
        entity_type="abdm_facility",
        entity_id=facility.id,
        after={"hip_id": hip_id, "name": name, "branch_id": branch_id, "counter": counter_code},
    )
    return facility


# ---- the exchange log ---------------------------------------------------------------------


def outbound_recorder(session: AsyncSession, organisation_id: uuid.UUID | None) -> Recorder:
    """Log each outbound exchange in its own transaction (kept even if the caller's fails)."""

    async def record(exchange: Exchange) -> None:
        row = {
            "id": new_id(),
            "organisation_id": organisation_id,
            "direction": MessageDirection.OUT.value,
            "method": exchange.method,
            "path": exchange.path[:300],
            "request_id": exchange.request_id,
            "hip_id": exchange.hip_id,
            "http_status": exchange.http_status,
            "body": exchange.body[:MAX_STORED_BODY],
            "response": exchange.response,
            "status": (MessageStatus.SENT if exchange.error is None else MessageStatus.ERROR).value,
            "error": exchange.error,
            "duration_ms": exchange.duration_ms,
        }
        try:
            async with autonomous_engine(session).begin() as connection:
                await connection.execute(AbdmMessage.__table__.insert().values(**row))
        except Exception:  # the log must never break the exchange it records
            logger.exception(
                "Could not log an ABDM exchange (%s %s)", exchange.method, exchange.path
            )

    return record


async def store_inbound(
    session: AsyncSession,
    *,
    path: str,
    body: str,
    request_id: str | None,
    hip_id: str | None,
    organisation_id: uuid.UUID | None,
    status: MessageStatus,
    error: str | None = None,
) -> AbdmMessage:
    """Keep a callback as received; a repeat of (request id, path) is stored as a duplicate."""
    if status is MessageStatus.RECEIVED and request_id:
        first = await session.scalar(
            select(AbdmMessage.id).where(
                AbdmMessage.direction == MessageDirection.IN.value,
                AbdmMessage.request_id == request_id,
                AbdmMessage.path == path,
                AbdmMessage.status.not_in(
                    [MessageStatus.DUPLICATE.value, MessageStatus.REJECTED.value]
                ),
            )
        )
        if first is not None:
            status, error = MessageStatus.DUPLICATE, f"repeat of message {first}"
    message = AbdmMessage(
        organisation_id=organisation_id,
        direction=MessageDirection.IN.value,
        method="POST",
        path=path[:300],
        request_id=(request_id or "")[:100] or None,
        hip_id=(hip_id or "")[:50] or None,
        body=body[:MAX_STORED_BODY],
        status=status.value,
        error=error,
    )
    session.add(message)
    await session.flush()
    return message


async def list_messages(
    session: AsyncSession, organisation_id: uuid.UUID, page: PageParams, *, direction: str | None
) -> tuple[list[AbdmMessage], int]:
    statement = select(AbdmMessage).where(AbdmMessage.organisation_id == organisation_id)
    if direction:
        statement = statement.where(AbdmMessage.direction == direction)
    return await paginate(session, statement.order_by(AbdmMessage.created_at.desc()), page)


# ---- asynchronous requests ---------------------------------------------------------------


async def open_request(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    kind: str,
    hip_id: str,
    timeout_seconds: int,
    patient_id: uuid.UUID | None = None,
    subject: dict[str, Any] | None = None,
) -> AbdmRequest:
    """Record a request before it is sent (commit this before calling the gateway)."""
    request = AbdmRequest(
        organisation_id=organisation_id,
        request_id=uuid.uuid4(),
        kind=kind,
        status=RequestStatus.PENDING.value,
        hip_id=hip_id,
        patient_id=patient_id,
        subject=subject or {},
        attempts=1,
        deadline_at=utcnow() + timedelta(seconds=timeout_seconds),
    )
    session.add(request)
    await session.flush()
    return request


async def mark_sent(session: AsyncSession, request_id: uuid.UUID) -> None:
    """The gateway said 202; unless the callback already answered, we now wait for it."""
    await session.execute(
        update(AbdmRequest)
        .where(
            AbdmRequest.request_id == request_id,
            AbdmRequest.status == RequestStatus.PENDING.value,
        )
        .values(status=RequestStatus.SENT.value, sent_at=utcnow())
    )


async def mark_failed(session: AsyncSession, request_id: uuid.UUID, error: str) -> None:
    await session.execute(
        update(AbdmRequest)
        .where(
            AbdmRequest.request_id == request_id,
            AbdmRequest.status.in_([RequestStatus.PENDING.value, RequestStatus.SENT.value]),
        )
        .values(status=RequestStatus.FAILED.value, error=error[:2000], answered_at=utcnow())
    )


async def answer_request(
    session: AsyncSession, request_id: str | None, response: dict[str, Any], error: str | None
) -> AbdmRequest | None:
    """Apply a callback to its request (locked); None if unknown or already answered."""
    try:
        key = uuid.UUID(str(request_id))
    except ValueError:
        return None
    request = await session.scalar(
        select(AbdmRequest).where(AbdmRequest.request_id == key).with_for_update()
    )
    if request is None or request.status in (RequestStatus.ANSWERED, RequestStatus.FAILED):
        return None
    request.status = (RequestStatus.FAILED if error else RequestStatus.ANSWERED).value
    request.response = response
    request.error = error
    request.answered_at = utcnow()
    await session.flush()
    return request


async def time_out_requests(session: AsyncSession) -> list[AbdmRequest]:
    """Every request past its deadline without an answer becomes timed out."""
    rows = await session.scalars(
        update(AbdmRequest)
        .where(
            AbdmRequest.status.in_([RequestStatus.PENDING.value, RequestStatus.SENT.value]),
            AbdmRequest.deadline_at < utcnow(),
        )
        .values(
            status=RequestStatus.TIMED_OUT.value,
            error="No callback from ABDM before the deadline.",
            answered_at=utcnow(),
        )
        .returning(AbdmRequest)
    )
    return list(rows)


async def list_requests(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    page: PageParams,
    *,
    statuses: Sequence[str] = (),
    kind: str | None = None,
    patient_id: uuid.UUID | None = None,
) -> tuple[list[AbdmRequest], int]:
    statement = select(AbdmRequest).where(AbdmRequest.organisation_id == organisation_id)
    if statuses:
        statement = statement.where(AbdmRequest.status.in_(list(statuses)))
    if kind:
        statement = statement.where(AbdmRequest.kind == kind)
    if patient_id:
        statement = statement.where(AbdmRequest.patient_id == patient_id)
    return await paginate(session, statement.order_by(AbdmRequest.created_at.desc()), page)
