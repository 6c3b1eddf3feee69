"""The HTTP adapters to ABDM: the HIE-CM gateway (session, HIP calls, pushes) and ABHA v3.

``AbhaPort`` and ``HieGatewayPort`` are the ports; ``HttpAbha`` and ``HttpHieGateway`` speak
ABDM's documented wire format with httpx (tests and the demo point them at our simulator).

- One gateway session per process and client: refreshed before it expires and again when a
  call is refused with 401 / ``900901``; failed session calls back off (ABDM locks a client
  after repeated failures).
- Every call carries ``REQUEST-ID``, ``TIMESTAMP`` (UTC with ``Z``), ``X-CM-ID`` and the
  facility header where it acts for one; each exchange is handed to a recorder with its
  sensitive fields redacted (sealed Aadhaar/OTP values never reach the database).
- ``CallbackVerifier`` checks the gateway's RS256 bearer token on every callback (JWKS from
  ``/gateway/v3/certs``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt

from nidaan.abdm.config import AbdmConfig
from nidaan.abdm.domain import error_code, wire_timestamp

logger = logging.getLogger(__name__)

#: Fields never stored in the exchange log (sealed identifiers, OTPs, tokens, photos).
REDACTED_FIELDS = frozenset(
    {
        "loginId",
        "otpValue",
        "clientSecret",
        "accessToken",
        "refreshToken",
        "token",
        "linkToken",
        "photo",
        "mobile",
        "otp",
    }
)
TIMEOUT = httpx.Timeout(20.0, connect=5.0)
#: Refresh the session this long before it expires.
REFRESH_MARGIN_SECONDS = 60
AUTH_RETRY_CODES = {"900901"}


class GatewayError(Exception):
    """ABDM refused a call (or was unreachable); ``code`` is ABDM's error code if it sent one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("[redacted]" if k in REDACTED_FIELDS and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class Exchange:
    """One call as it went over the wire (bodies redacted)."""

    method: str
    path: str
    request_id: str
    hip_id: str | None
    body: str
    http_status: int | None
    response: str | None
    error: str | None
    duration_ms: int


Recorder = Callable[[Exchange], Awaitable[None]]


async def _no_recorder(exchange: Exchange) -> None:
    return None


def _error_from(response: httpx.Response) -> GatewayError:
    message, code = response.text[:500] or f"HTTP {response.status_code}", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = error_code(str(inner.get("code"))) if inner.get("code") else None
        details = inner.get("details")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            code = error_code(str(details[0].get("code"))) or code  # HIS- errors
        message = str(inner.get("message") or message)
    return GatewayError(message, status=response.status_code, code=code)


