"""Which adapter (and which credentials and base URL) serves a gateway name.

Credentials come from settings. In demo mode, a gateway without credentials is served by the
built-in simulator mounted at ``<this server>/simulators/<gateway>`` with fixed demo keys, so
``make run`` can take a payment end to end with no outside account.
"""

from __future__ import annotations

from dataclasses import dataclass

from nidaan.config import Mode, Settings, get_settings
from nidaan.kit.storage import public_base_url
from nidaan.payments.gateways import demo as demo_keys
from nidaan.payments.gateways.base import GatewayNotConfigured, PaymentGateway
from nidaan.payments.gateways.payu import PayUGateway
from nidaan.payments.gateways.razorpay import RazorpayGateway
from nidaan.payments.gateways.stripe import StripeGateway

GATEWAYS = ("razorpay", "stripe", "payu")


@dataclass(frozen=True)
class DemoWiring:
    """Where the demo's simulators live and the keys they share with the adapters."""

    base: str

    def url(self, gateway: str) -> str:
        return f"{self.base}/simulators/{gateway}"


def demo_wiring(settings: Settings) -> DemoWiring | None:
    return DemoWiring(public_base_url(settings)) if settings.mode is Mode.DEMO else None


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else None


def gateway_for(name: str, settings: Settings | None = None) -> PaymentGateway:
    settings = settings or get_settings()
    demo = demo_wiring(settings)
    if name == "razorpay":
        key_id, secret = settings.razorpay_key_id, _secret(settings.razorpay_key_secret)
        hook = _secret(settings.razorpay_webhook_secret)
        if key_id and secret and hook:
            return RazorpayGateway(settings.razorpay_api_url, key_id, secret, hook)
        if demo:
            return RazorpayGateway(
                demo.url("razorpay"),
                demo_keys.RAZORPAY_KEY_ID,
                demo_keys.RAZORPAY_KEY_SECRET,
                demo_keys.RAZORPAY_WEBHOOK_SECRET,
            )
    elif name == "stripe":
        key, hook = _secret(settings.stripe_secret_key), _secret(settings.stripe_webhook_secret)
        if key and hook:
            return StripeGateway(settings.stripe_api_url, key, hook)
        if demo:
            return StripeGateway(
                demo.url("stripe"), demo_keys.STRIPE_SECRET_KEY, demo_keys.STRIPE_WEBHOOK_SECRET
            )
    elif name == "payu":
        salt = _secret(settings.payu_salt)
        if settings.payu_key and salt:
            return PayUGateway(
                settings.payu_payment_url, settings.payu_api_url, settings.payu_key, salt
            )
        if demo:
            return PayUGateway(
                demo.url("payu"), demo.url("payu"), demo_keys.PAYU_KEY, demo_keys.PAYU_SALT
            )
    else:
        raise GatewayNotConfigured(f"There is no gateway called {name!r}.")
    raise GatewayNotConfigured(
        f"{name} has no credentials: set NIDAAN_{name.upper()}_* in the environment."
    )


def configured_gateways(settings: Settings | None = None) -> list[str]:
    found = []
    for name in GATEWAYS:
        try:
            gateway_for(name, settings)
        except GatewayNotConfigured:
            continue
        found.append(name)
    return found
