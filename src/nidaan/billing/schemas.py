"""Request and response shapes of the billing API. Amounts are decimal strings of rupees."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer, computed_field, field_validator

from nidaan.billing.domain import SAC_DIAGNOSTIC, GstTreatment
from nidaan.billing.enums import (
    BillingCycle,
    ClientKind,
    CounterMethod,
    Gateway,
    InvoiceKind,
    InvoiceStatus,
    PaymentStatus,
    RateListKind,
)
from nidaan.kit.schemas import InputSchema, Schema

#: Rupees as a JSON string with two decimals ("1440.00"): a JSON number could pass through
#: a float in the client and lose paise.
Money = Annotated[Decimal, PlainSerializer(lambda v: f"{v:.2f}", return_type=str)]
Rate = Annotated[Decimal, PlainSerializer(lambda v: f"{v.normalize():f}", return_type=str)]

STATE_CODE = r"^\d{2}$"
GSTIN = r"^[0-9A-Z]{15}$"


class MoneyInput(InputSchema):
    """Refuses JSON floats for every field: amounts come as decimal strings or integers."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_floats(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError('amounts are decimal strings of rupees (e.g. "499.50"), not floats')
        return value


# --------------------------------------------------------------------------- settings


class BillingSettingsUpdate(MoneyInput):
    legal_name: str | None = Field(None, max_length=200, description="Legal name on invoices")
    gstin: str | None = Field(None, pattern=GSTIN, description="Lab GSTIN (empty: unregistered)")
    state_code: str | None = Field(
        None, pattern=STATE_CODE, description="GST state code of the lab", examples=["27"]
    )
    address: str | None = Field(None, max_length=500)
    pincode: str | None = Field(None, pattern=r"^[1-9]\d{5}$")
    hold_report_until_paid: bool | None = Field(
        None, description="Render reports but release them only once the invoice is paid"
    )
    discount_limits: dict[str, Decimal] | None = Field(
        None,
        description="Percent of a bill each role may discount without approval",
        examples=[{"front_desk": "10", "billing": "20", "admin": "100"}],
    )
    home_collection_charge: Decimal | None = Field(None, ge=0, description="Rupees per visit")
    home_collection_free_above: Decimal | None = Field(
        None, ge=0, description="Waive the charge when the tests come to at least this"
    )
    round_to_rupee: bool | None = None
    default_gateway: Gateway | None = None
    enabled_gateways: list[Gateway] | None = None
    payment_link_expiry_hours: int | None = Field(None, ge=1, le=24 * 180)


class BillingSettingsOut(Schema):
    organisation_id: uuid.UUID
    legal_name: str | None
    gstin: str | None
    state_code: str | None
    address: str | None
    pincode: str | None
    hold_report_until_paid: bool
    discount_limits: dict[str, Decimal]
    home_collection_charge: Money
    home_collection_free_above: Money | None
    round_to_rupee: bool
    default_gateway: str | None
    enabled_gateways: list[str]
    payment_link_expiry_hours: int
    version: int


class BranchBillingUpdate(InputSchema):
    gstin: str | None = Field(None, pattern=GSTIN, description="GSTIN of this branch's state")
    state_code: str | None = Field(None, pattern=STATE_CODE)
    upi_vpa: str | None = Field(
        None, max_length=100, description="UPI address for the counter QR", examples=["lab@upi"]
    )
    upi_payee_name: str | None = Field(None, max_length=99)
    upi_merchant_code: str | None = Field(None, pattern=r"^\d{4}$", description="UPI MCC")


class BranchBillingOut(Schema):
    branch_id: uuid.UUID
    gstin: str | None
    state_code: str | None
    upi_vpa: str | None
    upi_payee_name: str | None
    upi_merchant_code: str | None


# --------------------------------------------------------------------------- items & lists


class BillingItemCreate(MoneyInput):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9-]+$", examples=["COURIER"])
    name: str = Field(min_length=1, max_length=200)
    price: Decimal = Field(ge=0)
    sac: str = Field("999316", pattern=r"^\d{4,8}$", description="SAC code")
    gst_treatment: GstTreatment = GstTreatment.EXEMPT
    gst_rate: Decimal = Field(Decimal("0"), ge=0, le=40, description="Percent (CGST+SGST)")


