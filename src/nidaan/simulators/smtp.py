"""An SMTP sink on loopback (aiosmtpd): accepts every message and keeps it for inspection,
so e-mail notifications are tested and demonstrated against a real SMTP conversation."""

from __future__ import annotations

import email
import email.policy
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class SmtpSink:
    """Collects what the SMTP server accepted (``messages``: parsed e-mails)."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def summary(self) -> list[dict[str, Any]]:
        return [
            {
                "to": str(m["To"]),
                "subject": str(m["Subject"]),
                "message_id": str(m["Message-ID"]),
                "attachments": [part.get_filename() for part in m.iter_attachments()],
            }
            for m in self.messages
        ]


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SmtpSimulator:
    """An aiosmtpd server in its own thread on ``host:port`` (0: any free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sink = SmtpSink()
        self.host = host
        self.port = port or _free_port(host)
        self._controller = Controller(self.sink, hostname=host, port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
