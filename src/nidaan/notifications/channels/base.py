"""The channel port: one outbound message in, a provider message id out, or a typed error."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from nidaan.notifications.enums import Channel, MessageKind


@dataclass(frozen=True)
class Document:
    """A PDF sent with the message: WhatsApp gets the link, e-mail the bytes."""

    filename: str
    link: str
    data: bytes | None = None
    content_type: str = "application/pdf"


@dataclass(frozen=True)
class OutboundMessage:
    notification_id: uuid.UUID
    channel: Channel
    kind: MessageKind
    to: str  # E.164 mobile ("+919876543210") or an e-mail address
    template: str
    language: str
    parameters: tuple[str, ...]
    text: str  # the rendered body (SMS text, e-mail body, document caption)
    subject: str | None = None
    document: Document | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class ChannelError(Exception):
    """The provider did not take the message.

    ``retryable``: it certainly was not taken and may be tried again later (throughput,
    outage). ``uncertain``: it may have been taken (the connection broke after the request
    went out), so it must not be sent again automatically.
    """

    def __init__(
        self,
        code: str,
        title: str,
        *,
        retryable: bool = False,
        uncertain: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {title}")
        self.code = code
        self.title = title[:300]
        self.retryable = retryable
        self.uncertain = uncertain
        self.retry_after = retry_after


class ChannelNotConfigured(Exception):
    """The installation has no settings for this channel."""


class NotificationChannel(Protocol):
    channel: Channel

    async def send(self, message: OutboundMessage) -> SendResult: ...

    async def aclose(self) -> None: ...
