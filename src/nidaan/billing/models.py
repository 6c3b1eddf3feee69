"""Billing tables: settings, rate lists, B2B clients, invoices and their lines, counter
payments, receipts and the money ledger.

Money safety lives in the database as well as in code (migration ``0014_billing``):

* ``billing_ledger`` is append-only and every row has a unique ``effect_key``: one money
  effect (a counter tender, a gateway capture, a refund) can be applied exactly once.
* A trigger adds each ledger row to its invoice's ``amount_paid`` / ``amount_refunded``; the
  invoice's CHECK constraints then refuse an over-payment or an over-refund, whatever code
  path wrote the row. Payments are only accepted by issued invoices.
* ``balance_due`` and ``payment_status`` are generated columns of those two amounts, so
  they can never disagree with the ledger.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin

MONEY = Numeric(12, 2)
RATE = Numeric(5, 2)


class BillingSettings(TimestampMixin, VersionMixin, Base):
    """One organisation's billing policy and GST identity (seller side of every invoice)."""

    __tablename__ = "billing_settings"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), primary_key=True
    )
    legal_name: Mapped[str | None] = mapped_column(String(200))
    gstin: Mapped[str | None] = mapped_column(String(15))
    state_code: Mapped[str | None] = mapped_column(String(2))
    address: Mapped[str | None] = mapped_column(String(500))
    pincode: Mapped[str | None] = mapped_column(String(6))
    # The report is rendered but not released to the patient while the invoice is unpaid.
    hold_report_until_paid: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # {"front_desk": "10", ...}: percent of the bill each role may discount unapproved.
    discount_limits: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("""'{"admin": "100", "billing": "20", "front_desk": "10"}'""")
    )
    home_collection_charge: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    # No home-collection charge when the tests come to at least this much.
    home_collection_free_above: Mapped[Decimal | None] = mapped_column(MONEY)
    round_to_rupee: Mapped[bool] = mapped_column(Boolean, server_default=true())
    default_gateway: Mapped[str | None] = mapped_column(String(16))
    enabled_gateways: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    payment_link_expiry_hours: Mapped[int] = mapped_column(Integer, server_default="72")


class BranchBillingSettings(TimestampMixin, Base):
    """Per-branch GST registration (labs in several states) and the counter UPI payee."""

    __tablename__ = "billing_branch_settings"

    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    gstin: Mapped[str | None] = mapped_column(String(15))
    state_code: Mapped[str | None] = mapped_column(String(2))
    upi_vpa: Mapped[str | None] = mapped_column(String(100))
    upi_payee_name: Mapped[str | None] = mapped_column(String(99))
    upi_merchant_code: Mapped[str | None] = mapped_column(String(4))


class BillingItem(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """A service billed besides tests (courier, report copy, B2B management fee)."""

    __tablename__ = "billing_items"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(MONEY)
    sac: Mapped[str] = mapped_column(String(8))
    gst_treatment: Mapped[str] = mapped_column(String(16))
    gst_rate: Mapped[Decimal] = mapped_column(RATE, server_default="0")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())


class RateList(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """Prices that replace the catalogue's for some bills (default, a client, a referrer)."""

    __tablename__ = "rate_lists"
    __table_args__ = (
        UniqueConstraint("organisation_id", "code"),
        Index(
            "uq_rate_lists_one_default",
            "organisation_id",
            unique=True,
            postgresql_where=text("kind = 'default' AND is_active"),
        ),
        Index(
            "uq_rate_lists_referrer",
            "organisation_id",
            "referrer_key",
            unique=True,
            postgresql_where=text("kind = 'referrer' AND is_active"),
        ),
        CheckConstraint("percent_off >= 0 AND percent_off <= 100", name="percent_off_range"),
    )

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    # Referrer lists: the referring doctor's name, lower-cased and single-spaced.
    referrer_key: Mapped[str | None] = mapped_column(String(200))
    # Items not listed cost the default price less this percentage.
    percent_off: Mapped[Decimal] = mapped_column(RATE, server_default="0")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())


class RateListItem(IdMixin, TenantMixin, Base):
    __tablename__ = "rate_list_items"
    __table_args__ = (
        UniqueConstraint("rate_list_id", "target_kind", "target_id"),
        CheckConstraint("price >= 0", name="price_not_negative"),
    )

    rate_list_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rate_lists.id", ondelete="CASCADE"), index=True
    )
    target_kind: Mapped[str] = mapped_column(String(8))  # test | panel | item
    target_id: Mapped[uuid.UUID]
    price: Mapped[Decimal] = mapped_column(MONEY)


