"""Razorpay (primary gateway): Payment Links, UPI QR Codes, payments, capture, refunds and
webhooks, over its REST API (``/v1``) with httpx.

Auth is HTTP Basic with the key id and key secret. Webhooks carry ``X-Razorpay-Signature``:
the hex HMAC-SHA256 of the raw body keyed with the *webhook* secret (not the key secret),
and ``X-Razorpay-Event-Id`` for de-duplication (fact sheet section 1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from nidaan.payments.gateways.base import (
    CreatedRequest,
    DuplicateReference,
    GatewayError,
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

PAYMENT_STATUS = {
    "created": PaymentStatus.CREATED,
    "authorized": PaymentStatus.AUTHORIZED,
    "captured": PaymentStatus.CAPTURED,
    # A refunded payment was captured first; refunds are tracked on their own.
    "refunded": PaymentStatus.CAPTURED,
    "failed": PaymentStatus.FAILED,
}
LINK_STATUS = {
    "created": RequestStatus.CREATED,
    "issued": RequestStatus.CREATED,
    "partially_paid": RequestStatus.PARTIALLY_PAID,
    "paid": RequestStatus.PAID,
    "expired": RequestStatus.EXPIRED,
    "cancelled": RequestStatus.CANCELLED,
}
REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "created": RefundStatus.PENDING,
    "processed": RefundStatus.PROCESSED,
    "failed": RefundStatus.FAILED,
}


def webhook_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _notes(value: Any) -> dict[str, str]:
    # Razorpay sends an empty list for "no notes".
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def payment_state(entity: Mapping[str, Any], request_ref: str | None = None) -> PaymentState:
    return PaymentState(
        gateway_payment_id=str(entity["id"]),
        status=PAYMENT_STATUS.get(str(entity.get("status")), PaymentStatus.CREATED),
        amount_paise=int(entity["amount"]),
        currency=str(entity.get("currency", "")).upper(),
        method=entity.get("method"),
        request_ref=request_ref,
        notes=_notes(entity.get("notes")),
        error=entity.get("error_description"),
        raw=dict(entity),
    )


def refund_state(entity: Mapping[str, Any]) -> RefundState:
    return RefundState(
        gateway_refund_id=str(entity["id"]),
        gateway_payment_id=str(entity["payment_id"]),
        amount_paise=int(entity["amount"]),
        status=REFUND_STATUS.get(str(entity.get("status")), RefundStatus.PENDING),
        notes=_notes(entity.get("notes")),
        raw=dict(entity),
    )


class RazorpayGateway:
    name: ClassVar[str] = "razorpay"
    supports_upi_qr: ClassVar[bool] = True
    needs_capture: ClassVar[bool] = True

    def __init__(self, base_url: str, key_id: str, key_secret: str, webhook_secret: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = (key_id, key_secret)
        self._webhook_secret = webhook_secret

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url, auth=self._auth, timeout=TIMEOUT
            ) as client:
                response = await client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise GatewayError(f"Razorpay could not be reached: {type(exc).__name__}.") from None
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
            except ValueError:
                error = {}
            description = str(error.get("description") or "")
            kind = DuplicateReference if "reference id" in description.lower() else GatewayError
            raise kind(
                f"Razorpay refused the request: {description or response.status_code}",
                gateway_code=error.get("code"),
                gateway_status=response.status_code,
            )
        return response.json()

    # ------------------------------------------------------------------ requests

    async def create_link(self, request: LinkRequest) -> CreatedRequest:
        body: dict[str, Any] = {
            "amount": request.amount_paise,
            "currency": request.currency,
            "accept_partial": False,
            "reference_id": request.reference[:40],
            "description": request.description[:2048],
            "customer": {
                key: value
                for key, value in (
                    ("name", request.customer.name),
                    ("email", request.customer.email),
                    ("contact", request.customer.contact),
                )
                if value
            },
            "notify": {"sms": request.notify_sms, "email": request.notify_email},
            "reminder_enable": False,
            "notes": dict(request.notes),
            "expire_by": int(request.expire_at.timestamp()),
        }
        if request.callback_url:
            body |= {"callback_url": request.callback_url, "callback_method": "get"}
        entity = await self._call("POST", "/v1/payment_links", body)
        return CreatedRequest(
            gateway_ref=entity["id"],
            url=entity.get("short_url"),
            image_url=None,
            status=LINK_STATUS.get(entity.get("status", "created"), RequestStatus.CREATED),
            raw=entity,
        )

    async def create_upi_qr(self, request: QrRequest) -> CreatedRequest:
        entity = await self._call(
            "POST",
            "/v1/payments/qr_codes",
            {
                "type": "upi_qr",
                "name": request.customer_name[:100],
                "usage": "single_use",
                "fixed_amount": True,
                "payment_amount": request.amount_paise,
                "description": request.description[:200],
                "close_by": int(request.close_at.timestamp()),
                "notes": dict(request.notes),
            },
        )
        return CreatedRequest(
            gateway_ref=entity["id"],
            url=None,
            image_url=entity.get("image_url"),
            status=RequestStatus.CREATED
            if entity.get("status") == "active"
            else RequestStatus.CLOSED,
            raw=entity,
        )

    async def fetch_image(self, url: str) -> bytes:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True) as client:
                response = await client.get(url)
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"The QR image could not be fetched: {type(exc).__name__}."
            ) from None
        if response.status_code != 200 or not response.content.startswith(b"\x89PNG"):
            raise GatewayError("The gateway's QR image is not a PNG.")
        return response.content

    async def fetch_request(self, gateway_ref: str, kind: str) -> RequestState:
        if kind == "upi_qr":
            entity = await self._call("GET", f"/v1/payments/qr_codes/{gateway_ref}")
            listed = await self._call("GET", f"/v1/payments/qr_codes/{gateway_ref}/payments")
            payments = tuple(payment_state(p, gateway_ref) for p in listed.get("items", []))
            status = (
                RequestStatus.CREATED if entity.get("status") == "active" else RequestStatus.CLOSED
            )
            if any(p.status is PaymentStatus.CAPTURED for p in payments):
                status = RequestStatus.PAID
            return RequestState(gateway_ref, status, payments, entity)
        entity = await self._call("GET", f"/v1/payment_links/{gateway_ref}")
        payments = tuple(
            [
                await self.fetch_payment(str(p["payment_id"]), request_ref=gateway_ref)
                for p in entity.get("payments") or []
            ]
        )
        status = LINK_STATUS.get(str(entity.get("status")), RequestStatus.CREATED)
        return RequestState(gateway_ref, status, payments, entity)

    async def cancel_request(self, gateway_ref: str, kind: str) -> None:
        if kind == "upi_qr":
            await self._call("POST", f"/v1/payments/qr_codes/{gateway_ref}/close")
        else:
            await self._call("POST", f"/v1/payment_links/{gateway_ref}/cancel")

    # ------------------------------------------------------------------ payments

    async def fetch_payment(
        self, gateway_payment_id: str, request_ref: str | None = None
    ) -> PaymentState:
        entity = await self._call("GET", f"/v1/payments/{gateway_payment_id}")
        return payment_state(entity, request_ref)

    async def capture(
        self, gateway_payment_id: str, amount_paise: int, currency: str
    ) -> PaymentState:
        entity = await self._call(
            "POST",
            f"/v1/payments/{gateway_payment_id}/capture",
            {"amount": amount_paise, "currency": currency},
        )
        return payment_state(entity)

    async def refund(
        self, gateway_payment_id: str, amount_paise: int, *, refund_id: str, reason: str
    ) -> RefundState:
        entity = await self._call(
            "POST",
            f"/v1/payments/{gateway_payment_id}/refund",
            {
                "amount": amount_paise,
                "speed": "normal",
                "receipt": refund_id[:40],
                "notes": {"refund_id": refund_id, "reason": reason[:256]},
            },
        )
        return refund_state(entity)

    async def fetch_refund(self, gateway_refund_id: str, gateway_payment_id: str) -> RefundState:
        return refund_state(await self._call("GET", f"/v1/refunds/{gateway_refund_id}"))

    def callback_signature_valid(self, fields: list[str], signature: str) -> bool:
        """The payment-link redirect's signature: HMAC-SHA256 of ``link_id|reference_id|
        status|payment_id`` keyed with the *key secret*."""
        expected = hmac.new(
            self._auth[1].encode(), "|".join(fields).encode(), hashlib.sha256
        ).hexdigest()
        return bool(signature) and hmac.compare_digest(expected, signature.lower())

    # ------------------------------------------------------------------ webhooks

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        given = headers.get("x-razorpay-signature", "")
        expected = webhook_signature(raw_body, self._webhook_secret)
        if not given or not hmac.compare_digest(given.strip().lower(), expected):
            raise WebhookRejected("X-Razorpay-Signature does not match the body")
        return self.read_webhook(raw_body, headers)

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Read a delivery whose signature was verified when it arrived."""
        event_id = headers.get("x-razorpay-event-id") or hashlib.sha256(raw_body).hexdigest()
        try:
            body = json.loads(raw_body)
            kind = str(body["event"])
            payload = body.get("payload") or {}
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookUnreadable(f"Not a Razorpay event: {exc}", event_id) from None
        return self._read(event_id, kind, payload)

    @staticmethod
    def _read(event_id: str, kind: str, payload: Mapping[str, Any]) -> WebhookEvent:
        def entity(name: str) -> dict[str, Any] | None:
            found = payload.get(name)
            return found.get("entity") if isinstance(found, dict) else None

        link, qr = entity("payment_link"), entity("qr_code")
        payment, refund = entity("payment"), entity("refund")
        request_ref = (link or qr or {}).get("id")
        requests: list[RequestState] = []
        if link is not None:
            requests.append(
                RequestState(
                    link["id"], LINK_STATUS.get(str(link.get("status")), RequestStatus.CREATED)
                )
            )
        if qr is not None:
            closed = qr.get("status") == "closed" or kind == "qr_code.closed"
            status = RequestStatus.CLOSED if closed else RequestStatus.CREATED
            if kind == "qr_code.credited":
                status = RequestStatus.PAID
            requests.append(RequestState(qr["id"], status))
        payments: list[PaymentState] = []
        refunds: list[RefundState] = []
        if refund is not None:
            refunds.append(refund_state(refund))
        elif payment is not None:
            payments.append(payment_state(payment, request_ref))
        return WebhookEvent(
            event_id=event_id,
            event_type=kind,
            payments=tuple(payments),
            refunds=tuple(refunds),
            requests=tuple(requests),
        )
