"""``--host``/``--port`` become the process's settings, so the demo's simulator URLs follow."""

from __future__ import annotations

import functools

import pytest

from nidaan import cli, config
from nidaan.config import Settings, demo_provider_settings


@pytest.fixture
def cli_settings(monkeypatch: pytest.MonkeyPatch) -> functools._lru_cache_wrapper[Settings]:
    """The command line's own settings cache (the suite's cached settings stay untouched)."""
    monkeypatch.delenv("NIDAAN_PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("NIDAAN_PORT", "8000")
    monkeypatch.setenv("NIDAAN_HOST", "127.0.0.1")
    cached = functools.lru_cache(maxsize=1)(config.get_settings.__wrapped__)
    monkeypatch.setattr(cli, "get_settings", cached)
    assert cached().port == 8000  # read before the options, as a real start may
    return cached


@pytest.mark.parametrize("port", [8001, 8100, 18123])
def test_the_demo_simulators_follow_the_port_given_on_the_command_line(
    cli_settings: functools._lru_cache_wrapper[Settings], port: int
) -> None:
    cli._listen_on("127.0.0.2", port)
    settings = cli_settings()
    assert (settings.host, settings.port) == ("127.0.0.2", port)
    wired = demo_provider_settings(settings.model_copy(update={"whatsapp_api_url": None}))
    assert wired["whatsapp_api_url"] == f"http://127.0.0.2:{port}/_simulators/whatsapp"


def test_no_option_leaves_the_settings_alone(
    cli_settings: functools._lru_cache_wrapper[Settings],
) -> None:
    cli._listen_on(None, None)
    assert cli_settings().port == 8000
