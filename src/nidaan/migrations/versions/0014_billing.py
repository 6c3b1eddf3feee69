"""Billing and payments: settings, rate lists, clients, invoices, receipts, the money ledger,
gateway payment requests/payments/refunds, the webhook inbox and report release holds.

Money safety is enforced here, not only in code: the ledger is append-only with a unique
effect key per money effect, a trigger carries each ledger row onto its invoice (whose CHECKs
refuse over-payment and over-refund), and a trigger on refunds keeps each payment's refunded
amount (whose CHECK refuses refunding more than was paid).

Revision ID: 0014_billing
Revises: 0009_sync
Create Date: 2026-12-07 12:34:34.903250
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014_billing"
down_revision: str | None = "0013_files_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEDGER_FUNCTIONS = """
-- Each ledger row moves its invoice's paid/refunded amounts; the invoice's CHECKs refuse
-- an over-payment or over-refund, failing the insert. Payments need an issued invoice.
CREATE FUNCTION billing_ledger_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'payment' THEN
        UPDATE invoices SET amount_paid = amount_paid + NEW.amount
         WHERE id = NEW.invoice_id AND status = 'issued' AND kind <> 'credit_note';
    ELSIF NEW.kind = 'refund' THEN
        UPDATE invoices SET amount_refunded = amount_refunded + NEW.amount
         WHERE id = NEW.invoice_id;
    ELSIF NEW.kind = 'refund_reversal' THEN
        UPDATE invoices SET amount_refunded = amount_refunded - NEW.amount
         WHERE id = NEW.invoice_id;
    ELSE
        RAISE EXCEPTION 'unknown ledger entry kind %', NEW.kind USING ERRCODE = 'check_violation';
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not accept payments', NEW.invoice_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'invoice_accepts_payments';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER billing_ledger_apply AFTER INSERT ON billing_ledger
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_apply();

-- The ledger is append-only: a mistake is corrected by a new entry.
CREATE FUNCTION billing_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'billing_ledger is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER billing_ledger_append_only BEFORE UPDATE OR DELETE ON billing_ledger
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
"""

REFUND_FUNCTIONS = """
-- Pending and processed refunds of a payment may not add up to more than the payment.
-- The payment row is locked first, so concurrent refunds of one payment are counted one
-- after the other. Counter payments stay append-only (their own trigger); gateway payments
-- also carry the running total (amount_refunded, with its CHECK).
CREATE FUNCTION refunds_within_payment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    paid numeric(12, 2);
    refunded numeric(12, 2);
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.amount <> OLD.amount
           OR NEW.counter_payment_id IS DISTINCT FROM OLD.counter_payment_id
           OR NEW.gateway_payment_id IS DISTINCT FROM OLD.gateway_payment_id THEN
            RAISE EXCEPTION 'a refund''s amount and payment cannot change'
                USING ERRCODE = 'check_violation';
        END IF;
        IF OLD.status = 'failed' AND NEW.status <> 'failed' THEN
            RAISE EXCEPTION 'a failed refund stays failed' USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF NEW.gateway_payment_id IS NOT NULL THEN
        SELECT amount INTO paid FROM gateway_payments
         WHERE id = NEW.gateway_payment_id FOR NO KEY UPDATE;
        SELECT COALESCE(SUM(amount), 0) INTO refunded FROM refunds
         WHERE gateway_payment_id = NEW.gateway_payment_id AND status IN ('pending', 'processed');
        UPDATE gateway_payments SET amount_refunded = refunded WHERE id = NEW.gateway_payment_id;
    ELSE
        SELECT GREATEST(amount, 0) INTO paid FROM counter_payments
         WHERE id = NEW.counter_payment_id FOR NO KEY UPDATE;
        SELECT COALESCE(SUM(amount), 0) INTO refunded FROM refunds
         WHERE counter_payment_id = NEW.counter_payment_id AND status IN ('pending', 'processed');
    END IF;
    IF refunded > paid THEN
        RAISE EXCEPTION 'refunds of % would exceed the payment of %', refunded, paid
            USING ERRCODE = 'check_violation', CONSTRAINT = 'refund_within_payment';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER refunds_within_payment AFTER INSERT OR UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_within_payment();