class BillingClient(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """A B2B client billed on account: a hospital, corporate or franchise collection centre."""

    __tablename__ = "billing_clients"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    gstin: Mapped[str | None] = mapped_column(String(15))
    state_code: Mapped[str | None] = mapped_column(String(2))
    address: Mapped[str | None] = mapped_column(String(500))
    pincode: Mapped[str | None] = mapped_column(String(6))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    # Outstanding invoices plus orders not yet invoiced may not exceed it (None: no limit).
    credit_limit: Mapped[Decimal | None] = mapped_column(MONEY)
    billing_cycle: Mapped[str] = mapped_column(String(16))  # per_order | monthly
    payment_terms_days: Mapped[int] = mapped_column(Integer, server_default="30")
    rate_list_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("rate_lists.id"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())


class ClientOrder(TenantMixin, Base):
    """An order billed to a monthly client's account, until a consolidated invoice takes it."""

    __tablename__ = "billing_client_orders"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("billing_clients.id"), index=True)
    # The order's value when it was put on account (counted against the credit limit).
    amount: Mapped[Decimal] = mapped_column(MONEY)
    added_at: Mapped[datetime] = mapped_column(server_default=func.now())
    added_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invoices.id"), index=True)


NET_PAID = "amount_paid - amount_refunded"


class Invoice(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """A tax invoice or bill of supply (one order, or a client's month), or a credit note.

    Seller and buyer identities are copied in when the invoice is issued, so the document
    never changes when the organisation or client is edited later (and the e-invoice can be
    built from the row alone).
    """

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("organisation_id", "number"),
        Index(
            "uq_invoices_live_order",
            "order_id",
            unique=True,
            postgresql_where=text("kind = 'order' AND status <> 'cancelled'"),
        ),
        Index(
            "uq_invoices_credit_note_for",
            "credit_note_for_id",
            unique=True,
            postgresql_where=text("credit_note_for_id IS NOT NULL"),
        ),
        CheckConstraint("amount_paid >= 0", name="paid_not_negative"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount_paid", name="refund_within_paid"
        ),
        CheckConstraint(f"{NET_PAID} <= GREATEST(grand_total, 0)", name="never_overpaid"),
        CheckConstraint(
            "(status = 'pending_approval') = (number IS NULL)", name="numbered_when_issued"
        ),
        CheckConstraint(
            "(kind = 'credit_note') = (credit_note_for_id IS NOT NULL)", name="credit_note_for"
        ),
        CheckConstraint(
            "(kind = 'debit_note') = (debit_note_for_id IS NOT NULL)", name="debit_note_for"
        ),
    )

    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"), index=True)
    number: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(16))  # order | consolidated | credit/debit_note
    document_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))  # pending_approval | issued | cancelled
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"), index=True)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"), index=True)
    client_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("billing_clients.id"), index=True
    )
    credit_note_for_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invoices.id"))
    # Debit notes: the invoice they add a charge to (several per invoice may exist).
    debit_note_for_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("invoices.id"), index=True
    )
    note_reason: Mapped[str | None] = mapped_column(String(300))
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]
    invoice_date: Mapped[date | None]
    financial_year: Mapped[str | None] = mapped_column(String(7))
    issued_at: Mapped[datetime | None]
    due_date: Mapped[date | None]
    referrer: Mapped[str | None] = mapped_column(String(200))
    rate_list_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("rate_lists.id"))
    home_collection: Mapped[bool] = mapped_column(Boolean, server_default=false())

    seller_legal_name: Mapped[str] = mapped_column(String(200))
    seller_gstin: Mapped[str | None] = mapped_column(String(15))
    seller_address: Mapped[str | None] = mapped_column(String(500))
    seller_pincode: Mapped[str | None] = mapped_column(String(6))
    seller_state_code: Mapped[str] = mapped_column(String(2))
    buyer_name: Mapped[str] = mapped_column(String(200))
    buyer_gstin: Mapped[str | None] = mapped_column(String(15))
    buyer_address: Mapped[str | None] = mapped_column(String(500))
    buyer_pincode: Mapped[str | None] = mapped_column(String(6))
    buyer_state_code: Mapped[str | None] = mapped_column(String(2))
    place_of_supply: Mapped[str] = mapped_column(String(2))
    supply_type: Mapped[str] = mapped_column(String(16))
    state_tax_name: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3), server_default="INR")

    gross_total: Mapped[Decimal] = mapped_column(MONEY)
    discount_total: Mapped[Decimal] = mapped_column(MONEY)
    taxable_total: Mapped[Decimal] = mapped_column(MONEY)
    exempt_total: Mapped[Decimal] = mapped_column(MONEY)
    cgst_total: Mapped[Decimal] = mapped_column(MONEY)
    sgst_total: Mapped[Decimal] = mapped_column(MONEY)
    igst_total: Mapped[Decimal] = mapped_column(MONEY)
    tax_total: Mapped[Decimal] = mapped_column(MONEY)
    round_off: Mapped[Decimal] = mapped_column(MONEY)
    grand_total: Mapped[Decimal] = mapped_column(MONEY)

    discount_kind: Mapped[str | None] = mapped_column(String(8))
    discount_value: Mapped[Decimal | None] = mapped_column(MONEY)
    discount_reason: Mapped[str | None] = mapped_column(String(300))
    discount_percent: Mapped[Decimal] = mapped_column(RATE, server_default="0")
    discount_requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    discount_decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    discount_decided_at: Mapped[datetime | None]
    discount_decision_note: Mapped[str | None] = mapped_column(String(300))

    # Kept by the ledger trigger only; never written by code.
    amount_paid: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    amount_refunded: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    balance_due: Mapped[Decimal] = mapped_column(
        MONEY,
        Computed(
            "CASE WHEN kind = 'credit_note' OR status = 'cancelled' THEN 0 "
            f"ELSE grand_total - ({NET_PAID}) END",
            persisted=True,
        ),
    )
    payment_status: Mapped[str] = mapped_column(
        String(16),
        Computed(
            "CASE WHEN kind = 'credit_note' THEN 'not_applicable' "
            f"WHEN {NET_PAID} >= grand_total THEN 'paid' "
            f"WHEN {NET_PAID} > 0 THEN 'partially_paid' "
            "WHEN amount_paid > 0 THEN 'refunded' ELSE 'unpaid' END",
            persisted=True,
        ),
    )

    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    cancelled_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class InvoiceLine(IdMixin, TenantMixin, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(16))  # test | panel | service | home_collection
    source_id: Mapped[uuid.UUID | None]
    code: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(300))
    sac: Mapped[str] = mapped_column(String(8))
    gst_treatment: Mapped[str] = mapped_column(String(16))
    gst_rate: Mapped[Decimal] = mapped_column(RATE)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(MONEY)
    gross_amount: Mapped[Decimal] = mapped_column(MONEY)
    discount_amount: Mapped[Decimal] = mapped_column(MONEY)
    taxable_value: Mapped[Decimal] = mapped_column(MONEY)
    cgst_rate: Mapped[Decimal] = mapped_column(RATE)
    cgst_amount: Mapped[Decimal] = mapped_column(MONEY)
    sgst_rate: Mapped[Decimal] = mapped_column(RATE)
    sgst_amount: Mapped[Decimal] = mapped_column(MONEY)
    igst_rate: Mapped[Decimal] = mapped_column(RATE)
    igst_amount: Mapped[Decimal] = mapped_column(MONEY)
    line_total: Mapped[Decimal] = mapped_column(MONEY)


