"""Events billing publishes (notifications send the payment confirmation; payments cancel
open links of a cancelled invoice)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from nidaan.events.base import DomainEvent


@dataclass(frozen=True, kw_only=True)
class PaymentCaptured(DomainEvent):
    """Money was received and applied to an invoice (counter tenders or a gateway payment)."""

    name = "payment.captured"  # the name the product spec gives it
    invoice_id: uuid.UUID
    invoice_number: str
    order_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    receipt_id: uuid.UUID
    receipt_number: str
    amount: Decimal  # rupees
    currency: str
    source: str  # counter | razorpay | stripe | payu
    methods: tuple[str, ...]
    balance_due: Decimal


@dataclass(frozen=True, kw_only=True)
class InvoiceIssued(DomainEvent):
    name = "invoice.issued"
    invoice_id: uuid.UUID
    invoice_number: str
    kind: str
    order_id: uuid.UUID | None
    client_id: uuid.UUID | None
    grand_total: Decimal


@dataclass(frozen=True, kw_only=True)
class InvoicePaid(DomainEvent):
    name = "invoice.paid"
    invoice_id: uuid.UUID
    invoice_number: str
    order_id: uuid.UUID | None


@dataclass(frozen=True, kw_only=True)
class InvoiceCancelled(DomainEvent):
    name = "invoice.cancelled"
    invoice_id: uuid.UUID
    invoice_number: str | None
    credit_note_id: uuid.UUID | None
    reason: str
