"""Events payments publishes (notifications may send the link on WhatsApp/SMS)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from nidaan.events.base import DomainEvent


@dataclass(frozen=True, kw_only=True)
class PaymentLinkCreated(DomainEvent):
    name = "payment_link.created"
    invoice_id: uuid.UUID
    payment_request_id: uuid.UUID
    patient_id: uuid.UUID | None
    gateway: str
    url: str
    amount: Decimal
    expires_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class PaymentHeld(DomainEvent):
    """A gateway payment arrived that could not be applied (amount, currency, paid twice)."""

    name = "payment.held"
    payment_id: uuid.UUID
    invoice_id: uuid.UUID
    gateway: str
    amount: Decimal
    reason: str


@dataclass(frozen=True, kw_only=True)
class RefundProcessed(DomainEvent):
    name = "refund.processed"
    refund_id: uuid.UUID
    invoice_id: uuid.UUID
    amount: Decimal
