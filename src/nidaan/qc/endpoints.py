"""HTTP handlers of quality control: materials, lots, rule switches, QC results, violations
and corrective actions, status, Levey-Jennings charts and the monthly summary."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.qc import charts, summary
from nidaan.qc.enums import LotState
from nidaan.qc.errors import (
    ControlIdTaken,
    InvalidTarget,
    LotExpired,
    LotNotLive,
    MaterialExists,
    NothingToAnswer,
)
from nidaan.qc.models import QcResult, QcViolation
from nidaan.qc.schemas import (
    CorrectiveActionIn,
    CorrectiveActionOut,
    LookBackResult,
    LotCreate,
    LotOut,
    MaterialCreate,
    MaterialOut,
    QcResultCreate,
    QcResultOut,
    RuleSettingsIn,
    RuleSettingsOut,
    StatusOut,
    UnmatchedOut,
    ViolationDetail,
    ViolationOut,
)
from nidaan.qc.service import qc_service
from nidaan.tenancy.service import tenancy_service

router = APIRouter(prefix="/qc", tags=["quality control"])
readers = require_roles(Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR)
configurers = require_roles(Role.ADMIN, Role.PATHOLOGIST)
#: Who may enter control results and answer violations (the bench and its supervisor).
bench = require_roles(Role.TECHNICIAN, Role.PATHOLOGIST)
MONTH = re.compile(r"^\d{4}-\d{2}$")


async def _results_out(
    session: AsyncSession, principal: Principal, rows: list[QcResult]
) -> list[QcResultOut]:
    violations = await qc_service.violations_of(
        session, principal.organisation_id, [r.id for r in rows]
    )
    runs = await qc_service.run_outcomes(session, list({r.run_id for r in rows}))
    return [
        QcResultOut.model_validate(
            {
                **{k: getattr(r, k) for k in QcResultOut.model_fields if hasattr(r, k)},
                "run_outcome": runs[r.run_id],
                "violations": [ViolationOut.model_validate(v) for v in violations[r.id]],
            }
        )
        for r in rows
    ]


# --- materials and lots --------------------------------------------------------------------


@router.post(
    "/materials",
    status_code=201,
    response_model=MaterialOut,
    operation_id="qc:create_material",
    responses={**AUTH_ERRORS, **problem_responses(MaterialExists, InvalidInput)},
)
async def create_material(
    body: MaterialCreate,
    principal: Principal = Depends(configurers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> MaterialOut:
    """Register a control material at one level (its lots are added per analyte)."""
    material = await qc_service.create_material(session, principal, body)
    return MaterialOut.model_validate(material)


@router.get(
    "/materials",
    response_model=ListResource[MaterialOut],
    operation_id="qc:list_materials",
    responses=AUTH_ERRORS,
)
async def list_materials(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[MaterialOut]:
    """Control materials, by name and level."""
    rows, total = await qc_service.list_materials(session, principal, page)
    items = [MaterialOut.model_validate(r) for r in rows]
    return ListResource[MaterialOut].build(items, total, page.page, page.limit)


@router.post(
    "/lots",
    status_code=201,
    response_model=LotOut,
    operation_id="qc:create_lot",
    responses={
        **AUTH_ERRORS,
        **problem_responses(NotFound, ControlIdTaken, LotExpired, InvalidTarget),
    },
)
async def create_lot(
    body: LotCreate,
    principal: Principal = Depends(configurers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> LotOut:
    """Put a lot of a material in use for one analyte on one instrument: active at once with
    the manufacturer's mean and SD, or establishing the lab's own from its first N results."""
    return LotOut.model_validate(await qc_service.create_lot(session, principal, body))


@router.get(
    "/lots",
    response_model=ListResource[LotOut],
    operation_id="qc:list_lots",
    responses=AUTH_ERRORS,
)
async def list_lots(
    instrument_id: uuid.UUID | None = Query(None),
    test_id: uuid.UUID | None = Query(None),
    state: LotState | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[LotOut]:
    """Control lots (filter by instrument, analyte, state)."""
    rows, total = await qc_service.list_lots(
        session, principal, page, instrument_id=instrument_id, test_id=test_id, state=state
    )
    items = [LotOut.model_validate(r) for r in rows]
    return ListResource[LotOut].build(items, total, page.page, page.limit)


@router.get(
    "/lots/{lot_id}",
    response_model=LotOut,
    operation_id="qc:get_lot",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_lot(
    lot_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> LotOut:
    """One control lot with its target and state."""
    return LotOut.model_validate(await qc_service.get_lot(session, principal, lot_id))


@router.post(
    "/lots/{lot_id}/expire",
    response_model=LotOut,
    operation_id="qc:expire_lot",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def expire_lot(
    lot_id: uuid.UUID,
    principal: Principal = Depends(configurers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> LotOut:
    """Take a lot out of use; its results and violations stay."""
    return LotOut.model_validate(await qc_service.expire_lot(session, principal, lot_id))


# --- rules ---------------------------------------------------------------------------------


@router.get(
    "/rules/{test_id}",
    response_model=RuleSettingsOut,
    operation_id="qc:get_rules",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_rules(
    test_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RuleSettingsOut:
    """The Westgard rules of an analyte (defaults until changed) and its re-run policy."""
    return RuleSettingsOut.model_validate(
        (await qc_service.get_rules(session, principal, test_id)).__dict__
    )


@router.put(
    "/rules/{test_id}",
    response_model=RuleSettingsOut,
    operation_id="qc:put_rules",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, InvalidInput)},
)
async def put_rules(
    test_id: uuid.UUID,
    body: RuleSettingsIn,
    principal: Principal = Depends(configurers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> RuleSettingsOut:
    """Switch rules per analyte (off, warning or reject); applies to results from now on."""
    return RuleSettingsOut.model_validate(
        (await qc_service.put_rules(session, principal, test_id, body)).__dict__
    )


# --- results -------------------------------------------------------------------------------


@router.post(
    "/results",
    status_code=201,
    response_model=QcResultOut,
    operation_id="qc:enter_result",
    responses={
        **AUTH_ERRORS,
        **problem_responses(NotFound, LotExpired, LotNotLive, InvalidInput),
    },
)
async def enter_result(
    body: QcResultCreate,
    principal: Principal = Depends(bench),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> QcResultOut:
    """Enter a control result by hand: z-score, Westgard rules, run outcome and (on a
    rejection) the block on the instrument's patient results of that analyte."""
    recorded = await qc_service.record_manual(
        session, principal, body.lot_id, body.value, body.measured_at, body.comment
    )
    return (await _results_out(session, principal, [recorded.result]))[0]


