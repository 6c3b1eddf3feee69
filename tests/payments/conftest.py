"""Payments tests: the three gateway simulators on loopback (uvicorn, real sockets) for the
whole session, our adapters pointed at them, and a lab whose invoices they can pay.

Webhooks are held in the simulator and handed to the test (``forward``), which posts them to
our ``/webhooks/<gateway>`` exactly as signed — as many times and in whatever order the test
wants. ``tests/payments/test_end_to_end.py`` lets the simulators deliver by themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.billing.models import BillingSettings
from nidaan.config import Settings
from nidaan.simulators.payments.common import Delivery
from nidaan.simulators.payments.payu import PayUSimulator
from nidaan.simulators.payments.razorpay import RazorpaySimulator
from nidaan.simulators.payments.stripe import StripeSimulator
from nidaan.simulators.serve import ServedApp
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import BillingWorld, create_billing_world


@dataclass
class Simulators:
    razorpay: RazorpaySimulator
    stripe: StripeSimulator
    payu: PayUSimulator
    urls: dict[str, str]

    def of(self, gateway: str) -> Any:
        return getattr(self, gateway)


def _serve(sim: Any, name: str, servers: list[ServedApp]) -> str:
    served = ServedApp(sim.app)
    sim.public_url = served.url
    served.start()
    servers.append(served)
    return served.url


@pytest.fixture(scope="session")
def simulators() -> Iterator[Simulators]:
    servers: list[ServedApp] = []
    sims = Simulators(
        RazorpaySimulator(public_url="", webhook_url=None),
        StripeSimulator(public_url="", webhook_url=None),
        PayUSimulator(public_url="", webhook_url=None),
        {},
    )
    for name in ("razorpay", "stripe", "payu"):
        sims.urls[name] = _serve(sims.of(name), name, servers)
    yield sims
    for served in servers:
        served.stop()


@pytest.fixture
def gateways(
    simulators: Simulators, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Simulators:
    """Our adapters configured for the simulators; webhooks held until forwarded."""
    from pydantic import SecretStr

    from nidaan.payments.gateways import demo

    values = {
        "razorpay_api_url": simulators.urls["razorpay"],
        "razorpay_key_id": demo.RAZORPAY_KEY_ID,
        "razorpay_key_secret": SecretStr(demo.RAZORPAY_KEY_SECRET),
        "razorpay_webhook_secret": SecretStr(demo.RAZORPAY_WEBHOOK_SECRET),
        "stripe_api_url": simulators.urls["stripe"],
        "stripe_secret_key": SecretStr(demo.STRIPE_SECRET_KEY),
        "stripe_webhook_secret": SecretStr(demo.STRIPE_WEBHOOK_SECRET),
        "payu_payment_url": simulators.urls["payu"],
        "payu_api_url": simulators.urls["payu"],
        "payu_key": demo.PAYU_KEY,
        "payu_salt": SecretStr(demo.PAYU_SALT),
    }
    for key, value in values.items():
        monkeypatch.setattr(settings, key, value)
    for sim in (simulators.razorpay, simulators.stripe, simulators.payu):
        sim.webhooks.take()
        sim.webhooks.hold = True
        sim.webhooks.duplicate_rate = 0.0
        sim.webhooks.shuffle = False
        sim.webhooks.target_url = None
    return simulators


@pytest.fixture
async def world(
    session: AsyncSession, organisation: Organisation, gateways: Simulators
) -> BillingWorld:
    world = await create_billing_world(session, organisation)
    settings = await session.get(BillingSettings, organisation.id)
    assert settings is not None
    settings.enabled_gateways = ["razorpay", "stripe", "payu"]
    settings.default_gateway = "razorpay"
    await session.flush()
    return world


def held(sim: Any) -> list[Delivery]:
    """Take the deliveries the simulator has queued (in the order it made them)."""
    return sim.webhooks.take()


async def forward(
    client: httpx.AsyncClient, gateway: str, deliveries: list[Delivery]
) -> list[httpx.Response]:
    """Post each delivery to our webhook endpoint with its original body and headers."""
    responses = []
    for delivery in deliveries:
        responses.append(
            await client.post(
                f"/webhooks/{gateway}", content=delivery.body, headers=delivery.headers
            )
        )
    return responses


async def new_invoice(
    client: httpx.AsyncClient, world: BillingWorld, *codes: str
) -> dict[str, Any]:
    order = await world.order(*codes)
    response = await client.post(
        "/api/v1/invoices", json={"order_id": str(order.id)}, headers=world.front_desk
    )
    assert response.status_code == 201, response.text
    return response.json()


async def new_link(
    client: httpx.AsyncClient, world: BillingWorld, invoice: dict[str, Any], gateway: str
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payment-link",
        json={"gateway": gateway},
        headers=world.front_desk,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def pay_at_simulator(
    sims: Simulators, gateway: str, link: dict[str, Any], **control: Any
) -> dict[str, Any]:
    """The payer pays (through the simulator's control API, over its socket)."""
    base = sims.urls[gateway]
    async with httpx.AsyncClient(base_url=base) as http:
        if gateway == "razorpay":
            response = await http.post(
                f"/_sim/payment_links/{link['gateway_ref']}/pay", json=control
            )
        elif gateway == "stripe":
            response = await http.post(
                f"/_sim/checkout/sessions/{link['gateway_ref']}/pay", json=control
            )
        else:
            response = await http.post(
                "/_sim/pay",
                json={
                    "txnid": link["gateway_ref"],
                    "amount": control.pop("amount_text", link["amount"]),
                    "udf1": link["id"],
                    **control,
                },
            )
    assert response.status_code == 200, response.text
    return response.json()


async def get_invoice(
    client: httpx.AsyncClient, world: BillingWorld, invoice_id: str
) -> dict[str, Any]:
    response = await client.get(f"/api/v1/invoices/{invoice_id}", headers=world.billing)
    return response.json()
