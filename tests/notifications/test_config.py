"""Production refuses provider simulators unless allowed; demo mode is wired to them."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from nidaan.config import ConfigurationError, Mode, Settings, demo_provider_settings
from nidaan.notifications.channels.registry import (
    channel_for,
    is_simulator_url,
    reset_channels,
    simulator_url_problems,
)
from nidaan.notifications.enums import Channel


def production(**values: object) -> Settings:
    return Settings(mode=Mode.PRODUCTION, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "simulated"),
    [
        ("http://127.0.0.1:8000/_simulators/whatsapp", True),
        ("http://localhost:9000", True),
        ("http://127.5.0.1", True),
        ("https://graph.facebook.com", False),
        ("https://api.sms.example.in", False),
        (None, False),
    ],
)
def test_simulator_urls_are_recognised(url: str | None, simulated: bool) -> None:
    assert is_simulator_url(url) is simulated


def test_production_refuses_a_simulator_unless_allowed() -> None:
    settings = production(
        whatsapp_api_url="http://127.0.0.1:8000/_simulators/whatsapp",
        whatsapp_phone_number_id="1",
        whatsapp_access_token=SecretStr("t"),
        sms_api_url="http://localhost:9100",
        smtp_host="127.0.0.1",
    )
    problems = simulator_url_problems(settings)
    assert len(problems) == 3
    assert "NIDAAN_WHATSAPP_API_URL" in problems[0]
    reset_channels()
    with pytest.raises(ConfigurationError):
        channel_for(Channel.WHATSAPP, settings)
    allowed = settings.model_copy(update={"allow_simulator_urls": True})
    assert simulator_url_problems(allowed) == []
    assert channel_for(Channel.WHATSAPP, allowed) is not None
    reset_channels()
    real = production(whatsapp_api_url="https://graph.facebook.com", smtp_host="smtp.lab.in")
    assert simulator_url_problems(real) == []


def test_demo_mode_points_every_channel_at_the_built_in_simulators() -> None:
    demo = Settings(mode=Mode.DEMO, secret_key=SecretStr("s" * 48), port=8712)  # type: ignore[arg-type]
    values = demo_provider_settings(demo)
    assert values["whatsapp_api_url"] == "http://127.0.0.1:8712/_simulators/whatsapp"
    assert values["sms_api_url"] == "http://127.0.0.1:8712/_simulators/sms"
    assert (values["smtp_host"], values["smtp_port"]) == ("127.0.0.1", 8737)
    assert values["whatsapp_app_secret"].get_secret_value() != ("s" * 48)
    configured = demo.model_copy(update={"whatsapp_api_url": "https://graph.facebook.com"})
    assert "whatsapp_api_url" not in demo_provider_settings(configured)
