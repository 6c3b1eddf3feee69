"""Request and response shapes of the payments API (amounts are rupee strings)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import Field

from nidaan.billing.enums import Gateway
from nidaan.billing.schemas import Money, MoneyInput
from nidaan.kit.schemas import InputSchema, Schema


class PaymentLinkCreate(InputSchema):
    gateway: Gateway | None = Field(None, description="Default: the lab's default gateway")
    expire_in_hours: int | None = Field(
        None, ge=1, le=24 * 180, description="Default: the lab's setting (Stripe: at most 24 h)"
    )
    notify_sms: bool = Field(False, description="Razorpay sends the link by SMS")
    notify_email: bool = Field(False, description="Razorpay sends the link by e-mail")
    customer_name: str | None = Field(None, max_length=200, description="Default: the buyer")
    customer_email: str | None = Field(None, max_length=254)
    customer_mobile: str | None = Field(None, pattern=r"^\+?\d{10,13}$")


class PaymentRequestOut(Schema):
    id: uuid.UUID
    invoice_id: uuid.UUID
    gateway: str
    kind: str = Field(description="link or upi_qr")
    gateway_ref: str = Field(description="plink_…, qr_…, cs_… or PayU txnid")
    reference: str
    url: str | None = Field(description="Where the patient pays (payment links)")
    image_url: str | None
    amount: Money
    currency: str
    status: str
    expires_at: datetime | None
    created_at: datetime


class RefundCreate(MoneyInput):
    amount: Decimal | None = Field(
        None, gt=0, description="Rupees; empty refunds all that is left of the payment"
    )
    reason: str = Field(min_length=3, max_length=300, examples=["Test not done"])


class RefundOut(Schema):
    id: uuid.UUID
    invoice_id: uuid.UUID
    counter_payment_id: uuid.UUID | None
    gateway_payment_id: uuid.UUID | None
    gateway: str | None
    gateway_refund_id: str | None
    amount: Money
    reason: str
    status: str = Field(description="pending, processed or failed")
    failure_reason: str | None
    created_at: datetime
    processed_at: datetime | None


class ApplyHeld(InputSchema):
    note: str = Field(min_length=3, max_length=300)


class ReconciliationRun(InputSchema):
    requests_checked: int
    payments_seen: int
    payments_applied: int
    refunds_checked: int
    captured: int
    errors: list[str]


class MismatchOut(Schema):
    kind: str = Field(
        description="held_payment, held_counter_payment, webhook_failed, gateway_paid_invoice_"
        "unpaid, authorized_not_captured or refund_pending"
    )
    detail: str
    invoice_id: uuid.UUID | None
    payment_id: uuid.UUID | None
    gateway: str | None
    amount: Money | None
    since: datetime | None
