"""The adapters this process uses, built from settings (tests may point them elsewhere)."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

import httpx

from nidaan.abdm.config import AbdmConfig, AbdmNotConfigured, abdm_config
from nidaan.abdm.errors import AbdmNotEnabled
from nidaan.abdm.gateway import CallbackVerifier, HttpAbha, HttpHieGateway, Recorder
from nidaan.config import Settings, get_settings

logger = logging.getLogger(__name__)

_override: AbdmConfig | None = None
_verifiers: dict[str, CallbackVerifier] = {}


def use_config(config: AbdmConfig | None) -> None:
    """Point this process at another ABDM (a test's simulator); None restores settings."""
    global _override
    _override = config
    _verifiers.clear()


def current_config(settings: Settings | None = None) -> AbdmConfig:
    if _override is not None:
        return _override
    try:
        return abdm_config(settings or get_settings())
    except AbdmNotConfigured as exc:
        raise AbdmNotEnabled(str(exc)) from exc


def abha(recorder: Recorder | None = None) -> HttpAbha:
    return HttpAbha(current_config(), recorder=recorder)


def gateway(recorder: Recorder | None = None) -> HttpHieGateway:
    return HttpHieGateway(current_config(), recorder=recorder)


def verifier() -> CallbackVerifier:
    config = current_config()
    if config.certs_url not in _verifiers:
        _verifiers[config.certs_url] = CallbackVerifier(config)
    return _verifiers[config.certs_url]


class OtpSender(Protocol):
    async def send(self, mobile: str, message: str) -> None: ...


class HttpOtpSender:
    """POSTs ``{to, message}`` to the SMS hook (the simulator's phone in demo mode)."""

    def __init__(self, url: str) -> None:
        self._url = url

    async def send(self, mobile: str, message: str) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                self._url,
                json={"to": mobile, "message": message},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            response.raise_for_status()


def otp_sender() -> OtpSender:
    config = current_config()
    if not config.otp_sms_url:
        raise AbdmNotEnabled("Care-context link OTPs need NIDAAN_ABDM_OTP_SMS_URL (an SMS hook).")
    return HttpOtpSender(config.otp_sms_url)
