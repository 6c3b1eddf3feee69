"""Notification tests: the real adapters talk to the simulators over loopback sockets, and
the simulator's signed webhooks come back to the app served on a real socket too.

Everything runs in the test's event loop: uvicorn servers are asyncio tasks, so a running
job, the simulator's status webhooks and the app's webhook handler interleave as they do
in production.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

# Webhook verification secrets for the whole test session (read when settings load).
os.environ.setdefault("NIDAAN_WHATSAPP_APP_SECRET", "test-app-secret-0123456789abcdef")
os.environ.setdefault("NIDAAN_WHATSAPP_VERIFY_TOKEN", "test-verify-token")
# Pacing per recipient is tested on its own (test_dispatch); journeys send back to back.
os.environ.setdefault("NIDAAN_WHATSAPP_PAIR_INTERVAL_SECONDS", "0")

from nidaan.config import Settings
from nidaan.kit.storage import (
    LocalFileStore,
    set_object_store,
    url_signing_key,
)
from nidaan.notifications.channels.email import SmtpChannel
from nidaan.notifications.channels.registry import reset_channels, set_channel
from nidaan.notifications.channels.sms import HttpSmsChannel
from nidaan.notifications.channels.whatsapp import WhatsAppCloudChannel
from nidaan.notifications.enums import Channel
from nidaan.simulators.sms import SmsSimulator
from nidaan.simulators.smtp import SmtpSimulator
from nidaan.simulators.whatsapp import SimulatorOptions, WhatsAppSimulator

SIM_TOKEN = "sim-access-token"
SMS_KEY = "sms-api-key"
DLT_TEMPLATES = {
    f"{template}:{language}": f"1107{index:02d}{n}000000000000"
    for n, language in enumerate(("en", "hi"))
    for index, template in enumerate(
        (
            "test_result_ready",
            "critical_value_alert",
            "appointment_reminder",
            "payment_confirmation",
        )
    )
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """An ASGI app served by uvicorn on a loopback port, inside the running event loop."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        self._task = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


@dataclass
class Providers:
    app_url: str
    whatsapp: WhatsAppSimulator
    whatsapp_url: str
    sms: SmsSimulator
    sms_url: str
    smtp: SmtpSimulator

    def whatsapp_requests(self, to: str | None = None) -> list[dict[str, Any]]:
        digits = "".join(ch for ch in to or "" if ch.isdigit())
        return [m.payload for m in self.whatsapp.messages.values() if not to or m.to == digits]


@pytest.fixture
async def providers(settings: Settings, tmp_path: Path) -> AsyncIterator[Providers]:
    """Our app on a socket, the three simulators, and the real adapters wired to them."""
    from nidaan.main import create_app

    app = create_app(settings, run_worker=False, run_interfaces=False)
    async with Served(app) as served_app:
        # Report links must point at this app, where the simulator can fetch them.
        previous = set_object_store(
            LocalFileStore(
                tmp_path / "files",
                signing_key=url_signing_key(settings),
                base_url=served_app.url,
            )
        )
        assert settings.whatsapp_app_secret is not None
        whatsapp = WhatsAppSimulator(
            access_token=SIM_TOKEN,
            app_secret=settings.whatsapp_app_secret.get_secret_value(),
            webhook_url=f"{served_app.url}/webhooks/whatsapp",
            options=SimulatorOptions(status_delay=0.01),
            seed=7,
        )
        sms = SmsSimulator(api_key=SMS_KEY, templates=set(DLT_TEMPLATES.values()))
        smtp = SmtpSimulator()
        smtp.start()
        async with Served(whatsapp.app) as served_whatsapp, Served(sms.app) as served_sms:
            set_channel(
                Channel.WHATSAPP,
                WhatsAppCloudChannel(
                    base_url=served_whatsapp.url,
                    version="v21.0",
                    phone_number_id=whatsapp.phone_number_id,
                    access_token=SIM_TOKEN,
                ),
            )
            set_channel(
                Channel.SMS,
                HttpSmsChannel(
                    base_url=served_sms.url,
                    api_key=SMS_KEY,
                    sender_id="NIDAAN",
                    entity_id="1101234567890123456",
                    template_ids=DLT_TEMPLATES,
                ),
            )
            set_channel(
                Channel.EMAIL,
                SmtpChannel(
                    host=smtp.host, port=smtp.port, sender="reports@lab.example", security="none"
                ),
            )
            try:
                yield Providers(
                    served_app.url,
                    whatsapp,
                    served_whatsapp.url,
                    sms,
                    served_sms.url,
                    smtp,
                )
            finally:
                await whatsapp.settle(5)
                await whatsapp.aclose()
                reset_channels()
                smtp.stop()
                set_object_store(previous)


@pytest.fixture(scope="session")
async def job_app_open(settings: Settings) -> AsyncIterator[None]:
    from nidaan.kit.jobs import close_job_app, open_job_app

    await open_job_app(settings)
    yield
    await close_job_app()


async def live_get(url: str, path: str, headers: dict[str, str], **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get(path, headers=headers, params=params)
        response.raise_for_status()
        return response.json()
