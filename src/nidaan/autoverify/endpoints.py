"""HTTP handlers of autoverification: rule sets per test, the rule types, evaluations, the
simulation over history, retraction of a system verification, the second-opinion model."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.autoverify import simulation
from nidaan.autoverify.domain import RULE_DOCS
from nidaan.autoverify.models import RuleSet
from nidaan.autoverify.schemas import (
    EvaluationOut,
    ModelOut,
    RetractIn,
    RuleSetIn,
    RuleSetOut,
    RuleTypeOut,
    SimulationIn,
    SimulationOut,
)
from nidaan.autoverify.service import InvalidRules, autoverify_service
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.kit.errors import Conflict, InvalidInput, NotFound, VersionConflict
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.results.errors import NotAutoverified
from nidaan.results.models import Result
from nidaan.results.schemas import ResultOut, VerificationOut
from nidaan.results.service import results_service

router = APIRouter(prefix="/autoverify", tags=["autoverification"])
readers = require_roles(Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR)
pathologists = require_roles(Role.PATHOLOGIST)
simulators = require_roles(Role.ADMIN, Role.PATHOLOGIST)


_RULE_SET_FIELDS = (
    "id",
    "test_id",
    "enabled",
    "rules",
    "version",
    "approved_by_id",
    "note",
    "updated_at",
)


def _out(row: RuleSet, code: str) -> RuleSetOut:
    return RuleSetOut.model_validate(
        {**{k: getattr(row, k) for k in _RULE_SET_FIELDS}, "test_code": code}
    )


async def _result_out(session: AsyncSession, principal: Principal, result: Result) -> ResultOut:
    org = principal.organisation_id
    [(code, name)] = (await results_service.test_labels(session, org, [result.test_id])).values()
    verifications = (await results_service.verifications_for(session, org, [result.id]))[result.id]
    fields = {
        k: getattr(result, k)
        for k in ResultOut.model_fields
        if k not in {"test_code", "test_name", "verifications"}
    }
    return ResultOut.model_validate(
        {
            **fields,
            "test_code": code,
            "test_name": name,
            "verifications": [VerificationOut.model_validate(v) for v in verifications],
        }
    )


@router.get(
    "/rule-types",
    response_model=ListResource[RuleTypeOut],
    operation_id="autoverify:rule_types",
    responses=AUTH_ERRORS,
)
async def rule_types(
    page: PageParams = Depends(page_params), principal: Principal = Depends(readers)
) -> ListResource[RuleTypeOut]:
    """The rule types a rule set may use, with their parameters and what each checks."""
    rows = [RuleTypeOut(type=k, parameters=p, checks=c) for k, (p, c) in RULE_DOCS.items()]
    return ListResource[RuleTypeOut].page_of(rows, page)


@router.get(
    "/rule-sets",
    response_model=ListResource[RuleSetOut],
    operation_id="autoverify:list_rule_sets",
    responses=AUTH_ERRORS,
)
async def list_rule_sets(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[RuleSetOut]:
    """Every test's rule set, by test code."""
    rows, total = await autoverify_service.list_rule_sets(session, principal, page)
    items = [_out(row, code) for row, code in rows]
    return ListResource[RuleSetOut].build(items, total, page.page, page.limit)


@router.get(
    "/rule-sets/{test_id}",
    response_model=RuleSetOut,
    operation_id="autoverify:get_rule_set",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_rule_set(
    test_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RuleSetOut:
    """A test's rule set (404 when it has none)."""
    return _out(*await autoverify_service.get_rule_set(session, principal, test_id))


@router.put(
    "/rule-sets/{test_id}",
    response_model=RuleSetOut,
    operation_id="autoverify:put_rule_set",
    responses={
        **AUTH_ERRORS,
        **problem_responses(NotFound, InvalidRules, VersionConflict),
    },
)
async def put_rule_set(
    test_id: uuid.UUID,
    body: RuleSetIn,
    principal: Principal = Depends(pathologists),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RuleSetOut:
    """Create or replace a test's rule set; the pathologist calling approves it. Rules are
    checked (unknown types, missing parameters, bad expressions: 422 listing each)."""
    return _out(*await autoverify_service.put_rule_set(session, principal, test_id, body))


@router.get(
    "/evaluations",
    response_model=ListResource[EvaluationOut],
    operation_id="autoverify:list_evaluations",
    responses=AUTH_ERRORS,
)
async def list_evaluations(
    result_id: uuid.UUID | None = Query(None),
    test_id: uuid.UUID | None = Query(None),
    outcome: str | None = Query(None, description="autoverified, stopped or held"),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[EvaluationOut]:
    """Evaluations, newest first: which rule held or stopped each result, and why."""
    rows, total = await autoverify_service.list_evaluations(
        session, principal, page, result_id=result_id, test_id=test_id, outcome=outcome
    )
    items = [EvaluationOut.model_validate(r) for r in rows]
    return ListResource[EvaluationOut].build(items, total, page.page, page.limit)


@router.post(
    "/simulate",
    response_model=SimulationOut,
    operation_id="autoverify:simulate",
    responses={**AUTH_ERRORS, **problem_responses(InvalidInput, InvalidRules)},
)
async def simulate(
    body: SimulationIn,
    principal: Principal = Depends(simulators),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> SimulationOut:
    """What the rules (given, or the lab's current ones) would have done over a period:
    how many results they would have autoverified, why the others stopped, and which of the
    released ones people later corrected. Nothing is changed."""
    report = await simulation.simulate(
        session, principal.organisation_id, body.since, body.until, body.rules
    )
    return SimulationOut.model_validate(report.as_dict())


@router.post(
    "/results/{result_id}/retract",
    response_model=ResultOut,
    operation_id="autoverify:retract",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, NotAutoverified, InvalidInput)},
)
async def retract(
    result_id: uuid.UUID,
    body: RetractIn,
    principal: Principal = Depends(pathologists),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ResultOut:
    """Take back a system verification: a new version of the result, held for a person, with
    the reason (an issued report becomes amended once it is verified again)."""
    result = await autoverify_service.retract(session, principal, result_id, body.reason)
    return await _result_out(session, principal, result)


@router.get(
    "/model",
    response_model=ModelOut,
    operation_id="autoverify:model",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, Conflict)},
)
async def model(
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ModelOut:
    """The active second-opinion model: what it reads, its threshold, its measured
    precision and recall."""
    return ModelOut.model_validate(await autoverify_service.get_active_model(session, principal))
