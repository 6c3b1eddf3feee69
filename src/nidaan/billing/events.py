"""Events the billing module publishes (notifications send the confirmation)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from nidaan.events.base import DomainEvent


@dataclass(frozen=True, kw_only=True)
class PaymentCaptured(DomainEvent):
    """Money was received for an order (a counter payment, or a gateway capture)."""

    name = "payment.captured"
    payment_id: uuid.UUID
    order_id: uuid.UUID
    amount: Decimal  # rupees
    method: str
    # A receipt PDF's file record, when one was made.
    receipt_file_id: uuid.UUID | None = None
