"""IRP configuration: production refuses a simulator URL unless allowed; demo mode wires the
adapter to the simulator mounted in the server; and the demo path end to end with the real
`nidaan demo run` (B2B invoice -> IRN -> invoice PDF with the signed QR -> cancel)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from nidaan.config import Mode, Settings, check_production_ready, generate_secrets
from nidaan.einvoice import wire
from nidaan.einvoice.gateways.base import IrpNotConfigured
from nidaan.einvoice.gateways.nic import NicIrp
from nidaan.einvoice.gateways.registry import irp_for
from nidaan.main import create_app
from tests.demo.test_cli_and_demo import NIDAAN, _free_port, demo_env  # noqa: F401 (fixture)


def _settings(tmp_path: Path, mode: Mode, **values: object) -> Settings:
    return Settings(mode=mode, data_dir=tmp_path, **generate_secrets(), **values)  # type: ignore[arg-type]


def test_production_refuses_an_irp_simulator_url_unless_allowed(tmp_path: Path) -> None:
    for url in (
        "http://127.0.0.1:8000/simulators/irp",
        "https://10.1.2.3",
        "https://irp.example.com/simulators/irp",
    ):
        settings = _settings(tmp_path, Mode.PRODUCTION, irp_api_url=url)
        problems = check_production_ready(settings)
        assert [p.split(" ")[0] for p in problems] == ["NIDAAN_IRP_API_URL"], problems
        allowed = settings.model_copy(update={"irp_simulator_allowed": True})
        assert check_production_ready(allowed) == []
    real = _settings(tmp_path, Mode.PRODUCTION, irp_api_url="https://einv-apisandbox.nic.in")
    assert check_production_ready(real) == []


def test_production_without_an_irp_offers_none_and_mounts_no_simulator(tmp_path: Path) -> None:
    production = _settings(tmp_path, Mode.PRODUCTION)
    with pytest.raises(IrpNotConfigured):
        irp_for(production)
    half = production.model_copy(update={"irp_api_url": "https://einv-apisandbox.nic.in"})
    with pytest.raises(IrpNotConfigured, match="CLIENT_ID"):
        irp_for(half)
    key = wire.public_pem(wire.new_key_pair())
    (tmp_path / "irp.pem").write_text(key)
    full = half.model_copy(
        update={
            "irp_client_id": "AABCD",
            "irp_client_secret": SecretStr("secret"),
            "irp_public_key_file": tmp_path / "irp.pem",
        }
    )
    adapter = irp_for(full)
    assert isinstance(adapter, NicIrp)
    assert adapter.base_url == "https://einv-apisandbox.nic.in"
    app = create_app(production)
    assert not any("/simulators" in getattr(route, "path", "") for route in app.routes)


def test_demo_mode_wires_the_adapter_to_the_mounted_simulator(tmp_path: Path) -> None:
    demo = _settings(tmp_path, Mode.DEMO, port=8124)
    adapter = irp_for(demo)
    assert isinstance(adapter, NicIrp)
    assert adapter.base_url == "http://127.0.0.1:8124/simulators/irp"
    app = create_app(demo)
    assert "/simulators/irp" in {getattr(route, "path", "") for route in app.routes}
    # The simulator signs with the key whose public half the adapter holds.
    assert app.state.irp_simulator.public_key_pem == wire.public_pem(
        wire.load_private_key((tmp_path / "demo-irp-key.pem").read_bytes())
    )


def test_demo_path_b2b_invoice_to_irn_to_pdf_and_cancel(demo_env: dict[str, str]) -> None:  # noqa: F811
    port = _free_port()
    process = subprocess.Popen(
        [NIDAAN, "demo", "run", "--port", str(port)],
        # NIDAAN_PORT too: the adapter reaches the mounted simulator at the public base URL.
        env={**demo_env, "NIDAAN_PORT": str(port), "NIDAAN_DEMO_ANALYZER_PORT": str(_free_port())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "server exited early"
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.3)
        token = httpx.post(
            f"{base}/api/v1/auth/token",
            data={"username": "billing@demo.example.com", "password": "nidaan-demo"},
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"{base}/api/v1", headers=auth, timeout=60) as api:
            settings = api.get("/einvoice/settings").json()
            assert settings["enabled"] is True
            assert settings["irp_configured"] is True
            invoices = api.get("/invoices", params={"limit": 50}).json()["items"]
            b2b = [i for i in invoices if i["client_id"]]
            assert len(b2b) == 1, invoices
            invoice = b2b[0]
            generated = api.post(f"/invoices/{invoice['id']}/einvoice")
            assert generated.status_code == 201, generated.text
            body = generated.json()
            assert body["status"] == "generated"
            assert len(body["irn"]) == 64
            pdf = api.get(f"/invoices/{invoice['id']}/pdf")
            assert pdf.status_code == 200
            assert pdf.content.startswith(b"%PDF")
            listed = httpx.get(f"{base}/simulators/irp/_sim/irns").json()
            assert [x["irn"] for x in listed] == [body["irn"]]
            cancelled = api.post(
                f"/invoices/{invoice['id']}/einvoice/cancel",
                json={"reason": "2", "remark": "Demo: data entry mistake"},
            )
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
