"""HTTP SMS adapter for Indian DLT-registered messaging.

Every commercial SMS in India must name the sender's DLT principal entity id, a 6-character
header (sender id) and the DLT template id the text was registered under (TRAI TCCCPR 2018);
operators drop messages whose text does not match the registered template. The wire format
is the common shape of Indian gateways: ``POST {base}/v1/messages`` with a bearer key and
``{sender, to, text, unicode, dlt_entity_id, dlt_template_id, reference}``; the answer is
``{"message_id": ..., "status": "accepted"}`` or ``{"error": {"code", "message"}}``.
``reference`` (our notification id) lets the provider refuse a duplicate submission.
"""

from __future__ import annotations

import httpx

from nidaan.notifications.channels.base import ChannelError, OutboundMessage, SendResult
from nidaan.notifications.enums import Channel


class DltTemplateMissing(ChannelError):
    def __init__(self, template: str, language: str) -> None:
        super().__init__(
            "dlt_template_missing",
            f"No DLT template id for {template}:{language} (NIDAAN_SMS_DLT_TEMPLATE_IDS)",
        )


class HttpSmsChannel:
    channel = Channel.SMS

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        sender_id: str,
        entity_id: str,
        template_ids: dict[str, str],
        timeout: float = 15.0,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/v1/messages"
        self._sender = sender_id
        self._entity = entity_id
        self._templates = template_ids
        self._client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout, connect=5.0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, message: OutboundMessage) -> SendResult:
        template_id = self._templates.get(f"{message.template}:{message.language}")
        if not template_id:
            raise DltTemplateMissing(message.template, message.language)
        body = {
            "sender": self._sender,
            "to": "".join(ch for ch in message.to if ch.isdigit()),
            "text": message.text,
            "unicode": not message.text.isascii(),
            "dlt_entity_id": self._entity,
            "dlt_template_id": template_id,
            "reference": str(message.notification_id),
        }
        try:
            response = await self._client.post(self._url, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ChannelError("connect", type(exc).__name__, retryable=True) from exc
        except httpx.HTTPError as exc:
            raise ChannelError("transport", type(exc).__name__, uncertain=True) from exc
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.is_success and isinstance(data, dict) and data.get("message_id"):
            return SendResult(str(data["message_id"]))
        error = data.get("error") if isinstance(data, dict) else None
        code = str(error.get("code")) if isinstance(error, dict) else f"http_{response.status_code}"
        title = str(error.get("message")) if isinstance(error, dict) else response.reason_phrase
        raise ChannelError(code, title, retryable=response.status_code in (429, 500, 502, 503, 504))
