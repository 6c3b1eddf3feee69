"""Demo mode's providers: the WhatsApp and SMS simulators mounted in the app itself and an
SMTP sink beside it, wired to the demo settings (``config.demo_provider_settings``), so a
newcomer sees a finalised report go out and come back delivered with no outside account.

Look inside them at ``/_simulators/whatsapp/_sim/messages``, ``/_simulators/sms/_sim/
messages`` and ``/_simulators/smtp/messages``. Only mounted in demo mode.
"""

from __future__ import annotations

import contextlib
import json
import logging

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nidaan.config import Settings
from nidaan.kit.storage import public_base_url
from nidaan.simulators.sms import SmsSimulator
from nidaan.simulators.smtp import SmtpSimulator
from nidaan.simulators.whatsapp import WhatsAppSimulator

logger = logging.getLogger(__name__)

PREFIX = "/_simulators"


class DemoProviders:
    def __init__(self, settings: Settings) -> None:
        assert settings.whatsapp_access_token
        assert settings.whatsapp_app_secret
        assert settings.sms_api_key
        self.whatsapp = WhatsAppSimulator(
            access_token=settings.whatsapp_access_token.get_secret_value(),
            app_secret=settings.whatsapp_app_secret.get_secret_value(),
            webhook_url=f"{public_base_url(settings)}/webhooks/whatsapp",
            phone_number_id=settings.whatsapp_phone_number_id or "100000000000001",
        )
        templates = set(json.loads(settings.sms_dlt_template_ids or "{}").values())
        self.sms = SmsSimulator(
            api_key=settings.sms_api_key.get_secret_value(), templates=templates or None
        )
        self.smtp = SmtpSimulator(settings.smtp_host or "127.0.0.1", settings.smtp_port)

    def mount(self, app: FastAPI) -> None:
        app.mount(f"{PREFIX}/whatsapp", self.whatsapp.app)
        app.mount(f"{PREFIX}/sms", self.sms.app)
        app.mount(
            f"{PREFIX}/smtp",
            Starlette(routes=[Route("/messages", self._smtp_messages, methods=["GET"])]),
        )

    async def _smtp_messages(self, request: Request) -> JSONResponse:
        return JSONResponse({"messages": self.smtp.sink.summary()})

    def start(self) -> None:
        try:
            self.smtp.start()
            logger.info("Demo SMTP sink listening on %s:%d", self.smtp.host, self.smtp.port)
        except OSError as exc:
            logger.error("Demo SMTP sink could not start on port %d: %s", self.smtp.port, exc)

    async def stop(self) -> None:
        await self.whatsapp.aclose()
        with contextlib.suppress(AssertionError, RuntimeError):
            self.smtp.stop()
