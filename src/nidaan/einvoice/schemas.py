"""Request and response bodies of the e-invoice API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from nidaan.kit.schemas import InputSchema, Schema


class EInvoiceSettingsUpdate(InputSchema):
    """Change what is given; leave the rest out. Seller fields left empty fall back to the
    billing settings (legal name, address, PIN, GSTIN)."""

    enabled: bool | None = Field(None, description="Report B2B invoices to the IRP")
    sandbox: bool | None = Field(
        None, description="NIC sandbox: skip the GSTIN check digit (NIC's test GSTINs fail it)"
    )
    gstin: str | None = Field(
        None, min_length=15, max_length=15, description="GSTIN registered at the IRP"
    )
    legal_name: str | None = Field(None, min_length=3, max_length=100)
    trade_name: str | None = Field(None, min_length=3, max_length=100)
    address: str | None = Field(None, min_length=1, max_length=200)
    location: str | None = Field(
        None, min_length=3, max_length=50, description="Town or city (Loc)"
    )
    pincode: str | None = Field(None, pattern=r"^[1-9][0-9]{5}$")
    thirty_day_limit: bool | None = Field(
        None, description="AATO of 10 crore or more: refuse documents older than 30 days"
    )
    irp_username: str | None = Field(None, min_length=1, max_length=100)
    irp_password: str | None = Field(
        None, min_length=1, max_length=100, description="Write-only; stored encrypted"
    )


class EInvoiceSettingsOut(Schema):
    enabled: bool
    sandbox: bool
    gstin: str | None = Field(description="GSTIN used at the IRP (own, else billing's)")
    legal_name: str | None
    trade_name: str | None
    address: str | None
    location: str | None
    pincode: str | None
    state_code: str | None
    thirty_day_limit: bool
    irp_username: str | None
    password_set: bool
    irp_configured: bool = Field(description="This installation has an IRP URL and keys")
    version: int


class EInvoiceCancel(InputSchema):
    reason: Literal["1", "2", "3", "4"] = Field(
        description="1 Duplicate, 2 Data entry mistake, 3 Order cancelled, 4 Others"
    )
    remark: str = Field(min_length=1, max_length=100, examples=["Wrong client billed"])


class ViolationOut(Schema):
    field: str = Field(examples=["ItemList[0].CgstAmt"])
    rule: str = Field(examples=["gst_amount"])
    message: str


class EInvoiceOut(Schema):
    id: uuid.UUID
    invoice_id: uuid.UUID
    doc_type: str = Field(description="INV, CRN or DBN")
    doc_no: str
    doc_date: date
    status: str = Field(description="pending, generated, cancelled or rejected")
    irn: str | None
    ack_no: str | None
    ack_at: datetime | None
    cancel_deadline: datetime | None = Field(description="IRN cancellable until")
    cancelled_at: datetime | None
    cancel_reason: str | None
    cancel_remark: str | None
    recovered_duplicate: bool = Field(
        description="The IRN was recovered from the IRP's duplicate-IRN answer"
    )
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    error_codes: list[str] | None
    payload: dict[str, Any] = Field(description="The schema-1.1 JSON sent to the IRP")
    qr_data: dict[str, Any] | None = Field(description="The signed QR's verified contents")
    signed_qr_code: str | None = Field(description="The signed QR JWT (what the QR encodes)")
    signed_invoice: str | None
    qr_png: str | None = Field(description="data:image/png;base64 of the QR code")
