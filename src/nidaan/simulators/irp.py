"""An IRP simulator: NIC's e-invoice API as our adapter calls it (fact sheet section 4), with
the real encryption scheme (RSA-encrypted login with an AppKey, SEK under the AppKey, AES-ECB
payloads), the documented IRN formula, RS256-signed ``SignedInvoice`` and ``SignedQRCode``
JWTs, duplicate-IRN answers (2150 + ``InfoDtls`` DUPIRN), and the cancellation rules (24 hours,
2270; not active, 9999; another GSTIN's IRN, 2143).

It holds its own RSA key pair; give our adapter ``public_key_pem``. Test controls under
``/_sim``: the public key, what was generated, faults (``fail_next`` answers with an HTTP
error before doing anything; ``lose_next`` does the work and then answers 503, a lost
response), moving its clock, and expiring tokens.

Error codes it uses besides NIC's documented ones (2150, 2143, 2270, 2283, 9999, 3028):
1004 bad client id/secret, 1005 invalid or expired token, 1006 bad user name or password,
2100 a payload the simulator cannot read, 2172 a schema rule broken (message names it).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from nidaan.einvoice import wire
from nidaan.einvoice.domain import from_json, to_json
from nidaan.einvoice.gateways.registry import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

IST_OFFSET = timedelta(hours=5, minutes=30)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DOC_NO = re.compile(r"^([A-Z1-9]{1}[A-Z0-9/-]{0,15})$")
GSTIN = re.compile(r"^[0-9]{2}[A-Z0-9]{13}$")
ROOT_KEYS = ("Version", "TranDtls", "DocDtls", "SellerDtls", "BuyerDtls", "ItemList", "ValDtls")


class Faults(BaseModel):
    fail_next: int = 0  # answer this many calls with ``status`` before acting
    status: int = 503
    lose_next: int = 0  # act on this many Generate/Cancel calls, then answer 503


class Clock(BaseModel):
    advance_hours: float = 0


@dataclass
class _Login:
    token: str
    sek: bytes
    gstin: str
    username: str
    expires_at: datetime  # IST wall clock


@dataclass
class _Irn:
    irn: str
    gstin: str
    doc_type: str
    doc_no: str
    doc_date: str
    ack_no: int
    ack_at: datetime
    payload: dict[str, Any]
    signed_invoice: str
    signed_qr: str
    status: str = "ACT"
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


@dataclass
class IrpSimulator:
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET
    #: GSTIN -> (user name, password); None accepts any user (the demo).
    users: dict[str, tuple[str, str]] | None = None
    private_key: rsa.RSAPrivateKey = field(default_factory=wire.new_key_pair)
    token_minutes: int = 360
    clock_offset: timedelta = timedelta(0)
    faults: Faults = field(default_factory=Faults)
    logins: dict[str, _Login] = field(default_factory=dict)
    irns: dict[str, _Irn] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _ack_counter: int = 0

    def __post_init__(self) -> None:
        self.app = self._build()

    @property
    def public_key_pem(self) -> str:
        return wire.public_pem(self.private_key)

    def now(self) -> datetime:
        """The IRP's clock: IST wall time, moved by the tests' ``clock_offset``."""
        wall = datetime.now(UTC).replace(tzinfo=None) + IST_OFFSET + self.clock_offset
        return wall.replace(microsecond=0)

    def reset(self) -> None:
        self.faults = Faults()
        self.clock_offset = timedelta(0)
        self.logins.clear()
        self.calls.clear()

    # ------------------------------------------------------------------ answers

    def _error(self, code: str, message: str, *, info: Any = None, b64: bool = False) -> Any:
        details: Any = [{"ErrorCode": code, "ErrorMessage": message}]
        if b64:
            details = wire.b64(json.dumps(details).encode())
        return JSONResponse(
            {"Status": "0", "Data": None, "ErrorDetails": details, "InfoDtls": info}
        )

    def _ok(self, login: _Login, data: dict[str, Any]) -> JSONResponse:
        encrypted = wire.aes_encrypt(login.sek, to_json(data).encode())
        return JSONResponse(
            {"Status": "1", "Data": wire.b64(encrypted), "ErrorDetails": None, "InfoDtls": None}
        )

    def _fault(self) -> JSONResponse | None:
        if self.faults.fail_next > 0:
            self.faults.fail_next -= 1
            return JSONResponse({"message": "Service unavailable"}, status_code=self.faults.status)
        return None

    def _lost(self) -> JSONResponse | None:
        if self.faults.lose_next > 0:
            self.faults.lose_next -= 1
            return JSONResponse({"message": "Gateway timeout"}, status_code=503)
        return None

    def _login(self, request: Request) -> _Login | JSONResponse:
        if (
            request.headers.get("client_id") != self.client_id
            or request.headers.get("client_secret") != self.client_secret
        ):
            return self._error("1004", "Invalid Client-ID/Client-Secret")
        login = self.logins.get(request.headers.get("AuthToken", ""))
        if (
            login is None
            or login.expires_at <= self.now()
            or login.gstin != request.headers.get("Gstin")
            or login.username != request.headers.get("user_name")
        ):
            return self._error("1005", "Invalid Token")
        return login

    async def _payload(self, request: Request, login: _Login) -> dict[str, Any] | None:
        try:
            body = await request.json()
            plain = wire.aes_decrypt(login.sek, wire.unb64(body["Data"]))
            data = from_json(plain)
        except (ValueError, KeyError, TypeError):
            return None
        return data if isinstance(data, dict) else None

    def _sign(self, data: dict[str, Any]) -> str:
        claims = {"data": to_json(data), "iss": "NIC", "iat": int(time.time())}
        return jwt.encode(claims, self.private_key, algorithm="RS256")

    def _record(self, entry: _Irn) -> dict[str, Any]:
        data: dict[str, Any] = {
            "AckNo": entry.ack_no,
            "AckDt": entry.ack_at.strftime(TIME_FORMAT),
            "Irn": entry.irn,
            "SignedInvoice": entry.signed_invoice,
            "SignedQRCode": entry.signed_qr,
            "Status": entry.status,
            "EwbNo": None,
            "EwbDt": None,
            "EwbValidTill": None,
        }
        if entry.cancelled_at is not None:
            data["CancelDate"] = entry.cancelled_at.strftime(TIME_FORMAT)
        return data

    # ------------------------------------------------------------------ rules

    @staticmethod
    def _schema_problem(payload: dict[str, Any], gstin: str, today: date) -> tuple[str, str] | None:
        for key in ROOT_KEYS:
            if not payload.get(key):
                return "2172", f"{key} is mandatory"
        if payload["Version"] != "1.1":
            return "2172", "Version must be 1.1"
        doc, seller, buyer = payload["DocDtls"], payload["SellerDtls"], payload["BuyerDtls"]
        if doc.get("Typ") not in ("INV", "CRN", "DBN"):
            return "2172", "DocDtls.Typ must be INV, CRN or DBN"
        if not DOC_NO.fullmatch(str(doc.get("No", ""))):
            return "2172", "DocDtls.No does not match ^([A-Z1-9]{1}[A-Z0-9/-]{0,15})$"
        try:
            day = datetime.strptime(str(doc.get("Dt")), "%d/%m/%Y").date()
        except ValueError:
            return "2172", "DocDtls.Dt must be dd/mm/yyyy"
        if day > today:
            return "2172", "DocDtls.Dt cannot be in the future"
        if seller.get("Gstin") != gstin:
            return "2172", "SellerDtls.Gstin must be the GSTIN of the logged-in user"
        if not GSTIN.fullmatch(str(buyer.get("Gstin", ""))):
            return "3028", "BuyerDtls.Gstin is invalid"
        items = payload["ItemList"]
        total = sum(
            (
                Decimal(str(i.get(k, 0)))
                for i in items
                for k in ("AssAmt", "CgstAmt", "SgstAmt", "IgstAmt", "CesAmt")
            ),
            Decimal(0),
        )
        values = payload["ValDtls"]
        expected = (
            total
            + Decimal(str(values.get("RndOffAmt", 0)))
            + Decimal(str(values.get("OthChrg", 0)))
            - Decimal(str(values.get("Discount", 0)))
        )
        if abs(Decimal(str(values.get("TotInvVal"))) - expected) > 2:
            return "2172", "ValDtls.TotInvVal is not the sum of the items within Rs 2"
        return None

    @staticmethod
    def irn_of(gstin: str, day: date, doc_type: str, doc_no: str) -> str:
        start = day.year if day.month >= 4 else day.year - 1
        fy = f"{start}-{(start + 1) % 100:02d}"
        return hashlib.sha256(f"{gstin}{fy}{doc_type}{doc_no}".encode()).hexdigest()

    # ------------------------------------------------------------------ app

    def _build(self) -> FastAPI:
        app = FastAPI(title="IRP simulator", docs_url=None, redoc_url=None, openapi_url=None)

        @app.post("/eivital/v1.04/auth")
        async def auth(request: Request) -> Any:
            self.calls.append("auth")
            if (fault := self._fault()) is not None:
                return fault
            if (
                request.headers.get("client_id") != self.client_id
                or request.headers.get("client_secret") != self.client_secret
            ):
                return self._error("1004", "Invalid Client-ID/Client-Secret", b64=True)
            try:
                body = await request.json()
                inner = wire.rsa_decrypt(self.private_key, wire.unb64(body["Data"]))
                creds = json.loads(wire.unb64(inner.decode()))
                app_key = wire.unb64(creds["AppKey"])
                if len(app_key) != 32:
                    raise ValueError("AppKey")
            except (ValueError, KeyError, TypeError):
                return self._error("2100", "Data could not be decrypted", b64=True)
            gstin = request.headers.get("Gstin", "")
            if self.users is not None and self.users.get(gstin) != (
                creds.get("UserName"),
                creds.get("Password"),
            ):
                return self._error("1006", "Invalid UserName/Password", b64=True)
            now = self.now()
            login = next(
                (
                    x
                    for x in self.logins.values()
                    if x.gstin == gstin and x.username == creds["UserName"] and x.expires_at > now
                ),
                None,
            )
            force = bool(creds.get("ForceRefreshAccessToken"))
            if login is not None and force and login.expires_at - now <= timedelta(minutes=10):
                login = None  # a forced refresh is only honoured in the last 10 minutes
            if login is None:
                login = _Login(
                    token=secrets.token_urlsafe(24),
                    sek=secrets.token_bytes(32),
                    gstin=gstin,
                    username=creds["UserName"],
                    expires_at=now + timedelta(minutes=self.token_minutes),
                )
                self.logins[login.token] = login
            return JSONResponse(
                {
                    "Status": "1",
                    "Data": {
                        "ClientId": self.client_id,
                        "UserName": login.username,
                        "AuthToken": login.token,
                        "Sek": wire.b64(wire.aes_encrypt(app_key, login.sek)),
                        "TokenExpiry": login.expires_at.strftime(TIME_FORMAT),
                    },
                    "ErrorDetails": None,
                }
            )

        @app.post("/eicore/v1.03/Invoice")
        async def generate(request: Request) -> Any:
            self.calls.append("generate")
            if (fault := self._fault()) is not None:
                return fault
            login = self._login(request)
            if isinstance(login, JSONResponse):
                return login
            payload = await self._payload(request, login)
            if payload is None:
                return self._error("2100", "Data could not be decrypted or parsed")
            now = self.now()
            problem = self._schema_problem(payload, login.gstin, now.date())
            if problem is not None:
                return self._error(*problem)
            doc = payload["DocDtls"]
            day = datetime.strptime(doc["Dt"], "%d/%m/%Y").date()
            irn = self.irn_of(login.gstin, day, doc["Typ"], doc["No"])
            existing = self.irns.get(irn)
            if existing is not None:
                desc = {
                    "AckNo": existing.ack_no,
                    "AckDt": existing.ack_at.strftime(TIME_FORMAT),
                    "Irn": existing.irn,
                }
                return self._error(
                    "2150", "Duplicate IRN", info=[{"InfCd": "DUPIRN", "Desc": desc}]
                )
            self._ack_counter += 1
            ack_no = 112610000000000 + self._ack_counter
            ack_dt = now.strftime(TIME_FORMAT)
            items = payload["ItemList"]
            main = max(items, key=lambda i: Decimal(str(i.get("AssAmt", 0))))
            qr = {
                "SellerGstin": login.gstin,
                "BuyerGstin": payload["BuyerDtls"]["Gstin"],
                "DocNo": doc["No"],
                "DocTyp": doc["Typ"],
                "DocDt": doc["Dt"],
                "TotInvVal": payload["ValDtls"]["TotInvVal"],
                "ItemCnt": len(items),
                "MainHsnCode": main.get("HsnCd"),
                "Irn": irn,
                "IrnDt": ack_dt,
            }
            entry = _Irn(
                irn=irn,
                gstin=login.gstin,
                doc_type=doc["Typ"],
                doc_no=doc["No"],
                doc_date=doc["Dt"],
                ack_no=ack_no,
                ack_at=now,
                payload=payload,
                signed_invoice=self._sign(
                    {**payload, "Irn": irn, "AckNo": ack_no, "AckDt": ack_dt}
                ),
                signed_qr=self._sign(qr),
            )
            self.irns[irn] = entry
            if (lost := self._lost()) is not None:
                return lost
            return self._ok(login, self._record(entry))

        @app.get("/eicore/v1.03/Invoice/irn/{irn}")
        async def get_irn(irn: str, request: Request) -> Any:
            self.calls.append("get_irn")
            if (fault := self._fault()) is not None:
                return fault
            login = self._login(request)
            if isinstance(login, JSONResponse):
                return login
            entry = self.irns.get(irn)
            if entry is None or entry.gstin != login.gstin:
                return self._error("2143", "The IRN does not belong to this GSTIN or is unknown")
            if self.now() - entry.ack_at > timedelta(days=2):
                return self._error("2283", "IRN details cannot be provided after 2 days")
            return self._ok(login, self._record(entry))

        @app.get("/eicore/v1.03/Invoice/irnbydocdetails")
        async def by_document(doctype: str, docnum: str, docdate: str, request: Request) -> Any:
            self.calls.append("get_by_document")
            if (fault := self._fault()) is not None:
                return fault
            login = self._login(request)
            if isinstance(login, JSONResponse):
                return login
            for entry in self.irns.values():
                if (entry.gstin, entry.doc_type, entry.doc_no, entry.doc_date) == (
                    login.gstin,
                    doctype,
                    docnum,
                    docdate,
                ):
                    return self._ok(login, self._record(entry))
            return self._error("2148", "Requested IRN data is not available")

        @app.post("/eicore/v1.03/Invoice/Cancel")
        async def cancel(request: Request) -> Any:
            self.calls.append("cancel")
            if (fault := self._fault()) is not None:
                return fault
            login = self._login(request)
            if isinstance(login, JSONResponse):
                return login
            payload = await self._payload(request, login)
            if payload is None:
                return self._error("2100", "Data could not be decrypted or parsed")
            if payload.get("CnlRsn") not in ("1", "2", "3", "4"):
                return self._error("2172", "CnlRsn must be 1, 2, 3 or 4")
            if len(str(payload.get("CnlRem", ""))) > 100:
                return self._error("2172", "CnlRem is at most 100 characters")
            entry = self.irns.get(str(payload.get("Irn")))
            if entry is None or entry.gstin != login.gstin:
                return self._error("2143", "The IRN does not belong to this GSTIN")
            if entry.status != "ACT":
                return self._error("9999", "Invoice is not active")
            now = self.now()
            if now - entry.ack_at > timedelta(hours=24):
                return self._error("2270", "The allowed cancellation time limit is crossed")
            entry.status, entry.cancelled_at = "CNL", now
            entry.cancel_reason = payload["CnlRsn"]
            if (lost := self._lost()) is not None:
                return lost
            return self._ok(login, {"Irn": entry.irn, "CancelDate": now.strftime(TIME_FORMAT)})

        @app.get("/_sim/public-key")
        async def public_key() -> Any:
            return {"public_key": self.public_key_pem}

        @app.get("/_sim/irns")
        async def list_irns() -> Any:
            return [
                {
                    "irn": e.irn,
                    "gstin": e.gstin,
                    "doc_type": e.doc_type,
                    "doc_no": e.doc_no,
                    "ack_no": e.ack_no,
                    "status": e.status,
                }
                for e in self.irns.values()
            ]

        @app.post("/_sim/faults")
        async def set_faults(faults: Faults) -> Any:
            self.faults = faults
            return faults

        @app.post("/_sim/clock")
        async def move_clock(clock: Clock) -> Any:
            self.clock_offset += timedelta(hours=clock.advance_hours)
            return {"now": self.now().strftime(TIME_FORMAT)}

        @app.post("/_sim/expire-tokens")
        async def expire_tokens() -> Any:
            for login in self.logins.values():
                login.expires_at = self.now() - timedelta(seconds=1)
            return {"expired": len(self.logins)}

        return app


def mount_demo_irp(app: FastAPI, settings: Any) -> IrpSimulator | None:
    """Demo mode without a real IRP: the simulator at ``/simulators/irp``, any user accepted,
    with the demo key pair the adapter also reads (``einvoice.gateways.registry``)."""
    from nidaan.einvoice.gateways.registry import demo_private_key

    if settings.irp_api_url:
        return None
    simulator = IrpSimulator(private_key=wire.load_private_key(demo_private_key(settings)))
    app.mount("/simulators/irp", simulator.app)
    app.state.irp_simulator = simulator
    return simulator
