"""Money taken at the counter: split tenders with one receipt, UPI confirmed by its UTR,
and the sync ``payment`` entity of offline collection centres — all landing on the order's
invoice through the ledger, so REST and sync meet on the same invoice and nothing is
applied twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.billing import domain, ledger
from nidaan.billing.domain import MoneyError
from nidaan.billing.enums import CounterMethod, InvoiceStatus, LedgerKind
from nidaan.billing.errors import (
    InvoiceNotPayable,
    Overpayment,
    OverRefund,
    UtrAlreadyUsed,
)
from nidaan.billing.models import CounterPayment, Invoice, Receipt
from nidaan.billing.schemas import CounterPaymentCreate, InvoiceCreate
from nidaan.billing.service import billing_service
from nidaan.kit.db import get_in_organisation
from nidaan.kit.errors import Conflict, Forbidden, InvalidInput, NidaanError, NotFound
from nidaan.kit.time import utcnow
from nidaan.orders.models import Order

#: Methods the sync ``payment`` entity accepts (older clients); REST adds bank transfers.
METHODS = frozenset({"cash", "upi", "card", "cheque"})
CLOCK_SKEW_SECONDS = 600


class PaymentIdConflict(Conflict):
    code = "payment_id_conflict"


@dataclass(frozen=True)
class ReceiptDetail:
    receipt: Receipt
    payments: list[CounterPayment]
    invoice: Invoice


def snapshot(payment: CounterPayment) -> dict[str, Any]:
    return {
        "order_id": str(payment.order_id) if payment.order_id else None,
        "branch_id": str(payment.branch_id),
        "invoice_id": str(payment.invoice_id) if payment.invoice_id else None,
        "amount": str(payment.amount),
        "method": payment.method,
        "reference": payment.reference,
        "utr": payment.utr,
        "status": payment.status,
        "review_reason": payment.review_reason,
        "received_at": payment.received_at.isoformat(),
    }


def _amount(raw: Any) -> Decimal:
    try:
        amount = domain.rupees(raw)
    except MoneyError as exc:
        raise InvalidInput(str(exc), field="amount") from None
    if amount == 0:
        raise InvalidInput("amount must be non-zero and under 1 crore.", field="amount")
    return amount


class CounterService:
    async def take_counter_payment(
        self,
        session: AsyncSession,
        caller: Principal,
        invoice_id: uuid.UUID,
        data: CounterPaymentCreate,
    ) -> tuple[ReceiptDetail, bool]:
        """Record one or more tenders (split tender) on an invoice, with one receipt.

        Returns (receipt, created); a known receipt ``id`` with the same tenders is a replay.
        """
        if data.id is not None:
            known = await session.get(Receipt, data.id)
            if known is not None:
                if (
                    known.organisation_id != caller.organisation_id
                    or known.invoice_id != invoice_id
                ):
                    raise PaymentIdConflict("This receipt id is already used.")
                detail = await self.receipt_detail(session, caller, known.id)
                if sorted((p.method, p.amount) for p in detail.payments) != sorted(
                    (str(t.method), t.amount) for t in data.tenders
                ):
                    raise PaymentIdConflict("This receipt id was used for other tenders.")
                return detail, False
        invoice = await billing_service.get_for_update(session, caller, invoice_id)
        billing_service.require_payable(invoice)
        if not caller.may_use_branch(invoice.branch_id):
            raise Forbidden("You do not work at this invoice's branch.")
        when = self._received_at(data.received_at)
        tenders = [self._tender(t.method, t.amount, t.reference, t.utr) for t in data.tenders]
        total = sum((t[1] for t in tenders), Decimal("0"))
        if total > invoice.balance_due:
            raise Overpayment(
                f"The tenders come to {total}, more than the balance due of {invoice.balance_due}.",
                balance_due=str(invoice.balance_due),
            )
        receipt = await billing_service.new_receipt(
            session, invoice, total, "counter", when, caller
        )
        if data.id is not None:
            receipt.id = data.id
        session.add(receipt)
        await session.flush()
        payments = []
        for method, amount, reference, utr in tenders:
            payments.append(
                CounterPayment(
                    organisation_id=caller.organisation_id,
                    order_id=invoice.order_id,
                    branch_id=invoice.branch_id,
                    invoice_id=invoice.id,
                    receipt_id=receipt.id,
                    amount=amount,
                    method=method,
                    reference=reference,
                    utr=utr,
                    status="applied",
                    received_at=when,
                    received_by_id=caller.id if caller.kind == "user" else None,
                )
            )
        session.add_all(payments)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError as exc:
            if "uq_counter_payments_utr" in str(exc.orig):
                raise UtrAlreadyUsed(
                    "A payment with this UPI UTR is already recorded.", field="utr"
                ) from None
            raise
        for payment in payments:
            await ledger.apply(
                session,
                organisation_id=invoice.organisation_id,
                invoice_id=invoice.id,
                kind=LedgerKind.PAYMENT,
                amount=payment.amount,
                effect_key=f"counter:{payment.id}",
                counter_payment_id=payment.id,
            )
            await audit_service.record(
                session,
                organisation_id=caller.organisation_id,
                actor=caller.actor,
                action="payment.recorded",
                entity_type="payment",
                entity_id=payment.id,
                after={**snapshot(payment), "receipt": receipt.number},
            )
        await billing_service.after_money(session, invoice, caller.actor)
        await billing_service.announce_captured(
            session, invoice, receipt, "counter", [p.method for p in payments]
        )
        return ReceiptDetail(receipt, payments, invoice), True

    @staticmethod
    def _received_at(given: datetime | None) -> datetime:
        now = utcnow()
        when = given or now
        if when.tzinfo is None:
            raise InvalidInput("received_at needs a time zone.", field="received_at")
        if (when - now).total_seconds() > CLOCK_SKEW_SECONDS:
            raise InvalidInput("received_at is in the future.", field="received_at")
        return when

    @staticmethod
    def _tender(
        method: str, amount: Decimal, reference: str | None, utr: str | None
    ) -> tuple[str, Decimal, str | None, str | None]:
        method = str(method)
        try:
            value = domain.rupees(amount)
        except MoneyError as exc:
            raise InvalidInput(str(exc), field="tenders.amount") from None
        if value <= 0:
            raise InvalidInput("Each tender is a positive amount.", field="tenders.amount")
        reference = (reference or "").strip() or None
        if method == CounterMethod.UPI:
            if not utr:
                raise InvalidInput(
                    "A UPI payment needs the 12-digit UTR from the payer's app.", field="utr"
                )
            try:
                utr = domain.check_utr(utr)
            except ValueError as exc:
                raise InvalidInput(str(exc), field="utr") from None
        elif utr:
            raise InvalidInput("Only UPI payments carry a UTR.", field="utr")
        if (
            method in (CounterMethod.CARD, CounterMethod.CHEQUE, CounterMethod.BANK_TRANSFER)
            and not reference
        ):
            raise InvalidInput(
                f"A {method} payment needs its reference (approval code, cheque or UTR number).",
                field="reference",
            )
        return method, value, reference, utr

    async def counter_payment(
        self, session: AsyncSession, organisation_id: uuid.UUID, payment_id: uuid.UUID
    ) -> CounterPayment | None:
        return await get_in_organisation(session, CounterPayment, payment_id, organisation_id)

    async def counter_payments_of(
        self, session: AsyncSession, invoice: Invoice
    ) -> list[CounterPayment]:
        return list(
            await session.scalars(
                select(CounterPayment)
                .where(CounterPayment.invoice_id == invoice.id)
                .order_by(CounterPayment.received_at, CounterPayment.id)
            )
        )

    async def receipt_detail(
        self, session: AsyncSession, caller: Principal, receipt_id: uuid.UUID
    ) -> ReceiptDetail:
        receipt = await get_in_organisation(session, Receipt, receipt_id, caller.organisation_id)
        if receipt is None:
            raise NotFound("No such receipt in your organisation.", entity="receipt")
        payments = list(
            await session.scalars(
                select(CounterPayment)
                .where(CounterPayment.receipt_id == receipt.id)
                .order_by(CounterPayment.id)
            )
        )
        invoice = await billing_service.get(session, caller, receipt.invoice_id)
        return ReceiptDetail(receipt, payments, invoice)

    async def record_payment(
        self,
        session: AsyncSession,
        caller: Principal,
        *,
        order_id: uuid.UUID,
        amount: Any,
        method: str,
        reference: str | None = None,
        received_at: datetime | None = None,
        payment_id: uuid.UUID | None = None,
        utr: str | None = None,
    ) -> tuple[CounterPayment, bool]:
        """Record a counter payment against an order (the sync ``payment`` entity).

        It lands on the order's invoice — the one REST created, or one made now from the
        default prices — so both paths meet on the same invoice. Money taken offline is a
        fact: a payment the invoice cannot take (it would overpay, the invoice awaits an
        approval) is kept as ``held`` for a person to resolve, never refused.
        Returns (payment, created); a known id with the same content is a replay.
        """
        org = caller.organisation_id
        value = _amount(amount)
        method = (method or "").strip().lower()
        if method not in METHODS:
            raise InvalidInput(f"method must be one of {sorted(METHODS)}.", field="method")
        if payment_id is not None:
            existing = await session.get(CounterPayment, payment_id)
            if existing is not None:
                if existing.organisation_id == org and (
                    existing.order_id,
                    existing.amount,
                    existing.method,
                ) == (order_id, value, method):
                    return existing, False
                raise PaymentIdConflict("This payment id is already used for another payment.")
        order = await get_in_organisation(session, Order, order_id, org)
        if order is None:
            raise NotFound("No such order.")
        if not caller.may_use_branch(order.branch_id):
            raise Forbidden("You do not work at this order's branch.")
        when = self._received_at(received_at)
        if utr is not None:
            try:
                utr = domain.check_utr(utr)
            except ValueError as exc:
                raise InvalidInput(str(exc), field="utr") from None
        invoice, reason = await self._invoice_for_counter(session, caller, order)
        if invoice is not None:
            reason = self._fits(invoice, value)

        def row(status: str, why: str | None, receipt: Receipt | None) -> CounterPayment:
            payment = CounterPayment(
                organisation_id=org,
                order_id=order.id,
                branch_id=order.branch_id,
                invoice_id=invoice.id if invoice else None,
                receipt_id=receipt.id if receipt else None,
                amount=value,
                method=method,
                reference=(reference or "").strip() or None,
                utr=utr,
                received_at=when,
                received_by_id=caller.id if caller.kind == "user" else None,
                status=status,
                review_reason=why[:300] if why else None,
            )
            if payment_id is not None:
                payment.id = payment_id
            return payment

        payment: CounterPayment | None = None
        receipt: Receipt | None = None
        if invoice is not None and reason is None:
            # Counter payments are append-only: applied or held is decided before the row is
            # written. Losing a race with another payment rolls back and writes it held.
            try:
                async with session.begin_nested():
                    if value > 0:
                        receipt = await billing_service.new_receipt(
                            session, invoice, value, "counter", when, caller
                        )
                        session.add(receipt)
                        await session.flush()
                    payment = row("applied", None, receipt)
                    session.add(payment)
                    await session.flush()
                    await ledger.apply(
                        session,
                        organisation_id=org,
                        invoice_id=invoice.id,
                        kind=LedgerKind.PAYMENT if value > 0 else LedgerKind.REFUND,
                        amount=abs(value),
                        effect_key=f"counter:{payment.id}",
                        counter_payment_id=payment.id if value > 0 else None,
                    )
            except (Overpayment, OverRefund, InvoiceNotPayable) as exc:
                payment, receipt, reason = None, None, exc.detail
        if payment is None:
            payment = row("held", reason, None)
            session.add(payment)
            await session.flush()
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="payment.recorded",
            entity_type="payment",
            entity_id=payment.id,
            after=snapshot(payment),
        )
        if invoice is not None and payment.status == "applied":
            await billing_service.after_money(session, invoice, caller.actor)
            if receipt is not None:
                await billing_service.announce_captured(
                    session, invoice, receipt, "counter", [method]
                )
        return payment, True

    @staticmethod
    def _fits(invoice: Invoice, value: Decimal) -> str | None:
        if invoice.status != InvoiceStatus.ISSUED:
            return f"Invoice is {invoice.status.replace('_', ' ')}; payment held for review."
        if value > 0 and value > invoice.balance_due:
            return (
                f"Payment of {value} exceeds the balance due of {invoice.balance_due} on "
                f"{invoice.number}; held for review."
            )
        if value < 0 and -value > invoice.amount_paid - invoice.amount_refunded:
            return f"Refund of {-value} exceeds what was paid on {invoice.number}."
        return None

    async def _invoice_for_counter(
        self, session: AsyncSession, caller: Principal, order: Order
    ) -> tuple[Invoice | None, str | None]:
        invoice = await billing_service.live_invoice_for_order(
            session, order.organisation_id, order.id
        )
        if invoice is not None:
            return invoice, None
        try:
            async with session.begin_nested():
                invoice = await billing_service.create_order_invoice(
                    session, caller, InvoiceCreate(order_id=order.id)
                )
        except NidaanError as exc:
            return None, f"No invoice could be made for this order: {exc.detail}"
        return invoice, None

    async def payments_for_order(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> list[CounterPayment]:
        rows = await session.scalars(
            select(CounterPayment)
            .where(
                CounterPayment.organisation_id == caller.organisation_id,
                CounterPayment.order_id == order_id,
            )
            .order_by(CounterPayment.received_at, CounterPayment.id)
        )
        return list(rows)


counter_service = CounterService()
