"""Which IRP this installation talks to, with which client credentials and public key.

Production: ``NIDAAN_IRP_API_URL``, ``NIDAAN_IRP_CLIENT_ID``/``_SECRET`` and the IRP's public
key (``NIDAAN_IRP_PUBLIC_KEY`` or ``_FILE``). Demo mode without them: the IRP simulator mounted
at ``<this server>/simulators/irp``, with fixed demo client credentials and a key pair kept in
the data directory (``demo-irp-key.pem``) that the simulator and the adapter share.
"""

from __future__ import annotations

from pathlib import Path

from nidaan.config import Mode, Settings, get_settings
from nidaan.einvoice import wire
from nidaan.einvoice.gateways.base import IrpNotConfigured, IrpPort
from nidaan.einvoice.gateways.nic import NicIrp
from nidaan.kit.storage import public_base_url

DEMO_CLIENT_ID = "NIDAANDEMOCLIENT"
DEMO_CLIENT_SECRET = "nidaan-demo-irp-client-secret"
DEMO_KEY_FILE = "demo-irp-key.pem"

#: Tests (and embedders) may put an adapter here; ``irp_for`` then returns it.
_override: IrpPort | None = None


def set_irp(port: IrpPort | None) -> IrpPort | None:
    global _override
    previous, _override = _override, port
    return previous


def demo_private_key(settings: Settings) -> bytes:
    """The demo simulator's private key (PEM), made once per data directory."""
    path = Path(settings.data_dir) / DEMO_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wire.private_pem(wire.new_key_pair()))
        path.chmod(0o600)
    return path.read_bytes()


def _public_key(settings: Settings) -> str | None:
    if settings.irp_public_key:
        return settings.irp_public_key
    if settings.irp_public_key_file is not None:
        return Path(settings.irp_public_key_file).read_text()
    return None


def irp_for(settings: Settings | None = None) -> IrpPort:
    if _override is not None:
        return _override
    settings = settings or get_settings()
    tuning = {"attempts": settings.irp_attempts, "backoff_seconds": settings.irp_backoff_seconds}
    if settings.irp_api_url:
        key = _public_key(settings)
        secret = settings.irp_client_secret
        if not (settings.irp_client_id and secret and key):
            raise IrpNotConfigured(
                "NIDAAN_IRP_CLIENT_ID, NIDAAN_IRP_CLIENT_SECRET and NIDAAN_IRP_PUBLIC_KEY (or "
                "_FILE) must be set with NIDAAN_IRP_API_URL."
            )
        return NicIrp(
            settings.irp_api_url,
            settings.irp_client_id,
            secret.get_secret_value(),
            key,
            signing_key_pem=settings.irp_signing_key,
            **tuning,
        )
    if settings.mode is Mode.DEMO:
        public = wire.public_pem(wire.load_private_key(demo_private_key(settings)))
        return NicIrp(
            f"{public_base_url(settings)}/simulators/irp",
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            public,
            **tuning,
        )
    raise IrpNotConfigured(
        "No IRP is configured: set NIDAAN_IRP_API_URL and the IRP client credentials."
    )