@router.get(
    "/results",
    response_model=ListResource[QcResultOut],
    operation_id="qc:list_results",
    responses=AUTH_ERRORS,
)
async def list_results(
    lot_id: uuid.UUID | None = Query(None),
    instrument_id: uuid.UUID | None = Query(None),
    test_id: uuid.UUID | None = Query(None),
    since: datetime | None = Query(None, description="Measured at or after"),
    until: datetime | None = Query(None, description="Measured before"),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[QcResultOut]:
    """Control results, newest first, with their z-scores and violations."""
    rows, total = await qc_service.list_results(
        session,
        principal,
        page,
        lot_id=lot_id,
        instrument_id=instrument_id,
        test_id=test_id,
        since=since,
        until=until,
    )
    items = await _results_out(session, principal, rows)
    return ListResource[QcResultOut].build(items, total, page.page, page.limit)


@router.get(
    "/unmatched",
    response_model=ListResource[UnmatchedOut],
    operation_id="qc:list_unmatched",
    responses=AUTH_ERRORS,
)
async def list_unmatched(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[UnmatchedOut]:
    """Control results from analyzers that no lot in use claimed, with the reason."""
    rows, total = await qc_service.list_unmatched(session, principal, page)
    items = [UnmatchedOut.model_validate(r) for r in rows]
    return ListResource[UnmatchedOut].build(items, total, page.page, page.limit)


# --- violations ----------------------------------------------------------------------------


@router.get(
    "/violations",
    response_model=ListResource[ViolationOut],
    operation_id="qc:list_violations",
    responses=AUTH_ERRORS,
)
async def list_violations(
    open_only: bool = Query(False, description="Only those not answered yet"),
    instrument_id: uuid.UUID | None = Query(None),
    test_id: uuid.UUID | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ViolationOut]:
    """Westgard violations, newest first (they are never deleted)."""
    rows, total = await qc_service.list_violations(
        session,
        principal,
        page,
        open_only=open_only,
        instrument_id=instrument_id,
        test_id=test_id,
    )
    items = [ViolationOut.model_validate(r) for r in rows]
    return ListResource[ViolationOut].build(items, total, page.page, page.limit)


@router.get(
    "/violations/{violation_id}",
    response_model=ViolationDetail,
    operation_id="qc:get_violation",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_violation(
    violation_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ViolationDetail:
    """A violation with its look-back: patient results of the instrument and analyte already
    verified since the last passing run before it."""
    violation, look_back = await qc_service.get_violation(session, principal, violation_id)
    return _detail(violation, look_back)


def _detail(violation: QcViolation, look_back: list) -> ViolationDetail:  # type: ignore[type-arg]
    return ViolationDetail.model_validate(
        {
            **ViolationOut.model_validate(violation).model_dump(),
            "look_back": [
                LookBackResult(
                    result_id=r.id,
                    order_id=r.order_id,
                    entered_at=r.entered_at,
                    verified_at=r.verified_at,
                    value_text=r.value_text,
                    autoverified=r.autoverified,
                )
                for r in look_back
            ],
        }
    )


@router.post(
    "/violations/{violation_id}/corrective-actions",
    status_code=201,
    response_model=CorrectiveActionOut,
    operation_id="qc:answer_violation",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, NothingToAnswer)},
)
async def answer_violation(
    violation_id: uuid.UUID,
    body: CorrectiveActionIn,
    principal: Principal = Depends(bench),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> CorrectiveActionOut:
    """Answer a violation with what was done (recalibration, new reagent, repeat control,
    maintenance...). Every open violation of the same instrument and analyte is answered
    with it; the block on patient results lifts once a run has also passed."""
    answered = await qc_service.answer(session, principal, violation_id, body)
    action = answered.action
    return CorrectiveActionOut(
        id=action.id,
        instrument_id=action.instrument_id,
        test_id=action.test_id,
        action=action.action,
        note=action.note,
        require_rerun=action.require_rerun,
        performed_by_id=action.performed_by_id,
        performed_at=action.performed_at,
        answered_violations=answered.violations,
        released=answered.released,
    )


@router.get(
    "/status",
    response_model=ListResource[StatusOut],
    operation_id="qc:status",
    responses=AUTH_ERRORS,
)
async def status(
    instrument_id: uuid.UUID | None = Query(None),
    test_id: uuid.UUID | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[StatusOut]:
    """Per instrument and analyte with lots in use: in rejection (patient results blocked)
    or not, why and since when, open violations and the last run."""
    rows = await qc_service.status(session, principal, instrument_id=instrument_id, test_id=test_id)
    return ListResource[StatusOut].page_of(
        [StatusOut.model_validate(r.__dict__) for r in rows], page
    )


# --- charts and summary --------------------------------------------------------------------

CHART_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


async def _chart(
    session: AsyncSession,
    principal: Principal,
    lot_id: uuid.UUID,
    since: datetime | None,
    until: datetime | None,
    fmt: charts.Format,
) -> Response:
    data = await charts.lot_chart(session, principal, lot_id, since=since, until=until)
    body = await asyncio.to_thread(charts.render, data, fmt)
    return Response(body, media_type=CHART_TYPES[fmt], headers={"Cache-Control": "no-store"})


@router.get(
    "/charts/{lot_id}.svg",
    operation_id="qc:chart_svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "Levey-Jennings chart"},
        **AUTH_ERRORS,
        **problem_responses(NotFound),
    },
)
async def chart_svg(
    lot_id: uuid.UUID = Path(description="The control lot (analyte, instrument, level)"),
    since: datetime | None = Query(None, description="Results measured at or after"),
    until: datetime | None = Query(None, description="Results measured before"),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """Levey-Jennings chart of a lot as SVG: mean, ±1/2/3 SD lines, violations marked."""
    return await _chart(session, principal, lot_id, since, until, "svg")


@router.get(
    "/charts/{lot_id}.png",
    operation_id="qc:chart_png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "Levey-Jennings chart"},
        **AUTH_ERRORS,
        **problem_responses(NotFound),
    },
)
async def chart_png(
    lot_id: uuid.UUID = Path(description="The control lot (analyte, instrument, level)"),
    since: datetime | None = Query(None, description="Results measured at or after"),
    until: datetime | None = Query(None, description="Results measured before"),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """Levey-Jennings chart of a lot as PNG."""
    return await _chart(session, principal, lot_id, since, until, "png")


def _month(month: str) -> str:
    if not MONTH.match(month):
        raise InvalidInput("month must be YYYY-MM, e.g. 2025-01.", field="month")
    return month


@router.get(
    "/summary/{month}.csv",
    operation_id="qc:summary_csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "Monthly QC summary"},
        **AUTH_ERRORS,
        **problem_responses(InvalidInput),
    },
)
async def summary_csv(
    month: str = Path(description="YYYY-MM (the lab's time zone)", examples=["2025-01"]),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """Monthly QC summary per analyte, instrument and level as CSV: results, runs, mean,
    SD, CV%, targets and violations."""
    data = await summary.monthly_summary(session, principal, _month(month))
    return Response(
        summary.to_csv(data),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="qc-summary-{month}.csv"'},
    )


@router.get(
    "/summary/{month}.pdf",
    operation_id="qc:summary_pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "Monthly QC summary"},
        **AUTH_ERRORS,
        **problem_responses(InvalidInput),
    },
)
async def summary_pdf(
    month: str = Path(description="YYYY-MM (the lab's time zone)", examples=["2025-01"]),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """The monthly QC summary as a PDF for the quality file."""
    data = await summary.monthly_summary(session, principal, _month(month))
    organisation = await tenancy_service.get_own_organisation(session, principal)
    pdf = await summary.to_pdf(data, organisation.name)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="qc-summary-{month}.pdf"'},
    )
