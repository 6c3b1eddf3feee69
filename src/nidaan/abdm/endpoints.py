"""HTTP: the ABDM desk and admin API under /api/v1/abdm, and the gateway's callbacks at the
paths ABDM prescribes (``/api/v3/...``), which are authenticated by the gateway's JWT."""

from __future__ import annotations

import io
import json
import uuid

import segno
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm import clients, exchanges
from nidaan.abdm.callbacks import CALLBACK_PATHS
from nidaan.abdm.consent import consent_service  # noqa: F401  (consents listed below)
from nidaan.abdm.domain import mask_aadhaar
from nidaan.abdm.enrolment import enrolment_service
from nidaan.abdm.enums import MessageStatus, ShareStatus
from nidaan.abdm.errors import (
    AbdmNotEnabled,
    AbdmUnavailable,
    AbhaAlreadyLinked,
    EnrolmentStateError,
    FacilityNotFound,
    HipIdTaken,
    InvalidAadhaarNumber,
    OtpRejected,
    ShareTokenClosed,
)
from nidaan.abdm.gateway import CallbackRejected
from nidaan.abdm.linking import linking_service
from nidaan.abdm.models import AbdmConsent, AbdmEnrolment, AbdmShareToken, AbdmTransfer
from nidaan.abdm.schemas import (
    AadhaarOtp,
    AbhaLinkStart,
    Accepted,
    AddressChoice,
    BridgeOut,
    CareContextOut,
    ConsentOut,
    EnrolmentOut,
    EnrolmentStart,
    FacilityCreate,
    FacilityOut,
    MessageOut,
    OtpIn,
    RequestOut,
    ShareCandidateOut,
    ShareMatch,
    ShareRegister,
    ShareRegisterOut,
    ShareTokenOut,
    TransferOut,
)
from nidaan.abdm.share import share_service
from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.config import get_settings
from nidaan.deps import get_session, page_params
from nidaan.errors import problem, problem_responses
from nidaan.kit.errors import NotFound
from nidaan.kit.jobs import enqueue
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.phone import mask_mobile
from nidaan.kit.schemas import ListResource
from nidaan.kit.storage import public_base_url
from nidaan.patients.domain import mask_abha_number
from nidaan.patients.endpoints import patient_brief

router = APIRouter(prefix="/abdm", tags=["abdm"])
public_router = APIRouter(tags=["abdm callbacks"])

admins = require_roles(Role.ADMIN)
desk = require_roles(Role.ADMIN, Role.FRONT_DESK)
readers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST, Role.AUDITOR)
auditors = require_roles(Role.ADMIN, Role.AUDITOR)
ABHA_ERRORS = problem_responses(AbdmUnavailable, AbdmNotEnabled, OtpRejected, EnrolmentStateError)


