"""SMTP e-mail adapter (aiosmtplib): the rendered text, and the PDF attached when there is one.

The Message-ID carries the notification id, so a resent copy is recognisable; an SMTP
``250`` after DATA is the provider's acceptance (there is no delivery receipt in SMTP).
"""

from __future__ import annotations

import socket
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from nidaan.notifications.channels.base import ChannelError, OutboundMessage, SendResult
from nidaan.notifications.enums import Channel


class SmtpChannel:
    channel = Channel.EMAIL

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        security: str = "starttls",
        timeout: float = 20.0,
    ) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._username, self._password = username, password
        self._security = security
        self._timeout = timeout

    async def aclose(self) -> None:
        return None

    def build(self, message: OutboundMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.to
        email["Subject"] = message.subject or "Message from your laboratory"
        email["Date"] = formatdate(localtime=False)
        domain = self._sender.rsplit("@", 1)[-1] or "nidaan.invalid"
        email["Message-ID"] = f"<{message.notification_id}@{domain}>"
        email.set_content(message.text)
        if message.document is not None and message.document.data is not None:
            maintype, _, subtype = message.document.content_type.partition("/")
            email.add_attachment(
                message.document.data,
                maintype=maintype,
                subtype=subtype,
                filename=message.document.filename,
            )
        return email

    async def send(self, message: OutboundMessage) -> SendResult:
        email = self.build(message)
        try:
            await aiosmtplib.send(
                email,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._security == "tls",
                start_tls=self._security == "starttls",
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPConnectError as exc:
            raise ChannelError("connect", str(exc), retryable=True) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise ChannelError("recipient_refused", str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx is temporary (greylisting, full mailbox); 5xx is final.
            retryable = 400 <= exc.code < 500
            raise ChannelError(str(exc.code), exc.message, retryable=retryable) from exc
        except (aiosmtplib.SMTPException, socket.gaierror, OSError) as exc:
            raise ChannelError("transport", type(exc).__name__, uncertain=True) from exc
        return SendResult(str(email["Message-ID"]).strip("<>"))
