"""HTTP handlers for result entry, verification, corrections, critical alerts and worklists."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.results.enums import CriticalAlertStatus
from nidaan.results.errors import (
    AlreadyAcknowledged,
    IllegalTransition,
    ResultHeld,
    SelfVerificationNotAllowed,
)
from nidaan.results.models import Result
from nidaan.results.schemas import (
    CriticalAcknowledge,
    CriticalAlertOut,
    HoldRelease,
    PendingEntryOut,
    PendingVerificationOut,
    ResultCorrect,
    ResultEnter,
    ResultOut,
    TatBreachOut,
    VerificationOut,
)
from nidaan.results.service import Described, results_service

router = APIRouter(tags=["results"])
readers = require_roles(Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR)
enterers = require_roles(Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST)
pathologists = require_roles(Role.PATHOLOGIST)
acknowledgers = require_roles(Role.TECHNICIAN, Role.PATHOLOGIST)
tat_watchers = require_roles(Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST)


async def _out(
    session: AsyncSession, principal: Principal, results: Sequence[Result]
) -> list[ResultOut]:
    verifications = await results_service.verifications_for(
        session, principal.organisation_id, [r.id for r in results]
    )
    tests = await results_service.test_labels(
        session, principal.organisation_id, [r.test_id for r in results]
    )
    out = []
    for result in results:
        code, name = tests[result.test_id]
        fields = {column: getattr(result, column) for column in _RESULT_COLUMNS}
        item = ResultOut.model_validate(
            {
                **fields,
                "test_code": code,
                "test_name": name,
                "verifications": [
                    VerificationOut.model_validate(v) for v in verifications[result.id]
                ],
            }
        )
        out.append(item)
    return out


def _described_out(described: Described) -> ResultOut:
    """``_out`` of a result whose test and signatures the service already had (no query)."""
    result = described.result
    return ResultOut.model_validate(
        {
            **{column: getattr(result, column) for column in _RESULT_COLUMNS},
            "test_code": described.test.code,
            "test_name": described.test.name,
            "verifications": [VerificationOut.model_validate(v) for v in described.verifications],
        }
    )


#: ResultOut fields read straight from the Result row.
_RESULT_COLUMNS = tuple(
    name
    for name in ResultOut.model_fields
    if name not in {"test_code", "test_name", "verifications"}
)


@router.get(
    "/results",
    response_model=ListResource[ResultOut],
    operation_id="results:list",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def list_results(
    order_id: uuid.UUID = Query(description="The order whose results to list"),
    include_history: bool = Query(False, description="Also superseded versions"),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ResultOut]:
    """An order's results in report order (department, then catalogue order)."""
    results, total = await results_service.page_for_order(
        session, principal, order_id, page, include_history=include_history
    )
    items = await _out(session, principal, results)
    return ListResource[ResultOut].build(items, total, page.page, page.limit)


