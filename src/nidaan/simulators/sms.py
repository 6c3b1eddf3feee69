"""An HTTP SMS gateway simulator (ASGI) for the DLT-style wire format ``HttpSmsChannel``
speaks: ``POST /v1/messages`` with a Bearer key and ``{sender, to, text, unicode,
dlt_entity_id, dlt_template_id, reference}``.

It refuses what Indian operators refuse: a missing DLT entity or template id, a sender id
that is not six letters, a template id not registered (when ``templates`` is given), Unicode
text not flagged as such. A repeated ``reference`` gets the first message's id back and is
not sent again. ``GET /_sim/messages`` lists what was "delivered to the handset".
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class SimulatedSms:
    message_id: str
    to: str
    sender: str
    text: str
    dlt_template_id: str
    reference: str | None
    received_at: float


class SmsSimulator:
    def __init__(self, *, api_key: str, templates: set[str] | None = None) -> None:
        self.api_key = api_key
        self.templates = templates
        self.messages: list[SimulatedSms] = []
        self.rejected: list[dict[str, Any]] = []
        self._by_reference: dict[str, str] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._send, methods=["POST"]),
                Route("/_sim/messages", self._list, methods=["GET"]),
            ]
        )

    async def _send(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthorized", "Invalid API key.")
        try:
            data = json.loads(await request.body())
        except ValueError:
            return _error(400, "bad_request", "Invalid JSON.")
        problem = self._validate(data)
        if problem is not None:
            self.rejected.append({"request": data, "error": problem})
            return _error(400, problem[0], problem[1])
        reference = data.get("reference")
        if reference and reference in self._by_reference:
            return JSONResponse(
                {"message_id": self._by_reference[reference], "status": "duplicate"}
            )
        message_id = "sms-" + secrets.token_hex(10)
        self.messages.append(
            SimulatedSms(
                message_id,
                data["to"],
                data["sender"],
                data["text"],
                data["dlt_template_id"],
                reference,
                time.time(),
            )
        )
        if reference:
            self._by_reference[reference] = message_id
        return JSONResponse({"message_id": message_id, "status": "accepted"})

    def _validate(self, data: Any) -> tuple[str, str] | None:
        if not isinstance(data, dict):
            return "bad_request", "The body must be a JSON object."
        sender = str(data.get("sender") or "")
        if len(sender) != 6 or not sender.isalpha():
            return "invalid_sender", "The DLT header (sender id) must be 6 letters."
        if not data.get("dlt_entity_id"):
            return "dlt_entity_missing", "dlt_entity_id is required."
        template = str(data.get("dlt_template_id") or "")
        if not template:
            return "dlt_template_missing", "dlt_template_id is required."
        if self.templates is not None and template not in self.templates:
            return "dlt_template_unregistered", "The DLT template id is not registered."
        to = str(data.get("to") or "")
        if not to.isdigit() or len(to) != 12 or not to.startswith("91"):
            return "invalid_number", "to must be an Indian mobile number with 91."
        text = data.get("text")
        if not isinstance(text, str) or not text:
            return "empty_text", "text is required."
        if not text.isascii() and not data.get("unicode"):
            return "unicode_not_flagged", "Non-GSM text must be sent with unicode=true."
        return None

    async def _list(self, request: Request) -> Response:
        return JSONResponse(
            {
                "messages": [m.__dict__ for m in self.messages],
                "rejected": self.rejected,
            }
        )


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
