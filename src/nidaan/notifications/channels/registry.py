"""Which adapter serves each channel: built from settings, or set explicitly (tests, demo).

A channel without settings is "not configured" and its messages are skipped with that
reason. Production refuses a simulator URL (loopback) unless NIDAAN_ALLOW_SIMULATOR_URLS.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from nidaan.config import ConfigurationError, Settings
from nidaan.notifications.channels.base import NotificationChannel
from nidaan.notifications.channels.email import SmtpChannel
from nidaan.notifications.channels.sms import HttpSmsChannel
from nidaan.notifications.channels.whatsapp import WhatsAppCloudChannel
from nidaan.notifications.enums import Channel

_explicit: dict[Channel, NotificationChannel | None] = {}
_built: dict[tuple[Channel, int], NotificationChannel] = {}

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}  # noqa: S104 - compared, not bound


def is_simulator_url(url: str | None) -> bool:
    """A provider URL pointing at this machine (our simulators), not at a real provider."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.") or "/_simulators/" in url


def simulator_url_problems(settings: Settings) -> list[str]:
    """Production-mode problems: provider URLs that point at a simulator."""
    if not settings.is_production or settings.allow_simulator_urls:
        return []
    return [
        f"{env} points at a simulator ({url}); set NIDAAN_ALLOW_SIMULATOR_URLS=true to allow it"
        for env, url in (
            ("NIDAAN_WHATSAPP_API_URL", settings.whatsapp_api_url),
            ("NIDAAN_SMS_API_URL", settings.sms_api_url),
            ("NIDAAN_SMTP_HOST", f"smtp://{settings.smtp_host}" if settings.smtp_host else None),
        )
        if is_simulator_url(url)
    ]


def set_channel(channel: Channel, adapter: NotificationChannel | None) -> None:
    """Use ``adapter`` for ``channel`` in this process (None: not configured)."""
    _explicit[channel] = adapter


def reset_channels() -> None:
    _explicit.clear()
    _built.clear()


def channel_for(channel: Channel, settings: Settings) -> NotificationChannel | None:
    if channel in _explicit:
        return _explicit[channel]
    problems = simulator_url_problems(settings)
    if problems:
        raise ConfigurationError("; ".join(problems))
    key = (channel, id(settings))
    if key not in _built:
        adapter = _build(channel, settings)
        if adapter is None:
            return None
        _built[key] = adapter
    return _built[key]


def _build(channel: Channel, settings: Settings) -> NotificationChannel | None:
    if channel is Channel.WHATSAPP:
        if not (
            settings.whatsapp_api_url
            and settings.whatsapp_phone_number_id
            and settings.whatsapp_access_token
        ):
            return None
        return WhatsAppCloudChannel(
            base_url=settings.whatsapp_api_url,
            version=settings.whatsapp_api_version,
            phone_number_id=settings.whatsapp_phone_number_id,
            access_token=settings.whatsapp_access_token.get_secret_value(),
        )
    if channel is Channel.SMS:
        if not (settings.sms_api_url and settings.sms_api_key and settings.sms_dlt_entity_id):
            return None
        try:
            template_ids = json.loads(settings.sms_dlt_template_ids or "{}")
        except ValueError as exc:
            raise ConfigurationError("NIDAAN_SMS_DLT_TEMPLATE_IDS must be a JSON object") from exc
        return HttpSmsChannel(
            base_url=settings.sms_api_url,
            api_key=settings.sms_api_key.get_secret_value(),
            sender_id=settings.sms_sender_id,
            entity_id=settings.sms_dlt_entity_id,
            template_ids={str(k): str(v) for k, v in template_ids.items()},
        )
    if not settings.smtp_host:
        return None
    return SmtpChannel(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        security=settings.smtp_security,
    )


def rate_for(channel: Channel, settings: Settings) -> float:
    return {
        Channel.WHATSAPP: settings.whatsapp_messages_per_second,
        Channel.SMS: settings.sms_messages_per_second,
        Channel.EMAIL: settings.email_messages_per_second,
    }[channel]
