"""HTTP handlers for samples (tubes), transport manifests and the collection/receipt worklists.

The label and reject endpoints under /samples live in orders' router: they need the order.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import ALL_ROLES, Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.idempotency.dependencies import Idempotency, idempotency
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.samples.enums import SampleStatus
from nidaan.samples.errors import (
    BranchNotALab,
    BranchNotAllowed,
    IllegalTransition,
    VersionConflict,
)
from nidaan.samples.models import Manifest
from nidaan.samples.schemas import (
    CollectRequest,
    DispatchRequest,
    ManifestCreate,
    ManifestOut,
    ManifestSampleOut,
    ReceiveRequest,
    SampleOut,
)
from nidaan.samples.service import samples_service

router = APIRouter(tags=["samples"])
any_role = require_roles(*ALL_ROLES)
collectors = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST)
receivers = require_roles(Role.ADMIN, Role.TECHNICIAN)

TRANSITION_ERRORS = {
    **AUTH_ERRORS,
    **problem_responses(NotFound, BranchNotAllowed, IllegalTransition, InvalidInput),
}


async def _manifest_out(
    session: AsyncSession, caller: Principal, manifest: Manifest
) -> ManifestOut:
    samples = await samples_service.manifest_samples(session, caller, manifest)
    return ManifestOut.model_validate(
        {
            **{k: getattr(manifest, k) for k in ManifestOut.model_fields if k != "samples"},
            "samples": [ManifestSampleOut.model_validate(s) for s in samples],
        }
    )


@router.get(
    "/samples",
    response_model=ListResource[SampleOut],
    operation_id="samples:list",
    responses=AUTH_ERRORS,
)
async def list_samples(
    page: PageParams = Depends(page_params),
    status: SampleStatus | None = Query(None),
    branch_id: uuid.UUID | None = Query(None, description="Branch where the order was placed"),
    order_id: uuid.UUID | None = Query(None),
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[SampleOut]:
    """Samples of your organisation, newest first."""
    rows, total = await samples_service.list(
        session, principal, page, status=status, branch_id=branch_id, order_id=order_id
    )
    return ListResource[SampleOut].build(
        [SampleOut.model_validate(s) for s in rows], total, page.page, page.limit
    )


@router.get(
    "/samples/{accession}",
    response_model=SampleOut,
    operation_id="samples:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_sample(
    accession: str,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> SampleOut:
    return SampleOut.model_validate(
        await samples_service.get_by_accession(session, principal, accession)
    )


@router.post(
    "/samples/{accession}/collect",
    response_model=SampleOut,
    operation_id="samples:collect",
    responses={**TRANSITION_ERRORS, **problem_responses(VersionConflict)},
)
async def collect_sample(
    accession: str,
    body: CollectRequest | None = Body(None),
    principal: Principal = Depends(collectors),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> SampleOut:
    """Record that the tube was drawn (at the order's branch unless another is given)."""
    body = body or CollectRequest()
    sample = await samples_service.collect(
        session,
        principal,
        accession,
        branch_id=body.branch_id,
        collected_at=body.collected_at,
        version=body.version,
    )
    return SampleOut.model_validate(sample)


@router.post(
    "/samples/{accession}/receive",
    response_model=SampleOut,
    operation_id="samples:receive",
    responses={**TRANSITION_ERRORS, **problem_responses(VersionConflict, BranchNotALab)},
)
async def receive_sample(
    accession: str,
    body: ReceiveRequest | None = Body(None),
    principal: Principal = Depends(receivers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> SampleOut:
    """Scan-to-receive at a central lab (from collected or in transit)."""
    body = body or ReceiveRequest()
    sample = await samples_service.receive(
        session,
        principal,
        accession,
        branch_id=body.branch_id,
        version=body.version,
        condition=body.condition,
        remarks=body.remarks,
    )
    return SampleOut.model_validate(sample)


@router.post(
    "/manifests",
    status_code=201,
    response_model=ManifestOut,
    operation_id="manifests:create",
    responses={**TRANSITION_ERRORS, **problem_responses(BranchNotALab)},
)
async def create_manifest(
    body: ManifestCreate,
    response: Response,
    principal: Principal = Depends(collectors),
    session: AsyncSession = Depends(get_session, scope="function"),
    idem: Idempotency = Depends(idempotency),
) -> ManifestOut:
    """Put collected samples on a manifest to a central lab (201; 200 when the client ``id``
    already made the same manifest). Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    manifest, created = await samples_service.create_manifest(session, principal, body)
    status = 201 if created else 200
    response.status_code = status
    return await idem.remember(status, await _manifest_out(session, principal, manifest))


@router.post(
    "/manifests/{manifest_id}/dispatch",
    response_model=ManifestOut,
    operation_id="manifests:dispatch",
    responses={**TRANSITION_ERRORS, **problem_responses(VersionConflict)},
)
async def dispatch_manifest(
    manifest_id: uuid.UUID,
    body: DispatchRequest | None = Body(None),
    principal: Principal = Depends(collectors),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ManifestOut:
    """Hand the manifest to the courier: its samples are now in transit."""
    body = body or DispatchRequest()
    manifest = await samples_service.dispatch_manifest(
        session, principal, manifest_id, courier=body.courier, version=body.version
    )
    return await _manifest_out(session, principal, manifest)


@router.get(
    "/manifests/{manifest_id}",
    response_model=ManifestOut,
    operation_id="manifests:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_manifest(
    manifest_id: uuid.UUID,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ManifestOut:
    manifest = await samples_service.get_manifest(session, principal, manifest_id)
    return await _manifest_out(session, principal, manifest)


@router.get(
    "/worklists/pending-collection",
    response_model=ListResource[SampleOut],
    operation_id="worklists:pending_collection",
    responses={**AUTH_ERRORS, **problem_responses(BranchNotAllowed)},
)
async def pending_collection(
    page: PageParams = Depends(page_params),
    branch_id: uuid.UUID | None = Query(None, description="Default: every branch you work at"),
    principal: Principal = Depends(collectors),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[SampleOut]:
    """Tubes still to be drawn, oldest first."""
    rows, total = await samples_service.pending_collection(
        session, principal, page, branch_id=branch_id
    )
    return ListResource[SampleOut].build(
        [SampleOut.model_validate(s) for s in rows], total, page.page, page.limit
    )


@router.get(
    "/worklists/pending-receipt",
    response_model=ListResource[SampleOut],
    operation_id="worklists:pending_receipt",
    responses={**AUTH_ERRORS, **problem_responses(BranchNotAllowed)},
)
async def pending_receipt(
    page: PageParams = Depends(page_params),
    branch_id: uuid.UUID | None = Query(None, description="Receiving lab; default: yours"),
    principal: Principal = Depends(receivers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[SampleOut]:
    """Tubes in transit to the lab, or collected at the lab, not yet received."""
    rows, total = await samples_service.pending_receipt(
        session, principal, page, branch_id=branch_id
    )
    return ListResource[SampleOut].build(
        [SampleOut.model_validate(s) for s in rows], total, page.page, page.limit
    )
