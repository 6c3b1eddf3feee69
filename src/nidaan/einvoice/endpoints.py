"""HTTP handlers of GST e-invoicing: settings, generate / cancel / read an invoice's IRN, its
QR code as a PNG, and the log of exchanges with the IRP."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.billing.errors import InvoiceNotFound
from nidaan.deps import get_session, page_params
from nidaan.einvoice.domain import EInvoiceStatus, cancel_deadline
from nidaan.einvoice.errors import (
    CancelWindowClosed,
    EInvoiceInvalid,
    EInvoiceNotConfigured,
    EInvoiceNotFound,
    InvalidEInvoiceSettings,
    IrpRefused,
    IrpUnavailableError,
    NotCancellable,
    NotEligible,
)
from nidaan.einvoice.models import EInvoice
from nidaan.einvoice.schemas import (
    EInvoiceCancel,
    EInvoiceOut,
    EInvoiceSettingsOut,
    EInvoiceSettingsUpdate,
)
from nidaan.einvoice.service import einvoice_service, qr_png
from nidaan.errors import problem_responses
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource, Schema

router = APIRouter(tags=["einvoice"])

issuers = require_roles(Role.ADMIN, Role.BILLING)
readers = require_roles(Role.ADMIN, Role.BILLING, Role.AUDITOR)
admin_only = require_roles(Role.ADMIN)
SessionDep = Depends(get_session, scope="function")


def einvoice_out(row: EInvoice) -> EInvoiceOut:
    png = qr_png(row.signed_qr_code) if row.signed_qr_code else None
    return EInvoiceOut(
        id=row.id,
        invoice_id=row.invoice_id,
        doc_type=row.doc_type,
        doc_no=row.doc_no,
        doc_date=row.doc_date,
        status=row.status,
        irn=row.irn,
        ack_no=row.ack_no,
        ack_at=row.ack_at,
        cancel_deadline=cancel_deadline(row.ack_at) if row.ack_at else None,
        cancelled_at=row.cancelled_at,
        cancel_reason=row.cancel_reason,
        cancel_remark=row.cancel_remark,
        recovered_duplicate=row.recovered_duplicate,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        error_codes=row.error_codes,
        # As sent: the amounts are JSON numbers here too, not strings.
        payload=json.loads(row.payload_json),
        qr_data=json.loads(row.qr_data_json) if row.qr_data_json else None,
        signed_qr_code=row.signed_qr_code,
        signed_invoice=row.signed_invoice,
        qr_png=f"data:image/png;base64,{base64.b64encode(png).decode()}" if png else None,
    )


@router.get(
    "/einvoice/settings",
    response_model=EInvoiceSettingsOut,
    operation_id="einvoice:get_settings",
    responses=AUTH_ERRORS,
)
async def get_settings(
    principal: Principal = Depends(readers), session: AsyncSession = SessionDep
) -> EInvoiceSettingsOut:
    """The lab's IRP registration (GSTIN, seller details, user name; never the password)."""
    return await einvoice_service.settings_out(session, principal.organisation_id)


@router.put(
    "/einvoice/settings",
    response_model=EInvoiceSettingsOut,
    operation_id="einvoice:update_settings",
    responses={**AUTH_ERRORS, **problem_responses(InvalidEInvoiceSettings)},
)
async def update_settings(
    body: EInvoiceSettingsUpdate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = SessionDep,
) -> EInvoiceSettingsOut:
    """Set up e-invoicing: GSTIN (check digit verified unless ``sandbox``), seller details
    (default: the billing settings), the IRP user name and password, and ``enabled``."""
    return await einvoice_service.update_settings(session, principal, body)


