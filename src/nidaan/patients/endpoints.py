"""HTTP handlers for patient registration, search, updates, duplicates and merge."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import ALL_ROLES, Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.idempotency.dependencies import Idempotency, idempotency
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.responses import SchemaResponse
from nidaan.kit.schemas import ListResource
from nidaan.patients.enums import DuplicateFlagStatus
from nidaan.patients.errors import (
    IllegalTransition,
    InvalidAbhaNumber,
    PatientIdConflict,
    VersionConflict,
)
from nidaan.patients.presenters import patient_brief, patient_out
from nidaan.patients.schemas import (
    DuplicateCandidateOut,
    DuplicateFlagOut,
    MergeOut,
    MergeRequest,
    PatientCreate,
    PatientOut,
    PatientUpdate,
    RegistrationOut,
)
from nidaan.patients.service import patients_service, split_reasons

router = APIRouter(prefix="/patients", tags=["patients"])
any_role = require_roles(*ALL_ROLES)
registrars = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST)
reviewers = require_roles(Role.ADMIN, Role.FRONT_DESK)


PatientList = ListResource[PatientOut]


@router.post(
    "",
    status_code=201,
    response_model=RegistrationOut,
    operation_id="patients:register",
    responses={
        **AUTH_ERRORS,
        **problem_responses(InvalidAbhaNumber, PatientIdConflict),
        200: {"description": "A repeat of the same client id and content: the existing record"},
    },
)
async def register_patient(
    body: PatientCreate,
    principal: Principal = Depends(registrars),
    session: AsyncSession = Depends(get_session, scope="function"),
    idem: Idempotency = Depends(idempotency),
) -> Response:
    """Register a patient. Likely duplicates are flagged for review and listed, never merged.

    Never send an Aadhaar number: it is refused. Accepts an Idempotency-Key header.
    """
    if idem.replay is not None:
        return idem.replay
    result = await patients_service.register(session, principal, body)
    status = 201 if result.created else 200
    out = RegistrationOut.model_construct(
        patient=patient_out(result.patient),
        possible_duplicates=[
            DuplicateCandidateOut.model_construct(
                flag_id=d.flag.id,
                score=d.flag.score,
                reasons=d.reasons,
                candidate=patient_brief(d.candidate),
            )
            for d in result.possible_duplicates
        ],
    )
    return SchemaResponse(await idem.remember(status, out), status_code=status)


@router.get(
    "",
    response_model=ListResource[PatientOut],
    operation_id="patients:list",
    responses={**AUTH_ERRORS, **problem_responses(InvalidInput)},
)
async def search_patients(
    page: PageParams = Depends(page_params),
    q: str | None = Query(None, description="Part of the name, or an exact MRN"),
    mobile: str | None = Query(None, description="Exact mobile number (any common spelling)"),
    mrn: str | None = Query(None, examples=["MRN-000123"]),
    abha_number: str | None = Query(None, description="Exact 14-digit ABHA number"),
    include_merged: bool = Query(False, description="Also list records merged into others"),
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """Find patients; filters combine."""
    rows, total = await patients_service.search_page(
        session,
        principal,
        page,
        q=q,
        mobile=mobile,
        mrn=mrn,
        abha_number=abha_number,
        include_merged=include_merged,
    )
    return SchemaResponse(PatientList.construct_page(rows, total, page.page, page.limit))


@router.get(
    "/duplicates",
    response_model=ListResource[DuplicateFlagOut],
    operation_id="patients:list_duplicates",
    responses=AUTH_ERRORS,
)
async def list_duplicates(
    page: PageParams = Depends(page_params),
    status: DuplicateFlagStatus | None = Query(
        DuplicateFlagStatus.OPEN, description="open (default), dismissed or merged"
    ),
    principal: Principal = Depends(reviewers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[DuplicateFlagOut]:
    """Likely duplicate registrations waiting for a person to merge or dismiss them."""
    rows, total = await patients_service.list_duplicates(session, principal, page, status=status)
    return ListResource[DuplicateFlagOut].build(
        [
            DuplicateFlagOut(
                id=flag.id,
                status=DuplicateFlagStatus(flag.status),
                score=flag.score,
                reasons=split_reasons(flag.reasons),
                created_at=flag.created_at,
                resolved_at=flag.resolved_at,
                patient=patient_brief(patient),
                candidate=patient_brief(candidate),
            )
            for flag, patient, candidate in rows
        ],
        total,
        page.page,
        page.limit,
    )


@router.post(
    "/duplicates/{flag_id}/dismiss",
    response_model=DuplicateFlagOut,
    operation_id="patients:dismiss_duplicate",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, IllegalTransition)},
)
async def dismiss_duplicate(
    flag_id: uuid.UUID,
    principal: Principal = Depends(reviewers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> DuplicateFlagOut:
    """Mark a flag as checked: the two records are different people."""
    flag = await patients_service.dismiss_duplicate(session, principal, flag_id)
    patient = await patients_service.get(session, principal, flag.patient_id)
    candidate = await patients_service.get(session, principal, flag.candidate_id)
    return DuplicateFlagOut(
        id=flag.id,
        status=DuplicateFlagStatus(flag.status),
        score=flag.score,
        reasons=split_reasons(flag.reasons),
        created_at=flag.created_at,
        resolved_at=flag.resolved_at,
        patient=patient_brief(patient),
        candidate=patient_brief(candidate),
    )


@router.get(
    "/{patient_id}",
    response_model=PatientOut,
    operation_id="patients:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_patient(
    patient_id: uuid.UUID,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PatientOut:
    patient = await patients_service.get(session, principal, patient_id)
    # The read-access log (DPDP): who opened which patient's record.
    await audit_service.record_access(
        session,
        organisation_id=principal.organisation_id,
        actor=principal.actor,
        patient_id=patient.id,
        entity_type="patient",
        entity_id=patient.id,
    )
    return patient_out(patient)


@router.patch(
    "/{patient_id}",
    response_model=PatientOut,
    operation_id="patients:update",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, VersionConflict)},
)
async def update_patient(
    patient_id: uuid.UUID,
    body: PatientUpdate,
    principal: Principal = Depends(registrars),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> PatientOut:
    """Correct a patient's details; send the ``version`` you loaded (stale = 409)."""
    return patient_out(await patients_service.update(session, principal, patient_id, body))


@router.post(
    "/{patient_id}/merge",
    response_model=MergeOut,
    operation_id="patients:merge",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, IllegalTransition)},
)
async def merge_patient(
    patient_id: uuid.UUID,
    body: MergeRequest,
    principal: Principal = Depends(reviewers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> MergeOut:
    """Fold ``duplicate_id`` into this patient; both records and histories are kept."""
    kept, merged = await patients_service.merge(session, principal, patient_id, body.duplicate_id)
    return MergeOut(kept=patient_out(kept), merged=patient_out(merged))
