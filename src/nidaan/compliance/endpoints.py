"""DPDP API: the notice and consent per purpose, rights requests and grievances, nominee,
legal holds, retention, the breach register, the read-access log, the access summary and
export (staff), and the patient's own privacy page (public, by a secret link)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.compliance import domain
from nidaan.compliance.enums import ConsentSource, Purpose, RequestKind
from nidaan.compliance.errors import (
    BreachNotFound,
    InvalidCorrection,
    LegalHoldNotFound,
    PrivacyLinkInvalid,
    RequestClosed,
    RequestNotFound,
)
from nidaan.compliance.models import Breach, LegalHold, Nominee, RightsRequest
from nidaan.compliance.schemas import (
    AccessLogOut,
    AccessSummary,
    AffectedOut,
    AffectedPatient,
    BreachCreate,
    BreachOut,
    BreachUpdate,
    ConsentChange,
    ConsentsOut,
    LegalHoldIn,
    LegalHoldOut,
    NomineeIn,
    NomineeOut,
    NoticeOut,
    PatientRequestCreate,
    PrivacyLinkOut,
    PrivacyPageOut,
    PurposeConsentOut,
    RequestClose,
    RequestCreate,
    RequestOut,
    RetentionClassReport,
    RetentionRuleOut,
    RetentionRun,
)
from nidaan.compliance.service import (
    ConsentState,
    LegalHoldActive,
    compliance_service,
    mask_mobile,
)
from nidaan.config import get_settings
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.kit.storage import public_base_url
from nidaan.kit.time import utcnow
from nidaan.patients.models import Patient
from nidaan.patients.service import patients_service

router = APIRouter(tags=["privacy (DPDP)"])
public_router = APIRouter(tags=["privacy (DPDP)"])

consent_readers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST, Role.AUDITOR)
consent_writers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST)
desk = require_roles(Role.ADMIN, Role.FRONT_DESK)
desk_readers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.AUDITOR)
admins = require_roles(Role.ADMIN)
overseers = require_roles(Role.ADMIN, Role.AUDITOR)

PATIENT = "/patients/{patient_id}/privacy"


def consent_out(state: ConsentState) -> PurposeConsentOut:
    return PurposeConsentOut(**{k: getattr(state, k) for k in PurposeConsentOut.model_fields})


def request_out(row: RightsRequest) -> RequestOut:
    return RequestOut(
        id=row.id,
        patient_id=row.patient_id,
        kind=row.kind,
        status=row.status,
        source=row.source,
        description=row.description,
        changes=row.changes,
        received_at=row.received_at,
        due_at=row.due_at,
        overdue=row.closed_at is None and row.due_at < utcnow(),
        escalated_at=row.escalated_at,
        closed_at=row.closed_at,
        resolution=row.resolution,
        outcome=row.outcome,
    )


def nominee_out(row: Nominee | None) -> NomineeOut | None:
    if row is None:
        return None
    return NomineeOut(
        full_name=row.full_name,
        relationship=row.relationship,
        mobile_masked=mask_mobile(row.mobile),
        email=row.email,
        recorded_at=row.recorded_at,
    )


def breach_out(row: Breach) -> BreachOut:
    now = utcnow()
    board_due = domain.board_report_due(row.aware_at)
    cert_due = domain.cert_in_due(row.aware_at)
    overdue = []
    if row.cert_in_reported_at is None and now > cert_due:
        overdue.append("cert_in_report")
    if row.board_report_at is None and now > board_due:
        overdue.append("board_report")
    if row.board_intimated_at is None and now > row.aware_at:
        overdue.append("board_intimation")
    if row.principals_notified_at is None and now > row.aware_at:
        overdue.append("principals_notified")
    return BreachOut(
        id=row.id,
        title=row.title,
        description=row.description,
        data_classes=list(row.data_classes),
        occurred_from=row.occurred_from,
        occurred_to=row.occurred_to,
        aware_at=row.aware_at,
        status=row.status,
        mitigation=row.mitigation,
        board_report_due=board_due,
        cert_in_due=cert_due,
        board_intimated_at=row.board_intimated_at,
        board_report_at=row.board_report_at,
        cert_in_reported_at=row.cert_in_reported_at,
        principals_notified_at=row.principals_notified_at,
        overdue=overdue if row.status == "open" else [],
    )


def hold_out(row: LegalHold) -> LegalHoldOut:
    return LegalHoldOut.model_validate(row)


def parse_purpose(raw: str) -> Purpose:
    try:
        return Purpose(raw)
    except ValueError:
        raise NotFound(
            f"Unknown purpose {raw!r}; one of {', '.join(p.value for p in Purpose)}.",
            entity="purpose",
        ) from None


async def notice(session: AsyncSession, patient: Patient, language: str | None) -> NoticeOut:
    shown = domain.notice_language(language or patient.preferred_language)
    states = await compliance_service.consents(session, patient, shown)
    return NoticeOut(
        version=domain.NOTICE_VERSION,
        language=shown,
        purposes=[consent_out(s) for s in states],
        rights=domain.RIGHTS_TEXT[shown],
        grievance_response_days=domain.RESPONSE_DAYS,
        contact=await compliance_service.lab_contact(session, patient.organisation_id),
    )


# ------------------------------------------------------------------ per patient (staff)


@router.get(
    PATIENT + "/notice",
    response_model=NoticeOut,
    operation_id="privacy:notice",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def patient_notice(
    patient_id: uuid.UUID,
    language: str | None = Query(None, max_length=8, description="Default: the patient's"),
    principal: Principal = Depends(consent_readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> NoticeOut:
    """The notice to show the patient at the desk, with their answer per purpose."""
    patient = await patients_service.get(session, principal, patient_id)
    return await notice(session, patient, language)


@router.put(
    PATIENT + "/consents/{purpose}",
    response_model=ConsentsOut,
    operation_id="privacy:set_consent",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def set_consent(
    patient_id: uuid.UUID,
    purpose: str,
    body: ConsentChange,
    principal: Principal = Depends(consent_writers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ConsentsOut:
    """Record consent given or withdrawn at the desk for one purpose (audited). The
    messaging purposes are the notification consent per channel: one record for both."""
    patient = await patients_service.get(session, principal, patient_id)
    await compliance_service.set_consent(
        session,
        patient,
        parse_purpose(purpose),
        granted=body.granted,
        source=ConsentSource.DESK,
        caller=principal,
        language=body.notice_language,
    )
    return ConsentsOut(
        consents=[consent_out(s) for s in await compliance_service.consents(session, patient)]
    )


@router.get(
    PATIENT + "/summary",
    response_model=AccessSummary,
    operation_id="privacy:summary",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def access_summary(
    patient_id: uuid.UUID,
    principal: Principal = Depends(desk_readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> AccessSummary:
    """s.11: what the lab holds about the patient, why, and with whom it was shared."""
    patient = await patients_service.get(session, principal, patient_id)
    summary = await compliance_service.access_summary(session, principal, patient)
    return _summary_out(summary)


def _summary_out(summary: dict[str, Any]) -> AccessSummary:
    return AccessSummary(
        **{
            **summary,
            "consents": [consent_out(s) for s in summary["consents"]],
            "nominee": nominee_out(summary["nominee"]),
        }
    )


@router.get(
    PATIENT + "/export",
    operation_id="privacy:export",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "FHIR bundle, PDFs, summary"},
        **AUTH_ERRORS,
        **problem_responses(NotFound),
    },
)
async def export(
    patient_id: uuid.UUID,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """The patient's data on request: a FHIR R4 Bundle, the report PDFs, the consents,
    the access summary and the read-access log, in one ZIP."""
    patient = await patients_service.get(session, principal, patient_id)
    data = await compliance_service.export(session, principal, patient)
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{patient.mrn}-data.zip"',
            "Cache-Control": "private, no-store",
        },
    )


@router.get(
    PATIENT + "/access-log",
    response_model=ListResource[AccessLogOut],
    operation_id="privacy:access_log",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def access_log(
    patient_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(overseers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[AccessLogOut]:
    """Who opened the patient's record or reports (kept one year), newest first."""
    patient = await patients_service.get(session, principal, patient_id)
    ids = await patients_service.history_ids(session, principal, patient.id)
    rows, total = await audit_service.access_log(session, principal.organisation_id, ids, page)
    return ListResource[AccessLogOut].build(
        [AccessLogOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    PATIENT + "/nominee",
    response_model=NomineeOut | None,
    operation_id="privacy:get_nominee",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_nominee(
    patient_id: uuid.UUID,
    principal: Principal = Depends(desk_readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> NomineeOut | None:
    patient = await patients_service.get(session, principal, patient_id)
    return nominee_out(await compliance_service.nominee(session, patient))


@router.put(
    PATIENT + "/nominee",
    response_model=NomineeOut,
    operation_id="privacy:set_nominee",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, InvalidCorrection)},
)
async def set_nominee(
    patient_id: uuid.UUID,
    body: NomineeIn,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> NomineeOut:
    """s.14: the person who may exercise the patient's rights on death or incapacity."""
    patient = await patients_service.get(session, principal, patient_id)
    row = await compliance_service.set_nominee(session, principal, patient, **body.model_dump())
    out = nominee_out(row)
    assert out is not None
    return out


@router.post(
    PATIENT + "/requests",
    response_model=RequestOut,
    status_code=201,
    operation_id="privacy:create_request",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, InvalidCorrection)},
)
async def create_request(
    patient_id: uuid.UUID,
    body: RequestCreate,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RequestOut:
    """Record a request (access, correction, erasure, export) or a grievance made at the
    desk; the 90-day clock starts now."""
    patient = await patients_service.get(session, principal, patient_id)
    row = await compliance_service.create_request(
        session,
        patient,
        body.kind,
        description=body.description,
        changes=body.changes,
        source=ConsentSource.DESK,
        caller=principal,
    )
    return request_out(row)


@router.post(
    PATIENT + "/link",
    response_model=PrivacyLinkOut,
    status_code=201,
    operation_id="privacy:create_link",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def create_link(
    patient_id: uuid.UUID,
    principal: Principal = Depends(desk),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PrivacyLinkOut:
    """A link for the patient's own privacy page (notice, consents, requests); 30 days,
    and a new link ends the previous one."""
    patient = await patients_service.get(session, principal, patient_id)
    token, row = await compliance_service.create_link(session, principal, patient)
    base = public_base_url(get_settings())
    return PrivacyLinkOut(url=f"{base}/my-privacy/{token}", token=token, expires_at=row.expires_at)


@router.post(
    PATIENT + "/legal-holds",
    response_model=LegalHoldOut,
    status_code=201,
    operation_id="privacy:place_hold",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def place_hold(
    patient_id: uuid.UUID,
    body: LegalHoldIn,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> LegalHoldOut:
    """Keep the patient's records beyond retention and erasure (litigation, an inquiry)."""
    patient = await patients_service.get(session, principal, patient_id)
    return hold_out(await compliance_service.place_hold(session, principal, patient, body.reason))


# ------------------------------------------------------------------ the organisation's


@router.get(
    "/privacy/requests",
    response_model=ListResource[RequestOut],
    operation_id="privacy:list_requests",
    responses={**AUTH_ERRORS},
)
async def list_requests(
    open_only: bool = Query(False, description="Only open and escalated requests"),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(desk_readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[RequestOut]:
    """Rights requests and grievances, the soonest due first."""
    rows, total = await compliance_service.list_requests(
        session, principal, page, open_only=open_only
    )
    return ListResource[RequestOut].build(
        [request_out(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/privacy/requests/{request_id}",
    response_model=RequestOut,
    operation_id="privacy:get_request",
    responses={**AUTH_ERRORS, **problem_responses(RequestNotFound)},
)
async def get_request(
    request_id: uuid.UUID,
    principal: Principal = Depends(desk_readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RequestOut:
    return request_out(await compliance_service.get_request(session, principal, request_id))


@router.post(
    "/privacy/requests/{request_id}/close",
    response_model=RequestOut,
    operation_id="privacy:close_request",
    responses={
        **AUTH_ERRORS,
        **problem_responses(RequestNotFound, RequestClosed, LegalHoldActive, InvalidCorrection),
    },
)
async def close_request(
    request_id: uuid.UUID,
    body: RequestClose,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RequestOut:
    """Answer a request: completing an erasure erases what the law lets go and lists what
    is kept, until when and why; completing a correction applies it."""
    row = await compliance_service.close_request(
        session, principal, request_id, status=body.status, resolution=body.resolution
    )
    return request_out(row)


@router.get(
    "/privacy/legal-holds",
    response_model=ListResource[LegalHoldOut],
    operation_id="privacy:list_holds",
    responses={**AUTH_ERRORS},
)
async def list_holds(
    principal: Principal = Depends(overseers),
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[LegalHoldOut]:
    rows = [hold_out(r) for r in await compliance_service.holds(session, principal)]
    return ListResource[LegalHoldOut].page_of(rows, page)


@router.post(
    "/privacy/legal-holds/{hold_id}/release",
    response_model=LegalHoldOut,
    operation_id="privacy:release_hold",
    responses={**AUTH_ERRORS, **problem_responses(LegalHoldNotFound)},
)
async def release_hold(
    hold_id: uuid.UUID,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> LegalHoldOut:
    return hold_out(await compliance_service.release_hold(session, principal, hold_id))


@router.get(
    "/privacy/retention",
    response_model=ListResource[RetentionRuleOut],
    operation_id="privacy:retention_rules",
    responses={**AUTH_ERRORS},
)
async def retention_rules(
    principal: Principal = Depends(overseers), page: PageParams = Depends(page_params)
) -> ListResource[RetentionRuleOut]:
    """The retention policy: per record class, how long, on what legal basis, and whether
    the retention job purges it or a person reviews it."""
    rules = [
        RetentionRuleOut.model_validate(rule, from_attributes=True) for rule in domain.RETENTION
    ]
    return ListResource[RetentionRuleOut].page_of(rules, page)


@router.post(
    "/privacy/retention/run",
    response_model=RetentionRun,
    operation_id="privacy:retention_run",
    responses={**AUTH_ERRORS},
)
async def retention_run(
    dry_run: bool = Query(True, description="Count only (the default); false deletes"),
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RetentionRun:
    """Apply the retention policy now (the worker also runs it nightly). A dry run only
    reports what is past its period and what a legal hold keeps."""
    now = utcnow()
    report = await compliance_service.run_retention(
        session, principal.organisation_id, dry_run=dry_run, now=now
    )
    return RetentionRun(
        dry_run=dry_run, at=now, classes=[RetentionClassReport(**r) for r in report]
    )


@router.post(
    "/privacy/breaches",
    response_model=BreachOut,
    status_code=201,
    operation_id="privacy:create_breach",
    responses={**AUTH_ERRORS},
)
async def create_breach(
    body: BreachCreate,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> BreachOut:
    """Record a personal-data breach; the 6-hour (CERT-In) and 72-hour (Board) clocks
    start at ``aware_at``."""
    fields = body.model_dump()
    fields["data_classes"] = [c.value for c in body.data_classes]
    return breach_out(await compliance_service.create_breach(session, principal, **fields))


@router.get(
    "/privacy/breaches",
    response_model=ListResource[BreachOut],
    operation_id="privacy:list_breaches",
    responses={**AUTH_ERRORS},
)
async def list_breaches(
    principal: Principal = Depends(overseers),
    page: PageParams = Depends(page_params),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[BreachOut]:
    rows = [breach_out(r) for r in await compliance_service.list_breaches(session, principal)]
    return ListResource[BreachOut].page_of(rows, page)


@router.get(
    "/privacy/breaches/{breach_id}",
    response_model=BreachOut,
    operation_id="privacy:get_breach",
    responses={**AUTH_ERRORS, **problem_responses(BreachNotFound)},
)
async def get_breach(
    breach_id: uuid.UUID,
    principal: Principal = Depends(overseers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> BreachOut:
    return breach_out(await compliance_service.get_breach(session, principal, breach_id))


@router.patch(
    "/privacy/breaches/{breach_id}",
    response_model=BreachOut,
    operation_id="privacy:update_breach",
    responses={**AUTH_ERRORS, **problem_responses(BreachNotFound)},
)
async def update_breach(
    breach_id: uuid.UUID,
    body: BreachUpdate,
    principal: Principal = Depends(admins),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> BreachOut:
    """Record mitigation and when the Board, CERT-In and the patients were told."""
    row = await compliance_service.update_breach(
        session, principal, breach_id, body.model_dump(exclude_unset=True)
    )
    return breach_out(row)


@router.get(
    "/privacy/breaches/{breach_id}/affected",
    response_model=AffectedOut,
    operation_id="privacy:breach_affected",
    responses={**AUTH_ERRORS, **problem_responses(BreachNotFound)},
)
async def breach_affected(
    breach_id: uuid.UUID,
    scope: Literal["held", "accessed"] = Query(
        "held",
        description="held: data of the breach's classes held in the window; "
        "accessed: records opened in the window",
    ),
    principal: Principal = Depends(overseers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> AffectedOut:
    """Who the breach affected, to notify each of them (DPDP Rules r.7(1))."""
    breach = await compliance_service.get_breach(session, principal, breach_id)
    found = await compliance_service.affected(session, principal, breach, scope)
    return AffectedOut(
        breach_id=breach.id,
        scope=scope,
        count=len(found),
        patients=[
            AffectedPatient(patient_id=p.id, mrn=p.mrn, full_name=p.full_name, data_classes=classes)
            for p, classes in found
        ],
    )


# ------------------------------------------------------------------ the patient's own page


@public_router.get(
    "/my-privacy/{token}",
    response_model=PrivacyPageOut,
    operation_id="privacy:patient_page",
    responses=problem_responses(PrivacyLinkInvalid),
)
async def patient_page(
    token: str,
    language: str | None = Query(None, max_length=8),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PrivacyPageOut:
    """The patient's privacy page: the notice in their language, their consents and their
    requests (no staff login; the link is the secret)."""
    patient = await compliance_service.patient_by_link(session, token[:100])
    rows = await compliance_service.requests_of(session, patient)
    return PrivacyPageOut(
        patient_name=patient.full_name,
        notice=await notice(session, patient, language),
        requests=[request_out(r) for r in rows],
    )


@public_router.put(
    "/my-privacy/{token}/consents/{purpose}",
    response_model=ConsentsOut,
    operation_id="privacy:patient_consent",
    responses=problem_responses(PrivacyLinkInvalid, NotFound),
)
async def patient_consent(
    token: str,
    purpose: str,
    body: ConsentChange,
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ConsentsOut:
    """Give or withdraw consent from the patient's own page (as easy as giving it)."""
    patient = await compliance_service.patient_by_link(session, token[:100])
    await compliance_service.set_consent(
        session,
        patient,
        parse_purpose(purpose),
        granted=body.granted,
        source=ConsentSource.PATIENT_LINK,
        caller=None,
        language=body.notice_language,
    )
    return ConsentsOut(
        consents=[consent_out(s) for s in await compliance_service.consents(session, patient)]
    )


@public_router.post(
    "/my-privacy/{token}/requests",
    response_model=RequestOut,
    status_code=201,
    operation_id="privacy:patient_request",
    responses=problem_responses(PrivacyLinkInvalid),
)
async def patient_request(
    token: str,
    body: PatientRequestCreate,
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RequestOut:
    """Ask for a summary, correction, erasure or export, or raise a grievance; the lab
    answers within 90 days. (Corrections from the link are described in words; the desk
    applies them after checking.)"""
    patient = await compliance_service.patient_by_link(session, token[:100])
    if body.kind == RequestKind.CORRECTION and not body.description:
        raise InvalidCorrection("Describe what should be corrected.", field="description")
    row = await compliance_service.create_request(
        session,
        patient,
        body.kind,
        description=body.description,
        changes=None,
        source=ConsentSource.PATIENT_LINK,
        caller=None,
    )
    return request_out(row)
