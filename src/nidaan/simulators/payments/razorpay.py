"""A Razorpay simulator: the ``/v1`` endpoints Nidaan calls (Payment Links, QR Codes,
payments, capture, refunds) with Razorpay's entity shapes, statuses and error bodies, a
hosted page where a person "pays" a link, and webhooks signed as Razorpay signs them
(``X-Razorpay-Signature`` = hex HMAC-SHA256 of the raw body with the webhook secret,
``X-Razorpay-Event-Id``).

Test controls live under ``/_sim``: pay a link or QR programmatically (also with a wrong
amount or currency, or leaving the payment ``authorized``), settle refunds, and the webhook
delivery modes of ``common.WebhookDispatcher``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import segno
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from nidaan.payments.gateways import demo as demo_keys
from nidaan.simulators.payments.common import (
    WebhookDispatcher,
    control_router,
    local_path,
    now,
    page,
    random_id,
    rupees_text,
)

DEMO_KEY_ID = demo_keys.RAZORPAY_KEY_ID
DEMO_KEY_SECRET = demo_keys.RAZORPAY_KEY_SECRET
DEMO_WEBHOOK_SECRET = demo_keys.RAZORPAY_WEBHOOK_SECRET


class RazorpayError(Exception):
    def __init__(self, description: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(description)
        self.description, self.field, self.status = description, field, status


class PayControl(BaseModel):
    outcome: str = "success"  # success | failure
    amount: int | None = None  # paise; differs from the link to test mismatches
    currency: str | None = None
    method: str = "upi"
    capture: bool = True  # False leaves the payment authorized


class RefundControl(BaseModel):
    outcome: str = "processed"  # processed | failed


class RazorpaySimulator:
    def __init__(
        self,
        *,
        public_url: str,
        webhook_url: str | None,
        key_id: str = DEMO_KEY_ID,
        key_secret: str = DEMO_KEY_SECRET,
        webhook_secret: str = DEMO_WEBHOOK_SECRET,
        auto_process_refunds: bool = True,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.key_id, self.key_secret, self.webhook_secret = key_id, key_secret, webhook_secret
        self.auto_process_refunds = auto_process_refunds
        self.webhooks = WebhookDispatcher(webhook_url)
        self.links: dict[str, dict[str, Any]] = {}
        self.qr_codes: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.qr_payments: dict[str, list[str]] = {}
        self.app = self._build()

    # ------------------------------------------------------------------ events

    def event(self, kind: str, **entities: dict[str, Any]) -> None:
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_NidaanSim0001",
                "event": kind,
                "contains": list(entities),
                "payload": {name: {"entity": entity} for name, entity in entities.items()},
                "created_at": now(),
            },
            separators=(",", ":"),
        ).encode()
        event_id = random_id("evt_")
        signature = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        self.webhooks.emit(
            event_id,
            kind,
            body,
            {
                "Content-Type": "application/json",
                "X-Razorpay-Signature": signature,
                "X-Razorpay-Event-Id": event_id,
                "User-Agent": "Razorpay-Webhook/v1",
            },
        )

    # ------------------------------------------------------------------ money moves

    def pay(
        self,
        *,
        link: dict[str, Any] | None = None,
        qr: dict[str, Any] | None = None,
        control: PayControl,
    ) -> dict[str, Any]:
        source = link or qr
        assert source is not None
        amount = control.amount or (
            link["amount"] - link["amount_paid"] if link else qr["payment_amount"]  # type: ignore[index]
        )
        order = None
        if link is not None:
            order = self.orders.get(link["order_id"]) or self._order(link)
        notes = source.get("notes") or []
        payment = {
            "id": random_id("pay_"),
            "entity": "payment",
            "amount": amount,
            "currency": control.currency or "INR",
            "status": "created",
            "order_id": order["id"] if order else None,
            "invoice_id": None,
            "international": False,
            "method": control.method,
            "amount_refunded": 0,
            "refund_status": None,
            "captured": False,
            "description": source.get("description"),
            "card_id": None,
            "bank": None,
            "wallet": None,
            "vpa": "success@razorpay" if control.method == "upi" else None,
            "email": (link or {}).get("customer", {}).get("email") or "void@razorpay.com",
            "contact": (link or {}).get("customer", {}).get("contact") or "+919000090000",
            "notes": notes,
            "fee": None,
            "tax": None,
            "error_code": None,
            "error_description": None,
            "error_source": None,
            "error_step": None,
            "error_reason": None,
            "acquirer_data": {"rrn": str(secrets.randbelow(10**12)).zfill(12)},
            "created_at": now(),
        }
        self.payments[payment["id"]] = payment
        if qr is not None:
            self.qr_payments.setdefault(qr["id"], []).append(payment["id"])
        if control.outcome != "success":
            payment |= {
                "status": "failed",
                "error_code": "BAD_REQUEST_ERROR",
                "error_description": "Payment was declined by the payer (simulated).",
                "error_reason": "payment_failed",
            }
            self.event("payment.failed", payment=dict(payment))
            return payment
        payment["status"] = "authorized"
        self.event("payment.authorized", payment=dict(payment))
        if control.capture:
            self._capture(payment)
        if order is not None:
            order["amount_paid"] += amount
            order["amount_due"] = max(order["amount"] - order["amount_paid"], 0)
            order["attempts"] += 1
            order["status"] = "paid" if order["amount_due"] == 0 else "attempted"
        if link is not None and control.capture:
            link["amount_paid"] += amount
            link["payments"].append(
                {
                    "amount": amount,
                    "created_at": now(),
                    "method": control.method,
                    "payment_id": payment["id"],
                    "plink_id": link["id"],
                    "status": "captured",
                    "updated_at": now(),
                }
            )
            full = link["amount_paid"] >= link["amount"]
            link["status"] = "paid" if full else "partially_paid"
            link["updated_at"] = now()
            if order is not None and order["status"] == "paid":
                self.event("order.paid", payment=dict(payment), order=dict(order))
            self.event(
                "payment_link.paid" if full else "payment_link.partially_paid",
                payment_link=dict(link),
                order=dict(order or {}),
                payment=dict(payment),
            )
        if qr is not None and control.capture:
            qr["payments_amount_received"] += amount
            qr["payments_count_received"] += 1
            if qr["usage"] == "single_use":
                qr |= {"status": "closed", "closed_at": now(), "close_reason": "paid"}
            self.event("qr_code.credited", qr_code=dict(qr), payment=dict(payment))
        return payment

    def _order(self, link: dict[str, Any]) -> dict[str, Any]:
        order = {
            "id": random_id("order_"),
            "entity": "order",
            "amount": link["amount"],
            "amount_paid": 0,
            "amount_due": link["amount"],
            "currency": link["currency"],
            "receipt": link["reference_id"],
            "offer_id": None,
            "status": "created",
            "attempts": 0,
            "notes": link.get("notes") or [],
            "created_at": now(),
        }
        self.orders[order["id"]] = order
        link["order_id"] = order["id"]
        return order

    def _capture(self, payment: dict[str, Any]) -> None:
        payment |= {"status": "captured", "captured": True}
        payment["fee"] = payment["amount"] * 2 // 100
        payment["tax"] = payment["fee"] * 18 // 118
        self.event("payment.captured", payment=dict(payment))

    def _refund(self, payment: dict[str, Any], amount: int, body: dict[str, Any]) -> dict[str, Any]:
        refund = {
            "id": random_id("rfnd_"),
            "entity": "refund",
            "amount": amount,
            "currency": payment["currency"],
            "payment_id": payment["id"],
            "notes": body.get("notes") or [],
            "receipt": body.get("receipt"),
            "acquirer_data": {"arn": None},
            "created_at": now(),
            "batch_id": None,
            "status": "pending",
            "speed_processed": "normal",
            "speed_requested": body.get("speed", "normal"),
        }
        self.refunds[refund["id"]] = refund
        payment["amount_refunded"] += amount
        payment["refund_status"] = (
            "full" if payment["amount_refunded"] >= payment["amount"] else "partial"
        )
        if payment["refund_status"] == "full":
            payment["status"] = "refunded"
        self.event("refund.created", refund=dict(refund), payment=dict(payment))
        if self.auto_process_refunds:
            self.settle_refund(refund, "processed")
        return refund

    def settle_refund(self, refund: dict[str, Any], outcome: str) -> None:
        payment = self.payments[refund["payment_id"]]
        if outcome == "processed":
            refund |= {"status": "processed", "acquirer_data": {"arn": random_id("", 12).upper()}}
            self.event("refund.processed", refund=dict(refund), payment=dict(payment))
        else:
            refund["status"] = "failed"
            payment["amount_refunded"] -= refund["amount"]
            self.event("refund.failed", refund=dict(refund), payment=dict(payment))

    # ------------------------------------------------------------------ app

    def _authorised(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            key, _, secret = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(key, self.key_id) and hmac.compare_digest(
            secret, self.key_secret
        )

    def _build(self) -> FastAPI:
        app = FastAPI(title="Razorpay simulator", docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(control_router(self.webhooks))

        @app.middleware("http")
        async def api_auth(request: Request, call_next):  # type: ignore[no-untyped-def]
            if local_path(request).startswith("/v1/") and not self._authorised(request):
                return JSONResponse(
                    {
                        "error": {
                            "code": "BAD_REQUEST_ERROR",
                            "description": "Authentication failed",
                            "source": "NA",
                            "step": "NA",
                            "reason": "NA",
                            "metadata": {},
                        }
                    },
                    status_code=401,
                )
            try:
                return await call_next(request)
            except RazorpayError as exc:
                return JSONResponse(
                    {
                        "error": {
                            "code": "BAD_REQUEST_ERROR",
                            "description": exc.description,
                            "field": exc.field,
                            "source": "business",
                            "step": "NA",
                            "reason": "input_validation_failed",
                            "metadata": {},
                        }
                    },
                    status_code=exc.status,
                )

        def found(table: dict[str, dict[str, Any]], key: str, what: str) -> dict[str, Any]:
            if key not in table:
                raise RazorpayError("The id provided does not exist", what, 400)
            return table[key]

        @app.post("/v1/payment_links")
        async def create_link(request: Request) -> dict[str, Any]:
            body = await request.json()
            amount = body.get("amount")
            if not isinstance(amount, int) or amount < 100:
                raise RazorpayError("Order amount less than minimum amount allowed", "amount")
            if body.get("currency", "INR") != "INR":
                raise RazorpayError("Currency is not supported", "currency")
            reference = body.get("reference_id")
            if reference and (
                len(reference) > 40
                or any(known["reference_id"] == reference for known in self.links.values())
            ):
                raise RazorpayError(
                    f"Payment Link with reference id {reference} already exists",
                    "reference_id",
                )
            expire_by = body.get("expire_by")
            if expire_by is not None and int(expire_by) < now() + 15 * 60:
                raise RazorpayError(
                    "expire_by should be at least 15 minutes after current time", "expire_by"
                )
            link_id = random_id("plink_")
            link = {
                "id": link_id,
                "accept_partial": bool(body.get("accept_partial", False)),
                "amount": amount,
                "amount_paid": 0,
                "callback_method": body.get("callback_method", ""),
                "callback_url": body.get("callback_url", ""),
                "cancelled_at": 0,
                "created_at": now(),
                "currency": "INR",
                "customer": body.get("customer") or {},
                "description": body.get("description", ""),
                "expire_by": expire_by or now() + 180 * 86400,
                "expired_at": 0,
                "first_min_partial_amount": body.get("first_min_partial_amount", 0),
                "notes": body.get("notes") or [],
                "notify": body.get("notify") or {"email": False, "sms": False},
                "order_id": "",
                "payments": [],
                "reference_id": reference or "",
                "reminder_enable": bool(body.get("reminder_enable", False)),
                "reminders": [],
                "short_url": f"{self.public_url}/pay/{link_id}",
                "status": "created",
                "updated_at": now(),
                "upi_link": bool(body.get("upi_link", False)),
                "user_id": "",
            }
            self.links[link_id] = link
            return link

        @app.get("/v1/payment_links/{link_id}")
        async def get_link(link_id: str) -> dict[str, Any]:
            return self._expire(found(self.links, link_id, "id"))

        @app.post("/v1/payment_links/{link_id}/cancel")
        async def cancel_link(link_id: str) -> dict[str, Any]:
            link = self._expire(found(self.links, link_id, "id"))
            if link["status"] != "created":
                raise RazorpayError(f"Payment Link cannot be cancelled in {link['status']} state")
            link |= {"status": "cancelled", "cancelled_at": now(), "updated_at": now()}
            self.event("payment_link.cancelled", payment_link=dict(link))
            return link

        @app.post("/v1/payments/qr_codes")
        async def create_qr(request: Request) -> dict[str, Any]:
            body = await request.json()
            if body.get("type") not in ("upi_qr", "bharat_qr"):
                raise RazorpayError("type is invalid", "type")
            fixed = bool(body.get("fixed_amount", False))
            amount = body.get("payment_amount")
            if fixed and (not isinstance(amount, int) or amount < 100):
                raise RazorpayError(
                    "payment_amount is required when fixed_amount is true", "payment_amount"
                )
            close_by = body.get("close_by")
            if close_by is not None and int(close_by) < now() + 15 * 60:
                raise RazorpayError(
                    "close_by should be at least 15 minutes after current time", "close_by"
                )
            qr_id = random_id("qr_")
            qr = {
                "id": qr_id,
                "entity": "qr_code",
                "created_at": now(),
                "name": body.get("name", ""),
                "usage": body.get("usage", "multiple_use"),
                "type": body["type"],
                "image_url": f"{self.public_url}/qr/{qr_id}.png",
                "payment_amount": amount if fixed else None,
                "status": "active",
                "description": body.get("description", ""),
                "fixed_amount": fixed,
                "payments_amount_received": 0,
                "payments_count_received": 0,
                "notes": body.get("notes") or [],
                "customer_id": body.get("customer_id"),
                "close_by": close_by,
                "closed_at": None,
                "close_reason": None,
            }
            self.qr_codes[qr_id] = qr
            return qr

        @app.get("/v1/payments/qr_codes/{qr_id}")
        async def get_qr(qr_id: str) -> dict[str, Any]:
            return found(self.qr_codes, qr_id, "id")

        @app.get("/v1/payments/qr_codes/{qr_id}/payments")
        async def qr_payments(qr_id: str) -> dict[str, Any]:
            found(self.qr_codes, qr_id, "id")
            items = [self.payments[p] for p in self.qr_payments.get(qr_id, [])]
            return {"entity": "collection", "count": len(items), "items": items}

        @app.post("/v1/payments/qr_codes/{qr_id}/close")
        async def close_qr(qr_id: str) -> dict[str, Any]:
            qr = found(self.qr_codes, qr_id, "id")
            if qr["status"] == "closed":
                raise RazorpayError("QR code is already closed")
            qr |= {"status": "closed", "closed_at": now(), "close_reason": "on_demand"}
            self.event("qr_code.closed", qr_code=dict(qr))
            return qr

        @app.get("/v1/payments/{payment_id}")
        async def get_payment(payment_id: str) -> dict[str, Any]:
            return found(self.payments, payment_id, "id")

        @app.post("/v1/payments/{payment_id}/capture")
        async def capture(payment_id: str, request: Request) -> dict[str, Any]:
            payment = found(self.payments, payment_id, "id")
            body = await request.json()
            if payment["status"] != "authorized":
                raise RazorpayError(
                    "This payment has already been captured"
                    if payment["status"] == "captured"
                    else "Only payments which have been authorized can be captured"
                )
            if body.get("amount") != payment["amount"]:
                raise RazorpayError(
                    "Capture amount must be equal to the amount authorized", "amount"
                )
            if body.get("currency", payment["currency"]) != payment["currency"]:
                raise RazorpayError("Currency should be same as payment currency", "currency")
            self._capture(payment)
            return payment

        @app.post("/v1/payments/{payment_id}/refund")
        async def refund(payment_id: str, request: Request) -> dict[str, Any]:
            payment = found(self.payments, payment_id, "id")
            body = await request.json() if await request.body() else {}
            if payment["status"] not in ("captured", "refunded"):
                raise RazorpayError("Payment is not captured; it cannot be refunded")
            left = payment["amount"] - payment["amount_refunded"]
            amount = body.get("amount", left)
            if not isinstance(amount, int) or amount < 100 or amount > left:
                raise RazorpayError(
                    "The refund amount provided is greater than amount captured"
                    if isinstance(amount, int) and amount > left
                    else "The amount must be atleast INR 1.00",
                    "amount",
                )
            return self._refund(payment, amount, body)

        @app.get("/v1/refunds/{refund_id}")
        async def get_refund(refund_id: str) -> dict[str, Any]:
            return found(self.refunds, refund_id, "id")

        # ---------------------------------------------------------- hosted pages

        @app.get("/pay/{link_id}")
        async def hosted_link(link_id: str) -> Response:
            link = self.links.get(link_id)
            if link is None:
                return page("Razorpay", "#2b63f6", "Not found", "<p>No such link.</p>", 404)
            self._expire(link)
            if link["status"] != "created":
                return page(
                    "Razorpay",
                    "#2b63f6",
                    "Payment link",
                    f"<p>This link is <b>{link['status']}</b>.</p>",
                )
            due = link["amount"] - link["amount_paid"]
            body = (
                f"<p class='muted'>{link['description']}</p>"
                f"<div class='amount'>{rupees_text(due)}</div>"
                f"<p class='muted'>Reference {link['reference_id']}</p>"
                f"<form method='post'><input type='hidden' name='outcome' value='success'>"
                f"<button class='pay'>Pay {rupees_text(due)} with UPI</button></form>"
                f"<form method='post'><input type='hidden' name='outcome' value='failure'>"
                f"<button class='fail'>Decline</button></form>"
            )
            return page("Razorpay", "#2b63f6", "Pay with Razorpay", body)

        @app.post("/pay/{link_id}")
        async def hosted_pay(link_id: str, outcome: str = Form("success")) -> Response:
            link = self.links.get(link_id)
            if link is None or self._expire(link)["status"] != "created":
                return page("Razorpay", "#2b63f6", "Payment link", "<p>Not payable.</p>", 409)
            payment = self.pay(link=link, control=PayControl(outcome=outcome))
            if link.get("callback_url") and payment["status"] == "captured":
                params = {
                    "razorpay_payment_id": payment["id"],
                    "razorpay_payment_link_id": link["id"],
                    "razorpay_payment_link_reference_id": link["reference_id"],
                    "razorpay_payment_link_status": link["status"],
                }
                signed = "|".join([link["id"], link["reference_id"], link["status"], payment["id"]])
                params["razorpay_signature"] = hmac.new(
                    self.key_secret.encode(), signed.encode(), hashlib.sha256
                ).hexdigest()
                separator = "&" if "?" in link["callback_url"] else "?"
                return RedirectResponse(
                    f"{link['callback_url']}{separator}{urlencode(params)}", status_code=303
                )
            text = "Payment successful" if payment["status"] == "captured" else "Payment failed"
            return page(
                "Razorpay", "#2b63f6", text, f"<h2>{text}</h2><p class='muted'>{payment['id']}</p>"
            )

        @app.get("/qr/{qr_id}.png")
        async def qr_png(qr_id: str) -> Response:
            qr = self.qr_codes.get(qr_id)
            if qr is None:
                return Response(status_code=404)
            amount = qr["payment_amount"] or 0
            uri = (
                f"upi://pay?pa=rzp.sim@icici&pn=Razorpay%20Simulator&tr={qr_id}"
                f"&am={amount // 100}.{amount % 100:02d}&cu=INR"
            )
            buffer = io.BytesIO()
            segno.make(uri, error="m").save(buffer, kind="png", scale=6, border=4)
            return Response(buffer.getvalue(), media_type="image/png")

        # ---------------------------------------------------------- controls

        @app.post("/_sim/payment_links/{link_id}/pay", include_in_schema=False)
        async def control_pay_link(link_id: str, control: PayControl) -> dict[str, Any]:
            link = found(self.links, link_id, "id")
            if self._expire(link)["status"] != "created":
                raise RazorpayError(f"Link is {link['status']}")
            return self.pay(link=link, control=control)

        @app.post("/_sim/qr_codes/{qr_id}/pay", include_in_schema=False)
        async def control_pay_qr(qr_id: str, control: PayControl) -> dict[str, Any]:
            qr = found(self.qr_codes, qr_id, "id")
            if qr["status"] != "active":
                raise RazorpayError("QR code is closed")
            return self.pay(qr=qr, control=control)

        @app.post("/_sim/payment_links/{link_id}/expire", include_in_schema=False)
        async def control_expire(link_id: str) -> dict[str, Any]:
            link = found(self.links, link_id, "id")
            link["expire_by"] = now() - 1
            return self._expire(link)

        @app.post("/_sim/refunds/{refund_id}/settle", include_in_schema=False)
        async def control_refund(refund_id: str, control: RefundControl) -> dict[str, Any]:
            refund = found(self.refunds, refund_id, "id")
            if refund["status"] != "pending":
                raise RazorpayError(f"Refund is {refund['status']}")
            self.settle_refund(refund, control.outcome)
            return refund

        return app

    def _expire(self, link: dict[str, Any]) -> dict[str, Any]:
        if link["status"] == "created" and link["expire_by"] and link["expire_by"] < now():
            link |= {"status": "expired", "expired_at": now(), "updated_at": now()}
            self.event("payment_link.expired", payment_link=dict(link))
        return link
