"""Sync over HTTP: the GraphQL endpoint, its SDL, and REST reads for conflict review."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session
from nidaan.errors import problem_responses
from nidaan.graphql import graphql_router, sdl
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import MAX_LIMIT, MAX_PAGE
from nidaan.kit.schemas import ListResource
from nidaan.sync import conflicts as conflict_service
from nidaan.sync.entities.conflicts import conflict_view
from nidaan.sync.models import SyncConflict
from nidaan.sync.schemas import ConflictOut

router = APIRouter(prefix="/sync", tags=["sync"])
public_router = APIRouter()
public_router.include_router(graphql_router, prefix="/graphql", tags=["sync"])

reviewers = require_roles(Role.ADMIN, Role.FRONT_DESK, Role.PATHOLOGIST, Role.AUDITOR)


@public_router.get(
    "/graphql/schema.graphql",
    response_class=PlainTextResponse,
    tags=["sync"],
    summary="The sync GraphQL schema (SDL)",
)
async def graphql_sdl() -> str:
    return sdl()


@router.get(
    "/conflicts",
    response_model=ListResource[ConflictOut],
    operation_id="sync:list_conflicts",
    summary="Conflicts you may review, oldest first",
    responses=AUTH_ERRORS,
)
async def list_conflicts(
    status: str | None = Query("OPEN", description="OPEN, RESOLVED or SUPERSEDED; empty: all"),
    entity: str | None = Query(None, description="patient, order, sample, payment, result"),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    limit: int = Query(20, ge=1, le=MAX_LIMIT),
    principal: Principal = Depends(reviewers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ConflictOut]:
    rows, total = await conflict_service.list_conflicts(
        session,
        principal,
        status=status or None,
        entity=entity,
        limit=limit,
        offset=(page - 1) * limit,
    )
    items = [_out(row, principal) for row in rows]
    return ListResource[ConflictOut].build(items, total, page, limit)


@router.get(
    "/conflicts/{conflict_id}",
    response_model=ConflictOut,
    operation_id="sync:get_conflict",
    summary="One conflict with both values, who changed them and when",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_conflict(
    conflict_id: uuid.UUID,
    principal: Principal = Depends(reviewers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ConflictOut:
    row = await conflict_service.get_conflict(session, principal, conflict_id)
    return _out(row, principal)


def _out(row: SyncConflict, principal: Principal) -> ConflictOut:
    view = conflict_view(row)
    return ConflictOut.model_validate(
        {**view, "can_resolve": conflict_service.may_resolve(principal, row.kind)}
    )
