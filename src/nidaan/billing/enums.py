import enum


class InvoiceKind(enum.StrEnum):
    ORDER = "order"
    CONSOLIDATED = "consolidated"
    CREDIT_NOTE = "credit_note"
    DEBIT_NOTE = "debit_note"  # an extra charge found after an invoice was issued


class InvoiceStatus(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"  # a discount above the caller's limit awaits an admin
    ISSUED = "issued"
    CANCELLED = "cancelled"


class PaymentStatus(enum.StrEnum):
    UNPAID = "unpaid"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    REFUNDED = "refunded"
    NOT_APPLICABLE = "not_applicable"  # credit notes


class CounterMethod(enum.StrEnum):
    CASH = "cash"
    CARD = "card"
    UPI = "upi"
    CHEQUE = "cheque"
    BANK_TRANSFER = "bank_transfer"  # NEFT/RTGS/IMPS from a B2B client


class BillingCycle(enum.StrEnum):
    PER_ORDER = "per_order"
    MONTHLY = "monthly"


class ClientKind(enum.StrEnum):
    HOSPITAL = "hospital"
    CORPORATE = "corporate"
    FRANCHISE = "franchise"
    OTHER = "other"


class RateListKind(enum.StrEnum):
    DEFAULT = "default"
    CLIENT = "client"
    REFERRER = "referrer"


class LedgerKind(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    REFUND_REVERSAL = "refund_reversal"


class Gateway(enum.StrEnum):
    RAZORPAY = "razorpay"
    STRIPE = "stripe"
    PAYU = "payu"
