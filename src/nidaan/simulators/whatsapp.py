"""A WhatsApp Cloud API simulator (ASGI): the send endpoint, template checks, and signed
status webhooks posted back to the app, as Meta does.

``POST /{version}/{phone-number-id}/messages`` takes the documented payloads (``template``,
``document``, ``text``) with a Bearer token and answers ``{"messaging_product", "contacts",
"messages": [{"id": "wamid...."}]}``, or Meta's error object:

- unknown template or language -> 132001; wrong parameter count -> 132000; a parameter with
  a newline, tab or more than four consecutive spaces -> 132018; body over 1,024 characters
  -> 132005 (the approved templates are the lab's four, in English and Hindi);
- over ``messages_per_second`` -> 130429; a pair (same recipient) faster than
  ``pair_interval`` -> 131056; a bad token -> 190.

Accepted messages then get status webhooks (``sent``, ``delivered``, optionally ``read``)
POSTed to ``webhook_url``, signed ``X-Hub-Signature-256`` with the App Secret and carrying
``biz_opaque_callback_data``. Failures Meta reports asynchronously are simulated too: a
free-form message (document, text) to someone who has not written in 24 hours fails with
131047; a number marked "not on WhatsApp" fails with 131026. ``duplicate_statuses`` and
``shuffle_statuses`` deliver statuses twice and out of order, as Meta may.

Inspection and control under ``/_sim``: ``GET /_sim/messages`` (every accepted request and its
statuses), ``POST /_sim/inbound`` (a person writes: opens the 24-hour window, "STOP" opts
out), ``POST /_sim/numbers`` (mark a number undeliverable), ``POST /_sim/reset``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nidaan.notifications.templates import MAX_BODY_CHARS, TEMPLATES, WHATSAPP_LANGUAGE_CODES

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 24 * 3600
_FORBIDDEN = re.compile(r"[\n\r\t]| {5,}")


@dataclass
class SimulatedMessage:
    wamid: str
    to: str
    type: str
    payload: dict[str, Any]
    accepted_at: float
    statuses: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, Any] | None = None


@dataclass
class SimulatorOptions:
    status_delay: float = 0.05  # seconds between sent, delivered and read
    read_rate: float = 1.0  # share of delivered messages that are read
    duplicate_statuses: bool = False
    shuffle_statuses: bool = False
    messages_per_second: float | None = None
    pair_interval: float | None = None
    fetch_media: bool = True  # download document links as Meta does
    enforce_window: bool = True


class WhatsAppSimulator:
    """One simulated business phone number and its Meta app."""

    def __init__(
        self,
        *,
        access_token: str,
        app_secret: str,
        webhook_url: str | None,
        phone_number_id: str = "100000000000001",
        display_phone_number: str = "+91 20 2553 0000",
        options: SimulatorOptions | None = None,
        seed: int | None = None,
    ) -> None:
        self.access_token = access_token
        self.app_secret = app_secret
        self.webhook_url = webhook_url
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.options = options or SimulatorOptions()
        self.messages: dict[str, SimulatedMessage] = {}
        self.rejected: list[dict[str, Any]] = []
        self.webhooks_sent = 0
        self.webhook_failures = 0
        self.undeliverable: set[str] = set()
        #: Errors (HTTP status, Meta code, message) to answer the next sends with, in order.
        self.fail_next: deque[tuple[int, int, str]] = deque()
        self.last_inbound: dict[str, float] = {}
        self._recent: deque[float] = deque()
        self._last_to: dict[str, float] = {}
        self._random = random.Random(seed)  # noqa: S311 - simulation, not security
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.app = Starlette(
            routes=[
                Route("/{version}/{phone_id}/messages", self._send, methods=["POST"]),
                Route("/_sim/messages", self._list, methods=["GET"]),
                Route("/_sim/inbound", self._inbound, methods=["POST"]),
                Route("/_sim/numbers", self._numbers, methods=["POST"]),
                Route("/_sim/reset", self._reset, methods=["POST"]),
            ]
        )

    # ---------------------------------------------------------------- sending

    async def _send(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return _error(401, 190, "Invalid OAuth access token.", "OAuthException")
        if request.path_params["phone_id"] != self.phone_number_id:
            return _error(400, 100, "Unsupported post request: unknown phone number id.")
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return _error(400, 100, "Invalid JSON body.")
        problem = self._validate(payload)
        if problem is not None:
            self.rejected.append({"payload": payload, "error": problem})
            return _error(400, problem[0], problem[1])
        to = payload["to"]
        if self.fail_next:
            status, code, message = self.fail_next.popleft()
            self.rejected.append({"payload": payload, "error": (code, message)})
            return _error(status, code, message)
        now = time.monotonic()
        limited = self._throttle(to, now)
        if limited is not None:
            self.rejected.append({"payload": payload, "error": limited})
            return _error(400, limited[0], limited[1])
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        message = SimulatedMessage(wamid, to, payload["type"], payload, time.time())
        self.messages[wamid] = message
        self._spawn(self._deliver(message))
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            }
        )

    def _validate(self, payload: Any) -> tuple[int, str] | None:
        if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
            return 100, "messaging_product must be 'whatsapp'."
        to = payload.get("to")
        if not isinstance(to, str) or not to.isdigit() or not 8 <= len(to) <= 15:
            return 100, "Invalid parameter: to must be a phone number with country code."
        kind = payload.get("type")
        if kind == "template":
            return _check_template(payload.get("template"))
        if kind == "document":
            document = payload.get("document")
            if not isinstance(document, dict) or not (document.get("link") or document.get("id")):
                return 100, "document needs a link or a media id."
            return None
        if kind == "text":
            body = (payload.get("text") or {}).get("body")
            if not isinstance(body, str) or not body:
                return 100, "text.body is required."
            return None
        return 100, f"Unsupported message type {kind!r}."

    def _throttle(self, to: str, now: float) -> tuple[int, str] | None:
        limit = self.options.messages_per_second
        if limit:
            while self._recent and now - self._recent[0] > 1.0:
                self._recent.popleft()
            if len(self._recent) >= limit:
                return 130429, "Rate limit hit: too many messages per second."
            self._recent.append(now)
        pair = self.options.pair_interval
        if pair:
            last = self._last_to.get(to)
            if last is not None and now - last < pair:
                return 131056, "(Business Account, Consumer Account) pair rate limit hit."
            self._last_to[to] = now
        return None

    # ---------------------------------------------------------------- statuses

    async def _deliver(self, message: SimulatedMessage) -> None:
        options = self.options
        failure: tuple[int, str] | None = None
        if message.to in self.undeliverable:
            failure = (131026, "Message undeliverable")
        elif message.type != "template" and options.enforce_window:
            opened = self.last_inbound.get(message.to)
            if opened is None or time.time() - opened > WINDOW_SECONDS:
                failure = (131047, "Re-engagement message")
        if failure is None and message.type == "document" and options.fetch_media:
            failure = await self._fetch_media(message)
        steps = ["sent"]
        if failure is not None:
            steps.append("failed")
        else:
            steps.append("delivered")
            if self._random.random() < options.read_rate:
                steps.append("read")
        statuses = [self._status(message, step, failure) for step in steps]
        if options.duplicate_statuses:
            statuses += [dict(s) for s in statuses]
        if options.shuffle_statuses:
            self._random.shuffle(statuses)
        for status in statuses:
            await asyncio.sleep(options.status_delay)
            message.statuses.append(status)
            await self.post_webhook(self._envelope(statuses=[status]))

    def _status(
        self, message: SimulatedMessage, step: str, failure: tuple[int, str] | None
    ) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": message.wamid,
            "status": step,
            "timestamp": str(int(time.time())),
            "recipient_id": message.to,
        }
        opaque = message.payload.get("biz_opaque_callback_data")
        if opaque:
            status["biz_opaque_callback_data"] = opaque
        if step in ("sent", "delivered"):
            status["conversation"] = {"id": secrets.token_hex(16), "origin": {"type": "utility"}}
            status["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
        if step == "failed" and failure is not None:
            status["errors"] = [
                {
                    "code": failure[0],
                    "title": failure[1],
                    "message": failure[1],
                    "error_data": {"details": failure[1]},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }
            ]
        return status

    async def _fetch_media(self, message: SimulatedMessage) -> tuple[int, str] | None:
        link = message.payload["document"].get("link")
        if not link:
            return None
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(link)
        except httpx.HTTPError as exc:
            message.media = {"error": type(exc).__name__}
            return 131053, "Media upload error: the link could not be downloaded."
        message.media = {
            "status": response.status_code,
            "content_type": response.headers.get("content-type"),
            "size": len(response.content),
            "sha256": hashlib.sha256(response.content).hexdigest(),
        }
        if response.status_code != 200:
            return 131053, "Media upload error: the link did not return the file."
        return None

    def _envelope(self, **value: Any) -> dict[str, Any]:
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": self.display_phone_number,
                                    "phone_number_id": self.phone_number_id,
                                },
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    async def post_webhook(self, payload: dict[str, Any], attempts: int = 8) -> int | None:
        """POST a webhook the way Meta does: compact JSON, escaped non-ASCII, signed; retried
        with backoff on failure (Meta keeps trying for days; here about two minutes).
        Returns the app's last status code."""
        if not self.webhook_url:
            return None
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "x-hub-signature-256": self.sign(body)}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30)
        status = None
        for attempt in range(attempts):
            try:
                response = await self._client.post(self.webhook_url, content=body, headers=headers)
                status = response.status_code
                if response.status_code == 200:
                    self.webhooks_sent += 1
                    return status
            except httpx.HTTPError:
                status = None
            self.webhook_failures += 1
            await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        return status

    # ---------------------------------------------------------------- control

    async def inbound(self, sender: str, text: str) -> int | None:
        """A person writes to the business: opens their 24-hour window."""
        digits = "".join(ch for ch in sender if ch.isdigit())
        self.last_inbound[digits] = time.time()
        message = {
            "from": digits,
            "id": "wamid." + base64.b64encode(secrets.token_bytes(24)).decode(),
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": text},
        }
        contacts = [{"profile": {"name": "Patient"}, "wa_id": digits}]
        return await self.post_webhook(self._envelope(contacts=contacts, messages=[message]))

    async def _inbound(self, request: Request) -> Response:
        data = await request.json()
        status = await self.inbound(str(data.get("from", "")), str(data.get("text", "")))
        return JSONResponse({"webhook_status": status})

    async def _numbers(self, request: Request) -> Response:
        data = await request.json()
        number = "".join(ch for ch in str(data.get("number", "")) if ch.isdigit())
        if data.get("on_whatsapp", True):
            self.undeliverable.discard(number)
        else:
            self.undeliverable.add(number)
        return JSONResponse({"number": number, "on_whatsapp": number not in self.undeliverable})

    async def _list(self, request: Request) -> Response:
        return JSONResponse(
            {
                "messages": [
                    {
                        "wamid": m.wamid,
                        "to": m.to,
                        "type": m.type,
                        "request": m.payload,
                        "statuses": [s["status"] for s in m.statuses],
                        "media": m.media,
                    }
                    for m in self.messages.values()
                ],
                "rejected": self.rejected,
                "webhooks_sent": self.webhooks_sent,
            }
        )

    async def _reset(self, request: Request) -> Response:
        self.messages.clear()
        self.rejected.clear()
        self.last_inbound.clear()
        self.undeliverable.clear()
        return JSONResponse({"reset": True})

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self, within: float = 60.0) -> None:
        """Wait (up to ``within`` seconds) until every scheduled status webhook is posted."""
        deadline = time.monotonic() + within
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self._tasks), timeout=max(0.0, deadline - time.monotonic()))

    async def aclose(self) -> None:
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _check_template(template: Any) -> tuple[int, str] | None:
    if not isinstance(template, dict):
        return 100, "template object is required."
    name = template.get("name")
    language = (template.get("language") or {}).get("code")
    known = {t.value: t for t in TEMPLATES}
    codes = {code: lang for lang, code in WHATSAPP_LANGUAGE_CODES.items()}
    if name not in known or language not in codes:
        return 132001, f"Template name does not exist in the translation ({name}, {language})."
    approved = TEMPLATES[known[name]]
    body_parameters: list[Any] = []
    for component in template.get("components") or []:
        if isinstance(component, dict) and component.get("type") == "body":
            body_parameters = component.get("parameters") or []
    if len(body_parameters) != len(approved.parameters):
        return 132000, "Number of parameters does not match the expected number of params."
    values = []
    for parameter in body_parameters:
        text = parameter.get("text") if isinstance(parameter, dict) else None
        if not isinstance(text, str) or not text:
            return 132012, "Parameter format does not match format in the created template."
        if _FORBIDDEN.search(text):
            return (
                132018,
                "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
            )
        values.append(text)
    body = approved.texts[codes[language]].body
    rendered = re.sub(r"\{\{(\d+)\}\}", lambda m: values[int(m.group(1)) - 1], body)
    if len(rendered) > MAX_BODY_CHARS:
        return 132005, "Translated text too long."
    return None


def _error(http_status: int, code: int, message: str, kind: str = "OAuthException") -> Response:
    return JSONResponse(
        {
            "error": {
                "message": f"({'#'}{code}) {message}",
                "type": kind,
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": message},
                "fbtrace_id": secrets.token_urlsafe(12),
            }
        },
        status_code=http_status,
    )
