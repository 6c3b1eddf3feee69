"""Dashboard figures: GET /api/v1/analytics/... (read only)."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.analytics.schemas import CriticalPending, InTransit, TatReport, WorkByState
from nidaan.analytics.service import analytics_service
from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session
from nidaan.errors import problem_responses
from nidaan.kit.errors import Forbidden, InvalidInput

router = APIRouter(prefix="/analytics", tags=["analytics"])
analysts = require_roles(Role.ADMIN, Role.PATHOLOGIST, Role.TECHNICIAN, Role.AUDITOR)
ERRORS = {**AUTH_ERRORS, **problem_responses(InvalidInput, Forbidden)}


@router.get(
    "/work-by-state",
    response_model=WorkByState,
    operation_id="analytics:work_by_state",
    responses=ERRORS,
)
async def work_by_state(
    day: date | None = Query(None, description="India day; default today"),
    branch_id: uuid.UUID | None = Query(None, description="Orders placed at this branch"),
    principal: Principal = Depends(analysts),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> WorkByState:
    """The day's orders and where their tubes and tests are now."""
    return WorkByState.model_validate(
        await analytics_service.work_by_state(session, principal, day=day, branch_id=branch_id)
    )


@router.get("/tat", response_model=TatReport, operation_id="analytics:tat", responses=ERRORS)
async def turnaround(
    date_from: date | None = Query(None, description="First India day; default date_to"),
    date_to: date | None = Query(None, description="Last India day; default today"),
    branch_id: uuid.UUID | None = Query(None),
    principal: Principal = Depends(analysts),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> TatReport:
    """Turnaround (receipt to verification) per department and branch against targets."""
    return TatReport.model_validate(
        await analytics_service.turnaround(
            session, principal, date_from=date_from, date_to=date_to, branch_id=branch_id
        )
    )


@router.get(
    "/critical-pending",
    response_model=CriticalPending,
    operation_id="analytics:critical_pending",
    responses=AUTH_ERRORS,
)
async def critical_pending(
    principal: Principal = Depends(analysts),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> CriticalPending:
    """Critical values not yet phoned through, and how long the oldest has waited."""
    return CriticalPending.model_validate(
        await analytics_service.critical_pending(session, principal)
    )


@router.get(
    "/in-transit",
    response_model=InTransit,
    operation_id="analytics:in_transit",
    responses=AUTH_ERRORS,
)
async def in_transit(
    principal: Principal = Depends(analysts),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> InTransit:
    """Collected samples on their way to the lab, by the centre they left."""
    return InTransit.model_validate(await analytics_service.in_transit(session, principal))
