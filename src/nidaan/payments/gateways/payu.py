"""PayU India: hosted checkout (a browser form POST to ``/_payment``), the ``postservice``
command API (verify_payment, cancel_refund_transaction, check_action_status) and the
transaction webhook/callback verified by PayU's reverse hash (fact sheet section 3).

PayU has no server-side "create link" call for hosted checkout: our payment link is a page
of ours (``/pay/payu/{token}``) that posts the signed form to PayU. Amounts are rupee
strings with two decimals ("450.00"); the hashes are SHA-512 over pipe-joined fields, built
here from the documentation (PayU's own Python SDK gets the reverse hash wrong).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import httpx

from nidaan.billing.domain import from_paise, to_paise
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

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
UDFS = ("udf1", "udf2", "udf3", "udf4", "udf5")
STATUS = {
    "success": PaymentStatus.CAPTURED,
    "failure": PaymentStatus.FAILED,
    "failed": PaymentStatus.FAILED,
    "pending": PaymentStatus.CREATED,
}
REFUND_STATUS = {
    "success": RefundStatus.PROCESSED,
    "failure": RefundStatus.FAILED,
    "failed": RefundStatus.FAILED,
}


def sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


def request_hash(fields: Mapping[str, str], salt: str) -> str:
    """key|txnid|amount|productinfo|firstname|email|udf1..udf5||||||SALT"""
    parts = [
        fields.get(k, "") for k in ("key", "txnid", "amount", "productinfo", "firstname", "email")
    ]
    parts += [fields.get(u, "") for u in UDFS]
    return sha512("|".join([*parts, "", "", "", "", "", salt]))


def reverse_hash(fields: Mapping[str, str], salt: str) -> str:
    """[additionalCharges|]SALT|status||||||udf5|udf4|udf3|udf2|udf1|email|firstname|
    productinfo|amount|txnid|key"""
    parts = [salt, fields.get("status", ""), "", "", "", "", ""]
    parts += [fields.get(u, "") for u in reversed(UDFS)]
    parts += [
        fields.get(k, "") for k in ("email", "firstname", "productinfo", "amount", "txnid", "key")
    ]
    text = "|".join(parts)
    if fields.get("additionalCharges"):
        text = f"{fields['additionalCharges']}|{text}"
    return sha512(text)


def command_hash(key: str, command: str, var1: str, salt: str) -> str:
    return sha512(f"{key}|{command}|{var1}|{salt}")


def rupee_string(paise: int) -> str:
    return f"{from_paise(paise):.2f}"


def paise_of(amount: Any) -> int:
    return to_paise(Decimal(str(amount)).quantize(Decimal("0.01")))


def transaction_state(details: Mapping[str, Any]) -> PaymentState | None:
    if not details.get("mihpayid"):
        return None
    return PaymentState(
        gateway_payment_id=str(details["mihpayid"]),
        status=STATUS.get(str(details.get("status", "")).lower(), PaymentStatus.CREATED),
        amount_paise=paise_of(
            details.get("transaction_amount") or details.get("amt") or details.get("amount") or 0
        ),
        currency="INR",
        method=details.get("mode"),
        request_ref=details.get("txnid"),
        notes={"payment_request_id": str(details.get("udf1") or "")},
        error=details.get("error_Message") or details.get("field9"),
        raw=dict(details),
    )


class PayUGateway:
    name: ClassVar[str] = "payu"
    supports_upi_qr: ClassVar[bool] = False
    needs_capture: ClassVar[bool] = False

    def __init__(self, payment_url: str, api_url: str, key: str, salt: str) -> None:
        self.payment_url = payment_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.key = key
        self._salt = salt

    # ------------------------------------------------------------------ checkout

    def checkout_form(
        self,
        *,
        txnid: str,
        amount_paise: int,
        productinfo: str,
        firstname: str,
        email: str,
        phone: str,
        surl: str,
        furl: str,
        udf1: str = "",
    ) -> tuple[str, dict[str, str]]:
        """The form our hosted page posts to PayU: (action URL, fields with the hash)."""
        fields = {
            "key": self.key,
            "txnid": txnid,
            "amount": rupee_string(amount_paise),
            "productinfo": productinfo[:100],
            "firstname": firstname[:60],
            "email": email,
            "phone": phone,
            "surl": surl,
            "furl": furl,
            "udf1": udf1,
        }
        fields["hash"] = request_hash(fields, self._salt)
        return f"{self.payment_url}/_payment", fields

    @staticmethod
    def txnid(reference: str, unique: str) -> str:
        """PayU's txnid: letters, digits and dashes, at most 25, unique per merchant (two
        labs on one merchant account both have an invoice CL/26-27/0001)."""
        clean = re.sub(r"[^A-Za-z0-9]+", "-", reference).strip("-")[:16]
        return f"{clean}-{re.sub(r'[^A-Za-z0-9]', '', unique)[-8:]}"

    async def create_link(self, request: LinkRequest) -> CreatedRequest:
        if not request.hosted_page_url:
            raise GatewayUnsupported("PayU checkout needs our hosted page URL.")
        txnid = self.txnid(request.reference, request.idempotency_key or request.reference)
        return CreatedRequest(
            gateway_ref=txnid,
            url=request.hosted_page_url,
            image_url=None,
            status=RequestStatus.CREATED,
            # PayU gets the payer in the checkout form our page posts (firstname, email and
            # phone are required there), so the request keeps them until the page is opened.
            raw={
                "txnid": txnid,
                "amount": rupee_string(request.amount_paise),
                "customer": {
                    "name": request.customer.name,
                    "email": request.customer.email,
                    "contact": request.customer.contact,
                },
            },
        )

    async def create_upi_qr(self, request: QrRequest) -> CreatedRequest:
        raise GatewayUnsupported("PayU hosted checkout has no QR API here; use Razorpay.")

    async def fetch_image(self, url: str) -> bytes:
        raise GatewayUnsupported("PayU has no QR images.")

    # ------------------------------------------------------------------ commands

    async def _command(self, command: str, var1: str, **more: str) -> dict[str, Any]:
        data = {
            "key": self.key,
            "command": command,
            "var1": var1,
            **more,
            "hash": command_hash(self.key, command, var1, self._salt),
        }
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.post(
                    f"{self.api_url}/merchant/postservice.php", params={"form": "2"}, data=data
                )
        except httpx.HTTPError as exc:
            raise GatewayError(f"PayU could not be reached: {type(exc).__name__}.") from None
        try:
            body = response.json()
        except ValueError:
            raise GatewayError(f"PayU answered {response.status_code} without JSON.") from None
        if response.status_code >= 400 or not isinstance(body, dict):
            raise GatewayError(f"PayU refused {command}: {response.status_code}")
        return body

    async def fetch_request(self, gateway_ref: str, kind: str) -> RequestState:
        body = await self._command("verify_payment", gateway_ref)
        details = (body.get("transaction_details") or {}).get(gateway_ref) or {}
        payment = transaction_state(details)
        status = RequestStatus.CREATED
        if payment is not None and payment.status is PaymentStatus.CAPTURED:
            status = RequestStatus.PAID
        return RequestState(gateway_ref, status, (payment,) if payment else (), body)

    async def cancel_request(self, gateway_ref: str, kind: str) -> None:
        """Nothing to cancel at PayU: our hosted page stops offering the form."""

    async def fetch_payment(self, gateway_payment_id: str) -> PaymentState:
        body = await self._command("check_payment", gateway_payment_id)
        details = body.get("transaction_details") or {}
        found = transaction_state(details.get(gateway_payment_id) or details)
        if found is None:
            raise GatewayError(f"PayU knows no payment {gateway_payment_id}.")
        return found

    async def capture(
        self, gateway_payment_id: str, amount_paise: int, currency: str
    ) -> PaymentState:
        # Hosted-checkout payments are captured by PayU itself.
        return await self.fetch_payment(gateway_payment_id)

    async def refund(
        self, gateway_payment_id: str, amount_paise: int, *, refund_id: str, reason: str
    ) -> RefundState:
        body = await self._command(
            "cancel_refund_transaction",
            gateway_payment_id,
            var2=refund_id.replace("-", "")[:32],
            var3=rupee_string(amount_paise),
        )
        if str(body.get("status")) != "1" or not body.get("request_id"):
            raise GatewayError(
                f"PayU refused the refund: {body.get('msg') or body.get('error_code')}",
                gateway_code=body.get("error_code"),
            )
        return RefundState(
            gateway_refund_id=str(body["request_id"]),
            gateway_payment_id=gateway_payment_id,
            amount_paise=amount_paise,
            status=RefundStatus.PENDING,
            notes={"refund_id": refund_id},
            raw=body,
        )

    async def fetch_refund(self, gateway_refund_id: str, gateway_payment_id: str) -> RefundState:
        body = await self._command("check_action_status", gateway_refund_id)
        actions = (body.get("transaction_details") or {}).get(gateway_refund_id) or {}
        action = actions.get(gateway_payment_id) or next(iter(actions.values()), {})
        if not action:
            raise GatewayError(f"PayU knows no refund {gateway_refund_id}.")
        return RefundState(
            gateway_refund_id=gateway_refund_id,
            gateway_payment_id=str(action.get("mihpayid") or gateway_payment_id),
            amount_paise=paise_of(action.get("amount") or 0),
            status=REFUND_STATUS.get(str(action.get("status", "")).lower(), RefundStatus.PENDING),
            raw=dict(action),
        )

    # ------------------------------------------------------------------ callbacks

    @staticmethod
    def read_fields(raw_body: bytes, content_type: str) -> dict[str, str]:
        if "json" in content_type:
            data = json.loads(raw_body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return {str(k): "" if v is None else str(v) for k, v in data.items()}
        return dict(parse_qsl(raw_body.decode(), keep_blank_values=True))

    def verify_fields(self, fields: Mapping[str, str]) -> None:
        given = fields.get("hash", "").lower()
        if fields.get("key") != self.key or not given:
            raise WebhookRejected("PayU callback for another merchant key, or without a hash")
        if not hmac.compare_digest(given, reverse_hash(fields, self._salt)):
            raise WebhookRejected("PayU reverse hash does not match")

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return self._parse(raw_body, headers, verify=True)

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Read a delivery whose hash was verified when it arrived."""
        return self._parse(raw_body, headers, verify=False)

    def _parse(self, raw_body: bytes, headers: Mapping[str, str], *, verify: bool) -> WebhookEvent:
        try:
            fields = self.read_fields(raw_body, headers.get("content-type", ""))
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected("PayU callback body is neither a form nor JSON") from None
        if fields.get("action") == "refund":
            # Refund callbacks carry no hash: nothing in them is believed; the refund is
            # looked up with check_action_status before anything changes.
            if fields.get("key") not in (None, "", self.key) or not fields.get("request_id"):
                raise WebhookRejected("PayU refund callback without a request id")
            request_id = fields["request_id"]
            return WebhookEvent(
                event_id=f"refund:{request_id}:{fields.get('status', '')}",
                event_type="refund",
                refunds=(
                    RefundState(
                        gateway_refund_id=request_id,
                        gateway_payment_id=fields.get("mihpayid", ""),
                        amount_paise=0,
                        status=RefundStatus.PENDING,
                        notes={"token": fields.get("token", "")},
                    ),
                ),
                refunds_need_confirmation=True,
            )
        if verify:
            self.verify_fields(fields)
        event_id = f"{fields.get('txnid')}:{fields.get('mihpayid')}:{fields.get('status')}"
        try:
            payment = transaction_state(fields)
        except (ValueError, ArithmeticError) as exc:
            raise WebhookUnreadable(f"PayU callback amount unreadable: {exc}", event_id) from None
        if payment is None:
            raise WebhookUnreadable("PayU callback without mihpayid", event_id)
        status = RequestStatus.PAID if payment.status is PaymentStatus.CAPTURED else None
        return WebhookEvent(
            event_id=event_id,
            event_type=f"payment.{fields.get('status', 'unknown')}",
            payments=(payment,),
            requests=(RequestState(fields["txnid"], status),) if status else (),
        )
