"""An ABDM simulator: the HIE-CM gateway, the consent manager (and an HIU), the ABHA service
and a patient's PHR app and phone, speaking ABDM's wire format over HTTP.

``AbdmSimulator().app`` is an ASGI app serving, on one origin:

- ``/api/hiecm/gateway/v3/sessions|certs|bridge/url|bridge-service``: client sessions (with
  refresh), the JWKS our callbacks are signed with, bridge (callback URL) registration.
- ``/api/hiecm/...`` HIP paths: link tokens, HIP-initiated linking, context notify, and the
  receivers of our on-discover/on-init/on-confirm/on-notify/on-request/notify/on-share.
- ``/abha/api/v3/...``: ABHA enrolment by Aadhaar OTP (RSA-OAEP-SHA1 sealed values), mobile
  verification, address suggestions/selection, and login to an existing ABHA by OTP.
- ``/sim/...``: what people and other systems do: grant/revoke/expire a consent, request
  health information (the simulator is the HIU: it makes its own Fidelius keys, receives the
  push at ``/sim/data-push/<txn>``, decrypts it and checks each bundle), discover/link as the
  PHR app, share a profile at a desk, and the patient's phone inbox for link OTPs.

Test OTP for everything: ``123456`` (``AbdmSimulator(otp=...)`` changes it). Every callback to
the bridge is signed (RS256, audience ``account``) like the real gateway's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from nidaan.abdm import fidelius
from nidaan.abdm.domain import (
    InvalidAadhaar,
    normalize_aadhaar,
    verhoeff_digit,
    wire_timestamp,
)
from nidaan.abdm.sealing import ABHA_ALGORITHM, unseal

logger = logging.getLogger(__name__)

GATEWAY = "/api/hiecm"
ABHA = "/abha/api/v3"
TEST_OTP = "123456"
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
_ADDRESS = re.compile(r"^[a-z][a-z0-9.]{2,}[a-z0-9]$")


@dataclass
class Account:
    """A person known to ABHA (demo registry or enrolled here)."""

    abha_number: str  # dashed
    name: str
    gender: str
    year_of_birth: int
    month_of_birth: int
    day_of_birth: int
    mobile: str  # 10 digits
    addresses: list[str] = field(default_factory=list)
    aadhaar_last4: str | None = None

    @property
    def preferred_address(self) -> str | None:
        return self.addresses[0] if self.addresses else None

    def profile(self) -> dict[str, Any]:
        first, _, last = self.name.partition(" ")
        return {
            "ABHANumber": self.abha_number,
            "phrAddress": list(self.addresses),
            "firstName": first,
            "middleName": "",
            "lastName": last,
            "name": self.name,
            "gender": self.gender,
            "dob": f"{self.day_of_birth:02d}-{self.month_of_birth:02d}-{self.year_of_birth}",
            "yearOfBirth": str(self.year_of_birth),
            "mobile": self.mobile,
            "photo": "",
            "address": "Pune",
            "districtName": "Pune",
            "stateName": "Maharashtra",
            "pinCode": "411005",
            "abhaStatus": "ACTIVE",
            "abhaType": "STANDARD",
        }


def demo_accounts() -> list[Account]:
    """People the demo knows: Sunita (demo lab patient) already has an ABHA to link."""
    return [
        Account(
            "91-1111-2222-3333",
            "Sunita Devi Sharma",
            "F",
            1968,
            3,
            14,
            "9876543210",
            ["sunita.sharma@sbx"],
        ),
        Account(
            "91-4444-5555-6666", "Rohan Mehta", "M", 1974, 1, 1, "9822012345", ["rohan.mehta@sbx"]
        ),
    ]


#: Aadhaar numbers the demo registry knows (all Verhoeff-valid); any other valid number
#: enrols a generated person.
def _aadhaar(body: str) -> str:
    return body + verhoeff_digit(body)


DEMO_AADHAAR = {
    _aadhaar("23412341234"): ("Lakshmi Iyer", "F", 1955, 6, 30, "9845098450"),
    _aadhaar("56781234567"): ("Vikas Joshi", "M", 1979, 1, 21, "9923456780"),
}


@dataclass
class Transaction:
    kind: str
    otp: str
    account: Account | None = None
    aadhaar_last4: str | None = None
    pending_mobile: str | None = None
    attempts: int = 0
    verified: bool = False
    created: float = field(default_factory=time.monotonic)


@dataclass
class HiuRequest:
    """The simulator acting as an HIU: its keys, and what came back."""

    transaction_id: str
    consent_id: str
    keys: fidelius.KeyMaterial
    ack: dict[str, Any] | None = None
    pushes: list[dict[str, Any]] = field(default_factory=list)
    bundles: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notify: dict[str, Any] | None = None


class AbdmSimulator:
    def __init__(
        self,
        *,
        clients: dict[str, str] | None = None,
        otp: str = TEST_OTP,
        token_seconds: int = 1200,
        rsa_bits: int = 2048,
        callback_delay: float = 0.0,
    ) -> None:
        self.clients = clients or {"nidaan-demo": "nidaan-demo-secret"}
        self.otp = otp
        self.token_seconds = token_seconds
        self.callback_delay = callback_delay
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signing_kid = secrets.token_hex(8)
        self.abha_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        self.sessions: dict[str, tuple[str, float]] = {}  # token -> (client, expiry)
        self.refresh_tokens: dict[str, str] = {}
        self.bridges: dict[str, str] = {}  # client -> callback base URL
        self.services: dict[str, str] = {}  # hip id -> client
        self.accounts: list[Account] = demo_accounts()
        self.transactions: dict[str, Transaction] = {}
        self.link_tokens: dict[str, tuple[str, str]] = {}  # token -> (abha address, hip id)
        self.linked: dict[str, list[dict[str, Any]]] = {}  # abha address -> care contexts
        self.consents: dict[str, dict[str, Any]] = {}
        self.hiu_requests: dict[str, HiuRequest] = {}
        self.received: list[dict[str, Any]] = []  # every call made to us, for tests
        self.phone: list[dict[str, Any]] = []
        self._link_sessions: dict[str, str] = {}  # confirm request id -> ABHA address
        self.session_calls = 0
        #: Faults to inject: the next N pushes to our data push URL answer 503.
        self.fail_pushes = 0
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http = httpx.AsyncClient(timeout=20)
        self.app = self._build()

    # ---- helpers ------------------------------------------------------------------------

    def account_by_address(self, address: str) -> Account | None:
        return next((a for a in self.accounts if address in a.addresses), None)

    def account_by_number(self, number: str) -> Account | None:
        digits = re.sub(r"\D", "", number)
        return next((a for a in self.accounts if re.sub(r"\D", "", a.abha_number) == digits), None)

    def _jwt(self, audience: str = "account") -> str:
        now = int(time.time())
        return jwt.encode(
            {
                "iss": "abdm-simulator",
                "aud": audience,
                "iat": now,
                "exp": now + 300,
                "sub": "gateway",
                "clientId": "gateway",
            },
            self.signing_key,
            algorithm="RS256",
            headers={"kid": self.signing_kid},
        )

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.signing_key.public_key()))
        jwk.update({"kid": self.signing_kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def _client_of(self, authorization: str | None) -> str | None:
        token = (authorization or "").removeprefix("Bearer ").strip()
        found = self.sessions.get(token)
        if found is None or found[1] < time.time():
            return None
        return found[0]

    @staticmethod
    def _problem(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse(
            {"code": code, "message": message, "error": {"code": code, "message": message}},
            status_code=status,
        )

    def _check_headers(self, request: Request, *, facility: bool = False) -> JSONResponse | None:
        if self._client_of(request.headers.get("authorization")) is None:
            return JSONResponse(
                {"code": "900901", "message": "Invalid Credentials"}, status_code=401
            )
        try:
            uuid.UUID(request.headers.get("request-id", ""))
        except ValueError:
            return self._problem(400, "ABDM-1001", "REQUEST-ID must be a UUID")
        if not _TIMESTAMP.match(request.headers.get("timestamp", "")):
            return self._problem(400, "ABDM-1002", "TIMESTAMP must be UTC ISO-8601 ending in Z")
        if request.headers.get("x-cm-id") != "sbx":
            return self._problem(400, "ABDM-1003", "X-CM-ID must be sbx")
        if facility and not request.headers.get("x-hip-id"):
            return self._problem(401, "ABDM-1004", "X-HIP-ID is required")
        return None

    def _bridge_for(self, hip_id: str) -> str | None:
        client = self.services.get(hip_id)
        return self.bridges.get(client) if client else None

    async def _record(self, request: Request) -> dict[str, Any]:
        body = await request.json() if (await request.body()) else {}
        self.received.append(
            {"path": request.url.path, "headers": dict(request.headers), "body": body}
        )
        return body

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def callback(
        self, hip_id: str, path: str, body: dict[str, Any], *, request_id: str | None = None
    ) -> httpx.Response | None:
        """POST ``body`` to the HIP's bridge at ``path``, signed like the gateway."""
        bridge = self._bridge_for(hip_id)
        if bridge is None:
            logger.warning("No bridge registered for HIP %s; callback %s dropped", hip_id, path)
            return None
        if self.callback_delay:
            await asyncio.sleep(self.callback_delay)
        headers = {
            "Authorization": f"Bearer {self._jwt()}",
            "REQUEST-ID": request_id or str(uuid.uuid4()),
            "TIMESTAMP": wire_timestamp(),
            "X-HIP-ID": hip_id,
            "X-CM-ID": "sbx",
        }
        try:
            return await self._http.post(bridge.rstrip("/") + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("Callback %s to %s failed: %s", path, bridge, exc)
            return None

    def _waiter(self, request_id: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        return future

    def _answer(self, body: dict[str, Any]) -> None:
        request_id = str((body.get("response") or {}).get("requestId", ""))
        future = self._waiters.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(body)

    async def wait_for(
        self, future: asyncio.Future[dict[str, Any]], seconds: float = 15
    ) -> dict[str, Any]:
        return await asyncio.wait_for(future, seconds)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._http.aclose()

    # ---- the app ------------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI(title="ABDM simulator (gateway, consent manager, ABHA, PHR)")
        sim = self

        # -- gateway session, keys, bridge ---------------------------------------------

        @app.post(GATEWAY + "/gateway/v3/sessions")
        async def sessions(request: Request) -> JSONResponse:
            body = await sim._record(request)
            sim.session_calls += 1
            client = str(body.get("clientId", ""))
            grant = body.get("grantType")
            if grant == "refresh_token":
                if sim.refresh_tokens.get(str(body.get("refreshToken"))) != client:
                    return JSONResponse(
                        {"code": "900901", "message": "Invalid refresh token"}, status_code=401
                    )
            elif grant != "client_credentials" or sim.clients.get(client) != body.get(
                "clientSecret"
            ):
                return JSONResponse(
                    {"code": "ABDM-1006", "message": "Invalid user credentials"}, status_code=401
                )
            token, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            sim.sessions[token] = (client, time.time() + sim.token_seconds)
            sim.refresh_tokens[refresh] = client
            return JSONResponse(
                {
                    "accessToken": token,
                    "expiresIn": sim.token_seconds,
                    "refreshExpiresIn": 1800,
                    "refreshToken": refresh,
                    "tokenType": "bearer",
                }
            )

        @app.get(GATEWAY + "/gateway/v3/certs")
        async def certs() -> JSONResponse:
            return JSONResponse(sim.jwks())

        @app.patch(GATEWAY + "/gateway/v3/bridge/url")
        async def bridge_url(request: Request) -> JSONResponse:
            if (problem := sim._check_headers(request)) is not None:
                return problem
            body = await sim._record(request)
            client = sim._client_of(request.headers.get("authorization"))
            assert client is not None
            sim.bridges[client] = str(body["url"])
            return JSONResponse({}, status_code=202)

        @app.put(GATEWAY + "/gateway/v3/bridge-service")
        async def bridge_service(request: Request) -> JSONResponse:
            if (problem := sim._check_headers(request)) is not None:
                return problem
            body = await sim._record(request)
            client = sim._client_of(request.headers.get("authorization"))
            assert client is not None
            sim.services[str(body["id"])] = client
            return JSONResponse({}, status_code=202)

        @app.get(GATEWAY + "/gateway/v3/bridge-services")
        async def bridge_services(request: Request) -> JSONResponse:
            client = sim._client_of(request.headers.get("authorization"))
            return JSONResponse(
                [
                    {"id": h, "type": "HIP", "active": True}
                    for h, c in sim.services.items()
                    if c == client
                ]
            )

        # -- HIP-initiated linking -----------------------------------------------------

        @app.post(GATEWAY + "/v3/token/generate-token")
        async def generate_token(request: Request) -> JSONResponse:
            if (problem := sim._check_headers(request, facility=True)) is not None:
                return problem
            body = await sim._record(request)
            hip_id = request.headers["x-hip-id"]
            request_id = request.headers["request-id"]
            address = str(body.get("abhaAddress") or "")
            account = sim.account_by_address(address) if address else None
            if account is None and body.get("abhaNumber"):
                account = sim.account_by_number(str(body["abhaNumber"]))
            if account is None:
                return sim._problem(400, "ABDM-9999", "Patient not found")

            async def answer() -> None:
                reply: dict[str, Any] = {
                    "abhaAddress": account.preferred_address,
                    "response": {"requestId": request_id},
                }
                mismatch = (
                    str(body.get("gender", "")) != account.gender
                    or int(body.get("yearOfBirth") or 0) != account.year_of_birth
                )
                if mismatch:
                    reply["error"] = {
                        "code": "ABDM-1205",
                        "message": "Demographic details do not match",
                    }
                else:
                    token = secrets.token_urlsafe(32)
                    sim.link_tokens[token] = (account.preferred_address or address, hip_id)
                    reply["linkToken"] = token
                await sim.callback(hip_id, "/api/v3/hip/token/on-generate-token", reply)

            sim._spawn(answer())
            return JSONResponse({}, status_code=202)

        @app.post(GATEWAY + "/hip/v3/link/carecontext")
        async def link_carecontext(request: Request) -> JSONResponse:
            if (problem := sim._check_headers(request, facility=True)) is not None:
                return problem
            body = await sim._record(request)
            hip_id = request.headers["x-hip-id"]
            request_id = request.headers["request-id"]
            owner = sim.link_tokens.get(request.headers.get("x-link-token", ""))

            async def answer() -> None:
                reply: dict[str, Any] = {
                    "abhaAddress": body.get("abhaAddress"),
                    "response": {"requestId": request_id},
                }
                if owner is None or owner[1] != hip_id:
                    reply["error"] = {"code": "ABDM-1094", "message": "Invalid link token"}
                else:
                    for patient in body.get("patient") or []:
                        for context in patient.get("careContexts") or []:
                            sim._link(owner[0], hip_id, patient, context)
                    reply["status"] = "Successfully Linked care context"
                await sim.callback(hip_id, "/api/v3/link/on_carecontext", reply)

            sim._spawn(answer())
            return JSONResponse({}, status_code=202)

        @app.post(GATEWAY + "/hip/v3/link/context/notify")
        async def context_notify(request: Request) -> JSONResponse:
            if (problem := sim._check_headers(request, facility=True)) is not None:
                return problem
            await sim._record(request)
            return JSONResponse({}, status_code=202)

        # -- receivers of the HIP's answers -----------------------------------------

        async def receiver(request: Request) -> JSONResponse:
            if (problem := sim._check_headers(request)) is not None:
                return problem
            body = await sim._record(request)
            path = request.url.path.removeprefix(GATEWAY)
            if path.endswith("/on-confirm") and not body.get("error"):
                hip_id = request.headers.get("x-hip-id", "")
                address = sim._link_sessions.pop(
                    str((body.get("response") or {}).get("requestId")), None
                )
                if address:
                    for patient in body.get("patient") or []:
                        for context in patient.get("careContexts") or []:
                            sim._link(address, hip_id, patient, context)
            if path.endswith("/health-information/hip/on-request"):
                txn = str((body.get("hiRequest") or {}).get("transactionId", ""))
                if txn in sim.hiu_requests:
                    sim.hiu_requests[txn].ack = body
            if path.endswith("/health-information/notify"):
                txn = str((body.get("notification") or {}).get("transactionId", ""))
                if txn in sim.hiu_requests:
                    sim.hiu_requests[txn].notify = body
            sim._answer(body)
            return JSONResponse({}, status_code=202)

        for path in (
            "/user-initiated-linking/v3/patient/care-context/on-discover",
            "/user-initiated-linking/v3/link/care-context/on-init",
            "/user-initiated-linking/v3/link/care-context/on-confirm",
            "/consent/v3/request/hip/on-notify",
            "/data-flow/v3/health-information/hip/on-request",
            "/data-flow/v3/health-information/notify",
            "/patient-share/v3/on-share",
        ):
            app.add_api_route(GATEWAY + path, receiver, methods=["POST"])

        # -- ABHA v3 --------------------------------------------------------------------

        def _abha_auth(request: Request) -> JSONResponse | None:
            if sim._client_of(request.headers.get("authorization")) is None:
                return JSONResponse(
                    {"code": "900901", "message": "Invalid Credentials"}, status_code=401
                )
            return None

        def _unseal(value: Any) -> str | None:
            try:
                return unseal(sim.abha_key, str(value))
            except Exception:
                return None

        @app.get(ABHA + "/profile/public/certificate")
        async def certificate(request: Request) -> JSONResponse:
            if (problem := _abha_auth(request)) is not None:
                return problem
            der = sim.abha_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return JSONResponse(
                {"publicKey": base64.b64encode(der).decode(), "encryptionAlgorithm": ABHA_ALGORITHM}
            )

        @app.post(ABHA + "/enrollment/request/otp")
        async def enrol_request_otp(request: Request) -> JSONResponse:
            if (problem := _abha_auth(request)) is not None:
                return problem
            body = await sim._record(request)
            login_id = _unseal(body.get("loginId"))
            if login_id is None:
                return JSONResponse({"loginId": "LoginId is invalid"}, status_code=400)
            if body.get("loginHint") == "aadhaar":
                try:
                    aadhaar = normalize_aadhaar(login_id)
                except InvalidAadhaar:
                    return JSONResponse({"loginId": "Invalid Aadhaar Number"}, status_code=400)
                txn_id = str(uuid.uuid4())
                sim.transactions[txn_id] = Transaction("enrol", sim.otp, aadhaar_last4=aadhaar[-4:])
                sim.transactions[txn_id].account = sim._person(aadhaar)
                mobile = sim.transactions[txn_id].account.mobile  # type: ignore[union-attr]
                return JSONResponse(
                    {
                        "txnId": txn_id,
                        "message": "OTP sent to Aadhaar registered mobile number ending with "
                        f"******{mobile[-4:]}",
                    }
                )
            if body.get("loginHint") == "mobile" and "mobile-verify" in (body.get("scope") or []):
                txn = sim.transactions.get(str(body.get("txnId")))
                if txn is None or not txn.verified:
                    return JSONResponse({"txnId": "Invalid transaction"}, status_code=400)
                txn.pending_mobile = login_id
                txn.otp, txn.attempts = sim.otp, 0
                return JSONResponse(
                    {
                        "txnId": body["txnId"],
                        "message": f"OTP sent to mobile number ending with ******{login_id[-4:]}",
                    }
                )
            return JSONResponse({"loginHint": "Unsupported loginHint"}, status_code=400)

        def _check_otp(txn: Transaction | None, sealed: Any) -> JSONResponse | None:
            if txn is None or time.monotonic() - txn.created > 600:
                return JSONResponse(
                    {"code": "ABDM-1204", "message": "Transaction not found or expired"},
                    status_code=400,
                )
            if txn.attempts >= 3:
                return JSONResponse(
                    {"code": "ABDM-1205", "message": "OTP attempts exceeded; start again"},
                    status_code=400,
                )
            if _unseal(sealed) != txn.otp:
                txn.attempts += 1
                return JSONResponse(
                    {"code": "ABDM-1204", "message": "Invalid OTP"}, status_code=400
                )
            return None

        @app.post(ABHA + "/enrollment/enrol/byAadhaar")
        async def enrol_by_aadhaar(request: Request) -> JSONResponse:
            if (problem := _abha_auth(request)) is not None:
                return problem
            body = await sim._record(request)
            otp = (body.get("authData") or {}).get("otp") or {}
            if (body.get("consent") or {}).get("code") != "abha-enrollment":
                return JSONResponse({"consent": "Consent is required"}, status_code=400)
            txn = sim.transactions.get(str(otp.get("txnId")))
            if (refused := _check_otp(txn, otp.get("otpValue"))) is not None:
                return refused
            assert txn is not None
            assert txn.account is not None
            txn.verified = True
            account = txn.account
            is_new = account not in sim.accounts
            if is_new:
                sim.accounts.append(account)
            profile = account.profile()
            if str(otp.get("mobile", "")) != account.mobile:
                profile["mobile"] = None  # not the Aadhaar-linked mobile: verify it
            return JSONResponse(
                {
                    "message": "Account created successfully"
                    if is_new
                    else "This account already exist",
                    "txnId": otp["txnId"],
                    "tokens": {
                        "token": secrets.token_urlsafe(16),
                        "expiresIn": 1800,
                        "refreshToken": secrets.token_urlsafe(16),
                        "refreshExpiresIn": 1296000,
                    },
                    "ABHAProfile": profile,
                    "isNew": is_new,
                }
            )

        @app.post(ABHA + "/enrollment/auth/byAbdm")
        async def auth_by_abdm(request: Request) -> JSONResponse:
            if (problem := _abha_auth(request)) is not None:
                return problem
            body = await sim._record(request)
            otp = (body.get("authData") or {}).get("otp") or {}
            txn = sim.transactions.get(str(otp.get("txnId")))
            if txn is None or txn.pending_mobile is None:
                return JSONResponse({"txnId": "No mobile verification pending"}, status_code=400)
            if (refused := _check_otp(txn, otp.get("otpValue"))) is not None:
                return refused
            assert txn.account is not None
            txn.account.mobile = txn.pending_mobile
            return JSONResponse(
                {
                    "txnId": otp["txnId"],
                    "authResult": "success",
                    "message": "Mobile number is now successfully linked to your Account",
                    "accounts": [{"ABHANumber": txn.account.abha_number}],
                }
            )

        @app.get(ABHA + "/enrollment/enrol/suggestion")
        async def suggestion(
            request: Request, transaction_id: str = Header("", alias="TRANSACTION_ID")
        ) -> JSONResponse:
            if (problem := _abha_auth(request)) is not None:
                return problem
            txn = sim.transactions.get(transaction_id)
            if txn is None or not txn.verified or txn.account is None:
                return JSONResponse({"txnId": "Invalid transaction"}, status_code=400)
            first, *rest = txn.account.name.lower().split()
            last = rest[-1] if rest else "abha"
            year = txn.account.year_of_birth
            options = [
                f"{first}.{last}",
                f"{first}{last}{year % 100:02d}",
                f"{first}.{year}",
                f"{last}.{first}",
            ]
            taken = {a for acc in sim.accounts for a in acc.addresses}
            return JSONResponse(
                {
                    "txnId": transaction_id,
                    "abhaAddressList": [o for o in options if f"{o}@sbx" not in taken],
                }
            )

        @app.post(ABHA + "/enrollment/enrol/abha-address")
        async def abha_address(request: Request) -> JSONResponse:
            if (problem := _abha_auth(request)) is not None:
                return problem
            body = await sim._record(request)
            txn = sim.transactions.get(str(body.get("txnId")))
            if txn is None or not txn.verified or txn.account is None:
                return JSONResponse({"txnId": "Invalid transaction"}, status_code=400)
            handle = str(body.get("abhaAddress", "")).lower().removesuffix("@sbx")
            if not _ADDRESS.match(handle):
                return JSONResponse(
                    {
                        "abhaAddress": "ABHA address must be 4+ letters, digits or '.', "
                        "not starting with a digit or '.'"
                    },
                    status_code=400,
                )
            address = f"{handle}@sbx"
            if sim.account_by_address(address) not in (None, txn.account):
                return JSONResponse({"abhaAddress": "ABHA address already exists"}, status_code=400)
            if address not in txn.account.addresses:
                txn.account.addresses.insert(0, address)
            return JSONResponse(
                {
                    "txnId": body["txnId"],
                    "healthIdNumber": txn.account.abha_number,
                    "preferredAbhaAddress": address,
                }
            )

        async def login_request(request: Request) -> JSONResponse:
            if (problem := _abha_auth(request)) is not None:
                return problem
            body = await sim._record(request)
            login_id = _unseal(body.get("loginId"))
            account = None
            if login_id and body.get("loginHint") == "abha-number":
                if not re.fullmatch(r"\d{2}-\d{4}-\d{4}-\d{4}", login_id):
                    return JSONResponse({"loginId": "LoginId is invalid"}, status_code=400)
                account = sim.account_by_number(login_id)
            elif login_id and body.get("loginHint") == "abha-address":
                account = sim.account_by_address(login_id.lower())
            if account is None:
                return JSONResponse(
                    {"code": "ABDM-1114", "message": "ABHA not found"}, status_code=400
                )
            txn_id = str(uuid.uuid4())
            sim.transactions[txn_id] = Transaction("login", sim.otp, account=account)
            return JSONResponse(
                {
                    "txnId": txn_id,
                    "message": f"OTP sent to mobile number ending with ******{account.mobile[-4:]}",
                }
            )

        async def login_verify(request: Request) -> JSONResponse:
            if (problem := _abha_auth(request)) is not None:
                return problem
            body = await sim._record(request)
            otp = (body.get("authData") or {}).get("otp") or {}
            txn = sim.transactions.get(str(otp.get("txnId")))
            if (refused := _check_otp(txn, otp.get("otpValue"))) is not None:
                return refused
            assert txn is not None
            assert txn.account is not None
            account = txn.account
            return JSONResponse(
                {
                    "txnId": otp["txnId"],
                    "authResult": "success",
                    "message": "OTP verified successfully",
                    "token": secrets.token_urlsafe(16),
                    "expiresIn": 1800,
                    "accounts": [
                        {
                            "ABHANumber": account.abha_number,
                            "preferredAbhaAddress": account.preferred_address,
                            "name": account.name,
                            "gender": account.gender,
                            "yearOfBirth": str(account.year_of_birth),
                            "mobile": account.mobile,
                        }
                    ],
                }
            )

        app.add_api_route(ABHA + "/profile/login/request/otp", login_request, methods=["POST"])
        app.add_api_route(ABHA + "/phr/web/login/abha/request/otp", login_request, methods=["POST"])
        app.add_api_route(ABHA + "/profile/login/verify", login_verify, methods=["POST"])
        app.add_api_route(ABHA + "/phr/web/login/abha/verify", login_verify, methods=["POST"])

        # -- people and other systems (/sim) ------------------------------------------

        @app.get("/sim/accounts")
        async def accounts() -> JSONResponse:
            return JSONResponse(
                [
                    {
                        "abhaNumber": a.abha_number,
                        "abhaAddresses": a.addresses,
                        "name": a.name,
                        "linkedCareContexts": sum(len(sim.linked.get(x, [])) for x in a.addresses),
                    }
                    for a in sim.accounts
                ]
            )

        @app.get("/sim/care-contexts")
        async def care_contexts(abha_address: str) -> JSONResponse:
            return JSONResponse(sim.linked.get(abha_address.lower(), []))

        @app.post("/sim/phone/messages")
        async def phone_in(request: Request) -> JSONResponse:
            body = await request.json()
            sim.phone.append({**body, "at": wire_timestamp()})
            return JSONResponse({"status": "delivered"}, status_code=202)

        @app.get("/sim/phone/messages")
        async def phone_out(to: str | None = None) -> JSONResponse:
            digits = re.sub(r"\D", "", to or "")[-10:]
            return JSONResponse(
                [
                    m
                    for m in sim.phone
                    if not digits or re.sub(r"\D", "", str(m.get("to")))[-10:] == digits
                ]
            )

        @app.post("/sim/consents")
        async def grant(request: Request) -> JSONResponse:
            body = await request.json()
            consent = sim.make_consent(body)
            if isinstance(consent, JSONResponse):
                return consent
            response = await sim.notify_consent(consent["consentId"], "GRANTED")
            return JSONResponse(
                {
                    "consentId": consent["consentId"],
                    "status": "GRANTED",
                    "hipAcknowledged": response is not None and response.status_code < 300,
                    "careContexts": consent["careContexts"],
                },
                status_code=201,
            )

        @app.post("/sim/consents/{consent_id}/revoke")
        async def revoke(consent_id: str) -> JSONResponse:
            return await sim._status_change(consent_id, "REVOKED")

        @app.post("/sim/consents/{consent_id}/expire")
        async def expire(consent_id: str) -> JSONResponse:
            return await sim._status_change(consent_id, "EXPIRED")

        @app.post("/sim/health-information/requests")
        async def hi_request(request: Request) -> JSONResponse:
            body = await request.json()
            consent = sim.consents.get(str(body.get("consentId")))
            if consent is None:
                return JSONResponse({"error": "unknown consent"}, status_code=404)
            base = str(request.base_url).rstrip("/")
            txn = await sim.request_health_information(consent, body, base)
            return JSONResponse({"transactionId": txn.transaction_id}, status_code=201)

        @app.get("/sim/health-information/requests/{transaction_id}")
        async def hi_result(transaction_id: str) -> JSONResponse:
            txn = sim.hiu_requests.get(transaction_id)
            if txn is None:
                return JSONResponse({"error": "unknown transaction"}, status_code=404)
            return JSONResponse(
                {
                    "transactionId": txn.transaction_id,
                    "consentId": txn.consent_id,
                    "acknowledgement": txn.ack,
                    "pushes": len(txn.pushes),
                    "decryptedBundles": txn.bundles,
                    "errors": txn.errors,
                    "notify": txn.notify,
                }
            )

        @app.post("/sim/data-push/{transaction_id}")
        async def data_push(transaction_id: str, request: Request) -> JSONResponse:
            body = await request.json()
            txn = sim.hiu_requests.get(transaction_id)
            if txn is None or str(body.get("transactionId")) != transaction_id:
                return JSONResponse({"error": "unknown transaction"}, status_code=404)
            if sim.fail_pushes > 0:
                sim.fail_pushes -= 1
                return JSONResponse({"error": "HIU temporarily unavailable"}, status_code=503)
            txn.pushes.append(body)
            sim.decrypt_push(txn, body)
            return JSONResponse({}, status_code=202)

        @app.post("/sim/phr/discover")
        async def discover(request: Request) -> JSONResponse:
            body = await request.json()
            return await sim._phr_call(body, "discover")

        @app.post("/sim/phr/link/init")
        async def link_init(request: Request) -> JSONResponse:
            body = await request.json()
            return await sim._phr_call(body, "init")

        @app.post("/sim/phr/link/confirm")
        async def link_confirm(request: Request) -> JSONResponse:
            body = await request.json()
            return await sim._phr_call(body, "confirm")

        @app.post("/sim/phr/share")
        async def share(request: Request) -> JSONResponse:
            body = await request.json()
            return await sim._phr_call(body, "share")

        return app

    # ---- behaviours used by the routes (and by tests directly) ---------------------------

    def _link(
        self, address: str, hip_id: str, patient: dict[str, Any], context: dict[str, Any]
    ) -> None:
        contexts = self.linked.setdefault(address.lower(), [])
        entry = {
            "hipId": hip_id,
            "patientReference": patient.get("referenceNumber"),
            "careContextReference": context.get("referenceNumber"),
            "display": context.get("display"),
            "hiType": patient.get("hiType") or "DiagnosticReport",
        }
        if not any(
            c["hipId"] == hip_id and c["careContextReference"] == entry["careContextReference"]
            for c in contexts
        ):
            contexts.append(entry)

    def _person(self, aadhaar: str) -> Account:
        for account in self.accounts:
            if (
                account.aadhaar_last4
                and account.aadhaar_last4 == aadhaar[-4:]
                and account.abha_number.endswith(aadhaar[-4:])
            ):
                return account
        digest = hashlib.sha256(aadhaar.encode()).hexdigest()
        digits = "91" + str(int(digest, 16))[:12]
        name, gender, year, month, day, mobile = DEMO_AADHAAR.get(
            aadhaar,
            (f"Demo Person {aadhaar[-4:]}", "F", 1990, 1, 1, "9" + str(int(digest[:12], 16))[:9]),
        )
        dashed = f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}"
        existing = self.account_by_number(dashed)
        if existing is not None:
            return existing
        return Account(
            dashed, name, gender, year, month, day, mobile, [], aadhaar_last4=aadhaar[-4:]
        )

    def make_consent(self, body: dict[str, Any]) -> dict[str, Any] | JSONResponse:
        address = str(body.get("abhaAddress", "")).lower()
        hip_id = str(body.get("hipId", ""))
        linked = [c for c in self.linked.get(address, []) if c["hipId"] == hip_id]
        wanted = body.get("careContexts")
        if wanted:
            linked = [c for c in linked if c["careContextReference"] in wanted]
        if not linked:
            return JSONResponse(
                {"error": "no care contexts linked to this ABHA address at this HIP"},
                status_code=409,
            )
        now = datetime.now(UTC)
        consent_id = str(body.get("consentId") or uuid.uuid4())
        consent = {
            "schemaVersion": "v3",
            "consentId": consent_id,
            "createdAt": wire_timestamp(now),
            "patient": {"id": address},
            "careContexts": [
                {
                    "patientReference": c["patientReference"],
                    "careContextReference": c["careContextReference"],
                }
                for c in linked
            ],
            "purpose": {
                "text": "Care Management",
                "code": body.get("purpose", "CAREMGT"),
                "refUri": "http://terminology.hl7.org/ValueSet/v3-PurposeOfUse",
            },
            "hip": {"id": hip_id, "name": "HIP"},
            "consentManager": {"id": "sbx"},
            "hiTypes": body.get("hiTypes") or ["DiagnosticReport"],
            "permission": {
                "accessMode": "VIEW",
                "dateRange": {
                    "from": body.get("dateFrom") or wire_timestamp(now - timedelta(days=365)),
                    "to": body.get("dateTo") or wire_timestamp(now + timedelta(days=1)),
                },
                "dataEraseAt": body.get("dataEraseAt") or wire_timestamp(now + timedelta(days=30)),
                "frequency": body.get("frequency") or {"unit": "HOUR", "value": 1, "repeats": 10},
            },
        }
        self.consents[consent_id] = consent
        return consent

    async def notify_consent(self, consent_id: str, status: str) -> httpx.Response | None:
        consent = self.consents[consent_id]
        notification: dict[str, Any] = {"status": status, "consentId": consent_id}
        if status == "GRANTED":
            notification["consentDetail"] = consent
            notification["signature"] = base64.b64encode(
                hashlib.sha256(json.dumps(consent, sort_keys=True).encode()).digest()
            ).decode()
        return await self.callback(
            consent["hip"]["id"],
            "/api/v3/consent/request/hip/notify",
            {"notification": notification},
        )

    async def _status_change(self, consent_id: str, status: str) -> JSONResponse:
        if consent_id not in self.consents:
            return JSONResponse({"error": "unknown consent"}, status_code=404)
        response = await self.notify_consent(consent_id, status)
        return JSONResponse(
            {
                "consentId": consent_id,
                "status": status,
                "hipAcknowledged": response is not None and response.status_code < 300,
            }
        )

    async def request_health_information(
        self, consent: dict[str, Any], body: dict[str, Any], base: str
    ) -> HiuRequest:
        keys = fidelius.KeyMaterial.generate()
        txn = HiuRequest(str(uuid.uuid4()), consent["consentId"], keys)
        self.hiu_requests[txn.transaction_id] = txn
        date_range = consent["permission"]["dateRange"]
        request = {
            "transactionId": txn.transaction_id,
            "hiRequest": {
                "consent": {"id": consent["consentId"]},
                "dateRange": {
                    "from": body.get("dateFrom") or date_range["from"],
                    "to": body.get("dateTo") or date_range["to"],
                },
                "dataPushUrl": f"{base}/sim/data-push/{txn.transaction_id}",
                "keyMaterial": {
                    "cryptoAlg": fidelius.CRYPTO_ALGORITHM,
                    "curve": fidelius.CURVE,
                    "dhPublicKey": {
                        "expiry": wire_timestamp(datetime.now(UTC) + timedelta(hours=1)),
                        "parameters": fidelius.KEY_PARAMETERS,
                        "keyValue": keys.public_key_x509,
                    },
                    "nonce": keys.nonce_b64,
                },
            },
        }
        await self.callback(consent["hip"]["id"], "/api/v3/hip/health-information/request", request)
        return txn

    def decrypt_push(self, txn: HiuRequest, body: dict[str, Any]) -> None:
        """Decrypt every entry with our private key and check it is a FHIR document."""
        material = body.get("keyMaterial") or {}
        sender_key = (material.get("dhPublicKey") or {}).get("keyValue", "")
        sender_nonce = material.get("nonce", "")
        for entry in body.get("entries") or []:
            reference = entry.get("careContextReference")
            try:
                plaintext = fidelius.decrypt(txn.keys, sender_key, sender_nonce, entry["content"])
            except (fidelius.FideliusError, KeyError) as exc:
                txn.errors.append(f"{reference}: cannot decrypt ({exc})")
                continue
            if (
                entry.get("checksum")
                and entry["checksum"] != hashlib.md5(plaintext.encode()).hexdigest()  # noqa: S324
            ):
                txn.errors.append(f"{reference}: checksum mismatch")
            try:
                bundle = json.loads(plaintext)
            except ValueError:
                txn.errors.append(f"{reference}: not JSON")
                continue
            txn.bundles.append({"careContextReference": reference, "bundle": bundle})

    async def _phr_call(self, body: dict[str, Any], step: str) -> JSONResponse:
        hip_id = str(body.get("hipId", ""))
        request_id = str(uuid.uuid4())
        future = self._waiter(request_id)
        if step == "discover":
            account = self.account_by_address(str(body.get("abhaAddress", "")).lower())
            if account is None:
                return JSONResponse({"error": "unknown ABHA address"}, status_code=404)
            verified = [
                {"type": "MOBILE", "value": account.mobile},
                {"type": "ABHA_NUMBER", "value": account.abha_number},
            ]
            payload: dict[str, Any] = {
                "transactionId": str(uuid.uuid4()),
                "patient": {
                    "id": account.preferred_address,
                    "name": account.name,
                    "gender": account.gender,
                    "yearOfBirth": account.year_of_birth,
                    "verifiedIdentifiers": verified,
                    "unverifiedIdentifiers": [{"type": "MR", "value": body["mrn"]}]
                    if body.get("mrn")
                    else [],
                },
            }
            path = "/api/v3/hip/patient/care-context/discover"
        elif step == "init":
            payload = {
                "transactionId": body.get("transactionId"),
                "abhaAddress": body.get("abhaAddress"),
                "patient": body.get("patient") or [],
            }
            path = "/api/v3/hip/link/care-context/init"
        elif step == "confirm":
            payload = {
                "confirmation": {
                    "linkRefNumber": body.get("linkRefNumber"),
                    "token": body.get("otp"),
                }
            }
            path = "/api/v3/hip/link/care-context/confirm"
            self._link_sessions[request_id] = str(body.get("abhaAddress", "")).lower()
        else:
            account = self.account_by_address(str(body.get("abhaAddress", "")).lower())
            if account is None:
                return JSONResponse({"error": "unknown ABHA address"}, status_code=404)
            payload = {
                "intent": "PROFILE_SHARE",
                "metaData": {
                    "hipId": hip_id,
                    "context": body.get("counter") or "REG-1",
                    "hprId": "",
                    "latitude": 18.52,
                    "longitude": 73.85,
                },
                "profile": {
                    "patient": {
                        "abhaNumber": account.abha_number,
                        "abhaAddress": account.preferred_address,
                        "name": account.name,
                        "gender": account.gender,
                        "dayOfBirth": account.day_of_birth,
                        "monthOfBirth": account.month_of_birth,
                        "yearOfBirth": account.year_of_birth,
                        "address": {
                            "line": "Pune",
                            "district": "Pune",
                            "state": "Maharashtra",
                            "pincode": "411005",
                        },
                        "phoneNumber": account.mobile,
                    }
                },
            }
            path = "/api/v3/hip/patient/share"
        response = await self.callback(hip_id, path, payload, request_id=request_id)
        if response is None or response.status_code >= 300:
            self._waiters.pop(request_id, None)
            return JSONResponse(
                {
                    "error": "the HIP did not accept the request",
                    "status": response.status_code if response is not None else None,
                },
                status_code=502,
            )
        try:
            answer = await self.wait_for(future, 15)
        except TimeoutError:
            return JSONResponse({"error": "no answer from the HIP within 15 s"}, status_code=504)
        return JSONResponse(answer)
