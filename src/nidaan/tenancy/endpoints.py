"""HTTP handlers for the caller's organisation and its branches."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import ALL_ROLES, Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.idempotency.dependencies import Idempotency, idempotency
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.tenancy.errors import BranchCodeTaken
from nidaan.tenancy.schemas import (
    BranchCreate,
    BranchOut,
    BranchUpdate,
    OrganisationOut,
    OrganisationUpdate,
)
from nidaan.tenancy.service import tenancy_service

router = APIRouter(tags=["organisation"])
any_role = require_roles(*ALL_ROLES)
admin_only = require_roles(Role.ADMIN)


@router.get(
    "/organisation",
    response_model=OrganisationOut,
    operation_id="organisation:get",
    responses=AUTH_ERRORS,
)
async def get_organisation(
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> OrganisationOut:
    """Your organisation."""
    return OrganisationOut.model_validate(
        await tenancy_service.get_own_organisation(session, principal)
    )


@router.patch(
    "/organisation",
    response_model=OrganisationOut,
    operation_id="organisation:update",
    responses=AUTH_ERRORS,
)
async def update_organisation(
    body: OrganisationUpdate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> OrganisationOut:
    """Change what the report header prints: name, address, phone, e-mail and the
    accreditation line (set it only with a valid NABL certificate; null removes it)."""
    return OrganisationOut.model_validate(
        await tenancy_service.update_own_organisation(session, principal, body)
    )


@router.get(
    "/branches",
    response_model=ListResource[BranchOut],
    operation_id="branches:list",
    responses=AUTH_ERRORS,
)
async def list_branches(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[BranchOut]:
    """Central labs and collection centres of your organisation."""
    rows, total = await tenancy_service.list_branches(session, principal, page)
    return ListResource[BranchOut].build(
        [BranchOut.model_validate(b) for b in rows], total, page.page, page.limit
    )


@router.post(
    "/branches",
    status_code=201,
    response_model=BranchOut,
    operation_id="branches:create",
    responses={**AUTH_ERRORS, **problem_responses(BranchCodeTaken)},
)
async def create_branch(
    body: BranchCreate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
    idem: Idempotency = Depends(idempotency),
) -> BranchOut:
    """Add a central lab or collection centre. Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    branch = await tenancy_service.create_branch(session, principal, body)
    return await idem.remember(201, BranchOut.model_validate(branch))


@router.get(
    "/branches/{branch_id}",
    response_model=BranchOut,
    operation_id="branches:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_branch(
    branch_id: uuid.UUID,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> BranchOut:
    return BranchOut.model_validate(await tenancy_service.get_branch(session, principal, branch_id))


@router.patch(
    "/branches/{branch_id}",
    response_model=BranchOut,
    operation_id="branches:update",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def update_branch(
    branch_id: uuid.UUID,
    body: BranchUpdate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> BranchOut:
    return BranchOut.model_validate(
        await tenancy_service.update_branch(session, principal, branch_id, body)
    )