class BillingItemOut(Schema):
    id: uuid.UUID
    code: str
    name: str
    price: Money
    sac: str
    gst_treatment: GstTreatment
    gst_rate: Rate
    is_active: bool


class RateListItemIn(MoneyInput):
    code: str = Field(description="Catalogue test or panel code, or a billing item code")
    price: Decimal = Field(ge=0)


class RateListCreate(MoneyInput):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9-]+$", examples=["CORP-A"])
    name: str = Field(min_length=1, max_length=200)
    kind: RateListKind
    referrer: str | None = Field(
        None, max_length=200, description="Referring doctor's name (referrer lists)"
    )
    percent_off: Decimal = Field(
        Decimal("0"), ge=0, le=100, description="Discount on default prices of unlisted items"
    )
    items: list[RateListItemIn] = Field(default_factory=list, max_length=2000)


class RateListUpdate(MoneyInput):
    name: str | None = Field(None, min_length=1, max_length=200)
    percent_off: Decimal | None = Field(None, ge=0, le=100)
    is_active: bool | None = None
    items: list[RateListItemIn] | None = Field(
        None, max_length=2000, description="Replaces every item when given"
    )


class RateListItemOut(Schema):
    code: str
    kind: str = Field(description="test, panel or item")
    target_id: uuid.UUID
    price: Money


class RateListOut(Schema):
    id: uuid.UUID
    code: str
    name: str
    kind: RateListKind
    referrer: str | None
    percent_off: Rate
    is_active: bool
    items: list[RateListItemOut]
    version: int


# --------------------------------------------------------------------------- clients


class ClientCreate(MoneyInput):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9-]+$", examples=["RUBY"])
    name: str = Field(min_length=1, max_length=200, examples=["Ruby Hall Clinic"])
    kind: ClientKind
    gstin: str | None = Field(None, pattern=GSTIN)
    state_code: str | None = Field(None, pattern=STATE_CODE, description="Default: from GSTIN")
    address: str | None = Field(None, max_length=500)
    pincode: str | None = Field(None, pattern=r"^[1-9]\d{5}$")
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=32)
    credit_limit: Decimal | None = Field(None, ge=0, description="Rupees; empty means no limit")
    billing_cycle: BillingCycle = BillingCycle.MONTHLY
    payment_terms_days: int = Field(30, ge=0, le=365)
    rate_list_id: uuid.UUID | None = None


class ClientUpdate(MoneyInput):
    name: str | None = Field(None, min_length=1, max_length=200)
    gstin: str | None = Field(None, pattern=GSTIN)
    state_code: str | None = Field(None, pattern=STATE_CODE)
    address: str | None = Field(None, max_length=500)
    pincode: str | None = Field(None, pattern=r"^[1-9]\d{5}$")
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=32)
    credit_limit: Decimal | None = Field(None, ge=0)
    billing_cycle: BillingCycle | None = None
    payment_terms_days: int | None = Field(None, ge=0, le=365)
    rate_list_id: uuid.UUID | None = None
    is_active: bool | None = None


class ClientOut(Schema):
    id: uuid.UUID
    code: str
    name: str
    kind: ClientKind
    gstin: str | None
    state_code: str | None
    address: str | None
    pincode: str | None
    email: str | None
    phone: str | None
    credit_limit: Money | None
    billing_cycle: BillingCycle
    payment_terms_days: int
    rate_list_id: uuid.UUID | None
    is_active: bool
    version: int


class ClientOrderCreate(InputSchema):
    order_id: uuid.UUID


class ClientOrderOut(Schema):
    order_id: uuid.UUID
    client_id: uuid.UUID
    amount: Money = Field(description="The order's value when put on account")
    added_at: datetime
    invoice_id: uuid.UUID | None


class ClientStatement(Schema):
    client: ClientOut
    credit_limit: Money | None
    outstanding_invoices: Money = Field(description="Balance due of issued invoices")
    unbilled_orders: Money = Field(description="Orders on account not yet invoiced")
    exposure: Money = Field(description="Outstanding plus unbilled")
    available_credit: Money | None
    open_invoices: list[InvoiceSummary]


