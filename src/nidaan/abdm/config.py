"""Where ABDM is and who we are to it, resolved from settings (demo mode: the simulator)."""

from __future__ import annotations

from dataclasses import dataclass

from nidaan.config import Mode, Settings

DEMO_CLIENT_ID = "nidaan-demo"
DEMO_CLIENT_SECRET = "nidaan-demo-secret"  # the simulator's only client; not a real secret
#: The simulator serves both hosts' path layouts on one port.
SIMULATOR_GATEWAY_PATH = "/api/hiecm"
SIMULATOR_ABHA_PATH = "/abha/api"


class AbdmNotConfigured(RuntimeError):
    """ABDM is switched off or lacks URLs/credentials; the message says which setting."""


@dataclass(frozen=True)
class AbdmConfig:
    gateway_url: str
    abha_url: str
    client_id: str
    client_secret: str
    cm_id: str
    callback_timeout_seconds: int
    otp_sms_url: str | None
    simulated: bool  # demo mode wired to the embedded simulator

    @property
    def certs_url(self) -> str:
        return f"{self.gateway_url}/gateway/v3/certs"


def simulator_base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.abdm_simulator_port}"


def uses_embedded_simulator(settings: Settings) -> bool:
    """Demo mode with no ABDM URL of its own: the server runs the simulator itself."""
    return (
        settings.mode is Mode.DEMO
        and settings.abdm_gateway_url is None
        and (settings.abdm_enabled is not False)
    )


def abdm_config(settings: Settings) -> AbdmConfig:
    """The resolved configuration, or :class:`AbdmNotConfigured`."""
    if uses_embedded_simulator(settings):
        base = simulator_base_url(settings)
        return AbdmConfig(
            gateway_url=base + SIMULATOR_GATEWAY_PATH,
            abha_url=base + SIMULATOR_ABHA_PATH,
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            cm_id="sbx",
            callback_timeout_seconds=settings.abdm_callback_timeout_seconds,
            otp_sms_url=settings.abdm_otp_sms_url or f"{base}/sim/phone/messages",
            simulated=True,
        )
    enabled = settings.abdm_enabled if settings.abdm_enabled is not None else False
    if not enabled:
        raise AbdmNotConfigured("ABDM is off: set NIDAAN_ABDM_ENABLED=true and its URLs.")
    missing = [
        env
        for env, value in (
            ("NIDAAN_ABDM_GATEWAY_URL", settings.abdm_gateway_url),
            ("NIDAAN_ABDM_ABHA_URL", settings.abdm_abha_url),
            ("NIDAAN_ABDM_CLIENT_ID", settings.abdm_client_id),
            ("NIDAAN_ABDM_CLIENT_SECRET", settings.abdm_client_secret),
        )
        if not value
    ]
    if missing:
        raise AbdmNotConfigured(f"ABDM needs {', '.join(missing)}.")
    assert settings.abdm_gateway_url
    assert settings.abdm_abha_url
    assert settings.abdm_client_id
    assert settings.abdm_client_secret is not None
    return AbdmConfig(
        gateway_url=settings.abdm_gateway_url.rstrip("/"),
        abha_url=settings.abdm_abha_url.rstrip("/"),
        client_id=settings.abdm_client_id,
        client_secret=settings.abdm_client_secret.get_secret_value(),
        cm_id=settings.abdm_cm_id,
        callback_timeout_seconds=settings.abdm_callback_timeout_seconds,
        otp_sms_url=settings.abdm_otp_sms_url,
        simulated=False,
    )
