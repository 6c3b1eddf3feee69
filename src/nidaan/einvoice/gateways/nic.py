"""The NIC IRP adapter (e-invoice API v1.04 authentication, v1.03 IRN calls), over httpx.

* ``POST /eivital/v1.04/auth``: a fresh random AppKey with the credentials, RSA-encrypted with
  the IRP public key; the answer's ``Sek`` is decrypted with the AppKey. The token and SEK are
  cached per (IRP, client, GSTIN, user) until two minutes before ``TokenExpiry``; an
  invalid-token answer (1005) re-authenticates once.
* ``POST /eicore/v1.03/Invoice``, ``.../Invoice/Cancel``, ``GET .../Invoice/irn/{irn}``,
  ``GET .../Invoice/irnbydocdetails``: payloads and answers AES-encrypted with the SEK.
* Network errors, timeouts, 429 and 5xx are retried with exponential backoff and jitter, then
  raised as ``IrpUnavailable``; the IRP's own refusals are ``IrpRejected`` (``IrpDuplicate``
  for 2150 with the existing IRN from ``InfoDtls``).

Secrets (password, AppKey, SEK, token) never reach a log or the exchange record.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import certifi
import httpx
import jwt

from nidaan.einvoice import wire
from nidaan.einvoice.domain import from_json, to_json
from nidaan.einvoice.gateways.base import (
    Cancelled,
    Exchange,
    IrnRecord,
    IrpAuthFailed,
    IrpCredentials,
    IrpDuplicate,
    IrpRejected,
    IrpUnavailable,
)
from nidaan.kit.time import IST, utcnow

AUTH_PATH = "/eivital/v1.04/auth"
INVOICE_PATH = "/eicore/v1.03/Invoice"
CANCEL_PATH = "/eicore/v1.03/Invoice/Cancel"
IRN_PATH = "/eicore/v1.03/Invoice/irn/{irn}"
BY_DOC_PATH = "/eicore/v1.03/Invoice/irnbydocdetails"
INVALID_TOKEN_CODES = frozenset({"1005"})
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
TOKEN_MARGIN = timedelta(minutes=2)
IRP_TIME = "%Y-%m-%d %H:%M:%S"


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    # Building a TLS context loads the CA bundle (tens of milliseconds); do it once per process.
    return ssl.create_default_context(cafile=certifi.where())


def parse_irp_time(text: str) -> datetime:
    """The IRP writes times in IST without a zone: ``2026-12-07 21:30:05``."""
    return datetime.strptime(text, IRP_TIME).replace(tzinfo=IST)


@dataclass
class _Session:
    token: str
    sek: bytes
    expires_at: datetime


#: Tokens per (IRP URL, client id, GSTIN, user) in this process. A token is valid for 6 hours
#: and the IRP hands back the same one when asked again, so sharing it is safe.
_SESSIONS: dict[tuple[str, str, str, str], _Session] = {}


def forget_sessions() -> None:
    _SESSIONS.clear()


class NicIrp:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        public_key_pem: str,
        *,
        signing_key_pem: str | None = None,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 20.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._public_key_pem = public_key_pem
        self._signing_key = wire.load_public_key(signing_key_pem or public_key_pem)
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.timeout = httpx.Timeout(timeout_seconds)
        self._exchanges: list[Exchange] = []

    # ------------------------------------------------------------------ port

    async def generate(self, credentials: IrpCredentials, payload: dict[str, Any]) -> IrnRecord:
        data = await self._call(credentials, "generate", "POST", INVOICE_PATH, payload)
        return self._record(data)

    async def get_by_irn(self, credentials: IrpCredentials, irn: str) -> IrnRecord:
        data = await self._call(credentials, "get_irn", "GET", IRN_PATH.format(irn=irn))
        return self._record(data)

    async def get_by_document(
        self, credentials: IrpCredentials, doc_type: str, doc_no: str, doc_date: str
    ) -> IrnRecord:
        params = {"doctype": doc_type, "docnum": doc_no, "docdate": doc_date}
        data = await self._call(credentials, "get_by_document", "GET", BY_DOC_PATH, params=params)
        return self._record(data)

    async def cancel(
        self, credentials: IrpCredentials, irn: str, reason: str, remark: str
    ) -> Cancelled:
        body = {"Irn": irn, "CnlRsn": reason, "CnlRem": remark}
        data = await self._call(credentials, "cancel", "POST", CANCEL_PATH, body)
        return Cancelled(irn=data["Irn"], cancelled_at=parse_irp_time(data["CancelDate"]))

    def verify_signed(self, token: str) -> dict[str, Any]:
        claims = jwt.decode(
            token,
            self._signing_key,
            algorithms=["RS256"],
            options={"verify_aud": False, "require": ["data"]},
        )
        data = claims["data"]
        parsed = from_json(data) if isinstance(data, str) else data
        if not isinstance(parsed, dict):
            raise jwt.InvalidTokenError("the data claim is not a JSON object")
        return parsed

    def take_exchanges(self) -> list[Exchange]:
        taken, self._exchanges = self._exchanges, []
        return taken

    # ------------------------------------------------------------------ plumbing

    def _record(self, data: dict[str, Any]) -> IrnRecord:
        return IrnRecord(
            irn=data["Irn"],
            ack_no=str(data["AckNo"]),
            ack_at=parse_irp_time(data["AckDt"]),
            ack_date_text=data["AckDt"],
            signed_invoice=data["SignedInvoice"],
            signed_qr_code=data["SignedQRCode"],
            status=data.get("Status", "ACT"),
            raw={k: v for k, v in data.items() if k not in ("SignedInvoice", "SignedQRCode")},
        )

    def _key(self, credentials: IrpCredentials) -> tuple[str, str, str, str]:
        return (self.base_url, self.client_id, credentials.gstin, credentials.username)

    def _headers(self, credentials: IrpCredentials) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "Gstin": credentials.gstin,
            "user_name": credentials.username,
        }

    async def _session(self, credentials: IrpCredentials, *, force: bool = False) -> _Session:
        key = self._key(credentials)
        cached = _SESSIONS.get(key)
        if cached is not None and not force and utcnow() < cached.expires_at - TOKEN_MARGIN:
            return cached
        app_key = wire.new_app_key()
        secret = {
            "UserName": credentials.username,
            "Password": credentials.password,
            "AppKey": wire.b64(app_key),
            "ForceRefreshAccessToken": force,
        }
        encrypted = wire.rsa_encrypt(
            self._public_key_pem, wire.b64(json.dumps(secret).encode()).encode()
        )
        response = await self._send(
            "POST",
            AUTH_PATH,
            headers=self._headers(credentials),
            json={"Data": wire.b64(encrypted)},
        )
        body = self._body(response)
        self._log("auth", {"UserName": credentials.username}, None, response, body)
        if str(body.get("Status")) != "1":
            codes, messages, _ = _errors(body)
            raise IrpAuthFailed(
                f"The IRP refused the login: {messages}", codes, exchanges=self.take_exchanges()
            )
        data = body["Data"]
        session = _Session(
            token=data["AuthToken"],
            sek=wire.aes_decrypt(app_key, wire.unb64(data["Sek"])),
            expires_at=parse_irp_time(data["TokenExpiry"]),
        )
        _SESSIONS[key] = session
        return session

    async def _call(
        self,
        credentials: IrpCredentials,
        operation: str,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        for refreshed in (False, True):
            session = await self._session(credentials, force=refreshed)
            headers = {**self._headers(credentials), "AuthToken": session.token}
            body_json = None
            if payload is not None:
                encrypted = wire.aes_encrypt(session.sek, to_json(payload).encode())
                body_json = {"Data": wire.b64(encrypted)}
            response = await self._send(
                method, path, headers=headers, json=body_json, params=params
            )
            body = self._body(response)
            data = None
            if str(body.get("Status")) == "1" and isinstance(body.get("Data"), str):
                data = from_json(wire.aes_decrypt(session.sek, wire.unb64(body["Data"])))
            self._log(operation, payload or params, data, response, body)
            if data is not None:
                return dict(data)
            codes, messages, info = _errors(body)
            if set(codes) & INVALID_TOKEN_CODES and not refreshed:
                _SESSIONS.pop(self._key(credentials), None)
                continue
            if "2150" in codes:
                raise IrpDuplicate(
                    f"Duplicate IRN: {messages}",
                    _duplicate_irn(info),
                    info=info,
                    exchanges=self.take_exchanges(),
                )
            raise IrpRejected(messages, codes, info, exchanges=self.take_exchanges())
        raise AssertionError("unreachable")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        last: str = ""
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                await asyncio.sleep(delay * (0.75 + random.random() / 2))  # noqa: S311 (jitter)
            try:
                async with httpx.AsyncClient(timeout=self.timeout, verify=_tls()) as client:
                    response = await client.request(
                        method, self.base_url + path, headers=headers, json=json, params=params
                    )
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__} talking to the IRP"
                continue
            if response.status_code in TRANSIENT_STATUS:
                last = f"the IRP answered HTTP {response.status_code}"
                continue
            return response
        self._exchanges.append(Exchange("transport", None, None, None, []))
        raise IrpUnavailable(
            f"The IRP did not answer after {self.attempts} attempts ({last}).",
            exchanges=self.take_exchanges(),
        )

    @staticmethod
    def _body(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IrpRejected(
                f"The IRP answered HTTP {response.status_code} without a JSON body.",
                [str(response.status_code)],
            )
        return body

    def _log(
        self,
        operation: str,
        request: dict[str, Any] | None,
        data: Any,
        response: httpx.Response,
        body: dict[str, Any],
    ) -> None:
        codes, _, info = _errors(body)
        shown = data if operation != "auth" else None
        if isinstance(shown, dict):
            shown = {k: v for k, v in shown.items() if k not in ("SignedInvoice", "SignedQRCode")}
        elif info:
            shown = {"InfoDtls": info}
        self._exchanges.append(
            Exchange(
                operation,
                json.loads(to_json(request)) if request is not None else None,
                json.loads(to_json(shown)) if shown is not None else None,
                response.status_code,
                codes,
            )
        )


def _errors(body: dict[str, Any]) -> tuple[list[str], str, list[dict[str, Any]]]:
    """Error codes, their messages in one line, and ``InfoDtls``. The auth call sends
    ``ErrorDetails`` Base64-encoded; the others send it as a list."""
    details = body.get("ErrorDetails") or []
    if isinstance(details, str):
        try:
            details = json.loads(wire.unb64(details))
        except ValueError:
            details = [{"ErrorCode": "", "ErrorMessage": details}]
    if isinstance(details, dict):
        details = [details]
    codes = [str(d.get("ErrorCode", "")) for d in details]
    messages = "; ".join(f"{d.get('ErrorCode')}: {d.get('ErrorMessage')}" for d in details)
    info = body.get("InfoDtls") or []
    return codes, messages or "the IRP refused the request", list(info)


def _duplicate_irn(info: list[dict[str, Any]]) -> str | None:
    for entry in info:
        if entry.get("InfCd") == "DUPIRN":
            desc = entry.get("Desc")
            if isinstance(desc, str):
                try:
                    desc = json.loads(desc)
                except ValueError:
                    return None
            if isinstance(desc, dict) and isinstance(desc.get("Irn"), str):
                return str(desc["Irn"])
    return None
