"""HTTP handlers for billing: settings, rate lists, clients, invoices, counter payments,
receipts, the counter UPI QR and the PDFs."""

from __future__ import annotations

import io
import uuid
from datetime import date

import segno
from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.billing import render
from nidaan.billing.accounts import client_accounts
from nidaan.billing.configuration import billing_configuration
from nidaan.billing.counter import ReceiptDetail, counter_service
from nidaan.billing.enums import InvoiceKind, InvoiceStatus, PaymentStatus
from nidaan.billing.errors import (
    BillingNotConfigured,
    CodeTaken,
    CreditLimitExceeded,
    InvoiceCancelled,
    InvoiceHasPayments,
    InvoiceNotFound,
    InvoiceNotPayable,
    InvoiceNotPending,
    NothingToInvoice,
    OrderAlreadyInvoiced,
    OrderOnClientAccount,
    Overpayment,
    UtrAlreadyUsed,
)
from nidaan.billing.models import BillingClient, Invoice, RateList
from nidaan.billing.schemas import (
    BillingItemCreate,
    BillingItemOut,
    BillingSettingsOut,
    BillingSettingsUpdate,
    BranchBillingOut,
    BranchBillingUpdate,
    ClientCreate,
    ClientOrderCreate,
    ClientOrderOut,
    ClientOut,
    ClientStatement,
    ClientUpdate,
    ConsolidatedInvoiceCreate,
    CounterPaymentCreate,
    CounterPaymentOut,
    DebitNoteIn,
    DiscountDecision,
    InvoiceCancel,
    InvoiceCancelOut,
    InvoiceCreate,
    InvoiceLineOut,
    InvoiceOut,
    InvoiceSummary,
    RateListCreate,
    RateListItemOut,
    RateListOut,
    RateListUpdate,
    ReceiptOut,
    UpiPayeeOut,
    UpiQrOut,
)
from nidaan.billing.service import billing_service
from nidaan.catalog.service import catalog_service
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.idempotency.dependencies import Idempotency, idempotency
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.tenancy.service import tenancy_service

router = APIRouter(tags=["billing"])

admin_only = require_roles(Role.ADMIN)
managers = require_roles(Role.ADMIN, Role.BILLING)
cashiers = require_roles(Role.ADMIN, Role.BILLING, Role.FRONT_DESK)
readers = require_roles(Role.ADMIN, Role.BILLING, Role.FRONT_DESK, Role.AUDITOR)
settings_readers = require_roles(Role.ADMIN, Role.BILLING, Role.AUDITOR)
collectors = require_roles(Role.ADMIN, Role.BILLING, Role.FRONT_DESK, Role.PHLEBOTOMIST)

PDF = {200: {"content": {"application/pdf": {}}, "description": "The PDF"}}
SessionDep = Depends(get_session, scope="function")


def _pdf(data: bytes, filename: str) -> Response:
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{filename}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


def _file_name(number: str | None, fallback: uuid.UUID) -> str:
    return (number or str(fallback)).replace("/", "-")


# ------------------------------------------------------------------------ settings


@router.get(
    "/billing/settings",
    response_model=BillingSettingsOut,
    operation_id="billing:settings_get",
    responses=AUTH_ERRORS,
)
async def get_settings(
    principal: Principal = Depends(settings_readers), session: AsyncSession = SessionDep
) -> BillingSettingsOut:
    """The lab's billing policy and GST identity."""
    row = await billing_configuration.settings_for(session, principal.organisation_id)
    return BillingSettingsOut.model_validate(row)


@router.put(
    "/billing/settings",
    response_model=BillingSettingsOut,
    operation_id="billing:settings_update",
    responses={**AUTH_ERRORS, **problem_responses(BillingNotConfigured)},
)
async def update_settings(
    body: BillingSettingsUpdate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = SessionDep,
) -> BillingSettingsOut:
    """Change the given settings (GSTIN, state, discount limits, report hold, gateways)."""
    row, hold_switched_off = await billing_configuration.update_settings(session, principal, body)
    if hold_switched_off:
        await billing_service.lift_all_report_holds(
            session, principal.organisation_id, principal.actor
        )
    return BillingSettingsOut.model_validate(row)


