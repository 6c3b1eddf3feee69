"""E-invoice tables: the organisation's IRP registration, one e-invoice per billing document,
and every exchange with the IRP (decrypted, without credentials).

``uq_einvoices_invoice`` makes "one IRN per invoice" a database fact: a retry, a second click
or the retry job finds the same row, locks it, and either sees the IRN or asks the IRP again
(where a duplicate-IRN answer recovers an IRN whose response was lost).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text, false, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.encrypted_type import EncryptedString
from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class EInvoiceSettings(TimestampMixin, VersionMixin, Base):
    """The organisation's GST registration as the IRP knows it, and its API user there."""

    __tablename__ = "einvoice_settings"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # NIC's sandbox: its test GSTINs fail the check digit, so the check is skipped.
    sandbox: Mapped[bool] = mapped_column(Boolean, server_default=false())
    gstin: Mapped[str | None] = mapped_column(String(15))
    legal_name: Mapped[str | None] = mapped_column(String(100))
    trade_name: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(50))
    pincode: Mapped[str | None] = mapped_column(String(6))
    state_code: Mapped[str | None] = mapped_column(String(2))
    # AATO of 10 crore or more: documents older than 30 days are refused.
    thirty_day_limit: Mapped[bool] = mapped_column(Boolean, server_default=false())
    irp_username: Mapped[str | None] = mapped_column(String(100))
    irp_password: Mapped[str | None] = mapped_column(
        "irp_password_encrypted", EncryptedString("einvoice_settings.irp_password")
    )


class EInvoice(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """The e-invoice of one billing document (invoice or credit note)."""

    __tablename__ = "einvoices"
    __table_args__ = (
        Index("uq_einvoices_invoice", "invoice_id", unique=True),
        Index("uq_einvoices_irn", "irn", unique=True, postgresql_where=text("irn IS NOT NULL")),
        Index(
            "ix_einvoices_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"))
    doc_type: Mapped[str] = mapped_column(String(3))  # INV | CRN | DBN
    doc_no: Mapped[str] = mapped_column(String(16))
    doc_date: Mapped[date]
    seller_gstin: Mapped[str] = mapped_column(String(15))
    buyer_gstin: Mapped[str] = mapped_column(String(15))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(16))  # pending | generated | cancelled | rejected
    # The exact JSON sent (amounts as written, never through float); re-sent on retries.
    payload_json: Mapped[str] = mapped_column("payload", Text)
    irn: Mapped[str | None] = mapped_column(String(64))
    ack_no: Mapped[str | None] = mapped_column(String(20))
    ack_at: Mapped[datetime | None]
    signed_invoice: Mapped[str | None] = mapped_column(Text)
    signed_qr_code: Mapped[str | None] = mapped_column(Text)
    qr_data_json: Mapped[str | None] = mapped_column("qr_data", Text)
    recovered_duplicate: Mapped[bool] = mapped_column(Boolean, server_default=false())
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    error_codes: Mapped[list[str] | None] = mapped_column(JSONB)
    cancel_reason: Mapped[str | None] = mapped_column(String(1))
    cancel_remark: Mapped[str | None] = mapped_column(String(100))
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.payload_json, parse_float=Decimal))

    @property
    def qr_data(self) -> dict[str, Any] | None:
        if self.qr_data_json is None:
            return None
        return dict(json.loads(self.qr_data_json, parse_float=Decimal))


class IrpExchange(IdMixin, TenantMixin, Base):
    """One call to the IRP as it happened (decrypted request and answer, error codes)."""

    __tablename__ = "einvoice_exchanges"

    einvoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("einvoices.id", ondelete="CASCADE"), index=True
    )
    operation: Mapped[str] = mapped_column(String(24))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_codes: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    request: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