# --------------------------------------------------------------------------- invoices


class DiscountIn(MoneyInput):
    kind: str = Field(pattern=r"^(percent|amount)$", description="percent or amount")
    value: Decimal = Field(ge=0, description="Percent (0-100) or rupees")
    reason: str = Field(min_length=3, max_length=300, examples=["Senior citizen"])


class BuyerIn(InputSchema):
    name: str | None = Field(None, max_length=200)
    gstin: str | None = Field(None, pattern=GSTIN, description="A registered buyer's GSTIN")
    address: str | None = Field(None, max_length=500)
    state_code: str | None = Field(None, pattern=STATE_CODE)
    pincode: str | None = Field(None, pattern=r"^[1-9]\d{5}$")


class ExtraItemIn(InputSchema):
    code: str = Field(description="Billing item code", examples=["COURIER"])
    quantity: int = Field(1, ge=1, le=100)


class InvoiceCreate(InputSchema):
    order_id: uuid.UUID
    client_id: uuid.UUID | None = Field(
        None, description="Bill a per-order B2B client instead of the patient"
    )
    rate_list_id: uuid.UUID | None = Field(
        None, description="Default: the client's, else the referrer's, else the default list"
    )
    discount: DiscountIn | None = None
    home_collection: bool = Field(False, description="Add the home-collection charge")
    extra_items: list[ExtraItemIn] = Field(default_factory=list, max_length=20)
    buyer: BuyerIn | None = Field(None, description="Override who is billed (name, GSTIN)")
    place_of_supply: str | None = Field(
        None, pattern=STATE_CODE, description="Override the state code of the place of supply"
    )


class ConsolidatedInvoiceCreate(InputSchema):
    client_id: uuid.UUID
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"])
    branch_id: uuid.UUID = Field(description="Branch whose number series the invoice takes")


class DiscountDecision(InputSchema):
    approve: bool
    note: str | None = Field(None, max_length=300)


class InvoiceCancel(InputSchema):
    reason: str = Field(min_length=3, max_length=300)


class DebitLineIn(MoneyInput, InputSchema):
    code: str = Field("EXTRA", pattern=r"^[A-Z0-9-]{1,32}$", description="Line code")
    description: str = Field(min_length=1, max_length=300, examples=["Report courier"])
    unit_price: Decimal = Field(gt=0, max_digits=10, decimal_places=2, examples=["100.00"])
    quantity: int = Field(1, ge=1, le=100)
    sac: str = Field(SAC_DIAGNOSTIC, pattern=r"^\d{4,8}$", examples=["996812"])
    gst_treatment: GstTreatment = GstTreatment.EXEMPT
    gst_rate: Decimal = Field(
        Decimal("0"), ge=0, le=28, description="Percent (CGST+SGST or IGST); taxable lines only"
    )


class DebitNoteIn(InputSchema):
    reason: str = Field(min_length=3, max_length=300, examples=["Courier charge missed"])
    lines: list[DebitLineIn] = Field(min_length=1, max_length=20)


class InvoiceLineOut(Schema):
    position: int
    order_id: uuid.UUID | None
    kind: str
    code: str
    description: str
    sac: str
    gst_treatment: GstTreatment
    gst_rate: Rate
    quantity: int
    unit_price: Money
    gross_amount: Money
    discount_amount: Money
    taxable_value: Money
    cgst_rate: Rate
    cgst_amount: Money
    sgst_rate: Rate
    sgst_amount: Money
    igst_rate: Rate
    igst_amount: Money
    line_total: Money


class InvoiceSummary(Schema):
    id: uuid.UUID
    number: str | None = Field(description="Empty while a discount awaits approval")
    kind: InvoiceKind
    document_type: str = Field(description="tax_invoice, bill_of_supply, credit_note or debit_note")
    status: InvoiceStatus
    payment_status: PaymentStatus
    branch_id: uuid.UUID
    order_id: uuid.UUID | None
    client_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    buyer_name: str
    invoice_date: date | None
    due_date: date | None
    grand_total: Money
    amount_paid: Money
    amount_refunded: Money
    balance_due: Money
    created_at: datetime


