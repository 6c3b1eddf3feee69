"""Pure payment rules: states only move forward, and which payments need a person.

Gateways deliver events at least once and in any order; a payment seen ``captured`` must
never go back to ``authorized`` because a late ``payment.authorized`` arrives, and a link
seen ``paid`` never becomes ``expired``. Razorpay's late authorisation can turn a ``failed``
payment into an authorised one, so ``failed`` ranks below ``authorized``.
"""

from __future__ import annotations

from decimal import Decimal

from nidaan.payments.gateways.base import PaymentStatus, RefundStatus, RequestStatus

PAYMENT_RANK = {
    PaymentStatus.CREATED: 0,
    PaymentStatus.FAILED: 1,
    PaymentStatus.AUTHORIZED: 2,
    PaymentStatus.CAPTURED: 3,
}
REQUEST_RANK = {
    RequestStatus.CREATED: 0,
    RequestStatus.PARTIALLY_PAID: 1,
    RequestStatus.EXPIRED: 2,
    RequestStatus.CANCELLED: 2,
    RequestStatus.CLOSED: 2,
    RequestStatus.PAID: 3,
}
REFUND_RANK = {RefundStatus.PENDING: 0, RefundStatus.PROCESSED: 1, RefundStatus.FAILED: 1}
OPEN_REQUESTS = (RequestStatus.CREATED, RequestStatus.PARTIALLY_PAID)


def moves_forward(current: PaymentStatus | str, seen: PaymentStatus) -> bool:
    return PAYMENT_RANK[seen] > PAYMENT_RANK[PaymentStatus(current)]


def request_moves_forward(current: RequestStatus | str, seen: RequestStatus) -> bool:
    return REQUEST_RANK[seen] > REQUEST_RANK[RequestStatus(current)]


def refund_moves_forward(current: RefundStatus | str, seen: RefundStatus) -> bool:
    return REFUND_RANK[seen] > REFUND_RANK[RefundStatus(current)]


def review_reason(
    *,
    amount: Decimal,
    currency: str,
    expected_amount: Decimal | None,
    balance_due: Decimal,
    payable: bool,
) -> str | None:
    """Why a captured payment must be held for a person instead of applied (None: apply)."""
    if currency.upper() != "INR":
        return f"Paid in {currency or 'an unknown currency'}, the invoice is in INR."
    if expected_amount is not None and amount != expected_amount:
        return f"Paid {amount}, the payment request was for {expected_amount}."
    if not payable:
        return "The invoice no longer takes payments (cancelled or not issued)."
    if amount > balance_due:
        return f"Paid {amount} with only {balance_due} due (paid twice?)."
    return None