class Receipt(IdMixin, TenantMixin, Base):
    """What the patient is handed for money received (one per tender group or gateway
    payment)."""

    __tablename__ = "billing_receipts"
    __table_args__ = (UniqueConstraint("organisation_id", "number"),)

    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"), index=True)
    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    number: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    source: Mapped[str] = mapped_column(String(16))  # counter | gateway name
    received_at: Mapped[datetime]
    received_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CounterPayment(IdMixin, TenantMixin, Base):
    """Money taken at the counter (cash, card, UPI, cheque). Append-only (a trigger refuses
    UPDATE and DELETE): a mistake is put right by a refund, never an edit. A negative amount
    (older sync clients) is a refund."""

    __tablename__ = "counter_payments"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index(
            "uq_counter_payments_utr",
            "organisation_id",
            "utr",
            unique=True,
            postgresql_where=text("utr IS NOT NULL"),
        ),
    )

    # None for payments on a client's consolidated invoice (no single order).
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"), index=True)
    branch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("branches.id"))
    # Rupees; a refund is a negative amount.
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    method: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime]
    received_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Rows recorded before invoices existed have none.
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    receipt_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("billing_receipts.id"))
    # UPI transfers to the counter QR, confirmed by the cashier: one UTR is one payment.
    utr: Mapped[str | None] = mapped_column(String(12))
    # applied: on the invoice; held: received but not applied (e.g. it would overpay).
    status: Mapped[str] = mapped_column(String(16), server_default="applied")
    review_reason: Mapped[str | None] = mapped_column(String(300))


class LedgerEntry(IdMixin, TenantMixin, Base):
    """One money effect on one invoice, applied exactly once (unique ``effect_key``)."""

    __tablename__ = "billing_ledger"
    __table_args__ = (
        UniqueConstraint("organisation_id", "effect_key"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # payment | refund | refund_reversal
    amount: Mapped[Decimal] = mapped_column(MONEY)
    effect_key: Mapped[str] = mapped_column(String(200))
    counter_payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("counter_payments.id"))
    gateway_payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("gateway_payments.id"))
    refund_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("refunds.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