@router.get(
    "/billing/branches/{branch_id}",
    response_model=BranchBillingOut,
    operation_id="billing:branch_get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_branch_billing(
    branch_id: uuid.UUID,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> BranchBillingOut:
    branch = await tenancy_service.get_branch(session, principal, branch_id)
    row = await billing_configuration.branch_settings(session, principal.organisation_id, branch.id)
    if row is None:
        return BranchBillingOut(
            branch_id=branch.id,
            gstin=None,
            state_code=None,
            upi_vpa=None,
            upi_payee_name=None,
            upi_merchant_code=None,
        )
    return BranchBillingOut.model_validate(row)


@router.get(
    "/billing/branches/{branch_id}/upi-payee",
    response_model=UpiPayeeOut,
    operation_id="billing:branch_upi_payee",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_branch_upi_payee(
    branch_id: uuid.UUID,
    principal: Principal = Depends(collectors),
    session: AsyncSession = SessionDep,
) -> UpiPayeeOut:
    """The branch's counter UPI payee, for the staff app to keep and make the counter QR
    itself when the collection centre is offline (404 when the branch has none)."""
    branch = await billing_service.branch_for(session, principal, branch_id)
    row = await billing_configuration.branch_settings(session, principal.organisation_id, branch.id)
    if row is None or not row.upi_vpa:
        raise NotFound("This branch has no UPI address for counter payments.")
    return UpiPayeeOut(
        branch_id=branch.id,
        upi_vpa=row.upi_vpa,
        upi_payee_name=row.upi_payee_name or branch.name,
        upi_merchant_code=row.upi_merchant_code,
    )


@router.put(
    "/billing/branches/{branch_id}",
    response_model=BranchBillingOut,
    operation_id="billing:branch_update",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def update_branch_billing(
    branch_id: uuid.UUID,
    body: BranchBillingUpdate,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = SessionDep,
) -> BranchBillingOut:
    """A branch's own GSTIN/state (labs in several states) and its counter UPI payee."""
    return BranchBillingOut.model_validate(
        await billing_configuration.update_branch(session, principal, branch_id, body)
    )


# ------------------------------------------------------------------------ items


@router.get(
    "/billing/items",
    response_model=ListResource[BillingItemOut],
    operation_id="billing:items_list",
    responses=AUTH_ERRORS,
)
async def list_items(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ListResource[BillingItemOut]:
    """Services billed besides tests (with their SAC and GST treatment)."""
    rows = await billing_configuration.list_items(session, principal)
    return ListResource[BillingItemOut].page_of(
        [BillingItemOut.model_validate(i) for i in rows], page
    )


@router.post(
    "/billing/items",
    status_code=201,
    response_model=BillingItemOut,
    operation_id="billing:items_create",
    responses={**AUTH_ERRORS, **problem_responses(CodeTaken)},
)
async def create_item(
    body: BillingItemCreate,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> BillingItemOut:
    return BillingItemOut.model_validate(
        await billing_configuration.create_item(session, principal, body)
    )


# ------------------------------------------------------------------------ rate lists


async def _rate_list_out(session: AsyncSession, rate_list: RateList) -> RateListOut:
    items = await billing_configuration.rate_list_items(session, rate_list.id)
    org = rate_list.organisation_id
    tests = await catalog_service.tests_by_ids(
        session, org, {i.target_id for i in items if i.target_kind == "test"}
    )
    panels = await catalog_service.panels_by_ids(
        session, org, {i.target_id for i in items if i.target_kind == "panel"}
    )
    services = {item.id: item for item in await billing_configuration.items_in(session, org)}
    names = {**{k: v.code for k, v in tests.items()}, **{k: v.code for k, v in panels.items()}}
    names.update({k: v.code for k, v in services.items()})
    return RateListOut(
        id=rate_list.id,
        code=rate_list.code,
        name=rate_list.name,
        kind=rate_list.kind,  # type: ignore[arg-type]
        referrer=rate_list.referrer_key,
        percent_off=rate_list.percent_off,
        is_active=rate_list.is_active,
        version=rate_list.version,
        items=sorted(
            (
                RateListItemOut(
                    code=names.get(i.target_id, "?"),
                    kind=i.target_kind,
                    target_id=i.target_id,
                    price=i.price,
                )
                for i in items
            ),
            key=lambda item: item.code,
        ),
    )


@router.get(
    "/rate-lists",
    response_model=ListResource[RateListOut],
    operation_id="rate_lists:list",
    responses=AUTH_ERRORS,
)
async def list_rate_lists(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ListResource[RateListOut]:
    """Default, client and referrer price lists."""
    rows, total = await billing_configuration.list_rate_lists(session, principal, page)
    return ListResource[RateListOut].build(
        [await _rate_list_out(session, r) for r in rows], total, page.page, page.limit
    )


@router.post(
    "/rate-lists",
    status_code=201,
    response_model=RateListOut,
    operation_id="rate_lists:create",
    responses={**AUTH_ERRORS, **problem_responses(CodeTaken)},
)
async def create_rate_list(
    body: RateListCreate,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> RateListOut:
    """A price list; items name catalogue tests, panels or billing items by code."""
    return await _rate_list_out(
        session, await billing_configuration.create_rate_list(session, principal, body)
    )


@router.get(
    "/rate-lists/{rate_list_id}",
    response_model=RateListOut,
    operation_id="rate_lists:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_rate_list(
    rate_list_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> RateListOut:
    return await _rate_list_out(
        session, await billing_configuration.get_rate_list(session, principal, rate_list_id)
    )


@router.patch(
    "/rate-lists/{rate_list_id}",
    response_model=RateListOut,
    operation_id="rate_lists:update",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def update_rate_list(
    rate_list_id: uuid.UUID,
    body: RateListUpdate,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> RateListOut:
    """Rename, deactivate, change the percent off, or replace all items."""
    return await _rate_list_out(
        session,
        await billing_configuration.update_rate_list(session, principal, rate_list_id, body),
    )


# ------------------------------------------------------------------------ clients


@router.get(
    "/billing-clients",
    response_model=ListResource[ClientOut],
    operation_id="billing_clients:list",
    responses=AUTH_ERRORS,
)
async def list_clients(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ListResource[ClientOut]:
    """B2B clients: hospitals, corporates, franchise collection centres."""
    rows, total = await billing_configuration.list_clients(session, principal, page)
    return ListResource[ClientOut].build(
        [ClientOut.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.post(
    "/billing-clients",
    status_code=201,
    response_model=ClientOut,
    operation_id="billing_clients:create",
    responses={**AUTH_ERRORS, **problem_responses(CodeTaken)},
)
async def create_client(
    body: ClientCreate,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> ClientOut:
    return ClientOut.model_validate(
        await billing_configuration.create_client(session, principal, body)
    )


@router.get(
    "/billing-clients/{client_id}",
    response_model=ClientOut,
    operation_id="billing_clients:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_client(
    client_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ClientOut:
    return ClientOut.model_validate(
        await billing_configuration.get_client(session, principal, client_id)
    )


@router.patch(
    "/billing-clients/{client_id}",
    response_model=ClientOut,
    operation_id="billing_clients:update",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def update_client(
    client_id: uuid.UUID,
    body: ClientUpdate,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> ClientOut:
    return ClientOut.model_validate(
        await billing_configuration.update_client(session, principal, client_id, body)
    )


@router.post(
    "/billing-clients/{client_id}/orders",
    status_code=201,
    response_model=ClientOrderOut,
    operation_id="billing_clients:add_order",
    responses={
        **AUTH_ERRORS,
        **problem_responses(
            NotFound, CreditLimitExceeded, OrderAlreadyInvoiced, OrderOnClientAccount
        ),
    },
)
async def add_client_order(
    client_id: uuid.UUID,
    body: ClientOrderCreate,
    principal: Principal = Depends(cashiers),
    session: AsyncSession = SessionDep,
) -> ClientOrderOut:
    """Bill an order to a monthly client's account (refused above its credit limit)."""
    return ClientOrderOut.model_validate(
        await client_accounts.add_client_order(session, principal, client_id, body.order_id)
    )


@router.get(
    "/billing-clients/{client_id}/statement",
    response_model=ClientStatement,
    operation_id="billing_clients:statement",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def client_statement(
    client_id: uuid.UUID,
    principal: Principal = Depends(settings_readers),
    session: AsyncSession = SessionDep,
) -> ClientStatement:
    """What the client owes: open invoices, orders on account not invoiced, credit left."""
    client: BillingClient = await billing_configuration.get_client(session, principal, client_id)
    invoices = await client_accounts.client_open_invoices(session, client)
    outstanding = sum((i.balance_due for i in invoices), start=0)
    unbilled = await billing_service.client_unbilled(session, client)
    exposure = outstanding + unbilled
    return ClientStatement(
        client=ClientOut.model_validate(client),
        credit_limit=client.credit_limit,
        outstanding_invoices=outstanding,
        unbilled_orders=unbilled,
        exposure=exposure,
        available_credit=(
            max(client.credit_limit - exposure, 0) if client.credit_limit is not None else None
        ),
        open_invoices=[InvoiceSummary.model_validate(i) for i in invoices],
    )


# ------------------------------------------------------------------------ invoices

INVOICE_ERRORS = problem_responses(InvoiceNotFound)


async def invoice_out(session: AsyncSession, invoice: Invoice) -> InvoiceOut:
    lines = await billing_service.lines_of(session, invoice)
    return InvoiceOut.model_validate(
        {
            **{name: getattr(invoice, name) for name in InvoiceOut.model_fields if name != "lines"},
            "lines": [InvoiceLineOut.model_validate(line) for line in lines],
        }
    )


@router.post(
    "/invoices",
    status_code=201,
    response_model=InvoiceOut,
    operation_id="invoices:create",
    responses={
        **AUTH_ERRORS,
        **problem_responses(
            NotFound,
            OrderAlreadyInvoiced,
            OrderOnClientAccount,
            CreditLimitExceeded,
            BillingNotConfigured,
        ),
    },
)
async def create_invoice(
    body: InvoiceCreate,
    principal: Principal = Depends(cashiers),
    session: AsyncSession = SessionDep,
    idem: Idempotency = Depends(idempotency),
) -> InvoiceOut:
    """Invoice an order, priced from the applicable rate list. A discount above your role's
    limit leaves it ``pending_approval`` (unnumbered, not payable) until an admin decides.
    Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    invoice = await billing_service.create_order_invoice(session, principal, body)
    return await idem.remember(201, await invoice_out(session, invoice))


@router.post(
    "/invoices/consolidated",
    status_code=201,
    response_model=InvoiceOut,
    operation_id="invoices:create_consolidated",
    responses={**AUTH_ERRORS, **problem_responses(NotFound, NothingToInvoice)},
)
async def create_consolidated_invoice(
    body: ConsolidatedInvoiceCreate,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> InvoiceOut:
    """One invoice for a monthly client's orders on account in the month (IST)."""
    invoice = await client_accounts.create_consolidated_invoice(session, principal, body)
    return await invoice_out(session, invoice)


@router.get(
    "/invoices",
    response_model=ListResource[InvoiceSummary],
    operation_id="invoices:list",
    responses=AUTH_ERRORS,
)
async def list_invoices(
    page: PageParams = Depends(page_params),
    status: InvoiceStatus | None = None,
    payment_status: PaymentStatus | None = None,
    kind: InvoiceKind | None = None,
    order_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    branch_id: uuid.UUID | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    outstanding: bool | None = Query(None, description="Only invoices with (or without) dues"),
    sorting: str = Query(
        "-created_at",
        description="created_at, invoice_date, grand_total, "
        "balance_due or number; prefix - for descending",
    ),
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ListResource[InvoiceSummary]:
    """Invoices, newest first; filter dues with ``outstanding=true``."""
    rows, total = await billing_service.list(
        session,
        principal,
        page,
        status=status,
        payment_status=payment_status,
        kind=kind,
        order_id=order_id,
        client_id=client_id,
        patient_id=patient_id,
        branch_id=branch_id,
        date_from=date_from,
        date_to=date_to,
        outstanding=outstanding,
        sorting=sorting,
    )
    return ListResource[InvoiceSummary].build(
        [InvoiceSummary.model_validate(r) for r in rows], total, page.page, page.limit
    )


@router.get(
    "/invoices/{invoice_id}",
    response_model=InvoiceOut,
    operation_id="invoices:get",
    responses={**AUTH_ERRORS, **INVOICE_ERRORS},
)
async def get_invoice(
    invoice_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> InvoiceOut:
    invoice = await billing_service.get(session, principal, invoice_id)
    await session.refresh(invoice)
    return await invoice_out(session, invoice)


@router.get(
    "/invoices/{invoice_id}/pdf",
    operation_id="invoices:pdf",
    response_class=Response,
    responses={**PDF, **AUTH_ERRORS, **INVOICE_ERRORS},
)
async def invoice_pdf(
    invoice_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> Response:
    """The tax invoice / bill of supply / credit note as a PDF (with the counter UPI QR
    while something is due and the branch has a UPI address)."""
    document = await billing_service.invoice_document(session, principal, invoice_id)
    data = await render.invoice_pdf(document)
    return _pdf(data, _file_name(document.invoice.number, document.invoice.id))


@router.post(
    "/invoices/{invoice_id}/discount-decision",
    response_model=InvoiceOut,
    operation_id="invoices:decide_discount",
    responses={**AUTH_ERRORS, **INVOICE_ERRORS, **problem_responses(InvoiceNotPending)},
)
async def decide_discount(
    invoice_id: uuid.UUID,
    body: DiscountDecision,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = SessionDep,
) -> InvoiceOut:
    """Approve the discount (issued with it) or reject it (issued at full price)."""
    invoice = await billing_service.decide_discount(
        session, principal, invoice_id, approve=body.approve, note=body.note
    )
    return await invoice_out(session, invoice)


@router.post(
    "/invoices/{invoice_id}/cancel",
    response_model=InvoiceCancelOut,
    operation_id="invoices:cancel",
    responses={
        **AUTH_ERRORS,
        **INVOICE_ERRORS,
        **problem_responses(InvoiceHasPayments, InvoiceCancelled),
    },
)
async def cancel_invoice(
    invoice_id: uuid.UUID,
    body: InvoiceCancel,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> InvoiceCancelOut:
    """Cancel an invoice with nothing (net) paid on it; an issued one gets a credit note
    from the branch's credit-note series, reversing every line."""
    invoice, note = await billing_service.cancel(session, principal, invoice_id, body.reason)
    return InvoiceCancelOut(
        invoice=await invoice_out(session, invoice),
        credit_note=await invoice_out(session, note) if note is not None else None,
    )


@router.post(
    "/invoices/{invoice_id}/debit-notes",
    status_code=201,
    response_model=InvoiceOut,
    operation_id="invoices:debit_note",
    responses={
        **AUTH_ERRORS,
        **INVOICE_ERRORS,
        **problem_responses(InvoiceCancelled, BillingNotConfigured),
    },
)
async def issue_debit_note(
    invoice_id: uuid.UUID,
    body: DebitNoteIn,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
    idem: Idempotency = Depends(idempotency),
) -> InvoiceOut:
    """Add a charge found after the invoice was issued: a debit note from the branch's
    debit-note series, with the reason, GST worked out like the invoice's, payable on its
    own. Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    note = await billing_service.issue_debit_note(session, principal, invoice_id, body)
    return await idem.remember(201, await invoice_out(session, note))


# ------------------------------------------------------------------------ payments


def receipt_out(detail: ReceiptDetail) -> ReceiptOut:
    return ReceiptOut(
        id=detail.receipt.id,
        number=detail.receipt.number,
        invoice_id=detail.receipt.invoice_id,
        amount=detail.receipt.amount,
        source=detail.receipt.source,
        received_at=detail.receipt.received_at,
        payments=[CounterPaymentOut.model_validate(p) for p in detail.payments],
        invoice=InvoiceSummary.model_validate(detail.invoice),
    )


@router.post(
    "/invoices/{invoice_id}/payments",
    status_code=201,
    response_model=ReceiptOut,
    operation_id="invoices:pay_at_counter",
    responses={
        **AUTH_ERRORS,
        **INVOICE_ERRORS,
        **problem_responses(Overpayment, InvoiceNotPayable, UtrAlreadyUsed),
    },
)
async def pay_at_counter(
    invoice_id: uuid.UUID,
    body: CounterPaymentCreate,
    response: Response,
    principal: Principal = Depends(cashiers),
    session: AsyncSession = SessionDep,
    idem: Idempotency = Depends(idempotency),
) -> ReceiptOut:
    """Take money at the counter: cash, card (reference), UPI (UTR, e.g. after the counter
    QR), cheque, bank transfer; several tenders make one receipt (split tender). Never more
    than the balance due. Accepts an Idempotency-Key header or a client ``id``."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    detail, created = await counter_service.take_counter_payment(
        session, principal, invoice_id, body
    )
    if not created:
        response.status_code = 200
    return await idem.remember(201 if created else 200, receipt_out(detail))


@router.get(
    "/invoices/{invoice_id}/receipts",
    response_model=ListResource[ReceiptOut],
    operation_id="invoices:receipts",
    responses={**AUTH_ERRORS, **INVOICE_ERRORS},
)
async def invoice_receipts(
    invoice_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ListResource[ReceiptOut]:
    invoice = await billing_service.get(session, principal, invoice_id)
    receipts = await billing_service.receipts_of(session, invoice)
    start = (page.page - 1) * page.limit
    shown = [
        receipt_out(await counter_service.receipt_detail(session, principal, r.id))
        for r in receipts[start : start + page.limit]
    ]
    return ListResource[ReceiptOut].build(shown, len(receipts), page.page, page.limit)


@router.get(
    "/invoices/{invoice_id}/upi-qr/counter",
    operation_id="invoices:counter_upi_qr",
    response_model=UpiQrOut,
    responses={
        200: {"content": {"image/png": {}, "application/json": {}}, "description": "QR"},
        **AUTH_ERRORS,
        **INVOICE_ERRORS,
        **problem_responses(InvoiceNotPayable, BillingNotConfigured),
    },
)
async def counter_upi_qr(
    invoice_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(collectors),
    session: AsyncSession = SessionDep,
) -> Response:
    """A UPI QR for the balance due, made here without any gateway (NPCI ``upi://pay``:
    payee from the branch, amount, reference = invoice number). PNG by default; JSON with
    ``Accept: application/json``. Confirm the payment with its UTR at the counter."""
    upi = await billing_service.counter_upi(session, principal, invoice_id)
    if "application/json" in request.headers.get("accept", ""):
        out = UpiQrOut(
            invoice_id=invoice_id,
            upi_uri=upi.uri,
            amount=upi.amount,
            payee_vpa=upi.vpa,
            payee_name=upi.payee_name,
            reference=upi.reference,
        )
        return Response(out.model_dump_json(), media_type="application/json")
    buffer = io.BytesIO()
    segno.make(upi.uri, error="m", micro=False).save(buffer, kind="png", scale=8, border=4)
    return Response(
        buffer.getvalue(),
        media_type="image/png",
        headers={"Cache-Control": "no-store", "X-Upi-Uri": upi.uri},
    )


@router.get(
    "/receipts/{receipt_id}",
    response_model=ReceiptOut,
    operation_id="receipts:get",
    responses={**AUTH_ERRORS, **problem_responses(NotFound)},
)
async def get_receipt(
    receipt_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ReceiptOut:
    return receipt_out(await counter_service.receipt_detail(session, principal, receipt_id))


@router.get(
    "/receipts/{receipt_id}/pdf",
    operation_id="receipts:pdf",
    response_class=Response,
    responses={**PDF, **AUTH_ERRORS, **problem_responses(NotFound)},
)
async def receipt_pdf(
    receipt_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> Response:
    detail = await counter_service.receipt_detail(session, principal, receipt_id)
    await session.refresh(detail.invoice)
    data = await render.receipt_pdf(
        render.ReceiptDocument(detail.receipt, detail.payments, detail.invoice)
    )
    return _pdf(data, _file_name(detail.receipt.number, detail.receipt.id))
