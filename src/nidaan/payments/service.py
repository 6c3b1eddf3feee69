"""Gateway payments: links and QR codes for invoices, webhooks applied exactly once,
refunds, capture, verification and reconciliation.

Exactly once, whatever the number and order of deliveries:

* every webhook is stored raw under a unique (gateway, event id): a redelivery only counts;
* a gateway payment is one row per (gateway, payment id), locked while it is updated; its
  status only moves forward (``domain``), and it is applied to its invoice once — its
  ``review_status`` leaves ``pending`` once, and the ledger's unique effect key backs that;
* refunds are one row per gateway refund id; a refund's money leaves the invoice once when
  it is created (pending counts) and comes back once if it fails.

A captured payment that does not match its request (amount, currency) or would overpay the
invoice is ``held`` for a person (``apply_held`` or a refund), never applied.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.billing.configuration import billing_configuration
from nidaan.billing.counter import counter_service
from nidaan.billing.domain import from_paise, to_paise
from nidaan.billing.enums import InvoiceStatus
from nidaan.billing.errors import InvoiceNotPayable, Overpayment, OverRefund
from nidaan.billing.ledger import constraint_of
from nidaan.billing.models import CounterPayment, Invoice
from nidaan.billing.service import billing_service
from nidaan.config import Settings, get_settings
from nidaan.events.service import publish
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.storage import public_base_url
from nidaan.kit.time import utcnow
from nidaan.patients.service import patients_service
from nidaan.payments import domain
from nidaan.payments.errors import (
    GatewayNotEnabled,
    InvalidPaymentInput,
    NotCapturable,
    NotHeld,
    NothingDue,
    NotRefundable,
    PaymentNotFound,
)
from nidaan.payments.events import PaymentHeld, PaymentLinkCreated, RefundProcessed
from nidaan.payments.gateways.base import (
    Customer,
    DuplicateReference,
    GatewayError,
    LinkRequest,
    PaymentGateway,
    PaymentState,
    PaymentStatus,
    QrRequest,
    RefundState,
    RefundStatus,
    RequestState,
    RequestStatus,
    WebhookEvent,
    WebhookUnreadable,
)
from nidaan.payments.gateways.registry import gateway_for
from nidaan.payments.models import GatewayPayment, PaymentRequest, Refund
from nidaan.payments.models import WebhookEvent as WebhookRow
from nidaan.payments.schemas import PaymentLinkCreate, RefundCreate

logger = logging.getLogger(__name__)

#: Headers kept with a raw webhook (for audit and support; never secrets).
KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-razorpay-event-id",
    "x-razorpay-signature",
    "stripe-signature",
)


def gateway_actor(gateway: str) -> AuditActor:
    return AuditActor("system", None, f"{gateway} gateway")


class RetryLater(Exception):
    """The event refers to something our own transaction has not committed yet."""


class Unmatched(Exception):
    """The event is about nothing of ours (another system's payment on the same account)."""


@dataclass
class Applied:
    """What processing one event did (for the inbox row and the logs)."""

    notes: list[str] = field(default_factory=list)
    matched: uuid.UUID | None = None  # organisation

    def add(self, text: str) -> None:
        self.notes.append(text)


@dataclass
class ReconcileSummary:
    requests_checked: int = 0
    payments_seen: int = 0
    payments_applied: int = 0
    refunds_checked: int = 0
    captured: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PaymentView:
    """A payment on an invoice, counter or gateway, for listing."""

    id: uuid.UUID
    source: str
    method: str | None
    amount: Decimal
    currency: str
    status: str
    review_reason: str | None
    amount_refunded: Decimal
    reference: str | None
    received_at: datetime | None
    receipt_id: uuid.UUID | None


class PaymentsService:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    def gateway(self, name: str) -> PaymentGateway:
        return gateway_for(name, self.settings)

    # ================================================================== requests

    async def _payable_invoice(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> Invoice:
        invoice = await billing_service.get(session, caller, invoice_id)
        await session.refresh(invoice)
        if invoice.status != InvoiceStatus.ISSUED or invoice.kind == "credit_note":
            raise InvoiceNotPayable("Only issued invoices take payments.")
        if invoice.balance_due <= 0:
            raise NothingDue("Nothing is due on this invoice.")
        return invoice

    async def _choose_gateway(
        self, session: AsyncSession, organisation_id: uuid.UUID, asked: str | None
    ) -> str:
        settings = await billing_configuration.settings_for(session, organisation_id)
        enabled = list(settings.enabled_gateways or [])
        name = asked or settings.default_gateway or (enabled[0] if enabled else None)
        if name is None or name not in enabled:
            raise GatewayNotEnabled(
                f"{name or 'No gateway'} is not enabled for your lab; enable it in the billing "
                "settings (enabled_gateways, default_gateway).",
                enabled=enabled,
            )
        return name

    async def _reference(self, session: AsyncSession, invoice: Invoice) -> str:
        earlier = await session.scalar(
            select(func.count()).where(PaymentRequest.invoice_id == invoice.id)
        )
        number = invoice.number or str(invoice.id)
        return number if not earlier else f"{number}-{int(earlier) + 1}"

    async def open_request(
        self, session: AsyncSession, invoice: Invoice, gateway: str, kind: str
    ) -> PaymentRequest | None:
        return await session.scalar(
            select(PaymentRequest)
            .where(
                PaymentRequest.invoice_id == invoice.id,
                PaymentRequest.gateway == gateway,
                PaymentRequest.kind == kind,
                PaymentRequest.status.in_([s.value for s in domain.OPEN_REQUESTS]),
            )
            .order_by(PaymentRequest.created_at.desc())
            .limit(1)
        )

    async def create_link(
        self,
        session: AsyncSession,
        caller: Principal,
        invoice_id: uuid.UUID,
        data: PaymentLinkCreate,
    ) -> tuple[PaymentRequest, bool]:
        """A payment link for the balance due; an open link for the same amount is reused.
        Returns (request, created)."""
        invoice = await self._payable_invoice(session, caller, invoice_id)
        name = await self._choose_gateway(session, caller.organisation_id, data.gateway)
        now = utcnow()
        existing = await self.open_request(session, invoice, name, "link")
        if existing is not None:
            fresh = existing.expires_at is None or existing.expires_at > now
            if fresh and existing.amount == invoice.balance_due:
                return existing, False
            await self._cancel_at_gateway(session, existing, "superseded by a new link")
        settings = await billing_configuration.settings_for(session, caller.organisation_id)
        hours = data.expire_in_hours or settings.payment_link_expiry_hours
        if name == "stripe":
            hours = min(hours, 23)
        request = PaymentRequest(
            id=new_id(),
            organisation_id=caller.organisation_id,
            invoice_id=invoice.id,
            gateway=name,
            kind="link",
            gateway_ref="",
            reference=await self._reference(session, invoice),
            amount=invoice.balance_due,
            currency=invoice.currency,
            status=RequestStatus.CREATED,
            expires_at=now + timedelta(hours=hours),
            token=secrets.token_urlsafe(24),
            created_by_id=caller.id if caller.kind == "user" else None,
        )
        customer = await self._customer(session, caller, invoice, data)
        base = public_base_url(self.settings)

        def link_request() -> LinkRequest:
            return LinkRequest(
                amount_paise=to_paise(request.amount),
                currency=invoice.currency,
                reference=request.reference,
                description=f"{invoice.seller_legal_name}: invoice {invoice.number}",
                customer=customer,
                expire_at=request.expires_at,  # type: ignore[arg-type]
                notes=self._notes(request),
                callback_url=f"{base}/pay/{name}/return",
                notify_sms=data.notify_sms,
                notify_email=data.notify_email,
                hosted_page_url=f"{base}/pay/payu/{request.token}",
                idempotency_key=f"payment-request-{request.id}",
            )

        try:
            created = await self.gateway(name).create_link(link_request())
        except DuplicateReference:
            # The merchant account is shared with another lab using the same numbers.
            request.reference = f"{request.reference}-{request.id.hex[-6:]}"[:40]
            created = await self.gateway(name).create_link(link_request())
        request.gateway_ref = created.gateway_ref
        request.url = created.url
        request.raw = created.raw
        session.add(request)
        await session.flush()
        await self._audit_request(session, caller.actor, request, "payment_link.created")
        await publish(
            session,
            PaymentLinkCreated(
                organisation_id=request.organisation_id,
                invoice_id=invoice.id,
                payment_request_id=request.id,
                patient_id=invoice.patient_id,
                gateway=name,
                url=request.url or "",
                amount=request.amount,
                expires_at=request.expires_at,
            ),
        )
        return request, True

    async def create_upi_qr(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> tuple[PaymentRequest, bytes]:
        """A single-use UPI QR for the balance due at a gateway that has them (Razorpay)."""
        invoice = await self._payable_invoice(session, caller, invoice_id)
        settings = await billing_configuration.settings_for(session, caller.organisation_id)
        enabled = list(settings.enabled_gateways or [])
        candidates = [g for g in [settings.default_gateway, *enabled] if g in enabled]
        name = next((g for g in candidates if self.gateway(g).supports_upi_qr), None)
        if name is None:
            raise GatewayNotEnabled(
                "No enabled gateway makes UPI QR codes (Razorpay does); use the counter QR "
                f"(GET /api/v1/invoices/{invoice.id}/upi-qr/counter).",
                enabled=enabled,
            )
        adapter = self.gateway(name)
        existing = await self.open_request(session, invoice, name, "upi_qr")
        if existing is not None and existing.amount == invoice.balance_due and existing.image_url:
            return existing, await adapter.fetch_image(existing.image_url)
        if existing is not None:
            await self._cancel_at_gateway(session, existing, "superseded by a new QR")
        now = utcnow()
        request = PaymentRequest(
            id=new_id(),
            organisation_id=caller.organisation_id,
            invoice_id=invoice.id,
            gateway=name,
            kind="upi_qr",
            gateway_ref="",
            reference=await self._reference(session, invoice),
            amount=invoice.balance_due,
            currency=invoice.currency,
            status=RequestStatus.CREATED,
            expires_at=now + timedelta(hours=2),
            created_by_id=caller.id if caller.kind == "user" else None,
        )
        created = await adapter.create_upi_qr(
            QrRequest(
                amount_paise=to_paise(request.amount),
                reference=request.reference,
                description=f"Invoice {invoice.number}",
                close_at=request.expires_at,  # type: ignore[arg-type]
                notes=self._notes(request),
                customer_name=invoice.buyer_name,
            )
        )
        request.gateway_ref, request.image_url, request.raw = (
            created.gateway_ref,
            created.image_url,
            created.raw,
        )
        session.add(request)
        await session.flush()
        await self._audit_request(session, caller.actor, request, "upi_qr.created")
        png = await adapter.fetch_image(created.image_url or "")
        return request, png

    async def _customer(
        self, session: AsyncSession, caller: Principal, invoice: Invoice, data: PaymentLinkCreate
    ) -> Customer:
        email, mobile = data.customer_email, data.customer_mobile
        if invoice.patient_id is not None and invoice.client_id is None:
            patient = await patients_service.get(session, caller, invoice.patient_id)
            email = email or patient.email
            mobile = mobile or patient.mobile
        if mobile and not mobile.startswith("+"):
            mobile = "+91" + mobile[-10:]
        return Customer(data.customer_name or invoice.buyer_name, email, mobile)

    @staticmethod
    def _notes(request: PaymentRequest) -> dict[str, str]:
        return {
            "organisation_id": str(request.organisation_id),
            "invoice_id": str(request.invoice_id),
            "payment_request_id": str(request.id),
        }

    async def _cancel_at_gateway(
        self, session: AsyncSession, request: PaymentRequest, why: str
    ) -> None:
        try:
            await self.gateway(request.gateway).cancel_request(request.gateway_ref, request.kind)
        except GatewayError as exc:
            # Already paid or expired there: the webhook/reconciliation will tell.
            logger.info("Could not cancel %s at %s: %s", request.id, request.gateway, exc.detail)
            return
        request.status = RequestStatus.CANCELLED
        await session.flush()
        await self._audit_request(
            session, gateway_actor(request.gateway), request, "payment_request.cancelled", why
        )

    async def cancel_open_requests(
        self, session: AsyncSession, organisation_id: uuid.UUID, invoice_id: uuid.UUID
    ) -> int:
        """Cancel the invoice's open links and QR codes at their gateways."""
        rows = list(
            await session.scalars(
                select(PaymentRequest).where(
                    PaymentRequest.organisation_id == organisation_id,
                    PaymentRequest.invoice_id == invoice_id,
                    PaymentRequest.status.in_([s.value for s in domain.OPEN_REQUESTS]),
                )
            )
        )
        for request in rows:
            await self._cancel_at_gateway(session, request, "invoice cancelled")
        return len(rows)

    async def _audit_request(
        self,
        session: AsyncSession,
        actor: AuditActor,
        request: PaymentRequest,
        action: str,
        note: str | None = None,
    ) -> None:
        await audit_service.record(
            session,
            organisation_id=request.organisation_id,
            actor=actor,
            action=action,
            entity_type="payment_request",
            entity_id=request.id,
            after={
                "invoice_id": request.invoice_id,
                "gateway": request.gateway,
                "gateway_ref": request.gateway_ref,
                "amount": request.amount,
                "status": request.status,
                "note": note,
            },
        )

    async def requests_of(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> list[PaymentRequest]:
        invoice = await billing_service.get(session, caller, invoice_id)
        return list(
            await session.scalars(
                select(PaymentRequest)
                .where(PaymentRequest.invoice_id == invoice.id)
                .order_by(PaymentRequest.created_at)
            )
        )

    async def request_by_token(self, session: AsyncSession, token: str) -> PaymentRequest | None:
        """The PayU hosted page's request (installation-wide lookup by a random token)."""
        if not token or len(token) > 64:
            return None
        return await session.scalar(select(PaymentRequest).where(PaymentRequest.token == token))

    # ================================================================== webhooks

    async def receive_webhook(
        self, session: AsyncSession, gateway: str, raw_body: bytes, headers: Mapping[str, str]
    ) -> tuple[WebhookRow, bool, WebhookEvent | None]:
        """Verify and store a delivery; returns (row, duplicate, parsed event).

        ``WebhookRejected`` (bad signature) propagates and nothing is stored. A signed body
        we cannot read is stored as ``failed`` with the error, and acknowledged.
        """
        adapter = self.gateway(gateway)
        error = None
        event: WebhookEvent | None = None
        try:
            event = adapter.parse_webhook(raw_body, headers)
            event_id, kind = event.event_id, event.event_type
        except WebhookUnreadable as exc:
            event_id, kind, error = exc.event_id, None, str(exc)
        kept = {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
        row = await session.scalar(
            insert(WebhookRow)
            .values(
                id=new_id(),
                gateway=gateway,
                event_id=event_id[:200],
                event_type=kind,
                raw_body=raw_body,
                headers=kept,
                status="failed" if error else "received",
                error=error,
            )
            .on_conflict_do_update(
                index_elements=["gateway", "event_id"],
                set_={"deliveries": WebhookRow.deliveries + 1},
            )
            .returning(WebhookRow),
            execution_options={"populate_existing": True},
        )
        assert row is not None
        return row, row.deliveries > 1, event

    async def process_webhook(
        self,
        session: AsyncSession,
        row_id: uuid.UUID,
        event: WebhookEvent | None = None,
        *,
        received: WebhookRow | None = None,
    ) -> str:
        """Apply a stored webhook's effects (once); returns the row's new status.

        ``received``: the row this transaction just inserted (already locked by it).
        Runs in a savepoint: an error rolls back the effects, leaves the row ``received``
        with the error, and raises ``RetryLater`` for the job to try again.
        """
        row = received or await session.scalar(
            select(WebhookRow)
            .where(WebhookRow.id == row_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is None or row.status in ("processed", "ignored"):
            return row.status if row else "missing"
        if row.status == "failed" and row.event_type is None:
            return "failed"  # unreadable: kept for a person, nothing to apply
        adapter = self.gateway(row.gateway)
        if event is None:
            event = adapter.read_webhook(row.raw_body, _lower(row.headers))
        applied = Applied()
        try:
            async with session.begin_nested():
                await self.apply_event(session, row.gateway, event, applied)
        except Unmatched as exc:
            row.status, row.error = "ignored", str(exc)[:1000]
        except (RetryLater, GatewayError) as exc:
            row.error = f"will retry: {exc}"[:1000]
            await session.flush()
            raise RetryLater(str(exc)) from exc
        else:
            row.status, row.error = "processed", "; ".join(applied.notes)[:1000] or None
        row.organisation_id = applied.matched or row.organisation_id
        row.processed_at = utcnow()
        await session.flush()
        return row.status

    async def apply_event(
        self, session: AsyncSession, gateway: str, event: WebhookEvent, applied: Applied
    ) -> None:
        actor = gateway_actor(gateway)
        matched_any = False
        for payment in event.payments:
            try:
                await self.observe_payment(session, gateway, payment, actor, applied)
                matched_any = True
            except Unmatched:
                continue
        for request in event.requests:
            if await self.observe_request(session, gateway, request, actor, applied):
                matched_any = True
        for refund in event.refunds:
            if event.refunds_need_confirmation:
                refund = await self._confirmed_refund(session, gateway, refund)
                if refund is None:
                    continue
            if await self.observe_refund(session, gateway, refund, actor, applied):
                matched_any = True
        if not matched_any:
            raise Unmatched(f"{event.event_type}: nothing of ours is concerned")

    # ------------------------------------------------------------------ payments

    async def _request_for(
        self, session: AsyncSession, gateway: str, state: PaymentState
    ) -> PaymentRequest | None:
        wanted = state.notes.get("payment_request_id")
        if wanted:
            try:
                found = await session.get(PaymentRequest, uuid.UUID(wanted))
            except ValueError:
                found = None
            if found is not None and found.gateway == gateway:
                return found
        if state.request_ref:
            return await session.scalar(
                select(PaymentRequest).where(
                    PaymentRequest.gateway == gateway,
                    PaymentRequest.gateway_ref == state.request_ref,
                )
            )
        return None

    async def observe_payment(
        self,
        session: AsyncSession,
        gateway: str,
        state: PaymentState,
        actor: AuditActor,
        applied: Applied | None = None,
    ) -> GatewayPayment:
        """Record what the gateway says about a payment and apply it once when captured."""
        applied = applied or Applied()
        row = await self._payment_row(session, gateway, state.gateway_payment_id)
        if row is None:
            request = await self._request_for(session, gateway, state)
            if request is None:
                raise Unmatched(f"payment {state.gateway_payment_id} matches no request")
            await session.execute(
                insert(GatewayPayment)
                .values(
                    id=new_id(),
                    organisation_id=request.organisation_id,
                    invoice_id=request.invoice_id,
                    payment_request_id=request.id,
                    gateway=gateway,
                    gateway_payment_id=state.gateway_payment_id,
                    amount=from_paise(state.amount_paise),
                    currency=state.currency or "INR",
                    method=state.method,
                    status=PaymentStatus.CREATED,
                    review_status="pending",
                    raw=state.raw,
                )
                .on_conflict_do_nothing(index_elements=["gateway", "gateway_payment_id"])
            )
            row = await self._payment_row(session, gateway, state.gateway_payment_id)
            assert row is not None
        applied.matched = row.organisation_id
        if domain.moves_forward(row.status, state.status):
            before = row.status
            row.status = state.status
            row.method = state.method or row.method
            row.raw = state.raw or row.raw
            if state.status is PaymentStatus.CAPTURED:
                row.captured_at = utcnow()
            await session.flush()
            await audit_service.record(
                session,
                organisation_id=row.organisation_id,
                actor=actor,
                action="gateway_payment.status_changed",
                entity_type="gateway_payment",
                entity_id=row.id,
                before={"status": before},
                after={"status": row.status, "gateway_payment_id": row.gateway_payment_id},
            )
            applied.add(f"{row.gateway_payment_id} {before} -> {row.status}")
        if row.review_status == "pending":
            if row.status == PaymentStatus.CAPTURED:
                await self._settle_captured(session, row, actor, applied)
            elif row.status == PaymentStatus.FAILED:
                row.review_status = "not_applied"
                row.review_reason = (state.error or "The payment failed.")[:300]
                await session.flush()
        return row

    async def _payment_row(
        self, session: AsyncSession, gateway: str, gateway_payment_id: str
    ) -> GatewayPayment | None:
        return await session.scalar(
            select(GatewayPayment)
            .where(
                GatewayPayment.gateway == gateway,
                GatewayPayment.gateway_payment_id == gateway_payment_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def _settle_captured(
        self, session: AsyncSession, row: GatewayPayment, actor: AuditActor, applied: Applied
    ) -> None:
        invoice = await billing_service.get_in(
            session, row.organisation_id, row.invoice_id, fresh=True
        )
        request = (
            await session.get(PaymentRequest, row.payment_request_id)
            if row.payment_request_id
            else None
        )
        reason = domain.review_reason(
            amount=row.amount,
            currency=row.currency,
            expected_amount=request.amount if request is not None else None,
            balance_due=invoice.balance_due,
            payable=invoice.status == InvoiceStatus.ISSUED,
        )
        receipt = None
        if reason is None:
            try:
                receipt = await billing_service.apply_gateway_payment(
                    session,
                    invoice,
                    gateway=row.gateway,
                    gateway_payment_row_id=row.id,
                    amount=row.amount,
                    method=row.method,
                    received_at=row.captured_at or utcnow(),
                    actor=actor,
                )
            except (Overpayment, InvoiceNotPayable) as exc:
                reason = exc.detail
        if reason is not None:
            row.review_status, row.review_reason = "held", reason[:300]
            await session.flush()
            await audit_service.record(
                session,
                organisation_id=row.organisation_id,
                actor=actor,
                action="gateway_payment.held",
                entity_type="gateway_payment",
                entity_id=row.id,
                after={"reason": reason, "amount": row.amount, "currency": row.currency},
            )
            await publish(
                session,
                PaymentHeld(
                    organisation_id=row.organisation_id,
                    payment_id=row.id,
                    invoice_id=row.invoice_id,
                    gateway=row.gateway,
                    amount=row.amount,
                    reason=reason,
                ),
            )
            applied.add(f"{row.gateway_payment_id} held: {reason}")
            return
        row.review_status = "applied"
        row.receipt_id = receipt.id if receipt is not None else row.receipt_id
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=row.organisation_id,
            actor=actor,
            action="gateway_payment.applied",
            entity_type="gateway_payment",
            entity_id=row.id,
            after={"invoice_id": row.invoice_id, "amount": row.amount},
        )
        applied.add(f"{row.gateway_payment_id} applied {row.amount}")

    async def observe_request(
        self,
        session: AsyncSession,
        gateway: str,
        state: RequestState,
        actor: AuditActor,
        applied: Applied | None = None,
    ) -> bool:
        request = await session.scalar(
            select(PaymentRequest)
            .where(
                PaymentRequest.gateway == gateway, PaymentRequest.gateway_ref == state.gateway_ref
            )
            .with_for_update()
        )
        if request is None:
            return False
        if applied is not None:
            applied.matched = request.organisation_id
        if domain.request_moves_forward(request.status, state.status):
            before = request.status
            request.status = state.status
            await session.flush()
            await audit_service.record(
                session,
                organisation_id=request.organisation_id,
                actor=actor,
                action="payment_request.status_changed",
                entity_type="payment_request",
                entity_id=request.id,
                before={"status": before},
                after={"status": request.status},
            )
        return True

    # ------------------------------------------------------------------ refunds

    async def _confirmed_refund(
        self, session: AsyncSession, gateway: str, claimed: RefundState
    ) -> RefundState | None:
        """Look an unsigned refund callback up at the gateway before believing it."""
        known = await self._refund_row(session, gateway, claimed)
        payment_id = claimed.gateway_payment_id
        if known is not None and known.gateway_payment_id is not None:
            payment = await session.get(GatewayPayment, known.gateway_payment_id)
            payment_id = payment.gateway_payment_id if payment else payment_id
        state = await self.gateway(gateway).fetch_refund(claimed.gateway_refund_id, payment_id)
        return RefundState(
            state.gateway_refund_id,
            state.gateway_payment_id,
            state.amount_paise,
            state.status,
            {**claimed.notes, **state.notes},
            state.raw,
        )

    async def _refund_row(
        self, session: AsyncSession, gateway: str, state: RefundState
    ) -> Refund | None:
        row = await session.scalar(
            select(Refund)
            .where(Refund.gateway == gateway, Refund.gateway_refund_id == state.gateway_refund_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is not None:
            return row
        ours = state.notes.get("refund_id") or state.notes.get("token")
        if ours:
            try:
                refund_id = uuid.UUID(ours)
            except ValueError:
                return None
            return await session.scalar(
                select(Refund)
                .where(Refund.id == refund_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        return None

    async def observe_refund(
        self,
        session: AsyncSession,
        gateway: str,
        state: RefundState,
        actor: AuditActor,
        applied: Applied | None = None,
    ) -> bool:
        applied = applied or Applied()
        row = await self._refund_row(session, gateway, state)
        if row is None:
            if state.notes.get("refund_id") or state.notes.get("token"):
                # Our refund call's transaction has not committed yet: try again shortly.
                raise RetryLater(f"refund {state.gateway_refund_id} is not recorded yet")
            payment = await self._payment_row(session, gateway, state.gateway_payment_id)
            if payment is None:
                return False
            # Made at the gateway (dashboard): record it as it is.
            row = await self._new_refund(
                session,
                payment.organisation_id,
                payment.invoice_id,
                gateway_payment=payment,
                amount=from_paise(state.amount_paise),
                reason="Refunded at the gateway",
                requested_by_id=None,
            )
            row.gateway, row.gateway_refund_id = gateway, state.gateway_refund_id
            await session.flush()
            await self._count_refund(session, row, actor)
            applied.add(f"refund {state.gateway_refund_id} recorded from the gateway")
        applied.matched = row.organisation_id
        if row.gateway_refund_id is None:
            row.gateway, row.gateway_refund_id = gateway, state.gateway_refund_id
        if domain.refund_moves_forward(row.status, state.status):
            await self._settle_refund(session, row, state.status, actor, state.raw)
            applied.add(f"refund {row.gateway_refund_id} {row.status}")
        await session.flush()
        return True

    async def _new_refund(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        invoice_id: uuid.UUID,
        *,
        amount: Decimal,
        reason: str,
        requested_by_id: uuid.UUID | None,
        gateway_payment: GatewayPayment | None = None,
        counter_payment: CounterPayment | None = None,
        status: RefundStatus = RefundStatus.PENDING,
    ) -> Refund:
        refund = Refund(
            id=new_id(),
            organisation_id=organisation_id,
            invoice_id=invoice_id,
            gateway_payment_id=gateway_payment.id if gateway_payment else None,
            counter_payment_id=counter_payment.id if counter_payment else None,
            gateway=gateway_payment.gateway if gateway_payment else None,
            amount=amount,
            reason=reason,
            status=status,
            requested_by_id=requested_by_id,
            processed_at=utcnow() if status is RefundStatus.PROCESSED else None,
        )
        session.add(refund)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError as exc:
            if constraint_of(exc) in (
                "refund_within_payment",
                "ck_gateway_payments_refund_within_amount",
            ):
                raise OverRefund(
                    "This refund is more than what is left of the payment.", amount=str(amount)
                ) from None
            raise
        return refund

    async def _count_refund(self, session: AsyncSession, refund: Refund, actor: AuditActor) -> None:
        """Take the refund off the invoice (only payments that were applied count there)."""
        if await self._refund_applies(session, refund):
            invoice = await billing_service.get_in(
                session, refund.organisation_id, refund.invoice_id
            )
            await session.refresh(invoice)
            await billing_service.apply_refund(
                session, invoice, refund_id=refund.id, amount=refund.amount, actor=actor
            )
        await audit_service.record(
            session,
            organisation_id=refund.organisation_id,
            actor=actor,
            action="refund.created",
            entity_type="refund",
            entity_id=refund.id,
            after={
                "invoice_id": refund.invoice_id,
                "amount": refund.amount,
                "reason": refund.reason,
                "status": refund.status,
                "gateway_refund_id": refund.gateway_refund_id,
            },
        )

    async def _refund_applies(self, session: AsyncSession, refund: Refund) -> bool:
        if refund.gateway_payment_id is not None:
            payment = await session.get(GatewayPayment, refund.gateway_payment_id)
            return payment is not None and payment.review_status == "applied"
        counter = await session.get(CounterPayment, refund.counter_payment_id)
        return counter is not None and counter.status == "applied"

    async def _settle_refund(
        self,
        session: AsyncSession,
        refund: Refund,
        status: RefundStatus,
        actor: AuditActor,
        raw: dict[str, Any] | None = None,
    ) -> None:
        before = refund.status
        refund.status = status
        refund.raw = raw or refund.raw
        if status is RefundStatus.PROCESSED:
            refund.processed_at = utcnow()
        elif status is RefundStatus.FAILED:
            refund.failure_reason = "The gateway could not refund it."
        await session.flush()
        if status is RefundStatus.FAILED and await self._refund_applies(session, refund):
            invoice = await billing_service.get_in(
                session, refund.organisation_id, refund.invoice_id
            )
            await session.refresh(invoice)
            await billing_service.apply_refund(
                session,
                invoice,
                refund_id=refund.id,
                amount=refund.amount,
                actor=actor,
                reverse=True,
            )
        await audit_service.record(
            session,
            organisation_id=refund.organisation_id,
            actor=actor,
            action=f"refund.{status}",
            entity_type="refund",
            entity_id=refund.id,
            before={"status": before},
            after={"status": refund.status},
        )
        if status is RefundStatus.PROCESSED:
            await publish(
                session,
                RefundProcessed(
                    organisation_id=refund.organisation_id,
                    refund_id=refund.id,
                    invoice_id=refund.invoice_id,
                    amount=refund.amount,
                ),
            )

    async def refund(
        self,
        session: AsyncSession,
        caller: Principal,
        payment_id: uuid.UUID,
        data: RefundCreate,
    ) -> Refund:
        """Refund all or part of a payment, with a reason. Gateway payments are refunded
        through the gateway (pending until it confirms); counter payments in cash, at once."""
        gateway_payment, counter = await self._any_payment(session, caller, payment_id)
        reason = data.reason.strip()
        requested_by = caller.id if caller.kind == "user" else None
        if counter is not None:
            if counter.amount <= 0:
                raise NotRefundable("This row is itself a refund.")
            if counter.invoice_id is None:
                raise NotRefundable("This payment predates invoices; refund it at the counter.")
            left = counter.amount - await self._refunded(session, counter_payment_id=counter.id)
            amount = data.amount if data.amount is not None else left
            refund = await self._new_refund(
                session,
                counter.organisation_id,
                counter.invoice_id,
                counter_payment=counter,
                amount=amount,
                reason=reason,
                requested_by_id=requested_by,
                status=RefundStatus.PROCESSED,
            )
            await self._count_refund(session, refund, caller.actor)
            return refund
        assert gateway_payment is not None
        if gateway_payment.status != PaymentStatus.CAPTURED:
            raise NotRefundable("Only captured payments can be refunded.")
        left = gateway_payment.amount - gateway_payment.amount_refunded
        amount = data.amount if data.amount is not None else left
        if amount <= 0:
            raise OverRefund("Nothing is left to refund on this payment.")
        refund = await self._new_refund(
            session,
            gateway_payment.organisation_id,
            gateway_payment.invoice_id,
            gateway_payment=gateway_payment,
            amount=amount,
            reason=reason,
            requested_by_id=requested_by,
        )
        await self._count_refund(session, refund, caller.actor)
        state = await self.gateway(gateway_payment.gateway).refund(
            gateway_payment.gateway_payment_id,
            to_paise(amount),
            refund_id=str(refund.id),
            reason=reason,
        )
        refund.gateway_refund_id = state.gateway_refund_id
        refund.raw = state.raw
        await session.flush()
        if domain.refund_moves_forward(refund.status, state.status):
            await self._settle_refund(session, refund, state.status, caller.actor, state.raw)
        return refund

    async def _refunded(self, session: AsyncSession, **where: uuid.UUID) -> Decimal:
        column, value = next(iter(where.items()))
        total = await session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                getattr(Refund, column) == value,
                Refund.status.in_([RefundStatus.PENDING, RefundStatus.PROCESSED]),
            )
        )
        return Decimal(total or 0)

    async def refunds_of(
        self, session: AsyncSession, caller: Principal, payment_id: uuid.UUID
    ) -> list[Refund]:
        gateway_payment, _ = await self._any_payment(session, caller, payment_id)
        column = Refund.gateway_payment_id if gateway_payment else Refund.counter_payment_id
        return list(
            await session.scalars(
                select(Refund).where(column == payment_id).order_by(Refund.created_at, Refund.id)
            )
        )

    # ================================================================== operations

    async def _any_payment(
        self, session: AsyncSession, caller: Principal, payment_id: uuid.UUID
    ) -> tuple[GatewayPayment | None, CounterPayment | None]:
        gateway_payment = await session.get(GatewayPayment, payment_id)
        if (
            gateway_payment is not None
            and gateway_payment.organisation_id == caller.organisation_id
        ):
            await session.refresh(gateway_payment)
            await billing_service.get(session, caller, gateway_payment.invoice_id)  # branches
            return gateway_payment, None
        counter = await counter_service.counter_payment(session, caller.organisation_id, payment_id)
        if counter is not None:
            caller.require_reach([counter.branch_id], "payment")
            return None, counter
        raise PaymentNotFound("No such payment in your organisation.", entity="payment")

    async def get_view(
        self, session: AsyncSession, caller: Principal, payment_id: uuid.UUID
    ) -> PaymentView:
        gateway_payment, counter = await self._any_payment(session, caller, payment_id)
        if gateway_payment is not None:
            return self._gateway_view(gateway_payment)
        assert counter is not None
        return await self._counter_view(session, counter)

    @staticmethod
    def _gateway_view(row: GatewayPayment) -> PaymentView:
        return PaymentView(
            id=row.id,
            source=row.gateway,
            method=row.method,
            amount=row.amount,
            currency=row.currency,
            status=row.review_status,
            review_reason=row.review_reason,
            amount_refunded=row.amount_refunded,
            reference=row.gateway_payment_id,
            received_at=row.captured_at or row.created_at,
            receipt_id=row.receipt_id,
        )

    async def _counter_view(self, session: AsyncSession, row: CounterPayment) -> PaymentView:
        return PaymentView(
            id=row.id,
            source="counter",
            method=row.method,
            amount=row.amount,
            currency="INR",
            status=row.status,
            review_reason=row.review_reason,
            amount_refunded=await self._refunded(session, counter_payment_id=row.id),
            reference=row.utr or row.reference,
            received_at=row.received_at,
            receipt_id=row.receipt_id,
        )

    async def payments_of_invoice(
        self, session: AsyncSession, caller: Principal, invoice_id: uuid.UUID
    ) -> list[PaymentView]:
        invoice = await billing_service.get(session, caller, invoice_id)
        views = [
            await self._counter_view(session, row)
            for row in await counter_service.counter_payments_of(session, invoice)
        ]
        rows = await session.scalars(
            select(GatewayPayment)
            .where(GatewayPayment.invoice_id == invoice.id)
            .order_by(GatewayPayment.created_at)
        )
        views += [self._gateway_view(row) for row in rows]
        return sorted(views, key=lambda v: (v.received_at or utcnow(), v.id))

    async def list_gateway_payments(
        self,
        session: AsyncSession,
        caller: Principal,
        *,
        review_status: str | None,
        page: PageParams,
    ) -> tuple[list[PaymentView], int]:
        """One page of the gateway payments, newest first, and how many there are."""
        statement = select(GatewayPayment).where(
            GatewayPayment.organisation_id == caller.organisation_id
        )
        if caller.branch_ids is not None:
            statement = statement.where(
                GatewayPayment.invoice_id.in_(
                    select(Invoice.id).where(Invoice.branch_id.in_(sorted(caller.branch_ids)))
                )
            )
        if review_status:
            statement = statement.where(GatewayPayment.review_status == review_status)
        statement = statement.order_by(GatewayPayment.created_at.desc(), GatewayPayment.id.desc())
        rows, total = await paginate(session, statement, page)
        return [self._gateway_view(row) for row in rows], total

    async def verify(
        self, session: AsyncSession, caller: Principal, payment_id: uuid.UUID
    ) -> PaymentView:
        """Ask the gateway for the payment's state now, and apply what it says."""
        gateway_payment, _ = await self._any_payment(session, caller, payment_id)
        if gateway_payment is None:
            raise InvalidPaymentInput("Counter payments have nothing to verify at a gateway.")
        state = await self.gateway(gateway_payment.gateway).fetch_payment(
            gateway_payment.gateway_payment_id
        )
        row = await self.observe_payment(session, gateway_payment.gateway, state, caller.actor)
        return self._gateway_view(row)

    async def capture(
        self, session: AsyncSession, caller: Principal | None, payment: GatewayPayment
    ) -> GatewayPayment:
        if payment.status != PaymentStatus.AUTHORIZED:
            raise NotCapturable(f"The payment is {payment.status}, not authorized.")
        actor = caller.actor if caller else gateway_actor(payment.gateway)
        state = await self.gateway(payment.gateway).capture(
            payment.gateway_payment_id, to_paise(payment.amount), payment.currency
        )
        return await self.observe_payment(session, payment.gateway, state, actor)

    async def capture_by_id(
        self, session: AsyncSession, caller: Principal, payment_id: uuid.UUID
    ) -> PaymentView:
        gateway_payment, _ = await self._any_payment(session, caller, payment_id)
        if gateway_payment is None:
            raise NotCapturable("Counter payments are not captured.")
        return self._gateway_view(await self.capture(session, caller, gateway_payment))

    async def apply_held(
        self, session: AsyncSession, caller: Principal, payment_id: uuid.UUID, note: str
    ) -> PaymentView:
        """A person accepts a held gateway payment: it is applied if the invoice can take
        it (never overpaying); otherwise refund it."""
        gateway_payment, _ = await self._any_payment(session, caller, payment_id)
        if gateway_payment is None or gateway_payment.review_status != "held":
            raise NotHeld("Only held gateway payments can be applied.")
        row = await self._payment_row(
            session, gateway_payment.gateway, gateway_payment.gateway_payment_id
        )
        assert row is not None
        if row.currency != "INR":
            raise NotHeld("A payment in another currency cannot be applied; refund it.")
        invoice = await billing_service.get_in(session, row.organisation_id, row.invoice_id)
        await session.refresh(invoice)
        receipt = await billing_service.apply_gateway_payment(
            session,
            invoice,
            gateway=row.gateway,
            gateway_payment_row_id=row.id,
            amount=row.amount,
            method=row.method,
            received_at=row.captured_at or utcnow(),
            actor=caller.actor,
        )
        before = row.review_reason
        row.review_status, row.review_reason = "applied", f"Applied by a person: {note}"[:300]
        row.receipt_id = receipt.id if receipt else row.receipt_id
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=row.organisation_id,
            actor=caller.actor,
            action="gateway_payment.applied_after_review",
            entity_type="gateway_payment",
            entity_id=row.id,
            before={"review_status": "held", "review_reason": before},
            after={"review_status": "applied", "note": note},
        )
        return self._gateway_view(row)

    # ================================================================== reconciliation

    async def reconcile(
        self, session: AsyncSession, organisation_id: uuid.UUID | None = None
    ) -> ReconcileSummary:
        """Settle what missed webhooks left behind: ask the gateway about open requests,
        authorized payments and pending refunds, and apply what it says (exactly once)."""
        summary = ReconcileSummary()
        now = utcnow()
        statement = select(PaymentRequest).where(
            PaymentRequest.status.in_([s.value for s in domain.OPEN_REQUESTS]),
            PaymentRequest.created_at > now - timedelta(days=45),
        )
        if organisation_id is not None:
            statement = statement.where(PaymentRequest.organisation_id == organisation_id)
        for request in list(await session.scalars(statement.order_by(PaymentRequest.created_at))):
            try:
                async with session.begin_nested():
                    state = await self.gateway(request.gateway).fetch_request(
                        request.gateway_ref, request.kind
                    )
                    actor = gateway_actor(request.gateway)
                    summary.requests_checked += 1
                    for payment in state.payments:
                        summary.payments_seen += 1
                        payment = _with_request(payment, request)
                        row = await self.observe_payment(session, request.gateway, payment, actor)
                        summary.payments_applied += row.review_status == "applied"
                    await self.observe_request(session, request.gateway, state, actor)
                    if (
                        request.expires_at
                        and request.expires_at < now
                        and request.status in (RequestStatus.CREATED,)
                    ):
                        await self.observe_request(
                            session,
                            request.gateway,
                            RequestState(request.gateway_ref, RequestStatus.EXPIRED),
                            actor,
                        )
                    request.last_checked_at = now
                    await session.flush()
            except (GatewayError, Unmatched) as exc:
                summary.errors.append(f"{request.gateway} {request.gateway_ref}: {exc}")
        await self._reconcile_refunds(session, organisation_id, summary)
        await self._capture_authorized(session, organisation_id, summary)
        return summary

    async def _reconcile_refunds(
        self, session: AsyncSession, organisation_id: uuid.UUID | None, summary: ReconcileSummary
    ) -> None:
        statement = select(Refund).where(
            Refund.status == RefundStatus.PENDING, Refund.gateway_refund_id.is_not(None)
        )
        if organisation_id is not None:
            statement = statement.where(Refund.organisation_id == organisation_id)
        for refund in list(await session.scalars(statement)):
            payment = await session.get(GatewayPayment, refund.gateway_payment_id)
            if payment is None or refund.gateway is None or refund.gateway_refund_id is None:
                continue
            try:
                async with session.begin_nested():
                    state = await self.gateway(refund.gateway).fetch_refund(
                        refund.gateway_refund_id, payment.gateway_payment_id
                    )
                    summary.refunds_checked += 1
                    await self.observe_refund(
                        session, refund.gateway, state, gateway_actor(refund.gateway)
                    )
            except (GatewayError, RetryLater) as exc:
                summary.errors.append(f"refund {refund.gateway_refund_id}: {exc}")

    async def _capture_authorized(
        self, session: AsyncSession, organisation_id: uuid.UUID | None, summary: ReconcileSummary
    ) -> None:
        statement = select(GatewayPayment).where(
            GatewayPayment.status == PaymentStatus.AUTHORIZED,
            GatewayPayment.review_status == "pending",
        )
        if organisation_id is not None:
            statement = statement.where(GatewayPayment.organisation_id == organisation_id)
        for payment in list(await session.scalars(statement)):
            if not self.gateway(payment.gateway).needs_capture:
                continue
            try:
                async with session.begin_nested():
                    await self.capture(session, None, payment)
                    summary.captured += 1
            except (GatewayError, NotCapturable) as exc:
                summary.errors.append(f"capture {payment.gateway_payment_id}: {exc}")

    async def mismatch_report(
        self, session: AsyncSession, caller: Principal
    ) -> list[dict[str, Any]]:
        """Everything a person should look at: held payments, webhooks that failed, links
        paid at the gateway whose invoice still shows dues, uncaptured and pending money."""
        org = caller.organisation_id
        items: list[dict[str, Any]] = []
        held = await session.scalars(
            select(GatewayPayment).where(
                GatewayPayment.organisation_id == org, GatewayPayment.review_status == "held"
            )
        )
        for row in held:
            items.append(
                _item(
                    "held_payment",
                    row.review_reason or "",
                    row.invoice_id,
                    row.id,
                    row.gateway,
                    row.amount,
                    row.created_at,
                )
            )
        counters = await session.scalars(
            select(CounterPayment).where(
                CounterPayment.organisation_id == org, CounterPayment.status == "held"
            )
        )
        for row in counters:
            items.append(
                _item(
                    "held_counter_payment",
                    row.review_reason or "",
                    row.invoice_id,
                    row.id,
                    None,
                    row.amount,
                    row.received_at,
                )
            )
        authorized = await session.scalars(
            select(GatewayPayment).where(
                GatewayPayment.organisation_id == org,
                GatewayPayment.status == PaymentStatus.AUTHORIZED,
            )
        )
        for row in authorized:
            items.append(
                _item(
                    "authorized_not_captured",
                    "Authorized but not captured; Razorpay refunds it after 3 days.",
                    row.invoice_id,
                    row.id,
                    row.gateway,
                    row.amount,
                    row.created_at,
                )
            )
        # Paid at the gateway, but no payment of it recorded here (a webhook went missing).
        recorded = (
            select(GatewayPayment.id)
            .where(
                GatewayPayment.payment_request_id == PaymentRequest.id,
                GatewayPayment.review_status.in_(["applied", "held"]),
            )
            .exists()
        )
        paid_requests = await session.execute(
            select(PaymentRequest, Invoice)
            .join(Invoice, Invoice.id == PaymentRequest.invoice_id)
            .where(
                PaymentRequest.organisation_id == org,
                PaymentRequest.status == RequestStatus.PAID,
                ~recorded,
            )
        )
        for request, invoice in paid_requests:
            items.append(
                _item(
                    "gateway_paid_invoice_unpaid",
                    f"{request.gateway} says {request.gateway_ref} is paid; no payment of it "
                    f"is recorded on invoice {invoice.number} ({invoice.balance_due} due). "
                    "Run the reconciliation.",
                    invoice.id,
                    None,
                    request.gateway,
                    request.amount,
                    request.updated_at,
                )
            )
        pending = await session.scalars(
            select(Refund).where(
                Refund.organisation_id == org,
                Refund.status == RefundStatus.PENDING,
                Refund.created_at < utcnow() - timedelta(days=7),
            )
        )
        for refund in pending:
            items.append(
                _item(
                    "refund_pending",
                    "Refund pending for more than 7 days.",
                    refund.invoice_id,
                    refund.id,
                    refund.gateway,
                    refund.amount,
                    refund.created_at,
                )
            )
        failed = await session.scalars(
            select(WebhookRow).where(
                WebhookRow.organisation_id == org,
                WebhookRow.status.in_(["failed", "received"]),
                WebhookRow.received_at < utcnow() - timedelta(minutes=5),
            )
        )
        for row in failed:
            items.append(
                _item(
                    "webhook_failed",
                    f"{row.event_type}: {row.error or 'not applied'}",
                    None,
                    None,
                    row.gateway,
                    None,
                    row.received_at,
                )
            )
        return items


def _item(
    kind: str,
    detail: str,
    invoice_id: uuid.UUID | None,
    payment_id: uuid.UUID | None,
    gateway: str | None,
    amount: Decimal | None,
    since: datetime | None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "detail": detail,
        "invoice_id": invoice_id,
        "payment_id": payment_id,
        "gateway": gateway,
        "amount": amount,
        "since": since,
    }


def _with_request(state: PaymentState, request: PaymentRequest) -> PaymentState:
    notes = dict(state.notes)
    notes.setdefault("payment_request_id", str(request.id))
    return PaymentState(
        state.gateway_payment_id,
        state.status,
        state.amount_paise,
        state.currency,
        state.method,
        state.request_ref or request.gateway_ref,
        notes,
        state.error,
        state.raw,
    )


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


payments_service = PaymentsService()
