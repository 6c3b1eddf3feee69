"""Stripe: a Checkout Session is the payment link; PaymentIntents, refunds and webhooks over
the v1 REST API with httpx (form-encoded bodies, bracket notation, Bearer secret key).

POSTs carry a deterministic ``Idempotency-Key`` (our request or refund id), so a retried
call never makes a second session or refund. Webhooks carry ``Stripe-Signature:
t=<unix>,v1=<hex>``: HMAC-SHA256 over ``"<t>.<raw body>"`` with the endpoint secret, any
``v1`` may match, and events older than the tolerance (300 s) are refused (fact sheet 2.2).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from nidaan.payments.gateways.base import (
    CreatedRequest,
    GatewayError,
    GatewayUnsupported,
    LinkRequest,
    PaymentState,
    PaymentStatus,
    QrRequest,
    RefundState,
    RefundStatus,
    RequestState,
    RequestStatus,
    WebhookEvent,
    WebhookRejected,
    WebhookUnreadable,
)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
TOLERANCE_SECONDS = 300
# Checkout Sessions expire 30 minutes to 24 hours after creation.
MIN_EXPIRY, MAX_EXPIRY = 30 * 60 + 60, 24 * 3600 - 60

INTENT_STATUS = {
    "requires_payment_method": PaymentStatus.CREATED,
    "requires_confirmation": PaymentStatus.CREATED,
    "requires_action": PaymentStatus.CREATED,
    "processing": PaymentStatus.CREATED,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.CAPTURED,
    "canceled": PaymentStatus.FAILED,
}
REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.PROCESSED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}


def signature_header(body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def form_encode(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's bracket notation: ``{"a": {"b": [1]}}`` -> ``a[b][0]=1``."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            pairs += form_encode(value, name)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                item_name = f"{name}[{index}]"
                if isinstance(item, Mapping):
                    pairs += form_encode(item, item_name)
                else:
                    pairs.append((item_name, _scalar(item)))
        elif value is not None:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def intent_state(intent: Mapping[str, Any], request_ref: str | None = None) -> PaymentState:
    status = INTENT_STATUS.get(str(intent.get("status")), PaymentStatus.CREATED)
    amount = intent.get("amount_received") or intent.get("amount") or 0
    error = (intent.get("last_payment_error") or {}).get("message")
    methods = intent.get("payment_method_types") or [None]
    return PaymentState(
        gateway_payment_id=str(intent["id"]),
        status=status,
        amount_paise=int(amount),
        currency=str(intent.get("currency", "")).upper(),
        method=methods[0],
        request_ref=request_ref,
        notes={str(k): str(v) for k, v in (intent.get("metadata") or {}).items()},
        error=error,
        raw=dict(intent),
    )


def refund_state(refund: Mapping[str, Any]) -> RefundState:
    return RefundState(
        gateway_refund_id=str(refund["id"]),
        gateway_payment_id=str(refund.get("payment_intent") or ""),
        amount_paise=int(refund["amount"]),
        status=REFUND_STATUS.get(str(refund.get("status")), RefundStatus.PENDING),
        notes={str(k): str(v) for k, v in (refund.get("metadata") or {}).items()},
        raw=dict(refund),
    )


def session_payment(session: Mapping[str, Any]) -> PaymentState | None:
    """The payment a completed Checkout Session reports (None until it has one)."""
    intent = session.get("payment_intent")
    if not intent:
        return None
    paid = session.get("payment_status") == "paid"
    return PaymentState(
        gateway_payment_id=str(intent if isinstance(intent, str) else intent["id"]),
        status=PaymentStatus.CAPTURED if paid else PaymentStatus.CREATED,
        amount_paise=int(session.get("amount_total") or 0),
        currency=str(session.get("currency", "")).upper(),
        method=None,
        request_ref=str(session["id"]),
        notes={str(k): str(v) for k, v in (session.get("metadata") or {}).items()},
        raw=dict(session),
    )


def session_status(session: Mapping[str, Any]) -> RequestStatus:
    if session.get("payment_status") == "paid":
        return RequestStatus.PAID
    return {"open": RequestStatus.CREATED, "expired": RequestStatus.EXPIRED}.get(
        str(session.get("status")), RequestStatus.CREATED
    )


class StripeGateway:
    name: ClassVar[str] = "stripe"
    supports_upi_qr: ClassVar[bool] = False
    needs_capture: ClassVar[bool] = False

    def __init__(self, base_url: str, secret_key: str, webhook_secret: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = secret_key
        self._webhook_secret = webhook_secret

    async def _call(
        self,
        method: str,
        path: str,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._key}", "Stripe-Version": "2024-06-20"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        content = None
        if data is not None:
            content = urlencode(form_encode(data)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT) as client:
                response = await client.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise GatewayError(f"Stripe could not be reached: {type(exc).__name__}.") from None
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
            except ValueError:
                error = {}
            raise GatewayError(
                f"Stripe refused the request: {error.get('message') or response.status_code}",
                gateway_code=error.get("code") or error.get("type"),
                gateway_status=response.status_code,
            )
        return response.json()

    async def create_link(self, request: LinkRequest) -> CreatedRequest:
        now = int(time.time())
        expires = min(max(int(request.expire_at.timestamp()), now + MIN_EXPIRY), now + MAX_EXPIRY)
        success = request.callback_url or "https://nidaan.invalid/paid"
        separator = "&" if "?" in success else "?"
        data: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": request.reference,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": request.amount_paise,
                        "product_data": {"name": request.description[:250]},
                    },
                }
            ],
            "metadata": dict(request.notes),
            "payment_intent_data": {"metadata": dict(request.notes)},
            "customer_email": request.customer.email,
            "success_url": f"{success}{separator}session_id={{CHECKOUT_SESSION_ID}}",
            "expires_at": expires,
        }
        session = await self._call(
            "POST", "/v1/checkout/sessions", data, idempotency_key=request.idempotency_key
        )
        return CreatedRequest(
            gateway_ref=session["id"],
            url=session.get("url"),
            image_url=None,
            status=session_status(session),
            raw=session,
        )

    async def create_upi_qr(self, request: QrRequest) -> CreatedRequest:
        raise GatewayUnsupported("Stripe has no UPI QR codes; use Razorpay or the counter QR.")

    async def fetch_image(self, url: str) -> bytes:
        raise GatewayUnsupported("Stripe has no QR images.")

    async def fetch_request(self, gateway_ref: str, kind: str) -> RequestState:
        session = await self._call("GET", f"/v1/checkout/sessions/{gateway_ref}")
        payments: tuple[PaymentState, ...] = ()
        intent_id = session.get("payment_intent")
        if intent_id:
            payments = (await self.fetch_payment(str(intent_id), request_ref=gateway_ref),)
        return RequestState(gateway_ref, session_status(session), payments, session)

    async def cancel_request(self, gateway_ref: str, kind: str) -> None:
        await self._call("POST", f"/v1/checkout/sessions/{gateway_ref}/expire", {})

    async def fetch_payment(
        self, gateway_payment_id: str, request_ref: str | None = None
    ) -> PaymentState:
        intent = await self._call("GET", f"/v1/payment_intents/{gateway_payment_id}")
        return intent_state(intent, request_ref)

    async def capture(
        self, gateway_payment_id: str, amount_paise: int, currency: str
    ) -> PaymentState:
        intent = await self._call(
            "POST",
            f"/v1/payment_intents/{gateway_payment_id}/capture",
            {"amount_to_capture": amount_paise},
            idempotency_key=f"capture-{gateway_payment_id}",
        )
        return intent_state(intent)

    async def refund(
        self, gateway_payment_id: str, amount_paise: int, *, refund_id: str, reason: str
    ) -> RefundState:
        refund = await self._call(
            "POST",
            "/v1/refunds",
            {
                "payment_intent": gateway_payment_id,
                "amount": amount_paise,
                "reason": "requested_by_customer",
                "metadata": {"refund_id": refund_id, "reason": reason[:500]},
            },
            idempotency_key=f"refund-{refund_id}",
        )
        return refund_state(refund)

    async def fetch_refund(self, gateway_refund_id: str, gateway_payment_id: str) -> RefundState:
        return refund_state(await self._call("GET", f"/v1/refunds/{gateway_refund_id}"))

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        self._verify(raw_body, headers.get("stripe-signature", ""))
        return self.read_webhook(raw_body, headers)

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Read a delivery whose signature was verified when it arrived."""
        try:
            event = json.loads(raw_body)
            event_id, kind = str(event["id"]), str(event["type"])
            obj = event["data"]["object"]
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookUnreadable(
                f"Not a Stripe event: {exc}", hashlib.sha256(raw_body).hexdigest()
            ) from None
        payments: tuple[PaymentState, ...] = ()
        refunds: tuple[RefundState, ...] = ()
        requests: tuple[RequestState, ...] = ()
        if kind.startswith("checkout.session."):
            found = session_payment(obj)
            payments = (found,) if found is not None else ()
            requests = (RequestState(str(obj["id"]), session_status(obj)),)
        elif kind.startswith("payment_intent."):
            payments = (intent_state(obj),)
        elif kind.startswith(("refund.", "charge.refund.")):
            refunds = (refund_state(obj),)
        return WebhookEvent(event_id, kind, payments, refunds, requests)

    def _verify(self, body: bytes, header: str) -> None:
        timestamp, signatures = None, []
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key == "t":
                timestamp = value
            elif key == "v1":
                signatures.append(value)
        if timestamp is None or not timestamp.isdigit() or not signatures:
            raise WebhookRejected("Stripe-Signature is missing its timestamp or v1 signature")
        signed = timestamp.encode() + b"." + body
        expected = hmac.new(self._webhook_secret.encode(), signed, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, s) for s in signatures):
            raise WebhookRejected("No Stripe-Signature v1 matches the body")
        # As stripe-python: only too old is refused (a clock behind Stripe's is tolerated).
        if int(timestamp) < time.time() - TOLERANCE_SECONDS:
            raise WebhookRejected("Stripe-Signature timestamp is outside the tolerance")