class GatewaySession:
    """The bearer token of one client, refreshed before expiry and on auth errors."""

    def __init__(self, config: AbdmConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0
        self._refresh_expires_at = 0.0
        self._failures = 0
        self._blocked_until = 0.0

    async def token(self) -> str:
        async with self._lock:
            now = time.monotonic()
            if self._token is None or now >= self._expires_at - REFRESH_MARGIN_SECONDS:
                await self._renew(now)
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        if token == self._token:
            self._token = None

    async def _renew(self, now: float) -> None:
        if now < self._blocked_until:
            raise GatewayError("Gateway sessions are backing off after refusals; retry later.")
        use_refresh = self._refresh_token is not None and now < self._refresh_expires_at - 5
        body: dict[str, Any] = {
            "clientId": self._config.client_id,
            "clientSecret": self._config.client_secret,
            "grantType": "refresh_token" if use_refresh else "client_credentials",
        }
        if use_refresh:
            body["refreshToken"] = self._refresh_token
        response = await self._client.post(
            f"{self._config.gateway_url}/gateway/v3/sessions",
            json=body,
            headers={
                "REQUEST-ID": str(uuid.uuid4()),
                "TIMESTAMP": wire_timestamp(),
                "X-CM-ID": self._config.cm_id,
            },
        )
        if response.status_code != 200:
            if use_refresh:  # a refused refresh token: start over with the credentials
                self._refresh_token = None
                await self._renew(now)
                return
            self._failures += 1
            # 8 refusals lock a sandbox client for minutes: wait 2, 4, 8 ... s (max 5 min).
            self._blocked_until = now + min(300, 2**self._failures)
            raise _error_from(response)
        data = response.json()
        self._failures = 0
        self._token = str(data["accessToken"])
        self._expires_at = now + float(data.get("expiresIn") or 600)
        self._refresh_token = data.get("refreshToken")
        self._refresh_expires_at = now + float(data.get("refreshExpiresIn") or 0)


_sessions: dict[tuple[str, str], GatewaySession] = {}


class _Caller:
    """Shared by both adapters: headers, session, one retry on auth errors, recording."""

    def __init__(
        self, config: AbdmConfig, client: httpx.AsyncClient | None, recorder: Recorder | None
    ) -> None:
        self.config = config
        self.client = client or httpx.AsyncClient(timeout=TIMEOUT)
        self.recorder = recorder or _no_recorder
        key = (config.gateway_url, config.client_id)
        if key not in _sessions:
            _sessions[key] = GatewaySession(config, httpx.AsyncClient(timeout=TIMEOUT))
        self.session = _sessions[key]

    async def call(
        self,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
        hip_id: str | None = None,
        expect: tuple[int, ...] = (200, 202),
    ) -> httpx.Response:
        request_id = request_id or str(uuid.uuid4())
        started = time.perf_counter()
        response: httpx.Response | None = None
        error: str | None = None
        try:
            for attempt in (1, 2):
                token = await self.session.token()
                sent_headers = {
                    "Authorization": f"Bearer {token}",
                    "REQUEST-ID": request_id,
                    "TIMESTAMP": wire_timestamp(),
                    "X-CM-ID": self.config.cm_id,
                    **({"X-HIP-ID": hip_id} if hip_id else {}),
                    **(headers or {}),
                }
                response = await self.client.request(method, url, json=body, headers=sent_headers)
                if attempt == 1 and _auth_refused(response):
                    self.session.invalidate(token)
                    continue
                break
            assert response is not None
            if response.status_code not in expect:
                raise _error_from(response)
            return response
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise GatewayError(f"ABDM is unreachable ({type(exc).__name__}).") from exc
        except GatewayError as exc:
            error = str(exc)
            raise
        finally:
            await self.recorder(
                Exchange(
                    method=method,
                    path=url,
                    request_id=request_id,
                    hip_id=hip_id,
                    body=json.dumps(redact(body), ensure_ascii=False) if body is not None else "",
                    http_status=response.status_code if response is not None else None,
                    response=_redacted_text(response) if response is not None else None,
                    error=error,
                    duration_ms=int((time.perf_counter() - started) * 1000),
                )
            )


def _auth_refused(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    if response.status_code == 400:
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and str(body.get("code", "")) in AUTH_RETRY_CODES
    return False


def _redacted_text(response: httpx.Response) -> str:
    try:
        return json.dumps(redact(response.json()), ensure_ascii=False)[:20000]
    except ValueError:
        return response.text[:2000]


# ---- ABHA v3 (M1) --------------------------------------------------------------------------


class AbhaPort(Protocol):
    async def public_key(self) -> str: ...

    async def request_otp(
        self,
        *,
        scope: list[str],
        login_hint: str,
        login_id: str,
        otp_system: str,
        txn_id: str | None = None,
    ) -> dict[str, Any]: ...

    async def enrol_by_aadhaar(self, *, txn_id: str, otp: str, mobile: str) -> dict[str, Any]: ...

    async def verify_mobile(self, *, txn_id: str, otp: str) -> dict[str, Any]: ...

    async def address_suggestions(self, txn_id: str) -> list[str]: ...

    async def set_address(self, *, txn_id: str, address: str) -> dict[str, Any]: ...

    async def login_request_otp(
        self, *, by_address: bool, scope: list[str], login_id: str, otp_system: str
    ) -> dict[str, Any]: ...

    async def login_verify(
        self, *, by_address: bool, scope: list[str], txn_id: str, otp: str
    ) -> dict[str, Any]: ...


class HttpAbha:
    """ABHA v3 over HTTP. Values passed in as ``login_id``/``otp`` are already sealed."""

    def __init__(
        self,
        config: AbdmConfig,
        client: httpx.AsyncClient | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self._caller = _Caller(config, client, recorder)
        self._base = f"{config.abha_url}/v3"

    async def _post(self, path: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        response = await self._caller.call(
            "POST", self._base + path, body=body, expect=(200,), **kwargs
        )
        return dict(response.json())

    async def public_key(self) -> str:
        response = await self._caller.call(
            "GET", f"{self._base}/profile/public/certificate", expect=(200,)
        )
        return str(response.json()["publicKey"])

    async def request_otp(
        self,
        *,
        scope: list[str],
        login_hint: str,
        login_id: str,
        otp_system: str,
        txn_id: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "txnId": txn_id or "",
            "scope": scope,
            "loginHint": login_hint,
            "loginId": login_id,
            "otpSystem": otp_system,
        }
        return await self._post("/enrollment/request/otp", body)

    async def enrol_by_aadhaar(self, *, txn_id: str, otp: str, mobile: str) -> dict[str, Any]:
        body = {
            "authData": {
                "authMethods": ["otp"],
                "otp": {
                    "timeStamp": wire_timestamp(),
                    "txnId": txn_id,
                    "otpValue": otp,
                    "mobile": mobile,
                },
            },
            "consent": {"code": "abha-enrollment", "version": "1.4"},
        }
        return await self._post("/enrollment/enrol/byAadhaar", body)

    async def verify_mobile(self, *, txn_id: str, otp: str) -> dict[str, Any]:
        body = {
            "scope": ["abha-enrol", "mobile-verify"],
            "authData": {
                "authMethods": ["otp"],
                "otp": {"timeStamp": wire_timestamp(), "txnId": txn_id, "otpValue": otp},
            },
        }
        return await self._post("/enrollment/auth/byAbdm", body)

    async def address_suggestions(self, txn_id: str) -> list[str]:
        response = await self._caller.call(
            "GET",
            f"{self._base}/enrollment/enrol/suggestion",
            headers={"TRANSACTION_ID": txn_id},
            expect=(200,),
        )
        return [str(a) for a in response.json().get("abhaAddressList") or []]

    async def set_address(self, *, txn_id: str, address: str) -> dict[str, Any]:
        body = {"txnId": txn_id, "abhaAddress": address, "preferred": 1}
        return await self._post("/enrollment/enrol/abha-address", body)

    async def login_request_otp(
        self, *, by_address: bool, scope: list[str], login_id: str, otp_system: str
    ) -> dict[str, Any]:
        path = "/phr/web/login/abha/request/otp" if by_address else "/profile/login/request/otp"
        body = {
            "scope": scope,
            "loginHint": "abha-address" if by_address else "abha-number",
            "loginId": login_id,
            "otpSystem": otp_system,
        }
        return await self._post(path, body)

    async def login_verify(
        self, *, by_address: bool, scope: list[str], txn_id: str, otp: str
    ) -> dict[str, Any]:
        path = "/phr/web/login/abha/verify" if by_address else "/profile/login/verify"
        body = {
            "scope": scope,
            "authData": {"authMethods": ["otp"], "otp": {"txnId": txn_id, "otpValue": otp}},
        }
        return await self._post(path, body)


# ---- HIE-CM gateway (M2/M3) -----------------------------------------------------------------

#: Outbound HIP paths under the gateway base (v3).
PATHS = {
    "generate_token": "/v3/token/generate-token",
    "link_carecontext": "/hip/v3/link/carecontext",
    "context_notify": "/hip/v3/link/context/notify",
    "on_discover": "/user-initiated-linking/v3/patient/care-context/on-discover",
    "on_init": "/user-initiated-linking/v3/link/care-context/on-init",
    "on_confirm": "/user-initiated-linking/v3/link/care-context/on-confirm",
    "consent_on_notify": "/consent/v3/request/hip/on-notify",
    "hi_on_request": "/data-flow/v3/health-information/hip/on-request",
    "hi_notify": "/data-flow/v3/health-information/notify",
    "share_on_share": "/patient-share/v3/on-share",
}


class HieGatewayPort(Protocol):
    async def send(
        self,
        name: str,
        body: dict[str, Any],
        *,
        hip_id: str,
        request_id: str,
        link_token: str | None = None,
    ) -> None: ...

    async def push(self, url: str, body: dict[str, Any], *, hip_id: str) -> int: ...

    async def register_bridge(self, bridge_url: str, services: list[tuple[str, str]]) -> None: ...


class HttpHieGateway:
    def __init__(
        self,
        config: AbdmConfig,
        client: httpx.AsyncClient | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self._caller = _Caller(config, client, recorder)
        self._config = config

    async def send(
        self,
        name: str,
        body: dict[str, Any],
        *,
        hip_id: str,
        request_id: str,
        link_token: str | None = None,
    ) -> None:
        """POST one of ``PATHS``; ABDM answers 202 and the result comes back as a callback."""
        headers = {"X-LINK-TOKEN": link_token} if link_token else None
        await self._caller.call(
            "POST",
            self._config.gateway_url + PATHS[name],
            body=body,
            headers=headers,
            request_id=request_id,
            hip_id=hip_id,
        )

    async def push(self, url: str, body: dict[str, Any], *, hip_id: str) -> int:
        """POST encrypted records to the requester's data push URL (with the gateway token)."""
        response = await self._caller.call(
            "POST", url, body=body, hip_id=hip_id, expect=(200, 202, 204)
        )
        return response.status_code

    async def register_bridge(self, bridge_url: str, services: list[tuple[str, str]]) -> None:
        """Tell the gateway where our callbacks go, and which HIP ids we serve there."""
        await self._caller.call(
            "PATCH",
            f"{self._config.gateway_url}/gateway/v3/bridge/url",
            body={"url": bridge_url},
            expect=(200, 202, 204),
        )
        for hip_id, name in services:
            await self._caller.call(
                "PUT",
                f"{self._config.gateway_url}/gateway/v3/bridge-service",
                body={"id": hip_id, "name": name, "type": "HIP", "active": True},
                expect=(200, 202, 204),
            )


# ---- inbound ----------------------------------------------------------------------------


class CallbackRejected(Exception):
    """The callback's bearer token is missing, forged or expired."""


class CallbackVerifier:
    """Check the gateway's RS256 JWT on a callback against its published keys."""

    CACHE_SECONDS = 600

    def __init__(self, config: AbdmConfig, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT)
        self._keys: dict[str, Any] = {}
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def _jwks(self, refresh: bool = False) -> dict[str, Any]:
        async with self._lock:
            if refresh or not self._keys or time.monotonic() - self._fetched > self.CACHE_SECONDS:
                response = await self._client.get(
                    self._config.certs_url,
                    headers={
                        "REQUEST-ID": str(uuid.uuid4()),
                        "TIMESTAMP": wire_timestamp(),
                        "X-CM-ID": self._config.cm_id,
                    },
                )
                response.raise_for_status()
                self._keys = {
                    str(k.get("kid", "")): jwt.PyJWK(k) for k in response.json().get("keys", [])
                }
                self._fetched = time.monotonic()
            return self._keys

    async def verify(self, authorization: str | None) -> dict[str, Any]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise CallbackRejected("missing bearer token")
        try:
            kid = str(jwt.get_unverified_header(token).get("kid", ""))
        except jwt.PyJWTError as exc:
            raise CallbackRejected("malformed token") from exc
        try:
            keys = await self._jwks()
            if kid not in keys:  # the gateway rotated its key
                keys = await self._jwks(refresh=True)
        except httpx.HTTPError as exc:
            raise CallbackRejected("the gateway's keys are unreachable") from exc
        key = keys.get(kid)
        if key is None:
            raise CallbackRejected("unknown signing key")
        try:
            return dict(jwt.decode(token, key=key.key, algorithms=["RS256"], audience="account"))
        except jwt.PyJWTError as exc:
            raise CallbackRejected(f"invalid token ({type(exc).__name__})") from exc
