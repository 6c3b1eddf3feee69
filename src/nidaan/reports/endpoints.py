"""HTTP handlers for report PDFs and versions, and the public verification page."""

from __future__ import annotations

import uuid
from functools import lru_cache

import jinja2
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.reports.errors import (
    NothingPending,
    ReportIntegrityError,
    ReportNotFound,
    ReportNotReady,
    ReportPdfDeleted,
)
from nidaan.reports.models import Report
from nidaan.reports.render import TEMPLATES, format_time
from nidaan.reports.schemas import ProvisionalRequested, ReportOut, ReportVerification
from nidaan.reports.service import ReportPdf, reports_service

router = APIRouter(tags=["reports"])
public_router = APIRouter(tags=["reports"])

readers = require_roles(
    Role.ADMIN, Role.FRONT_DESK, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR
)

pathologists = require_roles(Role.PATHOLOGIST)

PDF_RESPONSE = {200: {"content": {"application/pdf": {}}, "description": "The signed PDF"}}


def _out(report: Report) -> ReportOut:
    return ReportOut.model_validate(
        {
            **{c: getattr(report, c) for c in ReportOut.model_fields if hasattr(report, c)},
            "pdf_path": f"/api/v1/reports/{report.id}/pdf",
        }
    )


def _pdf(found: ReportPdf) -> Response:
    report = found.report
    return Response(
        content=found.data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{report.report_number}.pdf"',
            "ETag": f'"{report.sha256}"',
            "X-Report-Version": str(report.report_version),
            "Cache-Control": "private, no-store",
        },
    )


@router.get(
    "/orders/{order_id}/report",
    operation_id="reports:current_pdf",
    response_class=Response,
    responses={
        **PDF_RESPONSE,
        **AUTH_ERRORS,
        **problem_responses(ReportNotReady, ReportIntegrityError, ReportPdfDeleted),
    },
)
async def current_report(
    order_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """The order's current report PDF; 404 ``report_not_ready`` until it is issued."""
    return _pdf(await reports_service.current_pdf(session, principal, order_id))


@router.get(
    "/orders/{order_id}/reports",
    response_model=ListResource[ReportOut],
    operation_id="reports:list_for_order",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def list_reports(
    order_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[ReportOut]:
    """Every issued version of the order's report, newest first."""
    rows, total = await reports_service.list_for_order(session, principal, order_id, page)
    return ListResource[ReportOut].build([_out(r) for r in rows], total, page.page, page.limit)


@router.post(
    "/orders/{order_id}/reports/provisional",
    status_code=202,
    response_model=ProvisionalRequested,
    operation_id="reports:request_provisional",
    responses={**AUTH_ERRORS, **problem_responses(ReportNotReady, NothingPending)},
)
async def request_provisional_report(
    order_id: uuid.UUID,
    principal: Principal = Depends(pathologists),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ProvisionalRequested:
    """Issue a provisional report of the results verified so far (the pending tests are
    named on it; the final report follows by itself). Rendered by the worker: poll
    GET /orders/{order_id}/reports."""
    pending = await reports_service.request_provisional(session, principal, order_id)
    return ProvisionalRequested(order_id=order_id, pending_tests=list(pending))


@router.get(
    "/reports/{report_id}/pdf",
    operation_id="reports:pdf",
    response_class=Response,
    responses={
        **PDF_RESPONSE,
        **AUTH_ERRORS,
        **problem_responses(ReportNotFound, ReportIntegrityError, ReportPdfDeleted),
    },
)
async def report_pdf(
    report_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """Any version's PDF (superseded versions stay retrievable)."""
    return _pdf(await reports_service.pdf(session, principal, report_id))


# ------------------------------------------------------------------------ public


@lru_cache(maxsize=1)
def _verify_template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("verify.html.j2")


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


@public_router.get(
    "/verify/{code}",
    response_model=ReportVerification,
    operation_id="reports:verify",
    responses={
        200: {"content": {"text/html": {}}, "description": "HTML page, or JSON on request"},
        **problem_responses(ReportNotFound),
    },
)
async def verify_report(
    code: str, request: Request, session: AsyncSession = Depends(get_session, scope="function")
) -> Response:
    """Public (no login): the page the report's QR code opens. Confirms the lab, report
    number, version, issue time, patient initials and the PDF's SHA-256, and whether this
    version is current or superseded. ``Accept: application/json`` gives JSON."""
    try:
        facts = ReportVerification(**await reports_service.verify(session, code))
    except ReportNotFound:
        if _wants_json(request):
            raise
        html = _verify_template().render(facts=None, issued=None)
        return HTMLResponse(html, status_code=404, headers={"Cache-Control": "no-store"})
    if _wants_json(request):
        return Response(
            facts.model_dump_json(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
    html = _verify_template().render(facts=facts, issued=format_time(facts.issued_at, "en"))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
