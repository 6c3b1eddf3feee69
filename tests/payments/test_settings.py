"""Gateway settings: production refuses simulator URLs unless explicitly allowed; demo mode
wires unconfigured gateways to the built-in simulators; nothing else does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from nidaan.config import (
    Mode,
    Settings,
    check_production_ready,
    generate_secrets,
    get_settings,
    reset_settings,
)
from nidaan.main import create_app
from nidaan.payments.gateways.base import GatewayNotConfigured
from nidaan.payments.gateways.registry import configured_gateways, gateway_for


def _settings(tmp_path: Path, mode: Mode, **values: object) -> Settings:
    return Settings(mode=mode, data_dir=tmp_path, **generate_secrets(), **values)  # type: ignore[arg-type]


def test_production_refuses_simulator_urls(tmp_path: Path) -> None:
    assert check_production_ready(_settings(tmp_path, Mode.PRODUCTION)) == []
    settings = _settings(
        tmp_path,
        Mode.PRODUCTION,
        razorpay_api_url="http://127.0.0.1:8000/simulators/razorpay",
        stripe_api_url="https://10.0.0.5",
        payu_api_url="https://payu.example.com/simulators/payu",
    )
    problems = check_production_ready(settings)
    assert [p.split(" ")[0] for p in problems] == [
        "NIDAAN_RAZORPAY_API_URL",
        "NIDAAN_STRIPE_API_URL",
        "NIDAAN_PAYU_API_URL",
    ]
    allowed = settings.model_copy(update={"payment_simulators_allowed": True})
    assert check_production_ready(allowed) == []


def test_demo_mode_wires_gateways_to_the_mounted_simulators(tmp_path: Path) -> None:
    demo = _settings(tmp_path, Mode.DEMO, port=8123)
    adapter = gateway_for("razorpay", demo)
    assert adapter.base_url == "http://127.0.0.1:8123/simulators/razorpay"  # type: ignore[attr-defined]
    assert configured_gateways(demo) == ["razorpay", "stripe", "payu"]
    app = create_app(demo)
    mounted = {getattr(route, "path", "") for route in app.routes}
    assert {"/simulators/razorpay", "/simulators/stripe", "/simulators/payu"} <= mounted


def test_outside_demo_unconfigured_gateways_are_not_offered(tmp_path: Path) -> None:
    production = _settings(tmp_path, Mode.PRODUCTION)
    with pytest.raises(GatewayNotConfigured):
        gateway_for("razorpay", production)
    assert configured_gateways(production) == []
    app = create_app(production)
    assert not any("/simulators" in getattr(route, "path", "") for route in app.routes)
    live = production.model_copy(
        update={
            "razorpay_key_id": "rzp_live_x",
            "razorpay_key_secret": SecretStr("s"),
            "razorpay_webhook_secret": SecretStr("w"),
        }
    )
    assert configured_gateways(live) == ["razorpay"]


@pytest.fixture
def demo_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A demo installation's environment without a port of its own; the settings this process
    had before are put back afterwards."""
    before = get_settings()
    for name in ("NIDAAN_PORT", "NIDAAN_HOST", "NIDAAN_PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NIDAAN_WHATSAPP_API_URL", "NIDAAN_RAZORPAY_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NIDAAN_MODE", "demo")
    monkeypatch.setenv("NIDAAN_DATA_DIR", str(tmp_path))
    reset_settings()
    assert get_settings().port == 8000
    yield
    monkeypatch.undo()
    reset_settings(before)


@pytest.mark.usefixtures("demo_environment")
def test_demo_run_on_another_port_points_the_gateways_at_that_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`nidaan demo run --port 8765`: links, simulators and webhooks use 8765, not 8000."""
    from nidaan.cli import _listen_on
    from nidaan.kit.storage import public_base_url

    _listen_on("127.0.0.1", 8765)
    demo = get_settings()
    assert public_base_url(demo) == "http://127.0.0.1:8765"
    assert gateway_for("razorpay", demo).base_url == "http://127.0.0.1:8765/simulators/razorpay"  # type: ignore[attr-defined]
    # Wired when the settings are read, so it follows only because the port came first.
    assert demo.whatsapp_api_url == "http://127.0.0.1:8765/_simulators/whatsapp"
    # Child processes (--processes) read the same port from the environment.
    assert (os.environ["NIDAAN_HOST"], os.environ["NIDAAN_PORT"]) == ("127.0.0.1", "8765")
    # An explicit public URL (behind a proxy) still wins.
    monkeypatch.setenv("NIDAAN_PUBLIC_BASE_URL", "https://lab.example.com")
    _listen_on("0.0.0.0", 9000)
    assert public_base_url(get_settings()) == "https://lab.example.com"