def _enrolment_out(row: AbdmEnrolment) -> EnrolmentOut:
    return EnrolmentOut(
        id=row.id,
        patient_id=row.patient_id,
        kind=row.kind,
        status=row.status,
        aadhaar_masked=mask_aadhaar(row.aadhaar_last4) if row.aadhaar_last4 else None,
        abha_number_masked=mask_abha_number(row.abha_number) if row.abha_number else None,
        abha_address=row.abha_address,
        address_suggestions=list(row.address_suggestions or []),
        profile=dict(row.profile or {}),
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


# ---- facilities ------------------------------------------------------------------------------


@router.get(
    "/facilities",
    response_model=ListResource[FacilityOut],
    operation_id="abdm:facilities",
    responses=AUTH_ERRORS,
)
async def list_facilities(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[FacilityOut]:
    """Your facilities registered with ABDM as HIPs."""
    rows = await exchanges.list_facilities(session, principal.organisation_id)
    return ListResource[FacilityOut].page_of([FacilityOut.model_validate(r) for r in rows], page)


@router.post(
    "/facilities",
    status_code=201,
    response_model=FacilityOut,
    operation_id="abdm:facility_create",
    responses={**AUTH_ERRORS, **problem_responses(HipIdTaken)},
)
async def create_facility(
    body: FacilityCreate,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FacilityOut:
    """Register a facility's HIP id (its HFR id); then register the bridge (POST /abdm/bridge)."""
    if body.branch_id is not None:
        from nidaan.tenancy.service import tenancy_service

        await tenancy_service.check_branches_belong(
            session, principal.organisation_id, [body.branch_id]
        )
    facility = await exchanges.create_facility(
        session,
        principal.organisation_id,
        hip_id=body.hip_id,
        name=body.name,
        branch_id=body.branch_id,
        counter_code=body.counter_code,
        actor=principal.actor,
    )
    return FacilityOut.model_validate(facility)


@router.get(
    "/facilities/{facility_id}/qr",
    operation_id="abdm:facility_qr",
    responses={**AUTH_ERRORS, **problem_responses(FacilityNotFound)},
    response_class=Response,
)
async def facility_qr(
    facility_id: uuid.UUID,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """The scan-and-share QR for the registration desk (SVG): patients scan it in their ABHA app."""
    facility = await exchanges.get_facility(session, principal.organisation_id, facility_id)
    link = f"https://phrsbx.abdm.gov.in/share-profile?hip-id={facility.hip_id}&counter-id={facility.counter_code}"
    buffer = io.BytesIO()
    segno.make(link, error="m").save(
        buffer, kind="svg", scale=6, title=f"{facility.name} - scan and share"
    )
    return Response(buffer.getvalue(), media_type="image/svg+xml")


@router.post(
    "/bridge",
    status_code=202,
    response_model=BridgeOut,
    operation_id="abdm:bridge",
    responses={**AUTH_ERRORS, **problem_responses(AbdmNotEnabled)},
)
async def register_bridge(
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> BridgeOut:
    """Tell ABDM where our callbacks go (NIDAAN_PUBLIC_BASE_URL) and which HIP ids we serve."""
    from nidaan.abdm.tasks import register_bridge as register_job

    clients.current_config()
    url = public_base_url(get_settings())
    await enqueue(session, register_job, bridge_url=url)
    rows = await exchanges.list_facilities(session, principal.organisation_id)
    return BridgeOut(bridge_url=url, hip_ids=[r.hip_id for r in rows if r.is_active])


# ---- ABHA: create by Aadhaar OTP, or link an existing one ---------------------------------


@router.post(
    "/enrolments",
    status_code=201,
    response_model=EnrolmentOut,
    operation_id="abdm:enrolment_start",
    responses={**AUTH_ERRORS, **ABHA_ERRORS, **problem_responses(InvalidAadhaarNumber)},
)
async def start_enrolment(
    body: EnrolmentStart,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> EnrolmentOut:
    """Create an ABHA for a patient: ABDM sends an OTP to the Aadhaar-linked mobile.

    The Aadhaar number is checked (Verhoeff), encrypted for ABDM and forgotten: only its last
    four digits are kept and shown.
    """
    row = await enrolment_service.start_creation(
        session, principal, body.patient_id, body.aadhaar_number
    )
    return _enrolment_out(row)


@router.get(
    "/enrolments/{enrolment_id}",
    response_model=EnrolmentOut,
    operation_id="abdm:enrolment",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_enrolment(
    enrolment_id: uuid.UUID,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> EnrolmentOut:
    return _enrolment_out(await enrolment_service.get(session, principal, enrolment_id))


@router.post(
    "/enrolments/{enrolment_id}/aadhaar-otp",
    response_model=EnrolmentOut,
    operation_id="abdm:enrolment_aadhaar_otp",
    responses={**AUTH_ERRORS, **ABHA_ERRORS, **problem_responses(AbhaAlreadyLinked)},
)
async def verify_aadhaar_otp(
    enrolment_id: uuid.UUID,
    body: AadhaarOtp,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> EnrolmentOut:
    """The Aadhaar OTP and the mobile to link; next: mobile OTP or choosing an ABHA address."""
    row = await enrolment_service.verify_aadhaar_otp(
        session, principal, enrolment_id, body.otp, body.mobile
    )
    return _enrolment_out(row)


@router.post(
    "/enrolments/{enrolment_id}/mobile-otp",
    response_model=EnrolmentOut,
    operation_id="abdm:enrolment_mobile_otp",
    responses={**AUTH_ERRORS, **ABHA_ERRORS, **problem_responses(AbhaAlreadyLinked)},
)
async def verify_mobile_otp(
    enrolment_id: uuid.UUID,
    body: OtpIn,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> EnrolmentOut:
    return _enrolment_out(
        await enrolment_service.verify_mobile_otp(session, principal, enrolment_id, body.otp)
    )


@router.post(
    "/enrolments/{enrolment_id}/address",
    response_model=EnrolmentOut,
    operation_id="abdm:enrolment_address",
    responses={**AUTH_ERRORS, **ABHA_ERRORS, **problem_responses(AbhaAlreadyLinked)},
)
async def choose_address(
    enrolment_id: uuid.UUID,
    body: AddressChoice,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> EnrolmentOut:
    """Choose the ABHA address (one of the suggestions or another); the ABHA is then linked."""
    return _enrolment_out(
        await enrolment_service.choose_address(session, principal, enrolment_id, body.abha_address)
    )


@router.post(
    "/abha-links",
    status_code=201,
    response_model=EnrolmentOut,
    operation_id="abdm:abha_link_start",
    responses={**AUTH_ERRORS, **ABHA_ERRORS},
)
async def start_abha_link(
    body: AbhaLinkStart,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> EnrolmentOut:
    """Link an ABHA the patient already has: ABDM sends them an OTP."""
    row = await enrolment_service.start_link(
        session,
        principal,
        body.patient_id,
        abha_number=body.abha_number,
        abha_address=body.abha_address,
        otp_via=body.otp_via,
    )
    return _enrolment_out(row)


@router.post(
    "/abha-links/{enrolment_id}/otp",
    response_model=EnrolmentOut,
    operation_id="abdm:abha_link_otp",
    responses={**AUTH_ERRORS, **ABHA_ERRORS, **problem_responses(AbhaAlreadyLinked)},
)
async def verify_abha_link(
    enrolment_id: uuid.UUID,
    body: OtpIn,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> EnrolmentOut:
    return _enrolment_out(
        await enrolment_service.verify_link_otp(session, principal, enrolment_id, body.otp)
    )


# ---- linking, requests, consents, transfers, exchanges -----------------------------------


@router.get(
    "/care-contexts",
    response_model=ListResource[CareContextOut],
    operation_id="abdm:care_contexts",
    responses=AUTH_ERRORS,
)
async def list_care_contexts(
    patient_id: uuid.UUID | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[CareContextOut]:
    """Reported orders offered to ABDM, and whether they are linked to the patient's ABHA."""
    rows = await linking_service.list_care_contexts(session, principal.organisation_id, patient_id)
    return ListResource[CareContextOut].page_of(
        [CareContextOut.model_validate(r) for r in rows], page
    )


@router.post(
    "/patients/{patient_id}/link",
    status_code=202,
    response_model=Accepted,
    operation_id="abdm:patient_link",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def link_patient(
    patient_id: uuid.UUID,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Accepted:
    """Offer every reported order of the patient to their ABHA again (e.g. after a failure)."""
    from nidaan.patients.service import patients_service

    await patients_service.get(session, principal, patient_id)
    await linking_service.ensure_care_contexts(session, principal.organisation_id, patient_id)
    await linking_service.queue_linking(session, principal.organisation_id, patient_id)
    return Accepted(status="queued")


@router.get(
    "/requests",
    response_model=ListResource[RequestOut],
    operation_id="abdm:requests",
    responses=AUTH_ERRORS,
)
async def list_requests(
    status: list[str] = Query([], description="pending, sent, answered, failed, timed_out"),
    kind: str | None = Query(None, description="generate_link_token, link_care_contexts, ..."),
    patient_id: uuid.UUID | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[RequestOut]:
    """ABDM calls waiting for (or answered by) their callback, newest first."""
    rows, total = await exchanges.list_requests(
        session, principal.organisation_id, page, statuses=status, kind=kind, patient_id=patient_id
    )
    return ListResource[RequestOut].build(
        [RequestOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/consents",
    response_model=ListResource[ConsentOut],
    operation_id="abdm:consents",
    responses=AUTH_ERRORS,
)
async def list_consents(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ConsentOut]:
    """Consent artefacts received for your facilities, with their status."""
    from sqlalchemy import select

    statement = (
        select(AbdmConsent)
        .where(AbdmConsent.organisation_id == principal.organisation_id)
        .order_by(AbdmConsent.updated_at.desc())
    )
    rows, total = await paginate(session, statement, page)
    return ListResource[ConsentOut].build(
        [ConsentOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/transfers",
    response_model=ListResource[TransferOut],
    operation_id="abdm:transfers",
    responses=AUTH_ERRORS,
)
async def list_transfers(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[TransferOut]:
    """Health-information requests and what was sent for each (the disclosure log)."""
    from sqlalchemy import select

    statement = (
        select(AbdmTransfer)
        .where(AbdmTransfer.organisation_id == principal.organisation_id)
        .order_by(AbdmTransfer.created_at.desc())
    )
    rows, total = await paginate(session, statement, page)
    return ListResource[TransferOut].build(
        [TransferOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/messages",
    response_model=ListResource[MessageOut],
    operation_id="abdm:messages",
    responses=AUTH_ERRORS,
)
async def list_messages(
    direction: str | None = Query(None, pattern="^(in|out)$"),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(auditors),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[MessageOut]:
    """Every exchange with ABDM as it went over the wire (secrets redacted)."""
    rows, total = await exchanges.list_messages(
        session, principal.organisation_id, page, direction=direction
    )
    return ListResource[MessageOut].build(
        [MessageOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


# ---- scan and share ----------------------------------------------------------------------


async def _token_out(
    session: AsyncSession, principal: Principal, token: AbdmShareToken
) -> ShareTokenOut:
    candidates = (
        await share_service.candidates(session, principal, token)
        if token.status == ShareStatus.WAITING
        else []
    )
    return ShareTokenOut(
        id=token.id,
        token_number=token.token_number,
        share_date=token.share_date,
        counter_code=token.counter_code,
        status=token.status,
        name=token.name,
        gender=token.gender,
        year_of_birth=token.year_of_birth,
        abha_number_masked=mask_abha_number(token.abha_number) if token.abha_number else None,
        abha_address=token.abha_address,
        mobile_masked=mask_mobile(token.mobile) if token.mobile else None,
        received_at=token.received_at,
        expires_at=token.expires_at,
        patient_id=token.patient_id,
        candidates=[
            ShareCandidateOut(
                score=c.score, reasons=list(c.reasons), patient=patient_brief(c.patient)
            )
            for c in candidates
        ],
    )


@router.get(
    "/share-tokens",
    response_model=ListResource[ShareTokenOut],
    operation_id="abdm:share_tokens",
    responses=AUTH_ERRORS,
)
async def list_share_tokens(
    status: ShareStatus | None = Query(ShareStatus.WAITING),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ShareTokenOut]:
    """The desk's token queue: profiles shared by scanning the QR, with likely existing records."""
    rows, total = await share_service.list(session, principal, page, status=status)
    return ListResource[ShareTokenOut].build(
        [await _token_out(session, principal, r) for r in rows], total, page.page, page.limit
    )


@router.post(
    "/share-tokens/{token_id}/register",
    status_code=201,
    response_model=ShareRegisterOut,
    operation_id="abdm:share_register",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, ShareTokenClosed)},
)
async def register_shared(
    token_id: uuid.UUID,
    body: ShareRegister,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ShareRegisterOut:
    """Register the shared profile as a new patient (likely duplicates are flagged)."""
    token, registration = await share_service.register(
        session, principal, token_id, body.registered_at_branch_id
    )
    return ShareRegisterOut(
        token=await _token_out(session, principal, token),
        patient_id=registration.patient.id,
        possible_duplicates=[d.candidate.id for d in registration.possible_duplicates],
    )


@router.post(
    "/share-tokens/{token_id}/match",
    response_model=ShareTokenOut,
    operation_id="abdm:share_match",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, ShareTokenClosed, AbhaAlreadyLinked)},
)
async def match_shared(
    token_id: uuid.UUID,
    body: ShareMatch,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ShareTokenOut:
    """The shared profile is this existing patient: their record gets the ABHA."""
    token = await share_service.match(session, principal, token_id, body.patient_id)
    return await _token_out(session, principal, token)


@router.post(
    "/share-tokens/{token_id}/dismiss",
    response_model=ShareTokenOut,
    operation_id="abdm:share_dismiss",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, ShareTokenClosed)},
)
async def dismiss_shared(
    token_id: uuid.UUID,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ShareTokenOut:
    token = await share_service.dismiss(session, principal, token_id)
    return await _token_out(session, principal, token)


# ---- the gateway's callbacks ----------------------------------------------------------------


async def receive_callback(
    request: Request, session: AsyncSession = Depends(get_session, scope="function")
) -> Response:
    """Verify the gateway's token, keep the callback as received, queue it, answer 202."""
    from nidaan.abdm.tasks import process_callback

    raw = (await request.body())[: exchanges.MAX_STORED_BODY].decode("utf-8", errors="replace")
    path = request.url.path
    request_id = request.headers.get("request-id")
    hip_id = request.headers.get("x-hip-id")
    try:
        await clients.verifier().verify(request.headers.get("authorization"))
    except CallbackRejected as exc:
        await exchanges.store_inbound(
            session,
            path=path,
            body=raw,
            request_id=request_id,
            hip_id=hip_id,
            organisation_id=None,
            status=MessageStatus.REJECTED,
            error=f"unauthenticated: {exc}",
        )
        return problem(
            401, "invalid_gateway_token", "Unauthorized", "The gateway token is not valid.", request
        )
    facility = await exchanges.facility_by_hip(session, hip_id)
    try:
        json.loads(raw)
        error = None if facility is not None else f"unknown HIP id {hip_id!r}"
    except ValueError:
        error = "the body is not JSON"
    if not request_id:
        error = error or "no REQUEST-ID header"
    message = await exchanges.store_inbound(
        session,
        path=path,
        body=raw,
        request_id=request_id,
        hip_id=hip_id,
        organisation_id=facility.organisation_id if facility else None,
        status=MessageStatus.REJECTED if error else MessageStatus.RECEIVED,
        error=error,
    )
    if error:
        status = 404 if facility is None and "HIP" in error else 400
        return problem(status, "callback_rejected", "Callback rejected", error, request)
    if message.status == MessageStatus.RECEIVED:
        await enqueue(session, process_callback, message_id=str(message.id))
    return JSONResponse({"status": "accepted"}, status_code=202)


for _path in CALLBACK_PATHS:
    public_router.add_api_route(
        _path,
        receive_callback,
        methods=["POST"],
        status_code=202,
        operation_id="abdm_callback:" + _path.removeprefix("/api/v3/").replace("/", "_"),
        summary=f"ABDM callback {_path}",
        include_in_schema=True,
    )
