"""The demo path, end to end over real sockets: the server in demo mode with the three
gateway simulators mounted, a payer who opens the link and pays in the simulator's page,
the simulator's own signed webhook, and the invoice turning paid with ``payment.captured``.

Data is committed (a fresh organisation), as the server and the simulators run their own
transactions."""

from __future__ import annotations

import html
import re
import uuid

import httpx
import pytest
from sqlalchemy import select

from nidaan.billing.models import BillingSettings
from nidaan.config import Mode, Settings
from nidaan.events.models import OutboxEvent
from nidaan.main import create_app
from nidaan.simulators.serve import ServedInLoop
from tests.fixtures.billing import create_billing_world
from tests.fixtures.objects import create_organisation


def form_of(page: str) -> tuple[str, dict[str, str]]:
    """The action and fields of the first form on an HTML page (what a browser posts)."""
    action = html.unescape(re.search(r"<form method='post' action='([^']*)'", page).group(1))  # type: ignore[union-attr]
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r"<input type='hidden' name='([^']*)' value='([^']*)'>", page)
    }
    return action, fields


async def pay_like_a_browser(http: httpx.AsyncClient, gateway: str, url: str) -> httpx.Response:
    if gateway == "payu":
        our_page = await http.get(url)  # posts the signed form to PayU
        action, fields = form_of(our_page.text)
        payu_page = await http.post(action, data=fields)
        token = re.search(r"name='token' value='([^']*)'", payu_page.text).group(1)  # type: ignore[union-attr]
        done = await http.post(action + "/complete", data={"token": token, "outcome": "success"})
        back, fields = form_of(done.text)  # PayU posts the result back to us
        return await http.post(back, data=fields)
    page = await http.get(url)
    assert page.status_code == 200
    return await http.post(url, data={"outcome": "success"}, follow_redirects=True)


@pytest.mark.parametrize("gateway", ["razorpay", "stripe", "payu"])
async def test_demo_link_paid_in_the_simulator_turns_the_invoice_paid(
    settings: Settings,
    committing_session,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    gateway: str,
) -> None:
    server = ServedInLoop(None)
    monkeypatch.setattr(settings, "mode", Mode.DEMO)
    monkeypatch.setattr(settings, "port", server.port)
    monkeypatch.setattr(settings, "public_base_url", None)
    for name in (
        "razorpay_key_id",
        "razorpay_key_secret",
        "razorpay_webhook_secret",
        "stripe_secret_key",
        "stripe_webhook_secret",
        "payu_key",
        "payu_salt",
    ):
        monkeypatch.setattr(settings, name, None)
    async with committing_session() as session:
        organisation = await create_organisation(session)
        world = await create_billing_world(session, organisation)
        row = await session.get(BillingSettings, organisation.id)
        row.enabled_gateways = ["razorpay", "stripe", "payu"]
        row.default_gateway = gateway
        order = await world.order("TSH", "GLU")
    server.use(create_app(settings))
    async with server as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        invoice = (
            await http.post(
                "/api/v1/invoices", json={"order_id": str(order.id)}, headers=world.front_desk
            )
        ).json()
        link = await http.post(
            f"/api/v1/invoices/{invoice['id']}/payment-link", json={}, headers=world.front_desk
        )
        assert link.status_code == 201, link.text
        url = link.json()["url"]
        assert url.startswith(base)
        final = await pay_like_a_browser(http, gateway, url)
        assert final.status_code == 200, final.text
        assert "Payment received" in final.text or "successful" in final.text
        simulators = server.app.state.payment_simulators
        await getattr(simulators, gateway).webhooks.settle()
        paid = (await http.get(f"/api/v1/invoices/{invoice['id']}", headers=world.billing)).json()
        assert (paid["payment_status"], paid["amount_paid"]) == ("paid", "600.00")
        deliveries = getattr(simulators, gateway).webhooks.log
        assert deliveries
        assert all(d.results[-1] == 200 for d in deliveries)
    async with committing_session() as session:
        events = await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.organisation_id == organisation.id,
                OutboxEvent.name == "payment.captured",
            )
        )
        (event,) = events.all()
        assert event.payload["invoice_id"] == invoice["id"]
        assert uuid.UUID(event.payload["receipt_id"])