@router.post(
    "/results",
    status_code=201,
    response_model=ResultOut,
    operation_id="results:enter",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, IllegalTransition, InvalidInput)},
)
async def enter_result(
    body: ResultEnter,
    response: Response,
    principal: Principal = Depends(enterers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ResultOut:
    """Enter the result of an ordered test (201), or replace it before verification (200).

    The value is converted to the test's unit, flagged against the patient's range at
    collection time, delta-checked (a failure holds it) and may open a critical alert;
    calculated tests of the order are (re)computed once all their inputs are present.
    """
    outcome = await results_service.enter_with_outcome(
        session,
        principal,
        body.order_test_id,
        body.value,
        body.unit,
        body.comment,
        result_id=body.id,
    )
    if not outcome.created:
        response.status_code = 200
    if outcome.test is not None:
        # Entered now: a new value has no signatures yet (re-entry drops them).
        return _described_out(Described(outcome.result, outcome.test, []))
    return (await _out(session, principal, [outcome.result]))[0]


@router.post(
    "/results/{result_id}/verify",
    response_model=ResultOut,
    operation_id="results:verify",
    responses={
        **AUTH_ERRORS,
        **problem_responses(NotFound, ResultHeld, SelfVerificationNotAllowed),
    },
)
async def verify_result(
    result_id: uuid.UUID,
    principal: Principal = Depends(pathologists),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ResultOut:
    """Sign a result; the last required signature (1 or 2 people) verifies it."""
    return _described_out(await results_service.verify_described(session, principal, result_id))


@router.post(
    "/results/{result_id}/correct",
    status_code=201,
    response_model=ResultOut,
    operation_id="results:correct",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, IllegalTransition, InvalidInput)},
)
async def correct_result(
    result_id: uuid.UUID,
    body: ResultCorrect,
    principal: Principal = Depends(pathologists),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ResultOut:
    """Correct a result: a new version that needs verification; the old one is superseded."""
    result = await results_service.correct(
        session, principal, result_id, body.value, body.unit, body.reason, body.comment
    )
    return (await _out(session, principal, [result]))[0]


@router.post(
    "/results/{result_id}/release",
    response_model=ResultOut,
    operation_id="results:release",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, IllegalTransition)},
)
async def release_result(
    result_id: uuid.UUID,
    body: HoldRelease,
    principal: Principal = Depends(pathologists),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ResultOut:
    """Release a held result (e.g. a reviewed delta-check failure) for verification."""
    result = await results_service.release_hold(session, principal, result_id, body.note)
    return (await _out(session, principal, [result]))[0]


@router.get(
    "/critical-alerts",
    response_model=ListResource[CriticalAlertOut],
    operation_id="critical_alerts:list",
    responses=AUTH_ERRORS,
)
async def list_critical_alerts(
    status: CriticalAlertStatus | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[CriticalAlertOut]:
    """Critical-value alerts, newest first."""
    rows, total = await results_service.list_critical_alerts(
        session, principal, page, status=status
    )
    return ListResource[CriticalAlertOut].build(
        [CriticalAlertOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.post(
    "/critical-alerts/{alert_id}/acknowledge",
    response_model=CriticalAlertOut,
    operation_id="critical_alerts:acknowledge",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, AlreadyAcknowledged)},
)
async def acknowledge_critical_alert(
    alert_id: uuid.UUID,
    body: CriticalAcknowledge,
    principal: Principal = Depends(acknowledgers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> CriticalAlertOut:
    """Record the phone call: who was told, when, and whether they read the value back."""
    alert = await results_service.acknowledge_critical(
        session,
        principal,
        alert_id,
        body.notified_person,
        body.notified_at,
        body.read_back,
        body.notes,
    )
    return CriticalAlertOut.model_validate(alert)


@router.get(
    "/worklists/pending-entry",
    response_model=ListResource[PendingEntryOut],
    operation_id="worklists:pending_entry",
    responses=AUTH_ERRORS,
)
async def pending_entry(
    department: str | None = Query(None, description="e.g. Biochemistry"),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(enterers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[PendingEntryOut]:
    """Tests waiting for a result whose sample is in the lab; STAT first."""
    rows, total = await results_service.pending_entry(
        session, principal, page, department=department
    )
    return ListResource[PendingEntryOut].build(
        [PendingEntryOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/worklists/pending-verification",
    response_model=ListResource[PendingVerificationOut],
    operation_id="worklists:pending_verification",
    responses=AUTH_ERRORS,
)
async def pending_verification(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(pathologists),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[PendingVerificationOut]:
    """Results awaiting verification (held ones included, with their reason); STAT first."""
    rows, total = await results_service.pending_verification(session, principal, page)
    return ListResource[PendingVerificationOut].build(
        [PendingVerificationOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/worklists/critical-alerts",
    response_model=ListResource[CriticalAlertOut],
    operation_id="worklists:critical_alerts",
    responses=AUTH_ERRORS,
)
async def open_critical_alerts(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(acknowledgers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[CriticalAlertOut]:
    """Critical values nobody has phoned through yet, oldest first."""
    rows, total = await results_service.open_critical_alerts(session, principal, page)
    return ListResource[CriticalAlertOut].build(
        [CriticalAlertOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/worklists/tat-breaches",
    response_model=ListResource[TatBreachOut],
    operation_id="worklists:tat_breaches",
    responses=AUTH_ERRORS,
)
async def tat_breaches(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(tat_watchers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[TatBreachOut]:
    """Tests past their turnaround time since the sample arrived, not yet verified."""
    rows, total = await results_service.tat_breaches(session, principal, page)
    return ListResource[TatBreachOut].build(
        [TatBreachOut.model_validate(r) for r in rows], total, page.page, page.limit
    )
