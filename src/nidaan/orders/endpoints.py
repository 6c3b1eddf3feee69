"""HTTP handlers for orders, their tests and labels, and sample rejection (which orders the
recollection, so it lives here although its path is under /samples)."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter, Depends, Query, Response
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
from nidaan.orders.enums import OrderStatus, OrderTestStatus
from nidaan.orders.errors import (
    BranchNotAllowed,
    IdConflict,
    OrderNotOpen,
    OrderTestIllegalTransition,
    VersionConflict,
)
from nidaan.orders.schemas import (
    AddTests,
    CancelTest,
    OrderCreate,
    OrderOut,
    OrderSampleOut,
    OrderSummaryOut,
    OrderTestOut,
    RejectSample,
    SampleRejectedOut,
)
from nidaan.orders.service import OrderDetail, orders_service
from nidaan.samples.schemas import SampleOut

router = APIRouter(tags=["orders"])
any_role = require_roles(*ALL_ROLES)
order_writers = require_roles(Role.ADMIN, Role.FRONT_DESK)
rejecters = require_roles(Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST, Role.PHLEBOTOMIST)

PDF = {
    200: {"content": {"application/pdf": {}}, "description": "PDF, one 50 x 25 mm page per label"}
}


def _order_out(detail: OrderDetail) -> OrderOut:
    accessions = {s.id: s.accession for s in detail.samples}
    tests = [
        OrderTestOut(
            id=ot.id,
            test_id=ot.test_id,
            code=test.code,
            name=test.name,
            department=test.department,
            panel_id=ot.panel_id,
            sample_id=ot.sample_id,
            accession=accessions.get(ot.sample_id) if ot.sample_id else None,
            status=OrderTestStatus(ot.status),
            cancelled_at=ot.cancelled_at,
            cancel_reason=ot.cancel_reason,
            version=ot.version,
        )
        for ot, test in detail.tests
    ]
    samples = [
        OrderSampleOut(
            id=s.id,
            accession=s.accession,
            specimen_type=s.specimen_type,
            container=s.container,
            status=s.status,  # type: ignore[arg-type]
            recollection_id=s.recollection_id,
            tests=[
                test.code
                for ot, test in detail.tests
                if ot.sample_id == s.id and ot.status != OrderTestStatus.CANCELLED
            ],
            version=s.version,
        )
        for s in detail.samples
    ]
    order = detail.order
    return OrderOut.model_validate(
        {
            **{k: getattr(order, k) for k in OrderSummaryOut.model_fields},
            "clinical_notes": order.clinical_notes,
            "created_by_id": order.created_by_id,
            "tests": tests,
            "samples": samples,
        }
    )


def _pdf(content: bytes, filename: str) -> Response:
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}.pdf"'},
    )


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderOut,
    operation_id="orders:create",
    responses={
        **AUTH_ERRORS,
        **problem_responses(InvalidInput, BranchNotAllowed, IdConflict),
    },
)
async def create_order(
    body: OrderCreate,
    response: Response,
    principal: Principal = Depends(order_writers),
    session: AsyncSession = Depends(get_session, scope="function"),
    idem: Idempotency = Depends(idempotency),
) -> OrderOut:
    """Place an order: its tests are grouped into one tube per specimen and container, each
    with an accession and a label. 201, or 200 when the client ``id`` already made the same
    order. Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    detail, created = await orders_service.create_detailed(session, principal, body)
    status = 201 if created else 200
    response.status_code = status
    out = _order_out(detail)
    return await idem.remember(status, out)


