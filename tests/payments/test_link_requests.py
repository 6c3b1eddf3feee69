"""What a payment link asks of each gateway: the amount in paise, the invoice number as the
reference, the patient's name/mobile/e-mail, the expiry, our return URL and (Razorpay) an SMS
from the gateway — read from what the simulator received over its socket, not from our side."""

from __future__ import annotations

import html
import re
import time
from datetime import datetime

import httpx
import pytest

from tests.fixtures.billing import BillingWorld
from tests.payments.conftest import Simulators, new_invoice

CUSTOMER = {
    "customer_name": "Asha Kulkarni",
    "customer_mobile": "+919876543210",
    "customer_email": "asha@example.com",
}


async def make_link(
    client: httpx.AsyncClient, world: BillingWorld, invoice: dict, gateway: str, **extra: object
) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payment-link",
        json={"gateway": gateway, **CUSTOMER, **extra},
        headers=world.billing,
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def within(seconds: int, expires_at: str, hours: int) -> bool:
    expected = time.time() + hours * 3600
    return abs(datetime.fromisoformat(expires_at).timestamp() - expected) < seconds


async def test_razorpay_link_fields(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "TSH", "GLU")  # 600.00
    link = await make_link(client, world, invoice, "razorpay", notify_sms=True, expire_in_hours=48)
    sent = gateways.razorpay.links[link["gateway_ref"]]
    assert (sent["amount"], sent["currency"]) == (60000, "INR")  # paise, exactly
    assert sent["reference_id"] == link["reference"]
    assert sent["reference_id"].startswith(invoice["number"])
    assert len(sent["reference_id"]) <= 40
    assert sent["customer"] == {
        "name": "Asha Kulkarni",
        "email": "asha@example.com",
        "contact": "+919876543210",
    }
    assert sent["notify"] == {"sms": True, "email": False}
    assert abs(sent["expire_by"] - (time.time() + 48 * 3600)) < 120
    assert within(120, link["expires_at"], 48)
    assert sent["callback_method"] == "get"
    assert sent["callback_url"].endswith("/pay/razorpay/return")
    assert link["url"] == sent["short_url"]


async def test_stripe_checkout_fields(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "HBA1C")  # 1250.00
    link = await make_link(client, world, invoice, "stripe", expire_in_hours=2)
    sent = gateways.stripe.sessions[link["gateway_ref"]]
    assert (sent["amount_total"], sent["currency"]) == (125000, "inr")  # lower-case, paise
    assert sent["client_reference_id"] == link["reference"]
    assert sent["client_reference_id"].startswith(invoice["number"])
    assert sent["customer_email"] == "asha@example.com"
    assert abs(sent["expires_at"] - (time.time() + 2 * 3600)) < 120
    assert "/pay/stripe/return" in sent["success_url"]
    assert link["url"] == sent["url"]


async def test_stripe_expiry_is_kept_within_its_24_hours(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    link = await make_link(client, world, invoice, "stripe", expire_in_hours=72)
    sent = gateways.stripe.sessions[link["gateway_ref"]]
    assert sent["expires_at"] <= time.time() + 24 * 3600


@pytest.mark.parametrize("bad", [{"customer_mobile": "98-76"}, {"expire_in_hours": 0}])
async def test_bad_link_input_is_refused_and_nothing_is_made(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators, bad: dict
) -> None:  # type: ignore[type-arg]
    invoice = await new_invoice(client, world, "TSH")
    before = len(gateways.razorpay.links)
    response = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payment-link",
        json={"gateway": "razorpay", **bad},
        headers=world.billing,
    )
    assert response.status_code == 422
    assert len(gateways.razorpay.links) == before
    listed = await client.get(
        f"/api/v1/invoices/{invoice['id']}/payment-requests", headers=world.billing
    )
    assert listed.json()["items"] == []


async def test_payu_checkout_form_fields(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "TSH", "GLU")  # 600.00
    link = await make_link(client, world, invoice, "payu")
    path = "/" + link["url"].split("://", 1)[1].split("/", 1)[1]  # our own page, on the app
    page = await client.get(path)
    assert page.status_code == 200, page.text
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(
            r"<input type='hidden' name='([^']*)' value='([^']*)'>", page.text
        )
    }
    assert fields["txnid"] == link["gateway_ref"]
    assert fields["amount"] == "600.00"  # PayU takes rupees with two decimals
    assert fields["firstname"] == "Asha"
    assert fields["email"] == "asha@example.com"
    assert fields["phone"] == "9876543210"
    assert fields["productinfo"] == f"Invoice {link['reference']}"
    assert link["reference"].startswith(invoice["number"])
    assert fields["surl"].endswith("/return")
    assert fields["furl"] == fields["surl"]
    # The hash is the one PayU's checkout recomputes (the simulator refuses any other).
    assert fields["hash"].lower() == gateways.payu.request_hash(fields)
