"""Payments taken through gateways: requests (links and QR codes), the payments seen, refunds
and the raw webhook inbox.

``gateway_payments`` has one row per gateway payment id (unique), whatever number of
webhooks, callbacks and reconciliation fetches report it. ``refunds`` keeps each payment's
``amount_refunded`` up to date through a trigger (migration ``0014_billing``), and the
payment's CHECK refuses a refund beyond what was paid, on counter payments too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin

MONEY = Numeric(12, 2)


class PaymentRequest(IdMixin, TenantMixin, TimestampMixin, Base):
    """A payment link or UPI QR code created at a gateway for an invoice."""

    __tablename__ = "payment_requests"
    __table_args__ = (
        UniqueConstraint("gateway", "gateway_ref"),
        Index("ix_payment_requests_open", "status", "gateway"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"), index=True)
    gateway: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))  # link | upi_qr
    # plink_… / qr_… (Razorpay), cs_… (Stripe Checkout Session), our txnid (PayU).
    gateway_ref: Mapped[str] = mapped_column(String(100))
    reference: Mapped[str] = mapped_column(String(40))
    url: Mapped[str | None] = mapped_column(String(500))
    image_url: Mapped[str | None] = mapped_column(String(500))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    # created | partially_paid | paid | expired | cancelled | closed
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None]
    # Opens our hosted PayU page (/pay/payu/{token}); random, unguessable.
    token: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    last_checked_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class GatewayPayment(IdMixin, TenantMixin, TimestampMixin, Base):
    """One payment at a gateway, as last reported; applied to its invoice at most once."""

    __tablename__ = "gateway_payments"
    __table_args__ = (
        UniqueConstraint("gateway", "gateway_payment_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="refund_within_amount"
        ),
        Index("ix_gateway_payments_review", "organisation_id", "review_status"),
    )

    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"), index=True)
    payment_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_requests.id"))
    gateway: Mapped[str] = mapped_column(String(16))
    gateway_payment_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str | None] = mapped_column(String(32))
    # created | authorized | captured | failed (forward only; see payments/domain.py)
    status: Mapped[str] = mapped_column(String(16))
    # pending (not captured) | applied | held (needs a person) | not_applied (failed)
    review_status: Mapped[str] = mapped_column(String(16))
    review_reason: Mapped[str | None] = mapped_column(String(300))
    amount_refunded: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    captured_at: Mapped[datetime | None]
    receipt_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("billing_receipts.id"))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class Refund(IdMixin, TenantMixin, TimestampMixin, Base):
    """Money returned: for a gateway payment through the gateway, for a counter payment in
    cash at the counter. Pending refunds already count against what may be refunded."""

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("gateway", "gateway_refund_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "(counter_payment_id IS NULL) <> (gateway_payment_id IS NULL)", name="one_payment"
        ),
    )

    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"), index=True)
    counter_payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("counter_payments.id"), index=True
    )
    gateway_payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("gateway_payments.id"), index=True
    )
    gateway: Mapped[str | None] = mapped_column(String(16))
    gateway_refund_id: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    reason: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))  # pending | processed | failed
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    processed_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class WebhookEvent(IdMixin, Base):
    """A gateway webhook exactly as received (raw body), kept whether or not it applied."""

    __tablename__ = "payment_webhook_events"
    __table_args__ = (
        UniqueConstraint("gateway", "event_id"),
        Index("ix_payment_webhook_events_status", "status", "received_at"),
    )

    gateway: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str | None] = mapped_column(String(100))
    # Known once the event was matched to one of our requests or payments.
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # How many times the gateway delivered it (duplicates are counted, not re-applied).
    deliveries: Mapped[int] = mapped_column(Integer, server_default="1")
    status: Mapped[str] = mapped_column(String(16))  # received | processed | ignored | failed
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]
