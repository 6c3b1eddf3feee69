"""``--host``/``--port`` become the process's settings, so the demo's simulator URLs follow."""

from __future__ import annotations

import pytest

from nidaan.cli import _listen_on
from nidaan.config import demo_provider_settings, get_settings


@pytest.mark.parametrize("port", [8001, 8100, 18123])
def test_the_demo_simulators_follow_the_port_given_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, port: int
) -> None:
    monkeypatch.delenv("NIDAAN_PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("NIDAAN_PORT", "8000")
    monkeypatch.setenv("NIDAAN_HOST", "127.0.0.1")
    try:
        _listen_on("127.0.0.2", port)
        settings = get_settings()
        assert (settings.host, settings.port) == ("127.0.0.2", port)
        wired = demo_provider_settings(settings.model_copy(update={"whatsapp_api_url": None}))
        assert wired["whatsapp_api_url"] == f"http://127.0.0.2:{port}/_simulators/whatsapp"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_no_option_leaves_the_settings_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIDAAN_PORT", "8300")
    get_settings.cache_clear()
    try:
        _listen_on(None, None)
        assert get_settings().port == 8300
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
