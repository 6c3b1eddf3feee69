"""Demo wiring: the three gateway simulators inside the running server, under
``/simulators/<gateway>``, delivering their webhooks to this server's ``/webhooks/<gateway>``.

Only gateways without real credentials get a simulator (``payments.gateways.registry``
points those at it); production never mounts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from nidaan.config import Settings
from nidaan.kit.storage import public_base_url
from nidaan.simulators.payments.payu import PayUSimulator
from nidaan.simulators.payments.razorpay import RazorpaySimulator
from nidaan.simulators.payments.stripe import StripeSimulator


@dataclass
class MountedSimulators:
    razorpay: RazorpaySimulator | None = None
    stripe: StripeSimulator | None = None
    payu: PayUSimulator | None = None


def mount_payment_simulators(app: FastAPI, settings: Settings) -> MountedSimulators:
    base = public_base_url(settings)
    mounted = MountedSimulators()

    def urls(name: str) -> dict[str, Any]:
        return {"public_url": f"{base}/simulators/{name}", "webhook_url": f"{base}/webhooks/{name}"}

    if not (settings.razorpay_key_id and settings.razorpay_key_secret):
        mounted.razorpay = RazorpaySimulator(**urls("razorpay"))
        app.mount("/simulators/razorpay", mounted.razorpay.app)
    if not settings.stripe_secret_key:
        mounted.stripe = StripeSimulator(**urls("stripe"))
        app.mount("/simulators/stripe", mounted.stripe.app)
    if not (settings.payu_key and settings.payu_salt):
        mounted.payu = PayUSimulator(**urls("payu"))
        app.mount("/simulators/payu", mounted.payu.app)
    app.state.payment_simulators = mounted
    return mounted