"""

DROP_FUNCTIONS = """
DROP TRIGGER IF EXISTS refunds_within_payment ON refunds;
DROP FUNCTION IF EXISTS refunds_within_payment();
DROP TRIGGER IF EXISTS billing_ledger_append_only ON billing_ledger;
DROP FUNCTION IF EXISTS billing_ledger_append_only();
DROP TRIGGER IF EXISTS billing_ledger_apply ON billing_ledger;
DROP FUNCTION IF EXISTS billing_ledger_apply();
"""


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table(
        "billing_items",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("sac", sa.String(length=8), nullable=False),
        sa.Column("gst_treatment", sa.String(length=16), nullable=False),
        sa.Column("gst_rate", sa.Numeric(precision=5, scale=2), server_default="0", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_billing_items_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_items")),
        sa.UniqueConstraint(
            "organisation_id", "code", name=op.f("uq_billing_items_organisation_id_code")
        ),
    )
    op.create_index(
        op.f("ix_billing_items_organisation_id"), "billing_items", ["organisation_id"], unique=False
    )
    op.create_table(
        "billing_settings",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=True),
        sa.Column("gstin", sa.String(length=15), nullable=True),
        sa.Column("state_code", sa.String(length=2), nullable=True),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("pincode", sa.String(length=6), nullable=True),
        sa.Column(
            "hold_report_until_paid", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "discount_limits",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text('\'{"admin": "100", "billing": "20", "front_desk": "10"}\''),
            nullable=False,
        ),
        sa.Column(
            "home_collection_charge",
            sa.Numeric(precision=12, scale=2),
            server_default="0",
            nullable=False,
        ),
        sa.Column("home_collection_free_above", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("round_to_rupee", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("default_gateway", sa.String(length=16), nullable=True),
        sa.Column(
            "enabled_gateways", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("payment_link_expiry_hours", sa.Integer(), server_default="72", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_billing_settings_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_billing_settings")),
    )
    op.create_table(
        "payment_webhook_events",
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=True),
        sa.Column("organisation_id", sa.Uuid(), nullable=True),
        sa.Column("raw_body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deliveries", sa.Integer(), server_default="1", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_payment_webhook_events_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_webhook_events")),
        sa.UniqueConstraint(
            "gateway", "event_id", name=op.f("uq_payment_webhook_events_gateway_event_id")
        ),
    )
    op.create_index(
        op.f("ix_payment_webhook_events_organisation_id"),
        "payment_webhook_events",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        "ix_payment_webhook_events_status",
        "payment_webhook_events",
        ["status", "received_at"],
        unique=False,
    )
    op.create_table(
        "rate_lists",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("referrer_key", sa.String(length=200), nullable=True),
        sa.Column(
            "percent_off", sa.Numeric(precision=5, scale=2), server_default="0", nullable=False
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "percent_off >= 0 AND percent_off <= 100", name=op.f("ck_rate_lists_percent_off_range")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_rate_lists_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_lists")),
        sa.UniqueConstraint(
            "organisation_id", "code", name=op.f("uq_rate_lists_organisation_id_code")
        ),
    )
    op.create_index(
        op.f("ix_rate_lists_organisation_id"), "rate_lists", ["organisation_id"], unique=False
    )
    op.create_index(
        "uq_rate_lists_one_default",
        "rate_lists",
        ["organisation_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'default' AND is_active"),
    )
    op.create_index(
        "uq_rate_lists_referrer",
        "rate_lists",
        ["organisation_id", "referrer_key"],
        unique=True,
        postgresql_where=sa.text("kind = 'referrer' AND is_active"),
    )
    op.create_table(
        "billing_branch_settings",
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("gstin", sa.String(length=15), nullable=True),
        sa.Column("state_code", sa.String(length=2), nullable=True),
        sa.Column("upi_vpa", sa.String(length=100), nullable=True),
        sa.Column("upi_payee_name", sa.String(length=99), nullable=True),
        sa.Column("upi_merchant_code", sa.String(length=4), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
            name=op.f("fk_billing_branch_settings_branch_id_branches"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_billing_branch_settings_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("branch_id", name=op.f("pk_billing_branch_settings")),
    )
    op.create_index(
        op.f("ix_billing_branch_settings_organisation_id"),
        "billing_branch_settings",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "billing_clients",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("gstin", sa.String(length=15), nullable=True),
        sa.Column("state_code", sa.String(length=2), nullable=True),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("pincode", sa.String(length=6), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("credit_limit", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("billing_cycle", sa.String(length=16), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), server_default="30", nullable=False),
        sa.Column("rate_list_id", sa.Uuid(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_billing_clients_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["rate_list_id"],
            ["rate_lists.id"],
            name=op.f("fk_billing_clients_rate_list_id_rate_lists"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_clients")),
        sa.UniqueConstraint(
            "organisation_id", "code", name=op.f("uq_billing_clients_organisation_id_code")
        ),
    )
    op.create_index(
        op.f("ix_billing_clients_organisation_id"),
        "billing_clients",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "rate_list_items",
        sa.Column("rate_list_id", sa.Uuid(), nullable=False),
        sa.Column("target_kind", sa.String(length=8), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("price >= 0", name=op.f("ck_rate_list_items_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_rate_list_items_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["rate_list_id"],
            ["rate_lists.id"],
            name=op.f("fk_rate_list_items_rate_list_id_rate_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_list_items")),
        sa.UniqueConstraint(
            "rate_list_id",
            "target_kind",
            "target_id",
            name=op.f("uq_rate_list_items_rate_list_id_target_kind_target_id"),
        ),
    )
    op.create_index(
        op.f("ix_rate_list_items_organisation_id"),
        "rate_list_items",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_rate_list_items_rate_list_id"), "rate_list_items", ["rate_list_id"], unique=False
    )
    op.create_table(
        "invoices",
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("document_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("credit_note_for_id", sa.Uuid(), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("invoice_date", sa.Date(), nullable=True),
        sa.Column("financial_year", sa.String(length=7), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("referrer", sa.String(length=200), nullable=True),
        sa.Column("rate_list_id", sa.Uuid(), nullable=True),
        sa.Column("home_collection", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("seller_legal_name", sa.String(length=200), nullable=False),
        sa.Column("seller_gstin", sa.String(length=15), nullable=True),
        sa.Column("seller_address", sa.String(length=500), nullable=True),
        sa.Column("seller_pincode", sa.String(length=6), nullable=True),
        sa.Column("seller_state_code", sa.String(length=2), nullable=False),
        sa.Column("buyer_name", sa.String(length=200), nullable=False),
        sa.Column("buyer_gstin", sa.String(length=15), nullable=True),
        sa.Column("buyer_address", sa.String(length=500), nullable=True),
        sa.Column("buyer_pincode", sa.String(length=6), nullable=True),
        sa.Column("buyer_state_code", sa.String(length=2), nullable=True),
        sa.Column("place_of_supply", sa.String(length=2), nullable=False),
        sa.Column("supply_type", sa.String(length=16), nullable=False),
        sa.Column("state_tax_name", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="INR", nullable=False),
        sa.Column("gross_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("discount_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("taxable_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("exempt_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("cgst_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("sgst_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("igst_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("tax_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("round_off", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("grand_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("discount_kind", sa.String(length=8), nullable=True),
        sa.Column("discount_value", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("discount_reason", sa.String(length=300), nullable=True),
        sa.Column(
            "discount_percent", sa.Numeric(precision=5, scale=2), server_default="0", nullable=False
        ),
        sa.Column("discount_requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("discount_decided_by_id", sa.Uuid(), nullable=True),
        sa.Column("discount_decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("discount_decision_note", sa.String(length=300), nullable=True),
        sa.Column(
            "amount_paid", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False
        ),
        sa.Column(
            "amount_refunded", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False
        ),
        sa.Column(
            "balance_due",
            sa.Numeric(precision=12, scale=2),
            sa.Computed(
                "CASE WHEN kind = 'credit_note' OR status = 'cancelled' THEN 0 ELSE grand_total - (amount_paid - amount_refunded) END",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "payment_status",
            sa.String(length=16),
            sa.Computed(
                "CASE WHEN kind = 'credit_note' THEN 'not_applicable' WHEN amount_paid - amount_refunded >= grand_total THEN 'paid' WHEN amount_paid - amount_refunded > 0 THEN 'partially_paid' WHEN amount_paid > 0 THEN 'refunded' ELSE 'unpaid' END",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=300), nullable=True),
        sa.Column("cancelled_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "(kind = 'credit_note') = (credit_note_for_id IS NOT NULL)",
            name=op.f("ck_invoices_credit_note_for"),
        ),
        sa.CheckConstraint(
            "(status = 'pending_approval') = (number IS NULL)",
            name=op.f("ck_invoices_numbered_when_issued"),
        ),
        sa.CheckConstraint(
            "amount_paid - amount_refunded <= GREATEST(grand_total, 0)",
            name=op.f("ck_invoices_never_overpaid"),
        ),
        sa.CheckConstraint("amount_paid >= 0", name=op.f("ck_invoices_paid_not_negative")),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount_paid",
            name=op.f("ck_invoices_refund_within_paid"),
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_invoices_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_by_id"], ["users.id"], name=op.f("fk_invoices_cancelled_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["billing_clients.id"],
            name=op.f("fk_invoices_client_id_billing_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_invoices_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["credit_note_for_id"],
            ["invoices.id"],
            name=op.f("fk_invoices_credit_note_for_id_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["discount_decided_by_id"],
            ["users.id"],
            name=op.f("fk_invoices_discount_decided_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["discount_requested_by_id"],
            ["users.id"],
            name=op.f("fk_invoices_discount_requested_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_invoices_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_invoices_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_invoices_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["rate_list_id"], ["rate_lists.id"], name=op.f("fk_invoices_rate_list_id_rate_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint(
            "organisation_id", "number", name=op.f("uq_invoices_organisation_id_number")
        ),
    )
    op.create_index(op.f("ix_invoices_branch_id"), "invoices", ["branch_id"], unique=False)
    op.create_index(op.f("ix_invoices_client_id"), "invoices", ["client_id"], unique=False)
    op.create_index(op.f("ix_invoices_order_id"), "invoices", ["order_id"], unique=False)
    op.create_index(
        op.f("ix_invoices_organisation_id"), "invoices", ["organisation_id"], unique=False
    )
    op.create_index(op.f("ix_invoices_patient_id"), "invoices", ["patient_id"], unique=False)
    op.create_index(
        "uq_invoices_credit_note_for",
        "invoices",
        ["credit_note_for_id"],
        unique=True,
        postgresql_where=sa.text("credit_note_for_id IS NOT NULL"),
    )
    op.create_index(
        "uq_invoices_live_order",
        "invoices",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'order' AND status <> 'cancelled'"),
    )
    op.create_table(
        "report_release_holds",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("holder", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_report_release_holds_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_report_release_holds_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("order_id", "holder", name=op.f("pk_report_release_holds")),
    )
    op.create_index(
        op.f("ix_report_release_holds_organisation_id"),
        "report_release_holds",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "billing_client_orders",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("added_by_id", sa.Uuid(), nullable=True),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by_id"], ["users.id"], name=op.f("fk_billing_client_orders_added_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["billing_clients.id"],
            name=op.f("fk_billing_client_orders_client_id_billing_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_billing_client_orders_invoice_id_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_billing_client_orders_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_billing_client_orders_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_billing_client_orders")),
    )
    op.create_index(
        op.f("ix_billing_client_orders_client_id"),
        "billing_client_orders",
        ["client_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_billing_client_orders_invoice_id"),
        "billing_client_orders",
        ["invoice_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_billing_client_orders_organisation_id"),
        "billing_client_orders",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "billing_receipts",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("branch_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_by_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_billing_receipts_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_billing_receipts_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_billing_receipts_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["received_by_id"], ["users.id"], name=op.f("fk_billing_receipts_received_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_receipts")),
        sa.UniqueConstraint(
            "organisation_id", "number", name=op.f("uq_billing_receipts_organisation_id_number")
        ),
    )
    op.create_index(
        op.f("ix_billing_receipts_invoice_id"), "billing_receipts", ["invoice_id"], unique=False
    )
    op.create_index(
        op.f("ix_billing_receipts_organisation_id"),
        "billing_receipts",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("sac", sa.String(length=8), nullable=False),
        sa.Column("gst_treatment", sa.String(length=16), nullable=False),
        sa.Column("gst_rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("gross_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("discount_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("taxable_value", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("cgst_rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("cgst_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("sgst_rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("sgst_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("igst_rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("igst_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("line_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_lines_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_invoice_lines_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_invoice_lines_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint(
            "invoice_id", "position", name=op.f("uq_invoice_lines_invoice_id_position")
        ),
    )
    op.create_index(
        op.f("ix_invoice_lines_invoice_id"), "invoice_lines", ["invoice_id"], unique=False
    )
    op.create_index(
        op.f("ix_invoice_lines_organisation_id"), "invoice_lines", ["organisation_id"], unique=False
    )
    op.create_table(
        "payment_requests",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("gateway_ref", sa.String(length=100), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=True),
        sa.Column("image_url", sa.String(length=500), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token", sa.String(length=64), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "raw", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payment_requests_amount_positive")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_payment_requests_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_payment_requests_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_payment_requests_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_requests")),
        sa.UniqueConstraint(
            "gateway", "gateway_ref", name=op.f("uq_payment_requests_gateway_gateway_ref")
        ),
        sa.UniqueConstraint("token", name=op.f("uq_payment_requests_token")),
    )
    op.create_index(
        op.f("ix_payment_requests_invoice_id"), "payment_requests", ["invoice_id"], unique=False
    )
    op.create_index(
        "ix_payment_requests_open", "payment_requests", ["status", "gateway"], unique=False
    )
    op.create_index(
        op.f("ix_payment_requests_organisation_id"),
        "payment_requests",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "gateway_payments",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("payment_request_id", sa.Uuid(), nullable=True),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("gateway_payment_id", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("review_status", sa.String(length=16), nullable=False),
        sa.Column("review_reason", sa.String(length=300), nullable=True),
        sa.Column(
            "amount_refunded", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False
        ),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt_id", sa.Uuid(), nullable=True),
        sa.Column(
            "raw", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_gateway_payments_amount_positive")),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount",
            name=op.f("ck_gateway_payments_refund_within_amount"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_gateway_payments_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_gateway_payments_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payment_request_id"],
            ["payment_requests.id"],
            name=op.f("fk_gateway_payments_payment_request_id_payment_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["billing_receipts.id"],
            name=op.f("fk_gateway_payments_receipt_id_billing_receipts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_payments")),
        sa.UniqueConstraint(
            "gateway",
            "gateway_payment_id",
            name=op.f("uq_gateway_payments_gateway_gateway_payment_id"),
        ),
    )
    op.create_index(
        op.f("ix_gateway_payments_invoice_id"), "gateway_payments", ["invoice_id"], unique=False
    )
    op.create_index(
        op.f("ix_gateway_payments_organisation_id"),
        "gateway_payments",
        ["organisation_id"],
        unique=False,
    )
    op.create_index(
        "ix_gateway_payments_review",
        "gateway_payments",
        ["organisation_id", "review_status"],
        unique=False,
    )
    op.create_table(
        "refunds",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("counter_payment_id", sa.Uuid(), nullable=True),
        sa.Column("gateway_payment_id", sa.Uuid(), nullable=True),
        sa.Column("gateway", sa.String(length=16), nullable=True),
        sa.Column("gateway_refund_id", sa.String(length=100), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.String(length=300), nullable=True),
        sa.Column("requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "raw", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(counter_payment_id IS NULL) <> (gateway_payment_id IS NULL)",
            name=op.f("ck_refunds_one_payment"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["counter_payment_id"],
            ["counter_payments.id"],
            name=op.f("fk_refunds_counter_payment_id_counter_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["gateway_payment_id"],
            ["gateway_payments.id"],
            name=op.f("fk_refunds_gateway_payment_id_gateway_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_refunds_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_refunds_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_refunds_requested_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint(
            "gateway", "gateway_refund_id", name=op.f("uq_refunds_gateway_gateway_refund_id")
        ),
    )
    op.create_index(
        op.f("ix_refunds_counter_payment_id"), "refunds", ["counter_payment_id"], unique=False
    )
    op.create_index(
        op.f("ix_refunds_gateway_payment_id"), "refunds", ["gateway_payment_id"], unique=False
    )
    op.create_index(op.f("ix_refunds_invoice_id"), "refunds", ["invoice_id"], unique=False)
    op.create_index(
        op.f("ix_refunds_organisation_id"), "refunds", ["organisation_id"], unique=False
    )
    op.create_table(
        "billing_ledger",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("effect_key", sa.String(length=200), nullable=False),
        sa.Column("counter_payment_id", sa.Uuid(), nullable=True),
        sa.Column("gateway_payment_id", sa.Uuid(), nullable=True),
        sa.Column("refund_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_billing_ledger_amount_positive")),
        sa.ForeignKeyConstraint(
            ["counter_payment_id"],
            ["counter_payments.id"],
            name=op.f("fk_billing_ledger_counter_payment_id_counter_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["gateway_payment_id"],
            ["gateway_payments.id"],
            name=op.f("fk_billing_ledger_gateway_payment_id_gateway_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_billing_ledger_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_billing_ledger_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_billing_ledger_refund_id_refunds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_ledger")),
        sa.UniqueConstraint(
            "organisation_id",
            "effect_key",
            name=op.f("uq_billing_ledger_organisation_id_effect_key"),
        ),
    )
    op.create_index(
        op.f("ix_billing_ledger_invoice_id"), "billing_ledger", ["invoice_id"], unique=False
    )
    op.create_index(
        op.f("ix_billing_ledger_organisation_id"),
        "billing_ledger",
        ["organisation_id"],
        unique=False,
    )
    op.add_column("counter_payments", sa.Column("invoice_id", sa.Uuid(), nullable=True))
    op.add_column("counter_payments", sa.Column("receipt_id", sa.Uuid(), nullable=True))
    op.add_column("counter_payments", sa.Column("utr", sa.String(length=12), nullable=True))
    op.add_column(
        "counter_payments",
        sa.Column("status", sa.String(length=16), server_default="applied", nullable=False),
    )
    op.add_column(
        "counter_payments", sa.Column("review_reason", sa.String(length=300), nullable=True)
    )
    op.create_index(
        op.f("ix_counter_payments_invoice_id"), "counter_payments", ["invoice_id"], unique=False
    )
    op.create_index(
        "uq_counter_payments_utr",
        "counter_payments",
        ["organisation_id", "utr"],
        unique=True,
        postgresql_where=sa.text("utr IS NOT NULL"),
    )
    op.create_foreign_key(
        op.f("fk_counter_payments_invoice_id_invoices"),
        "counter_payments",
        "invoices",
        ["invoice_id"],
        ["id"],
    )
    op.create_foreign_key(
        op.f("fk_counter_payments_receipt_id_billing_receipts"),
        "counter_payments",
        "billing_receipts",
        ["receipt_id"],
        ["id"],
    )
    # ### end Alembic commands ###
    op.alter_column("counter_payments", "order_id", nullable=True)
    op.execute(LEDGER_FUNCTIONS)
    op.execute(REFUND_FUNCTIONS)


def downgrade() -> None:
    op.execute(DROP_FUNCTIONS)
    op.execute("DELETE FROM counter_payments WHERE order_id IS NULL")
    op.alter_column("counter_payments", "order_id", nullable=False)
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_constraint(
        op.f("fk_counter_payments_receipt_id_billing_receipts"),
        "counter_payments",
        type_="foreignkey",
    )
    op.drop_constraint(
        op.f("fk_counter_payments_invoice_id_invoices"), "counter_payments", type_="foreignkey"
    )
    op.drop_index(
        "uq_counter_payments_utr",
        table_name="counter_payments",
        postgresql_where=sa.text("utr IS NOT NULL"),
    )
    op.drop_index(op.f("ix_counter_payments_invoice_id"), table_name="counter_payments")
    op.drop_column("counter_payments", "review_reason")
    op.drop_column("counter_payments", "status")
    op.drop_column("counter_payments", "utr")
    op.drop_column("counter_payments", "receipt_id")
    op.drop_column("counter_payments", "invoice_id")
    op.drop_index(op.f("ix_billing_ledger_organisation_id"), table_name="billing_ledger")
    op.drop_index(op.f("ix_billing_ledger_invoice_id"), table_name="billing_ledger")
    op.drop_table("billing_ledger")
    op.drop_index(op.f("ix_refunds_organisation_id"), table_name="refunds")
    op.drop_index(op.f("ix_refunds_invoice_id"), table_name="refunds")
    op.drop_index(op.f("ix_refunds_gateway_payment_id"), table_name="refunds")
    op.drop_index(op.f("ix_refunds_counter_payment_id"), table_name="refunds")
    op.drop_table("refunds")
    op.drop_index("ix_gateway_payments_review", table_name="gateway_payments")
    op.drop_index(op.f("ix_gateway_payments_organisation_id"), table_name="gateway_payments")
    op.drop_index(op.f("ix_gateway_payments_invoice_id"), table_name="gateway_payments")
    op.drop_table("gateway_payments")
    op.drop_index(op.f("ix_payment_requests_organisation_id"), table_name="payment_requests")
    op.drop_index("ix_payment_requests_open", table_name="payment_requests")
    op.drop_index(op.f("ix_payment_requests_invoice_id"), table_name="payment_requests")
    op.drop_table("payment_requests")
    op.drop_index(op.f("ix_invoice_lines_organisation_id"), table_name="invoice_lines")
    op.drop_index(op.f("ix_invoice_lines_invoice_id"), table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index(op.f("ix_billing_receipts_organisation_id"), table_name="billing_receipts")
    op.drop_index(op.f("ix_billing_receipts_invoice_id"), table_name="billing_receipts")
    op.drop_table("billing_receipts")
    op.drop_index(
        op.f("ix_billing_client_orders_organisation_id"), table_name="billing_client_orders"
    )
    op.drop_index(op.f("ix_billing_client_orders_invoice_id"), table_name="billing_client_orders")
    op.drop_index(op.f("ix_billing_client_orders_client_id"), table_name="billing_client_orders")
    op.drop_table("billing_client_orders")
    op.drop_index(
        op.f("ix_report_release_holds_organisation_id"), table_name="report_release_holds"
    )
    op.drop_table("report_release_holds")
    op.drop_index(
        "uq_invoices_live_order",
        table_name="invoices",
        postgresql_where=sa.text("kind = 'order' AND status <> 'cancelled'"),
    )
    op.drop_index(
        "uq_invoices_credit_note_for",
        table_name="invoices",
        postgresql_where=sa.text("credit_note_for_id IS NOT NULL"),
    )
    op.drop_index(op.f("ix_invoices_patient_id"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_organisation_id"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_order_id"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_client_id"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_branch_id"), table_name="invoices")
    op.drop_table("invoices")
    op.drop_index(op.f("ix_rate_list_items_rate_list_id"), table_name="rate_list_items")
    op.drop_index(op.f("ix_rate_list_items_organisation_id"), table_name="rate_list_items")
    op.drop_table("rate_list_items")
    op.drop_index(op.f("ix_billing_clients_organisation_id"), table_name="billing_clients")
    op.drop_table("billing_clients")
    op.drop_index(
        op.f("ix_billing_branch_settings_organisation_id"), table_name="billing_branch_settings"
    )
    op.drop_table("billing_branch_settings")
    op.drop_index(
        "uq_rate_lists_referrer",
        table_name="rate_lists",
        postgresql_where=sa.text("kind = 'referrer' AND is_active"),
    )
    op.drop_index(
        "uq_rate_lists_one_default",
        table_name="rate_lists",
        postgresql_where=sa.text("kind = 'default' AND is_active"),
    )
    op.drop_index(op.f("ix_rate_lists_organisation_id"), table_name="rate_lists")
    op.drop_table("rate_lists")
    op.drop_index("ix_payment_webhook_events_status", table_name="payment_webhook_events")
    op.drop_index(
        op.f("ix_payment_webhook_events_organisation_id"), table_name="payment_webhook_events"
    )
    op.drop_table("payment_webhook_events")
    op.drop_table("billing_settings")
    op.drop_index(op.f("ix_billing_items_organisation_id"), table_name="billing_items")
    op.drop_table("billing_items")
    # ### end Alembic commands ###
