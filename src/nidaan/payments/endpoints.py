"""HTTP handlers for gateway payments: links and QR codes for invoices, payments and
refunds, reconciliation, the gateways' webhooks and the patient-facing return pages."""

from __future__ import annotations

import html
import logging
import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.dependencies import AUTH_ERRORS, require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.billing.domain import to_paise
from nidaan.billing.errors import InvoiceNotFound, InvoiceNotPayable, OverRefund
from nidaan.billing.schemas import PaymentOut
from nidaan.deps import get_session, page_params
from nidaan.errors import problem_responses
from nidaan.idempotency.dependencies import Idempotency, idempotency
from nidaan.kit.jobs import enqueue
from nidaan.kit.pagination import PageParams
from nidaan.kit.schemas import ListResource
from nidaan.kit.storage import public_base_url
from nidaan.kit.time import utcnow
from nidaan.payments.errors import (
    GatewayNotEnabled,
    NotCapturable,
    NotHeld,
    NothingDue,
    NotRefundable,
    PaymentNotFound,
    WebhookSignatureInvalid,
)
from nidaan.payments.gateways.base import (
    GatewayError,
    GatewayNotConfigured,
    GatewayUnsupported,
    WebhookRejected,
)
from nidaan.payments.gateways.payu import PayUGateway
from nidaan.payments.gateways.razorpay import RazorpayGateway
from nidaan.payments.schemas import (
    ApplyHeld,
    MismatchOut,
    PaymentLinkCreate,
    PaymentRequestOut,
    ReconciliationRun,
    RefundCreate,
    RefundOut,
)
from nidaan.payments.service import PaymentView, RetryLater, payments_service
from nidaan.payments.tasks import process_webhook

logger = logging.getLogger(__name__)
router = APIRouter(tags=["payments"])
public_router = APIRouter(tags=["payment webhooks"])

cashiers = require_roles(Role.ADMIN, Role.BILLING, Role.FRONT_DESK)
readers = require_roles(Role.ADMIN, Role.BILLING, Role.FRONT_DESK, Role.AUDITOR)
managers = require_roles(Role.ADMIN, Role.BILLING)
reviewers = require_roles(Role.ADMIN, Role.BILLING, Role.AUDITOR)
admin_only = require_roles(Role.ADMIN)
SessionDep = Depends(get_session, scope="function")
GATEWAY_ERRORS = problem_responses(GatewayError, GatewayNotEnabled, GatewayNotConfigured)
MAX_WEBHOOK_BYTES = 1_000_000


def payment_out(view: PaymentView) -> PaymentOut:
    return PaymentOut.model_validate(view.__dict__)


# ------------------------------------------------------------------------ invoices


