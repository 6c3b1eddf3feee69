"""``--host``/``--port`` become the process's settings, so the demo's simulator URLs follow."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from nidaan import cli
from nidaan.config import Settings, demo_provider_settings, get_settings, reset_settings


@pytest.fixture
def cli_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Settings]]:
    """Settings read before the options, as a real start may (the suite's own settings object
    is put back after the test)."""
    monkeypatch.delenv("NIDAAN_PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("NIDAAN_PORT", "8000")
    monkeypatch.setenv("NIDAAN_HOST", "127.0.0.1")
    reset_settings()
    assert get_settings().port == 8000
    yield get_settings
    monkeypatch.undo()
    reset_settings()


@pytest.mark.parametrize("port", [8001, 8100, 18123])
def test_the_demo_simulators_follow_the_port_given_on_the_command_line(
    cli_settings: Callable[[], Settings], port: int
) -> None:
    cli._listen_on("127.0.0.2", port)
    settings = cli_settings()
    assert (settings.host, settings.port) == ("127.0.0.2", port)
    wired = demo_provider_settings(settings.model_copy(update={"whatsapp_api_url": None}))
    assert wired["whatsapp_api_url"] == f"http://127.0.0.2:{port}/_simulators/whatsapp"


def test_no_option_leaves_the_settings_alone(
    cli_settings: Callable[[], Settings],
) -> None:
    cli._listen_on(None, None)
    assert cli_settings().port == 8000
