"""Gateway settings: production refuses simulator URLs unless explicitly allowed; demo mode
wires unconfigured gateways to the built-in simulators; nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from nidaan.config import Mode, Settings, check_production_ready, generate_secrets
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


def test_demo_run_on_another_port_points_the_gateways_at_that_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nidaan demo run --port 8765`: links, simulators and webhooks use 8765, not 8000."""
    from nidaan.cli import listen_at
    from nidaan.kit.storage import public_base_url

    monkeypatch.delenv("NIDAAN_PORT", raising=False)
    monkeypatch.delenv("NIDAAN_HOST", raising=False)
    demo = _settings(tmp_path, Mode.DEMO)
    assert demo.port == 8000
    listen_at(demo, "127.0.0.1", 8765)
    assert public_base_url(demo) == "http://127.0.0.1:8765"
    assert gateway_for("razorpay", demo).base_url == "http://127.0.0.1:8765/simulators/razorpay"  # type: ignore[attr-defined]
    import os

    assert (os.environ["NIDAAN_HOST"], os.environ["NIDAAN_PORT"]) == ("127.0.0.1", "8765")
    # An explicit public URL (behind a proxy) still wins.
    proxied = _settings(tmp_path, Mode.DEMO, public_base_url="https://lab.example.com")
    listen_at(proxied, "0.0.0.0", 9000)
    assert public_base_url(proxied) == "https://lab.example.com"