@router.get(
    "/orders",
    response_model=ListResource[OrderSummaryOut],
    operation_id="orders:list",
    responses=AUTH_ERRORS,
)
async def list_orders(
    page: PageParams = Depends(page_params),
    patient_id: uuid.UUID | None = Query(None),
    status: OrderStatus | None = Query(None),
    branch_id: uuid.UUID | None = Query(None),
    date_from: date | None = Query(None, description="Placed on or after this day (IST)"),
    date_to: date | None = Query(None, description="Placed on or before this day (IST)"),
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> ListResource[OrderSummaryOut]:
    """Orders of your organisation, newest first."""
    rows, total = await orders_service.list(
        session,
        principal,
        page,
        patient_id=patient_id,
        status=status,
        branch_id=branch_id,
        date_from=date_from,
        date_to=date_to,
    )
    return ListResource[OrderSummaryOut].build(
        [OrderSummaryOut.model_validate(o) for o in rows], total, page.page, page.limit
    )


@router.get(
    "/orders/{order_id}",
    response_model=OrderOut,
    operation_id="orders:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_order(
    order_id: uuid.UUID,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> OrderOut:
    return _order_out(await orders_service.detail(session, principal, order_id))


@router.post(
    "/orders/{order_id}/tests",
    response_model=OrderOut,
    operation_id="orders:add_tests",
    responses={
        **AUTH_ERRORS,
        **problem_responses(NotFound, InvalidInput, OrderNotOpen, BranchNotAllowed),
    },
)
async def add_tests(
    order_id: uuid.UUID,
    body: AddTests,
    principal: Principal = Depends(order_writers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> OrderOut:
    """Add tests or panels to an open order (tests already on it are skipped)."""
    await orders_service.add_tests(session, principal, order_id, body.items, version=body.version)
    return _order_out(await orders_service.detail(session, principal, order_id))


@router.post(
    "/orders/{order_id}/tests/{order_test_id}/cancel",
    response_model=OrderOut,
    operation_id="orders:cancel_test",
    responses={
        **AUTH_ERRORS,
        **problem_responses(NotFound, OrderTestIllegalTransition, BranchNotAllowed),
    },
)
async def cancel_test(
    order_id: uuid.UUID,
    order_test_id: uuid.UUID,
    body: CancelTest,
    principal: Principal = Depends(order_writers),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> OrderOut:
    """Cancel a test that has no result yet (409 illegal_transition once resulted)."""
    await orders_service.cancel_test(
        session, principal, order_id, order_test_id, body.reason, version=body.version
    )
    return _order_out(await orders_service.detail(session, principal, order_id))


@router.get(
    "/orders/{order_id}/labels",
    response_class=Response,
    operation_id="orders:labels",
    responses={**PDF, **AUTH_ERRORS, **problem_responses(NotFound)},
)
async def order_labels(
    order_id: uuid.UUID,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """Every tube's label (rejected tubes excluded)."""
    order = await orders_service.get(session, principal, order_id)
    pdf = await orders_service.order_labels_pdf(session, principal, order_id)
    return _pdf(pdf, f"labels-{order.order_number}")


@router.get(
    "/samples/{accession}/label",
    response_class=Response,
    operation_id="samples:label",
    responses={**PDF, **AUTH_ERRORS, **problem_responses(NotFound)},
)
async def sample_label(
    accession: str,
    principal: Principal = Depends(any_role),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> Response:
    """The tube's barcode label (Code 128 of the accession)."""
    pdf = await orders_service.sample_label_pdf(session, principal, accession)
    return _pdf(pdf, f"label-{accession.strip().upper()}")


@router.post(
    "/samples/{accession}/reject",
    response_model=SampleRejectedOut,
    operation_id="samples:reject",
    responses={
        **AUTH_ERRORS,
        **problem_responses(NotFound, OrderTestIllegalTransition, VersionConflict, InvalidInput),
    },
)
async def reject_sample(
    accession: str,
    body: RejectSample,
    principal: Principal = Depends(rejecters),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> SampleRejectedOut:
    """Reject a tube (haemolysed, clotted, ...) and order a recollection for its tests."""
    rejected, recollection = await orders_service.reject_sample(
        session, principal, accession, body.reason, body.note, version=body.version
    )
    return SampleRejectedOut(
        rejected=SampleOut.model_validate(rejected),
        recollection=SampleOut.model_validate(recollection) if recollection else None,
    )
