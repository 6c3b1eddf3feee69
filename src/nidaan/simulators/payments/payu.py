"""A PayU India simulator: the hosted checkout (``POST /_payment``, a form whose SHA-512
request hash is checked), the browser return to ``surl``/``furl`` and the server webhook,
both carrying PayU's reverse hash, and the ``postservice.php?form=2`` commands Nidaan uses
(``verify_payment``, ``check_payment``, ``cancel_refund_transaction``,
``check_action_status``) with their command hash and answer shapes (fact sheet section 3).

Hashes are computed here from the documented field orders, independently of the adapter.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from nidaan.payments.gateways import demo as demo_keys
from nidaan.simulators.payments.common import (
    WebhookDispatcher,
    control_router,
    now,
    page,
    rupees_text,
)

DEMO_KEY = demo_keys.PAYU_KEY
DEMO_SALT = demo_keys.PAYU_SALT
BRAND = ("PayU", "#a6c307")
UDFS = ("udf1", "udf2", "udf3", "udf4", "udf5")


def _paise(amount: str) -> int:
    return int((Decimal(amount) * 100).to_integral_value())


def _sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


class PayControl(BaseModel):
    """Pay a transaction without the browser (tests, benchmark)."""

    txnid: str
    amount: str
    productinfo: str = "Invoice"
    firstname: str = "Patient"
    email: str = "patient@example.com"
    phone: str = "9000000000"
    udf1: str = ""
    outcome: str = "success"
    mode: str = "UPI"


class RefundControl(BaseModel):
    outcome: str = "success"  # success | failure


class PayUSimulator:
    def __init__(
        self,
        *,
        public_url: str,
        webhook_url: str | None,
        key: str = DEMO_KEY,
        salt: str = DEMO_SALT,
        auto_process_refunds: bool = True,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.key, self.salt = key, salt
        self.auto_process_refunds = auto_process_refunds
        self.webhooks = WebhookDispatcher(webhook_url)
        self.pending: dict[str, dict[str, str]] = {}  # checkout token -> posted form
        self.transactions: dict[str, dict[str, Any]] = {}  # txnid -> details
        self.by_mihpayid: dict[str, str] = {}
        self.refunds: dict[str, dict[str, Any]] = {}  # request_id -> action
        self.app = self._build()

    # ------------------------------------------------------------------ hashes

    def request_hash(self, form: dict[str, str]) -> str:
        fields = [
            form.get(k, "") for k in ("key", "txnid", "amount", "productinfo", "firstname", "email")
        ]
        fields += [form.get(u, "") for u in UDFS]
        return _sha512("|".join([*fields, "", "", "", "", "", self.salt]))

    def reverse_hash(self, fields: dict[str, str]) -> str:
        parts = [self.salt, fields["status"], "", "", "", "", ""]
        parts += [fields.get(u, "") for u in reversed(UDFS)]
        parts += [
            fields[k] for k in ("email", "firstname", "productinfo", "amount", "txnid", "key")
        ]
        return _sha512("|".join(parts))

    # ------------------------------------------------------------------ money moves

    def complete(self, form: dict[str, str], outcome: str, mode: str = "UPI") -> dict[str, str]:
        """Finish a checkout: the response fields (with the reverse hash), also sent as the
        server-to-server webhook."""
        mihpayid = str(10**11 + secrets.randbelow(9 * 10**11))
        success = outcome == "success"
        fields = {
            "mihpayid": mihpayid,
            "mode": mode,
            "status": "success" if success else "failure",
            "unmappedstatus": "captured" if success else "failed",
            "key": form["key"],
            "txnid": form["txnid"],
            "amount": form["amount"],
            "addedon": "2026-12-07 10:00:00",
            "productinfo": form.get("productinfo", ""),
            "firstname": form.get("firstname", ""),
            "lastname": "",
            "email": form.get("email", ""),
            "phone": form.get("phone", ""),
            **{u: form.get(u, "") for u in UDFS},
            "field9": "Transaction Completed Successfully" if success else "Declined by payer",
            "PG_TYPE": "UPI-PG",
            "bank_ref_num": str(secrets.randbelow(10**12)).zfill(12) if success else "",
            "bankcode": "UPI",
            "error": "E000" if success else "E308",
            "error_Message": "No Error" if success else "Transaction declined",
            "net_amount_debit": form["amount"] if success else "0",
        }
        fields["hash"] = self.reverse_hash(fields)
        self.transactions[form["txnid"]] = {
            **fields,
            "transaction_amount": form["amount"],
            "amt": form["amount"],
            "refunded": 0,
        }
        self.by_mihpayid[mihpayid] = form["txnid"]
        self.webhooks.emit(
            f"{form['txnid']}:{mihpayid}:{fields['status']}",
            f"payment.{fields['status']}",
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        return fields

    def settle_refund(self, request_id: str, outcome: str) -> None:
        action = self.refunds[request_id]
        action["status"] = "success" if outcome == "success" else "failure"
        txn = self.transactions[self.by_mihpayid[action["mihpayid"]]]
        if outcome != "success":
            txn["refunded"] -= _paise(action["amount"])
        body = {
            "mihpayid": action["mihpayid"],
            "request_id": request_id,
            "token": action["token"],
            "amt": action["amount"],
            "status": action["status"],
            "bank_arn": secrets.token_hex(6).upper() if outcome == "success" else "",
            "bank_ref_num": txn["bank_ref_num"],
            "action": "refund",
            "key": self.key,
        }
        self.webhooks.emit(
            f"refund:{request_id}:{action['status']}",
            "refund",
            urlencode(body).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    # ------------------------------------------------------------------ app

    def _build(self) -> FastAPI:
        app = FastAPI(title="PayU simulator", docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(control_router(self.webhooks))

        async def form_of(request: Request) -> dict[str, str]:
            return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))

        @app.post("/_payment")
        async def checkout(request: Request) -> Response:
            form = await form_of(request)
            missing = [
                k
                for k in (
                    "key",
                    "txnid",
                    "amount",
                    "productinfo",
                    "firstname",
                    "email",
                    "surl",
                    "furl",
                    "hash",
                )
                if not form.get(k)
            ]
            if missing:
                return page(*BRAND, "Error", f"<p>Missing {', '.join(missing)}.</p>", 400)
            if form["key"] != self.key or form["hash"].lower() != self.request_hash(form):
                return page(*BRAND, "Error", "<p>Checksum failed (hash mismatch).</p>", 400)
            if form["txnid"] in self.transactions:
                return page(*BRAND, "Error", "<p>Duplicate transaction id.</p>", 400)
            token = secrets.token_urlsafe(16)
            self.pending[token] = form
            paise = _paise(form["amount"])
            body = (
                f"<div class='amount'>{rupees_text(paise)}</div>"
                f"<p class='muted'>{html.escape(form['productinfo'])} · "
                f"{html.escape(form['txnid'])}</p>"
                f"<form method='post' action='{self.public_url}/_payment/complete'>"
                f"<input type='hidden' name='token' value='{token}'>"
                "<input type='hidden' name='outcome' value='success'>"
                "<button class='pay'>Pay with UPI</button></form>"
                f"<form method='post' action='{self.public_url}/_payment/complete'>"
                f"<input type='hidden' name='token' value='{token}'>"
                "<input type='hidden' name='outcome' value='failure'>"
                "<button class='fail'>Fail the payment</button></form>"
            )
            return page(*BRAND, "PayU checkout", body)

        @app.post("/_payment/complete")
        async def complete(request: Request) -> Response:
            posted = await form_of(request)
            form = self.pending.pop(posted.get("token", ""), None)
            if form is None:
                return page(*BRAND, "Error", "<p>This checkout is over.</p>", 400)
            fields = self.complete(form, posted.get("outcome", "success"))
            target = form["surl"] if fields["status"] == "success" else form["furl"]
            inputs = "".join(
                f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                for k, v in fields.items()
            )
            return HTMLResponse(
                "<!doctype html><html><body onload='document.forms[0].submit()'>"
                f"<form method='post' action='{html.escape(target)}'>{inputs}"
                "<noscript><button>Continue</button></noscript></form></body></html>"
            )

        @app.post("/merchant/postservice.php")
        async def postservice(request: Request) -> Response:
            form = await form_of(request)
            command, var1 = form.get("command", ""), form.get("var1", "")
            expected = _sha512(f"{form.get('key')}|{command}|{var1}|{self.salt}")
            if form.get("key") != self.key or form.get("hash", "").lower() != expected:
                return JSONResponse({"status": 0, "msg": "Invalid Hash."})
            if command == "verify_payment":
                details = {}
                for txnid in var1.split("|"):
                    txn = self.transactions.get(txnid)
                    details[txnid] = (
                        {k: v for k, v in txn.items() if k not in ("hash", "refunded")}
                        if txn
                        else {"mihpayid": "Not Found", "status": "Not Found"}
                    )
                    if txn is None:
                        details[txnid] = {"status": "Not Found"}
                found_count = sum(1 for t in var1.split("|") if t in self.transactions)
                return JSONResponse(
                    {
                        "status": 1 if found_count else 0,
                        "msg": f"{found_count} out of {len(var1.split('|'))} Transactions Fetched "
                        "Successfully",
                        "transaction_details": details,
                    }
                )
            if command == "check_payment":
                txnid = self.by_mihpayid.get(var1)
                if txnid is None:
                    return JSONResponse({"status": 0, "msg": "0 out of 1 Transactions Fetched"})
                txn = {k: v for k, v in self.transactions[txnid].items() if k != "hash"}
                return JSONResponse(
                    {
                        "status": 1,
                        "msg": "Transaction Fetched Successfully",
                        "transaction_details": txn,
                    }
                )
            if command == "cancel_refund_transaction":
                return JSONResponse(self._refund(var1, form.get("var2", ""), form.get("var3", "")))
            if command == "check_action_status":
                action = self.refunds.get(var1)
                if action is None:
                    return JSONResponse({"status": 0, "msg": "No action status found"})
                return JSONResponse(
                    {
                        "status": 1,
                        "msg": "1 out of 1 Transactions Fetched Successfully",
                        "transaction_details": {var1: {action["mihpayid"]: dict(action)}},
                    }
                )
            return JSONResponse({"status": 0, "msg": f"Unknown command {command}"})

        @app.post("/_sim/pay", include_in_schema=False)
        async def control_pay(control: PayControl) -> dict[str, str]:
            form = {"key": self.key, **control.model_dump(exclude={"outcome", "mode"})}
            return self.complete(form, control.outcome, control.mode)

        @app.post("/_sim/refunds/{request_id}/settle", include_in_schema=False)
        async def control_refund(request_id: str, control: RefundControl) -> dict[str, Any]:
            if request_id not in self.refunds:
                return JSONResponse({"error": "no such refund"}, status_code=404)  # type: ignore[return-value]
            self.settle_refund(request_id, control.outcome)
            return self.refunds[request_id]

        return app

    def _refund(self, mihpayid: str, token: str, amount: str) -> dict[str, Any]:
        txnid = self.by_mihpayid.get(mihpayid)
        if txnid is None:
            return {"status": 0, "msg": "Transaction not found", "error_code": 116}
        txn = self.transactions[txnid]
        if txn["status"] != "success":
            return {"status": 0, "msg": "Invalid transaction status", "error_code": 111}
        if any(r["token"] == token for r in self.refunds.values()):
            return {"status": 0, "msg": "Token already exists", "error_code": 106}
        try:
            paise = _paise(amount)
        except InvalidOperation:
            paise = 0
        paid = _paise(txn["amount"])
        if paise <= 0 or paise > paid - txn["refunded"]:
            return {"status": 0, "msg": "Invalid amount", "error_code": 105}
        txn["refunded"] += paise
        request_id = str(10**8 + secrets.randbelow(9 * 10**8))
        self.refunds[request_id] = {
            "mihpayid": mihpayid,
            "request_id": request_id,
            "token": token,
            "amount": f"{Decimal(paise) / 100:.2f}",
            "action": "refund",
            "status": "queued",
            "created_at": now(),
        }
        if self.auto_process_refunds:
            self.settle_refund(request_id, "success")
        return {
            "status": 1,
            "msg": "Refund Request Queued",
            "request_id": request_id,
            "bank_ref_num": None,
            "mihpayid": mihpayid,
            "error_code": 102,
        }