@router.post(
    "/invoices/{invoice_id}/einvoice",
    response_model=EInvoiceOut,
    status_code=201,
    operation_id="invoices:einvoice_generate",
    responses={
        200: {"description": "The invoice already had its e-invoice", "model": EInvoiceOut},
        202: {"description": "The IRP did not answer; the retry job completes it"},
        **AUTH_ERRORS,
        **problem_responses(InvoiceNotFound, NotEligible, EInvoiceInvalid, EInvoiceNotConfigured),
    },
)
async def generate(
    invoice_id: uuid.UUID,
    response: Response,
    principal: Principal = Depends(issuers),
    session: AsyncSession = SessionDep,
) -> Any:
    """Report the invoice (or credit note) to the IRP and store its IRN, Ack No/Date, signed
    invoice and signed QR. Safe to repeat: an invoice never gets two IRNs (200 with the same
    one). 202 ``pending``: the IRP did not answer, the ``einvoice.retry`` job finishes it.
    A document the IRP refused is stored ``rejected`` with its error (422); fix and repeat."""
    row, asked = await einvoice_service.generate(session, principal, invoice_id)
    out = einvoice_out(row)
    if row.status == EInvoiceStatus.PENDING:
        response.status_code = 202
    elif row.status == EInvoiceStatus.REJECTED:
        return JSONResponse(
            {
                "type": "https://nidaan.dev/problems/irp-rejected",
                "title": "The IRP refused the e-invoice",
                "status": 422,
                "code": "irp_rejected",
                "detail": row.last_error,
                "irp_codes": row.error_codes,
                "einvoice": out.model_dump(mode="json"),
            },
            status_code=422,
            media_type="application/problem+json",
        )
    elif not asked:
        response.status_code = 200
    return out


@router.post(
    "/invoices/{invoice_id}/einvoice/cancel",
    response_model=EInvoiceOut,
    operation_id="invoices:einvoice_cancel",
    responses={
        **AUTH_ERRORS,
        **problem_responses(
            InvoiceNotFound,
            EInvoiceNotFound,
            NotCancellable,
            CancelWindowClosed,
            IrpRefused,
            IrpUnavailableError,
        ),
    },
)
async def cancel(
    invoice_id: uuid.UUID,
    body: EInvoiceCancel,
    principal: Principal = Depends(issuers),
    session: AsyncSession = SessionDep,
) -> EInvoiceOut:
    """Cancel the IRN within 24 hours of its Ack Date, with a reason code (1 Duplicate, 2
    Data entry mistake, 3 Order cancelled, 4 Others) and a remark. Later, issue a credit note."""
    row = await einvoice_service.cancel(session, principal, invoice_id, body.reason, body.remark)
    return einvoice_out(row)


@router.get(
    "/invoices/{invoice_id}/einvoice",
    response_model=EInvoiceOut,
    operation_id="invoices:einvoice_get",
    responses={**AUTH_ERRORS, **problem_responses(InvoiceNotFound, EInvoiceNotFound)},
)
async def get_einvoice(
    invoice_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> EInvoiceOut:
    """The stored schema-1.1 JSON, the IRN and Ack details, the signed QR (JWT, its verified
    contents and a PNG) and the status."""
    return einvoice_out(await einvoice_service.get(session, principal, invoice_id))


@router.get(
    "/invoices/{invoice_id}/einvoice/qr.png",
    operation_id="invoices:einvoice_qr",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The signed QR code"},
        **AUTH_ERRORS,
        **problem_responses(InvoiceNotFound, EInvoiceNotFound),
    },
)
async def get_qr(
    invoice_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> Response:
    row = await einvoice_service.get(session, principal, invoice_id)
    if not row.signed_qr_code:
        raise EInvoiceNotFound("The e-invoice has no signed QR yet.")
    return Response(qr_png(row.signed_qr_code), media_type="image/png")


class IrpExchangeOut(Schema):
    operation: str
    http_status: int | None
    error_codes: list[str]
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    at: datetime


@router.get(
    "/invoices/{invoice_id}/einvoice/exchanges",
    response_model=ListResource[IrpExchangeOut],
    operation_id="invoices:einvoice_exchanges",
    responses={**AUTH_ERRORS, **problem_responses(InvoiceNotFound, EInvoiceNotFound)},
)
async def get_exchanges(
    invoice_id: uuid.UUID,
    principal: Principal = Depends(readers),
    page: PageParams = Depends(page_params),
    session: AsyncSession = SessionDep,
) -> ListResource[IrpExchangeOut]:
    """Every call made to the IRP for this invoice (decrypted, without credentials), oldest
    first."""
    row = await einvoice_service.get(session, principal, invoice_id)
    exchanges = [
        IrpExchangeOut(
            operation=x.operation,
            http_status=x.http_status,
            error_codes=x.error_codes,
            request=x.request,
            response=x.response,
            at=x.created_at,
        )
        for x in await einvoice_service.exchanges(session, row)
    ]
    return ListResource[IrpExchangeOut].page_of(exchanges, page)
