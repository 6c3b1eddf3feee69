"""WhatsApp Cloud API adapter: ``POST /{version}/{phone-number-id}/messages`` (Graph API).

Template messages carry the body parameters; the report PDF goes as a document message
with a patient-safe ``filename`` (without it WhatsApp shows "null.pdf"). The notification
id travels in ``biz_opaque_callback_data`` so that a status webhook can be matched even if
the response (and its wamid) was lost. HTTP 200 only means "accepted": delivery, and many
failures (131047, 131026), arrive later as status webhooks.
"""

from __future__ import annotations

from typing import Any

import httpx

from nidaan.notifications.channels.base import (
    ChannelError,
    OutboundMessage,
    SendResult,
)
from nidaan.notifications.domain import RETRYABLE_CODES
from nidaan.notifications.enums import Channel, MessageKind
from nidaan.notifications.templates import WHATSAPP_LANGUAGE_CODES


def whatsapp_number(e164: str) -> str:
    """Cloud API recipients are digits with the country code, no plus."""
    return "".join(ch for ch in e164 if ch.isdigit())


def message_payload(message: OutboundMessage) -> dict[str, Any]:
    """The JSON body the Cloud API expects for ``message``."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": whatsapp_number(message.to),
        "biz_opaque_callback_data": str(message.notification_id),
    }
    if message.kind is MessageKind.DOCUMENT:
        assert message.document is not None
        payload["type"] = "document"
        payload["document"] = {
            "link": message.document.link,
            "filename": message.document.filename,
            "caption": message.text[:1024],
        }
        return payload
    payload["type"] = "template"
    payload["template"] = {
        "name": message.template,
        "language": {
            "policy": "deterministic",
            "code": WHATSAPP_LANGUAGE_CODES.get(message.language, "en"),
        },
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": value} for value in message.parameters],
            }
        ],
    }
    return payload


class WhatsAppCloudChannel:
    channel = Channel.WHATSAPP

    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        phone_number_id: str,
        access_token: str,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/{version}/{phone_number_id}/messages"
        self._client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            response = await self._client.post(self._url, json=message_payload(message))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Meta: safe to try again.
            raise ChannelError("connect", type(exc).__name__, retryable=True) from exc
        except httpx.HTTPError as exc:
            # The request may have been read and acted on: never send it twice.
            raise ChannelError("transport", type(exc).__name__, uncertain=True) from exc
        body = _json(response)
        if response.is_success:
            try:
                return SendResult(str(body["messages"][0]["id"]))
            except (KeyError, IndexError, TypeError):
                raise ChannelError(
                    "bad_response", "200 without messages[0].id", uncertain=True
                ) from None
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code")) if isinstance(error, dict) else f"http_{response.status_code}"
        title = (
            str(error.get("message") or error.get("error_user_title") or "")
            if isinstance(error, dict)
            else response.text[:200]
        )
        retry_after = _retry_after(response)
        retryable = code in RETRYABLE_CODES or response.status_code in (429, 502, 503, 504)
        raise ChannelError(
            code, title or response.reason_phrase, retryable=retryable, retry_after=retry_after
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return float(value)
    except ValueError:
        return None