@router.post(
    "/invoices/{invoice_id}/payment-link",
    status_code=201,
    response_model=PaymentRequestOut,
    operation_id="invoices:payment_link",
    responses={
        **AUTH_ERRORS,
        **GATEWAY_ERRORS,
        **problem_responses(InvoiceNotFound, InvoiceNotPayable, NothingDue),
    },
)
async def create_payment_link(
    invoice_id: uuid.UUID,
    body: PaymentLinkCreate,
    response: Response,
    principal: Principal = Depends(cashiers),
    session: AsyncSession = SessionDep,
    idem: Idempotency = Depends(idempotency),
) -> PaymentRequestOut:
    """A payment link for the invoice's balance (amount in paise at the gateway, reference
    = invoice number, the patient's name/mobile/e-mail, expiry, return URL; Razorpay can
    SMS/e-mail it). An open link for the same amount is returned again (200)."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    request, created = await payments_service.create_link(session, principal, invoice_id, body)
    if not created:
        response.status_code = 200
    return await idem.remember(201 if created else 200, PaymentRequestOut.model_validate(request))


@router.post(
    "/invoices/{invoice_id}/upi-qr",
    operation_id="invoices:upi_qr",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The gateway's UPI QR code"},
        **AUTH_ERRORS,
        **GATEWAY_ERRORS,
        **problem_responses(InvoiceNotFound, InvoiceNotPayable, NothingDue, GatewayUnsupported),
    },
)
async def create_upi_qr(
    invoice_id: uuid.UUID,
    principal: Principal = Depends(cashiers),
    session: AsyncSession = SessionDep,
) -> Response:
    """A single-use UPI QR for the balance due from the gateway (Razorpay QR Codes API),
    as a PNG; it turns the invoice paid when the patient pays (``qr_code.credited``).
    Headers carry the request id and the gateway's QR id. Without a gateway use
    ``GET /invoices/{id}/upi-qr/counter``."""
    request, png = await payments_service.create_upi_qr(session, principal, invoice_id)
    return Response(
        png,
        media_type="image/png",
        headers={
            "X-Payment-Request-Id": str(request.id),
            "X-Gateway-Ref": request.gateway_ref,
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/invoices/{invoice_id}/payment-requests",
    response_model=ListResource[PaymentRequestOut],
    operation_id="invoices:payment_requests",
    responses={**AUTH_ERRORS, **problem_responses(InvoiceNotFound)},
)
async def list_payment_requests(
    invoice_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ListResource[PaymentRequestOut]:
    """Links and QR codes made for the invoice, with their status at the gateway."""
    rows = await payments_service.requests_of(session, principal, invoice_id)
    return ListResource[PaymentRequestOut].page_of(
        [PaymentRequestOut.model_validate(r) for r in rows], page
    )


@router.get(
    "/invoices/{invoice_id}/payments",
    response_model=ListResource[PaymentOut],
    operation_id="invoices:payments",
    responses={**AUTH_ERRORS, **problem_responses(InvoiceNotFound)},
)
async def list_invoice_payments(
    invoice_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ListResource[PaymentOut]:
    """Every payment on the invoice: counter tenders and gateway payments (applied, held,
    pending or failed), with what was refunded of each."""
    views = await payments_service.payments_of_invoice(session, principal, invoice_id)
    return ListResource[PaymentOut].page_of([payment_out(v) for v in views], page)


# ------------------------------------------------------------------------ payments


@router.get(
    "/payments/reconciliation",
    response_model=ListResource[MismatchOut],
    operation_id="payments:reconciliation_report",
    responses=AUTH_ERRORS,
)
async def reconciliation_report(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(reviewers),
    session: AsyncSession = SessionDep,
) -> ListResource[MismatchOut]:
    """Mismatches for a person: held payments (wrong amount or currency, paid twice),
    failed webhooks, links paid at the gateway with the invoice still due, uncaptured
    payments and refunds pending for long."""
    items = await payments_service.mismatch_report(session, principal)
    return ListResource[MismatchOut].page_of([MismatchOut.model_validate(i) for i in items], page)


@router.post(
    "/payments/reconciliation",
    response_model=ReconciliationRun,
    operation_id="payments:reconcile",
    responses=AUTH_ERRORS,
)
async def reconcile_now(
    principal: Principal = Depends(managers), session: AsyncSession = SessionDep
) -> ReconciliationRun:
    """Run the reconciliation job for your lab now (it also runs every 10 minutes)."""
    summary = await payments_service.reconcile(session, principal.organisation_id)
    return ReconciliationRun.model_validate(summary.__dict__)


@router.get(
    "/payments",
    response_model=ListResource[PaymentOut],
    operation_id="payments:list",
    responses=AUTH_ERRORS,
)
async def list_payments(
    review_status: str | None = Query(
        None, pattern="^(pending|applied|held|not_applied)$", description="e.g. held"
    ),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(reviewers),
    session: AsyncSession = SessionDep,
) -> ListResource[PaymentOut]:
    """Gateway payments, newest first (``review_status=held`` for those needing a person)."""
    views, total = await payments_service.list_gateway_payments(
        session, principal, review_status=review_status, page=page
    )
    return ListResource[PaymentOut].build(
        [payment_out(v) for v in views], total, page.page, page.limit
    )


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentOut,
    operation_id="payments:get",
    responses={**AUTH_ERRORS, **problem_responses(PaymentNotFound)},
)
async def get_payment(
    payment_id: uuid.UUID,
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> PaymentOut:
    return payment_out(await payments_service.get_view(session, principal, payment_id))


@router.post(
    "/payments/{payment_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    operation_id="payments:refund",
    responses={
        **AUTH_ERRORS,
        **GATEWAY_ERRORS,
        **problem_responses(PaymentNotFound, OverRefund, NotRefundable),
    },
)
async def refund_payment(
    payment_id: uuid.UUID,
    body: RefundCreate,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
    idem: Idempotency = Depends(idempotency),
) -> RefundOut:
    """Refund all (no amount) or part of a payment, with a reason. Gateway payments go back
    through the gateway (``pending`` until it confirms); counter payments are paid back at
    the counter at once. Never more than was paid. Accepts an Idempotency-Key header."""
    if idem.replay is not None:
        return idem.replay  # type: ignore[return-value]
    refund = await payments_service.refund(session, principal, payment_id, body)
    return await idem.remember(201, RefundOut.model_validate(refund))


@router.get(
    "/payments/{payment_id}/refunds",
    response_model=ListResource[RefundOut],
    operation_id="payments:refunds",
    responses={**AUTH_ERRORS, **problem_responses(PaymentNotFound)},
)
async def list_refunds(
    payment_id: uuid.UUID,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(readers),
    session: AsyncSession = SessionDep,
) -> ListResource[RefundOut]:
    rows = await payments_service.refunds_of(session, principal, payment_id)
    return ListResource[RefundOut].page_of([RefundOut.model_validate(r) for r in rows], page)


@router.post(
    "/payments/{payment_id}/verify",
    response_model=PaymentOut,
    operation_id="payments:verify",
    responses={**AUTH_ERRORS, **GATEWAY_ERRORS, **problem_responses(PaymentNotFound)},
)
async def verify_payment(
    payment_id: uuid.UUID,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> PaymentOut:
    """Ask the gateway about the payment now and apply what it says."""
    return payment_out(await payments_service.verify(session, principal, payment_id))


@router.post(
    "/payments/{payment_id}/capture",
    response_model=PaymentOut,
    operation_id="payments:capture",
    responses={
        **AUTH_ERRORS,
        **GATEWAY_ERRORS,
        **problem_responses(PaymentNotFound, NotCapturable),
    },
)
async def capture_payment(
    payment_id: uuid.UUID,
    principal: Principal = Depends(managers),
    session: AsyncSession = SessionDep,
) -> PaymentOut:
    """Capture an authorized gateway payment (the reconciliation job also captures them)."""
    return payment_out(await payments_service.capture_by_id(session, principal, payment_id))


@router.post(
    "/payments/{payment_id}/apply",
    response_model=PaymentOut,
    operation_id="payments:apply_held",
    responses={**AUTH_ERRORS, **problem_responses(PaymentNotFound, NotHeld)},
)
async def apply_held(
    payment_id: uuid.UUID,
    body: ApplyHeld,
    principal: Principal = Depends(admin_only),
    session: AsyncSession = SessionDep,
) -> PaymentOut:
    """An admin applies a held payment after review (never beyond the balance due)."""
    return payment_out(await payments_service.apply_held(session, principal, payment_id, body.note))


# ------------------------------------------------------------------------ webhooks


async def _receive(gateway: str, request: Request, session: AsyncSession) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise WebhookSignatureInvalid("The webhook body is too large.")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        row, duplicate, event = await payments_service.receive_webhook(
            session, gateway, raw, headers
        )
    except WebhookRejected as exc:
        logger.warning("Refused a %s webhook: %s", gateway, exc)
        raise WebhookSignatureInvalid(str(exc)) from None
    except GatewayNotConfigured:
        raise WebhookSignatureInvalid(f"{gateway} webhooks are not configured here.") from None
    if duplicate:
        return {"status": "duplicate", "event_id": row.event_id}
    try:
        status = await payments_service.process_webhook(session, row.id, event, received=row)
    except RetryLater:
        await enqueue(session, process_webhook, event_row_id=str(row.id))
        status = "queued"
    return {"status": status, "event_id": row.event_id}


WEBHOOK_RESPONSES = {
    200: {"description": "Received (and applied, or a duplicate)"},
    **problem_responses(WebhookSignatureInvalid),
}


@public_router.post(
    "/webhooks/razorpay", operation_id="webhooks:razorpay", responses=WEBHOOK_RESPONSES
)
async def razorpay_webhook(request: Request, session: AsyncSession = SessionDep) -> dict[str, str]:
    """Razorpay events, verified by ``X-Razorpay-Signature`` over the raw body, stored raw,
    de-duplicated by ``X-Razorpay-Event-Id`` and applied once."""
    return await _receive("razorpay", request, session)


@public_router.post("/webhooks/stripe", operation_id="webhooks:stripe", responses=WEBHOOK_RESPONSES)
async def stripe_webhook(request: Request, session: AsyncSession = SessionDep) -> dict[str, str]:
    """Stripe events, verified by ``Stripe-Signature`` (timestamp within 300 s) over the raw
    body, stored raw, de-duplicated by event id and applied once."""
    return await _receive("stripe", request, session)


@public_router.post("/webhooks/payu", operation_id="webhooks:payu", responses=WEBHOOK_RESPONSES)
async def payu_webhook(request: Request, session: AsyncSession = SessionDep) -> dict[str, str]:
    """PayU transaction webhooks, verified by the SHA-512 reverse hash; refund callbacks
    (which carry no hash) are confirmed with ``check_action_status`` before anything moves."""
    return await _receive("payu", request, session)


# ------------------------------------------------------------------------ payer pages


def _page(title: str, message: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:system-ui,sans-serif;"
        "max-width:30rem;margin:3rem auto;padding:0 1rem;color:#1d2733}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


@public_router.get("/pay/payu/{token}", include_in_schema=False)
async def payu_checkout(token: str, session: AsyncSession = SessionDep) -> HTMLResponse:
    """The PayU payment link: posts the signed checkout form to PayU."""
    request = await payments_service.request_by_token(session, token)
    if request is None or request.gateway != "payu":
        return _page("Link not found", "This payment link does not exist.", 404)
    if request.status != "created" or (request.expires_at and request.expires_at < utcnow()):
        return _page("Link closed", f"This payment link is {request.status}.", 410)
    adapter = payments_service.gateway("payu")
    assert isinstance(adapter, PayUGateway)
    base = public_base_url(payments_service.settings)
    customer = (request.raw or {}).get("customer") or {}
    # PayU's form needs all three; a patient without e-mail or mobile types them on PayU's page.
    firstname = (customer.get("name") or "").split(" ")[0] or "Patient"
    phone = "".join(ch for ch in customer.get("contact") or "" if ch.isdigit())[-10:]
    action, fields = adapter.checkout_form(
        txnid=request.gateway_ref,
        amount_paise=to_paise(request.amount),
        productinfo=f"Invoice {request.reference}",
        firstname=firstname,
        email=customer.get("email") or "patient@example.invalid",
        phone=phone or "9999999999",
        surl=f"{base}/pay/payu/{token}/return",
        furl=f"{base}/pay/payu/{token}/return",
        udf1=str(request.id),
    )
    inputs = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
        for k, v in fields.items()
    )
    return HTMLResponse(
        "<!doctype html><html><body onload='document.forms[0].submit()'>"
        f"<form method='post' action='{html.escape(action)}'>{inputs}"
        "<noscript><button>Continue to PayU</button></noscript></form></body></html>",
        headers={"Cache-Control": "no-store"},
    )


@public_router.post("/pay/payu/{token}/return", include_in_schema=False)
async def payu_return(
    token: str, request: Request, session: AsyncSession = SessionDep
) -> HTMLResponse:
    """Where PayU sends the payer back (surl/furl), with the reverse-hashed result."""
    try:
        outcome = await _receive("payu", request, session)
    except WebhookSignatureInvalid:
        return _page("Payment not confirmed", "The answer from PayU could not be verified.", 400)
    form = dict((await request.form()).items())
    if form.get("status") == "success":
        return _page(
            "Payment received", f"Thank you. Reference {form.get('txnid')}. ({outcome['status']})"
        )
    return _page("Payment not completed", "The payment did not go through; try the link again.")


@public_router.get("/pay/razorpay/return", include_in_schema=False)
async def razorpay_return(request: Request) -> HTMLResponse:
    """Where Razorpay sends the payer back after a payment link. The page only thanks the
    payer when Razorpay's callback signature verifies; the invoice itself is settled by the
    webhook (or reconciliation), never by this redirect."""
    query = request.query_params
    adapter = payments_service.gateway("razorpay")
    assert isinstance(adapter, RazorpayGateway)
    fields = [
        query.get(name, "")
        for name in (
            "razorpay_payment_link_id",
            "razorpay_payment_link_reference_id",
            "razorpay_payment_link_status",
            "razorpay_payment_id",
        )
    ]
    if not adapter.callback_signature_valid(fields, query.get("razorpay_signature", "")):
        return _page("Payment not confirmed", "This payment could not be verified.", 400)
    if query.get("razorpay_payment_link_status") == "paid":
        return _page("Payment received", "Thank you. Your receipt will reach you shortly.")
    return _page("Payment not completed", "The payment did not go through; try the link again.")


@public_router.get("/pay/stripe/return", include_in_schema=False)
async def stripe_return(request: Request) -> HTMLResponse:
    """Where Stripe Checkout sends the payer back."""
    return _page("Payment received", "Thank you. Your receipt will reach you shortly.")