class InvoiceOut(InvoiceSummary):
    credit_note_for_id: uuid.UUID | None
    debit_note_for_id: uuid.UUID | None = Field(description="Debit notes: the invoice charged")
    note_reason: str | None = Field(description="Debit notes: why the charge was added")
    period_start: date | None
    period_end: date | None
    financial_year: str | None
    issued_at: datetime | None
    referrer: str | None
    rate_list_id: uuid.UUID | None
    home_collection: bool
    seller_legal_name: str
    seller_gstin: str | None
    seller_address: str | None
    seller_pincode: str | None
    seller_state_code: str
    buyer_gstin: str | None
    buyer_address: str | None
    buyer_pincode: str | None
    buyer_state_code: str | None
    place_of_supply: str
    supply_type: str
    state_tax_name: str
    currency: str
    gross_total: Money
    discount_total: Money
    taxable_total: Money
    exempt_total: Money
    cgst_total: Money
    sgst_total: Money
    igst_total: Money
    tax_total: Money
    round_off: Money
    discount_kind: str | None
    discount_value: Money | None
    discount_reason: str | None
    discount_percent: Rate
    discount_decided_by_id: uuid.UUID | None
    discount_decision_note: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    lines: list[InvoiceLineOut]
    version: int

    @computed_field(description="The invoice PDF")  # type: ignore[prop-decorator]
    @property
    def pdf_url(self) -> str:
        return f"/api/v1/invoices/{self.id}/pdf"


class InvoiceCancelOut(Schema):
    invoice: InvoiceOut
    credit_note: InvoiceOut | None = Field(description="Issued when the invoice was issued")


# --------------------------------------------------------------------------- payments


class TenderIn(MoneyInput):
    method: CounterMethod
    amount: Decimal = Field(gt=0, description='Rupees, e.g. "500.00"')
    reference: str | None = Field(
        None, max_length=100, description="Card approval code / last 4, cheque number"
    )
    utr: str | None = Field(
        None, description="UPI: the 12-digit UTR shown on the payer's app (required for UPI)"
    )


class CounterPaymentCreate(InputSchema):
    id: uuid.UUID | None = Field(
        None, description="Client-made id of the receipt (a retry with it is a replay)"
    )
    tenders: list[TenderIn] = Field(
        min_length=1, max_length=6, description="Split tender: one entry per method"
    )
    received_at: datetime | None = None


class CounterPaymentOut(Schema):
    id: uuid.UUID
    method: str
    amount: Money
    reference: str | None
    utr: str | None
    status: str = Field(description="applied (on the invoice) or held (for review)")
    received_at: datetime


class ReceiptOut(Schema):
    id: uuid.UUID
    number: str
    invoice_id: uuid.UUID
    amount: Money
    source: str
    received_at: datetime
    payments: list[CounterPaymentOut]
    invoice: InvoiceSummary

    @computed_field(description="The receipt PDF")  # type: ignore[prop-decorator]
    @property
    def pdf_url(self) -> str:
        return f"/api/v1/receipts/{self.id}/pdf"


class PaymentOut(Schema):
    """A payment on an invoice, from the counter or a gateway."""

    id: uuid.UUID
    source: str = Field(description="counter, razorpay, stripe or payu")
    method: str | None
    amount: Money
    currency: str
    status: str = Field(description="applied, held, pending, not_applied")
    review_reason: str | None
    amount_refunded: Money
    reference: str | None = Field(description="UTR, card/cheque reference or gateway id")
    received_at: datetime | None
    receipt_id: uuid.UUID | None


class UpiPayeeOut(Schema):
    """Who counter UPI payments at a branch go to (for a QR made without the server)."""

    branch_id: uuid.UUID
    upi_vpa: str
    upi_payee_name: str
    upi_merchant_code: str | None


class UpiQrOut(Schema):
    invoice_id: uuid.UUID
    upi_uri: str = Field(description="upi://pay intent (NPCI linking specification)")
    amount: Money
    payee_vpa: str
    payee_name: str
    reference: str


ClientStatement.model_rebuild()
