"""A Stripe simulator: Checkout Sessions (our payment link), PaymentIntents, capture and
refunds on the v1 API (form-encoded bodies in bracket notation, Bearer secret key,
Stripe's error shape and ``Idempotency-Key`` replay), a hosted checkout page, and events
delivered with ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``.

The official ``stripe`` package works against it (``base_addresses={"api": url}``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import parse_qsl

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

DEMO_SECRET_KEY = demo_keys.STRIPE_SECRET_KEY
DEMO_WEBHOOK_SECRET = demo_keys.STRIPE_WEBHOOK_SECRET
API_VERSION = "2024-06-20"
BRAND = ("Stripe", "#635bff")


class StripeError(Exception):
    def __init__(
        self,
        message: str,
        param: str | None = None,
        status: int = 400,
        kind: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.kind, self.code = (
            message,
            param,
            status,
            kind,
            code,
        )


class PayControl(BaseModel):
    outcome: str = "success"
    amount: int | None = None
    currency: str | None = None


class RefundControl(BaseModel):
    outcome: str = "succeeded"  # succeeded | failed


def parse_form(body: bytes) -> dict[str, Any]:
    """``a[b][0][c]=1`` -> ``{"a": {"b": [{"c": "1"}]}}`` (Stripe's bracket notation)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            nxt_is_index = not last and parts[index + 1].isdigit()
            if isinstance(node, list):
                position = int(part)
                while len(node) <= position:
                    node.append(None)
                if last:
                    node[position] = value
                else:
                    if node[position] is None:
                        node[position] = [] if nxt_is_index else {}
                    node = node[position]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return root


class StripeSimulator:
    def __init__(
        self,
        *,
        public_url: str,
        webhook_url: str | None,
        secret_key: str = DEMO_SECRET_KEY,
        webhook_secret: str = DEMO_WEBHOOK_SECRET,
        auto_succeed_refunds: bool = True,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.secret_key, self.webhook_secret = secret_key, webhook_secret
        self.auto_succeed_refunds = auto_succeed_refunds
        self.webhooks = WebhookDispatcher(webhook_url)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[str, tuple[str, int, Any]] = {}
        self.app = self._build()

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        event_id = random_id("evt_", 24)
        body = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "api_version": API_VERSION,
                "created": now(),
                "data": {"object": obj},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": random_id("req_"), "idempotency_key": None},
                "type": kind,
            },
            indent=2,
        ).encode()
        self.webhooks.emit(
            event_id,
            kind,
            body,
            {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                **self.sign(body),
            },
            signer=self.sign,
        )

    def sign(self, body: bytes) -> dict[str, str]:
        """``Stripe-Signature`` for one delivery attempt (Stripe signs each attempt anew)."""
        timestamp = now()
        signed = f"{timestamp}.".encode() + body
        signature = hmac.new(self.webhook_secret.encode(), signed, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={timestamp},v1={signature}"}

    # ------------------------------------------------------------------ money moves

    def pay(self, session: dict[str, Any], control: PayControl) -> dict[str, Any]:
        amount = control.amount or session["amount_total"]
        currency = control.currency or session["currency"]
        # A test may make the payer pay another amount or currency (presentment quirks).
        session |= {"amount_total": amount, "currency": currency}
        metadata = session.get("_intent_metadata") or session.get("metadata") or {}
        intent = {
            "id": random_id("pi_", 24),
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "capture_method": "automatic",
            "client_secret": random_id("pi_secret_", 24),
            "created": now(),
            "currency": currency,
            "description": None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata,
            "payment_method_types": ["card"],
            "status": "processing",
        }
        self.intents[intent["id"]] = intent
        session["payment_intent"] = intent["id"]
        if control.outcome != "success":
            intent |= {
                "status": "requires_payment_method",
                "last_payment_error": {
                    "code": "card_declined",
                    "message": "Your card was declined.",
                },
            }
            self.event("payment_intent.payment_failed", dict(intent))
            return intent
        charge = random_id("ch_", 24)
        intent |= {"status": "succeeded", "amount_received": amount, "latest_charge": charge}
        session |= {"status": "complete", "payment_status": "paid"}
        self.event("checkout.session.completed", self._public(session))
        self.event("payment_intent.succeeded", dict(intent))
        return intent

    def refund(
        self, intent: dict[str, Any], amount: int, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        refund = {
            "id": random_id("re_", 24),
            "object": "refund",
            "amount": amount,
            "charge": intent.get("latest_charge"),
            "created": now(),
            "currency": intent["currency"],
            "metadata": metadata,
            "payment_intent": intent["id"],
            "reason": "requested_by_customer",
            "status": "pending",
        }
        self.refunds[refund["id"]] = refund
        intent["_refunded"] = intent.get("_refunded", 0) + amount
        self.event("refund.created", dict(refund))
        if self.auto_succeed_refunds:
            self.settle_refund(refund, "succeeded")
        return refund

    def settle_refund(self, refund: dict[str, Any], outcome: str) -> None:
        refund["status"] = outcome
        if outcome != "succeeded":
            self.intents[refund["payment_intent"]]["_refunded"] -= refund["amount"]
        self.event("refund.updated", dict(refund))

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # ------------------------------------------------------------------ app

    def _build(self) -> FastAPI:
        app = FastAPI(title="Stripe simulator", docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(control_router(self.webhooks))

        @app.middleware("http")
        async def api(request: Request, call_next):  # type: ignore[no-untyped-def]
            if local_path(request).startswith("/v1/"):
                scheme, _, key = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(key, self.secret_key):
                    return JSONResponse(
                        {
                            "error": {
                                "type": "invalid_request_error",
                                "message": "Invalid API Key provided",
                            }
                        },
                        status_code=401,
                    )
                replayed = self._replay(request)
                if replayed is not None:
                    return replayed
            try:
                response = await call_next(request)
            except StripeError as exc:
                return JSONResponse(
                    {
                        "error": {
                            "type": exc.kind,
                            "message": exc.message,
                            "param": exc.param,
                            "code": exc.code,
                        }
                    },
                    status_code=exc.status,
                )
            return response

        def found(table: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
            if key not in table:
                raise StripeError(f"No such object: '{key}'", "id", 404, code="resource_missing")
            return table[key]

        async def form(request: Request) -> dict[str, Any]:
            return parse_form(await request.body())

        @app.post("/v1/checkout/sessions")
        async def create_session(request: Request) -> Response:
            data = await form(request)
            if data.get("mode") != "payment":
                raise StripeError("Only mode=payment is simulated", "mode")
            items = data.get("line_items") or []
            if not items:
                raise StripeError("line_items is required", "line_items")
            prices = [i["price_data"] for i in items]
            currency = prices[0].get("currency", "")
            if currency != currency.lower() or not currency:
                raise StripeError("Invalid currency", "line_items[0][price_data][currency]")
            amount = sum(
                int(p["unit_amount"]) * int(i.get("quantity", 1))
                for p, i in zip(prices, items, strict=True)
            )
            if amount < 50:
                raise StripeError(
                    "Amount must be at least ₹0.50 inr", "amount", code="amount_too_small"
                )
            if not data.get("success_url"):
                raise StripeError("success_url is required", "success_url")
            expires_at = int(data.get("expires_at") or now() + 86400)
            if not now() + 1800 <= expires_at <= now() + 86400:
                raise StripeError(
                    "expires_at must be 30 minutes to 24 hours from now", "expires_at"
                )
            session_id = random_id("cs_test_", 40)
            session = {
                "id": session_id,
                "object": "checkout.session",
                "amount_subtotal": amount,
                "amount_total": amount,
                "client_reference_id": data.get("client_reference_id"),
                "created": now(),
                "currency": currency,
                "customer_email": data.get("customer_email"),
                "expires_at": expires_at,
                "livemode": False,
                "metadata": data.get("metadata") or {},
                "mode": "payment",
                "payment_intent": None,
                "payment_status": "unpaid",
                "status": "open",
                "success_url": data["success_url"],
                "url": f"{self.public_url}/checkout/{session_id}",
                "_intent_metadata": (data.get("payment_intent_data") or {}).get("metadata"),
            }
            self.sessions[session_id] = session
            return self._remember(request, 200, self._public(session))

        @app.get("/v1/checkout/sessions/{session_id}")
        async def get_session(session_id: str) -> dict[str, Any]:
            return self._public(self._expire(found(self.sessions, session_id)))

        @app.post("/v1/checkout/sessions/{session_id}/expire")
        async def expire_session(session_id: str) -> dict[str, Any]:
            session = self._expire(found(self.sessions, session_id))
            if session["status"] != "open":
                raise StripeError(f"This Checkout Session is {session['status']}")
            session["status"] = "expired"
            self.event("checkout.session.expired", self._public(session))
            return self._public(session)

        @app.get("/v1/payment_intents/{intent_id}")
        async def get_intent(intent_id: str) -> dict[str, Any]:
            return self._public(found(self.intents, intent_id))

        @app.post("/v1/payment_intents/{intent_id}/capture")
        async def capture(intent_id: str, request: Request) -> dict[str, Any]:
            intent = found(self.intents, intent_id)
            if intent["status"] != "requires_capture":
                raise StripeError(
                    "This PaymentIntent could not be captured because it has a status of "
                    f"{intent['status']}.",
                    code="payment_intent_unexpected_state",
                )
            data = await form(request)
            amount = int(data.get("amount_to_capture") or intent["amount_capturable"])
            intent |= {"status": "succeeded", "amount_received": amount, "amount_capturable": 0}
            self.event("payment_intent.succeeded", self._public(intent))
            return self._public(intent)

        @app.post("/v1/refunds")
        async def create_refund(request: Request) -> Response:
            data = await form(request)
            intent = found(self.intents, str(data.get("payment_intent")))
            if intent["status"] != "succeeded":
                raise StripeError("This PaymentIntent has not succeeded", "payment_intent")
            left = intent["amount_received"] - intent.get("_refunded", 0)
            amount = int(data.get("amount") or left)
            if amount > left or amount <= 0:
                raise StripeError(
                    f"Refund amount (₹{amount / 100:.2f}) is greater than unrefunded amount on "
                    f"charge (₹{left / 100:.2f})",
                    "amount",
                    code="charge_already_refunded" if left == 0 else None,
                )
            refund = self.refund(intent, amount, data.get("metadata") or {})
            return self._remember(request, 200, refund)

        @app.get("/v1/refunds/{refund_id}")
        async def get_refund(refund_id: str) -> dict[str, Any]:
            return found(self.refunds, refund_id)

        # ---------------------------------------------------------- hosted checkout

        @app.get("/checkout/{session_id}")
        async def checkout_page(session_id: str) -> Response:
            session = self.sessions.get(session_id)
            if session is None:
                return page(*BRAND, "Not found", "<p>No such session.</p>", 404)
            if self._expire(session)["status"] != "open":
                return page(*BRAND, "Checkout", f"<p>This session is {session['status']}.</p>")
            name = session.get("client_reference_id") or ""
            body = (
                f"<div class='amount'>{rupees_text(session['amount_total'])}</div>"
                f"<p class='muted'>Reference {name}</p>"
                "<form method='post'><input type='hidden' name='outcome' value='success'>"
                "<button class='pay'>Pay with card 4242 4242 4242 4242</button></form>"
                "<form method='post'><input type='hidden' name='outcome' value='failure'>"
                "<button class='fail'>Use a card that is declined</button></form>"
            )
            return page(*BRAND, "Stripe Checkout", body)

        @app.post("/checkout/{session_id}")
        async def checkout_pay(session_id: str, outcome: str = Form("success")) -> Response:
            session = self.sessions.get(session_id)
            if session is None or self._expire(session)["status"] != "open":
                return page(*BRAND, "Checkout", "<p>Not payable.</p>", 409)
            intent = self.pay(session, PayControl(outcome=outcome))
            if intent["status"] == "succeeded":
                return RedirectResponse(
                    session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id),
                    status_code=303,
                )
            return page(*BRAND, "Declined", "<h2>Your card was declined.</h2>")

        @app.post("/_sim/checkout/sessions/{session_id}/pay", include_in_schema=False)
        async def control_pay(session_id: str, control: PayControl) -> dict[str, Any]:
            session = self._expire(found(self.sessions, session_id))
            if session["status"] != "open":
                raise StripeError(f"Session is {session['status']}")
            return self._public(self.pay(session, control))

        @app.post("/_sim/refunds/{refund_id}/settle", include_in_schema=False)
        async def control_refund(refund_id: str, control: RefundControl) -> dict[str, Any]:
            refund = found(self.refunds, refund_id)
            if refund["status"] != "pending":
                raise StripeError(f"Refund is {refund['status']}")
            self.settle_refund(refund, control.outcome)
            return refund

        return app

    def _expire(self, session: dict[str, Any]) -> dict[str, Any]:
        if session["status"] == "open" and session["expires_at"] < now():
            session["status"] = "expired"
            self.event("checkout.session.expired", self._public(session))
        return session

    def _replay(self, request: Request) -> Response | None:
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or not key or key not in self.idempotent:
            return None
        path, status, body = self.idempotent[key]
        if path != request.url.path:
            return JSONResponse(
                {
                    "error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used for the "
                        "same endpoint they were first used for.",
                    }
                },
                status_code=400,
            )
        return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})

    def _remember(self, request: Request, status: int, body: dict[str, Any]) -> Response:
        key = request.headers.get("idempotency-key")
        if key:
            self.idempotent[key] = (request.url.path, status, body)
        return JSONResponse(body, status_code=status)
