"""The payment gateway port: what billing asks of Razorpay, Stripe or PayU, in our words.

Amounts cross this boundary as integer paise (Stripe calls them the smallest unit; PayU's
rupee strings are converted inside its adapter). Every adapter speaks its provider's
documented HTTP API with httpx, so pointing it at our simulator or at the live provider is
a change of base URL and credentials only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from nidaan.kit.errors import Conflict, NidaanError


class GatewayError(NidaanError):
    """The gateway refused the call or could not be reached; nothing was recorded."""

    status_code = 502
    code = "gateway_error"
    title = "The payment gateway failed"


class DuplicateReference(GatewayError):
    """The gateway already has a request with this reference (another lab on the same
    merchant account numbers its invoices the same way)."""

    code = "gateway_duplicate_reference"


class GatewayNotConfigured(Conflict):
    code = "gateway_not_configured"
    title = "The payment gateway is not configured"


class GatewayUnsupported(Conflict):
    code = "gateway_unsupported"
    title = "The gateway does not offer this"


class WebhookRejected(Exception):
    """The webhook's signature did not verify: it is refused and not stored."""


class WebhookUnreadable(Exception):
    """Correctly signed, but not a payload we can read (stored with the error)."""

    def __init__(self, message: str, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id


class PaymentStatus(enum.StrEnum):
    """A gateway payment's state; it only ever moves forward (see ``RANK``)."""

    CREATED = "created"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    FAILED = "failed"


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class RequestStatus(enum.StrEnum):
    CREATED = "created"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    CLOSED = "closed"


@dataclass(frozen=True)
class Customer:
    name: str
    email: str | None = None
    contact: str | None = None  # +91XXXXXXXXXX


@dataclass(frozen=True)
class LinkRequest:
    amount_paise: int
    currency: str
    reference: str  # our invoice number (unique per request)
    description: str
    customer: Customer
    expire_at: datetime
    notes: Mapping[str, str]  # organisation_id, invoice_id, payment_request_id
    callback_url: str | None = None
    notify_sms: bool = False
    notify_email: bool = False
    hosted_page_url: str | None = None  # PayU: our page that posts the checkout form
    idempotency_key: str | None = None


@dataclass(frozen=True)
class QrRequest:
    amount_paise: int
    reference: str
    description: str
    close_at: datetime
    notes: Mapping[str, str]
    customer_name: str


@dataclass(frozen=True)
class CreatedRequest:
    gateway_ref: str
    url: str | None
    image_url: str | None
    status: RequestStatus
    raw: dict[str, Any]


@dataclass(frozen=True)
class PaymentState:
    gateway_payment_id: str
    status: PaymentStatus
    amount_paise: int
    currency: str  # upper-case ISO code
    method: str | None = None
    request_ref: str | None = None  # link / QR / session / txnid it came through
    notes: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundState:
    gateway_refund_id: str
    gateway_payment_id: str
    amount_paise: int
    status: RefundStatus
    notes: Mapping[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestState:
    gateway_ref: str
    status: RequestStatus
    payments: tuple[PaymentState, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook, normalised: what it says about payments, refunds and requests."""

    event_id: str
    event_type: str
    payments: tuple[PaymentState, ...] = ()
    refunds: tuple[RefundState, ...] = ()
    requests: tuple[RequestState, ...] = ()
    # PayU refund callbacks carry no signature: their refunds are confirmed by the API.
    refunds_need_confirmation: bool = False


class PaymentGateway(Protocol):
    name: ClassVar[str]
    supports_upi_qr: ClassVar[bool]
    needs_capture: ClassVar[bool]

    async def create_link(self, request: LinkRequest) -> CreatedRequest: ...

    async def create_upi_qr(self, request: QrRequest) -> CreatedRequest: ...

    async def fetch_image(self, url: str) -> bytes: ...

    async def fetch_request(self, gateway_ref: str, kind: str) -> RequestState: ...

    async def cancel_request(self, gateway_ref: str, kind: str) -> None: ...

    async def fetch_payment(self, gateway_payment_id: str) -> PaymentState: ...

    async def capture(
        self, gateway_payment_id: str, amount_paise: int, currency: str
    ) -> PaymentState: ...

    async def refund(
        self, gateway_payment_id: str, amount_paise: int, *, refund_id: str, reason: str
    ) -> RefundState: ...

    async def fetch_refund(
        self, gateway_refund_id: str, gateway_payment_id: str
    ) -> RefundState: ...

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the signature over the raw body, then read it (``WebhookRejected`` /
        ``WebhookUnreadable``)."""
        ...

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Read a stored delivery that was verified when it arrived (no time tolerance)."""
        ...
