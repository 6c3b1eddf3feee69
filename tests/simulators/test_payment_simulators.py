"""The gateway simulators speak like the real gateways: the official ``razorpay`` and
``stripe`` SDKs work against them and accept their webhook signatures, PayU's hashes match
values computed by hand from PayU's documented field order, and delivery modes (hold,
duplicates, shuffle) behave as documented."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl

import httpx
import pytest
import razorpay
import stripe

from nidaan.payments.gateways import demo
from nidaan.payments.gateways.payu import PayUGateway, request_hash, reverse_hash
from nidaan.payments.gateways.razorpay import RazorpayGateway
from nidaan.simulators.payments.payu import PayUSimulator
from nidaan.simulators.payments.razorpay import RazorpaySimulator
from nidaan.simulators.payments.stripe import StripeSimulator
from nidaan.simulators.serve import ServedApp


def serve(sim) -> Iterator[str]:  # type: ignore[no-untyped-def]
    served = ServedApp(sim.app)
    sim.public_url = served.url
    with served as url:
        yield url


@pytest.fixture
def razorpay_sim() -> Iterator[tuple[RazorpaySimulator, str]]:
    sim = RazorpaySimulator(public_url="", webhook_url=None)
    sim.webhooks.hold = True
    for url in serve(sim):
        yield sim, url


@pytest.fixture
def stripe_sim() -> Iterator[tuple[StripeSimulator, str]]:
    sim = StripeSimulator(public_url="", webhook_url=None)
    sim.webhooks.hold = True
    for url in serve(sim):
        yield sim, url


def test_official_razorpay_sdk_against_the_simulator(
    razorpay_sim: tuple[RazorpaySimulator, str],
) -> None:
    sim, url = razorpay_sim
    client = razorpay.Client(auth=(demo.RAZORPAY_KEY_ID, demo.RAZORPAY_KEY_SECRET), base_url=url)
    link = client.payment_link.create(
        {
            "amount": 45000,
            "currency": "INR",
            "reference_id": "CL/26-27/0001",
            "description": "Invoice CL/26-27/0001",
            "customer": {"name": "Asha", "contact": "+919876543210"},
            "expire_by": int(time.time()) + 3600,
            "notes": {"invoice_id": "x"},
        }
    )
    assert (link["status"], link["amount"], link["short_url"]) == (
        "created",
        45000,
        f"{url}/pay/{link['id']}",
    )
    with pytest.raises(razorpay.errors.BadRequestError, match="already exists"):
        client.payment_link.create({"amount": 45000, "reference_id": "CL/26-27/0001"})
    with pytest.raises(razorpay.errors.BadRequestError, match="minimum"):
        client.payment_link.create({"amount": 99, "currency": "INR"})
    paid = httpx.post(f"{url}/_sim/payment_links/{link['id']}/pay", json={}).json()
    assert client.payment_link.fetch(link["id"])["status"] == "paid"
    payment = client.payment.fetch(paid["id"])
    assert (payment["status"], payment["captured"], payment["notes"]) == (
        "captured",
        True,
        {"invoice_id": "x"},
    )
    refund = client.payment.refund(paid["id"], {"amount": 10000})
    assert (refund["status"], refund["amount"]) == ("processed", 10000)
    with pytest.raises(razorpay.errors.BadRequestError, match="greater than amount captured"):
        client.payment.refund(paid["id"], {"amount": 40000})
    qr = client.qrcode.create(
        {
            "type": "upi_qr",
            "name": "Counter",
            "usage": "single_use",
            "fixed_amount": True,
            "payment_amount": 30000,
            "close_by": int(time.time()) + 3600,
        }
    )
    assert qr["image_url"].endswith(".png")
    assert httpx.get(qr["image_url"]).content.startswith(b"\x89PNG")
    kinds = [d.kind for d in sim.webhooks.queue]
    assert kinds == [
        "payment.authorized",
        "payment.captured",
        "order.paid",
        "payment_link.paid",
        "refund.created",
        "refund.processed",
    ]
    # Razorpay's own verifier accepts every webhook the simulator signed.
    utility = razorpay.Utility(client)
    for delivery in sim.webhooks.queue:
        assert utility.verify_webhook_signature(
            delivery.body.decode(),
            delivery.headers["X-Razorpay-Signature"],
            demo.RAZORPAY_WEBHOOK_SECRET,
        )
        assert delivery.headers["X-Razorpay-Event-Id"].startswith("evt_")
    with pytest.raises(razorpay.errors.SignatureVerificationError):
        utility.verify_webhook_signature(
            sim.webhooks.queue[0].body.decode() + " ",
            sim.webhooks.queue[0].headers["X-Razorpay-Signature"],
            demo.RAZORPAY_WEBHOOK_SECRET,
        )
    bad = razorpay.Client(auth=(demo.RAZORPAY_KEY_ID, "wrong"), base_url=url)
    with pytest.raises(razorpay.errors.BadRequestError, match="Authentication"):
        bad.payment_link.fetch(link["id"])


def test_payment_link_callback_signature_verifies_with_the_sdk(
    razorpay_sim: tuple[RazorpaySimulator, str],
) -> None:
    _, url = razorpay_sim
    client = razorpay.Client(auth=(demo.RAZORPAY_KEY_ID, demo.RAZORPAY_KEY_SECRET), base_url=url)
    link = client.payment_link.create(
        {
            "amount": 20000,
            "reference_id": "R1",
            "callback_url": "https://lab.example/back",
            "callback_method": "get",
            "expire_by": int(time.time()) + 3600,
        }
    )
    page = httpx.get(link["short_url"])
    assert "₹200.00" in page.text
    back = httpx.post(link["short_url"], data={"outcome": "success"})
    assert back.status_code == 303
    params = dict(parse_qsl(back.headers["location"].split("?", 1)[1]))
    assert client.utility.verify_payment_link_signature(
        {
            "payment_link_id": params["razorpay_payment_link_id"],
            "payment_link_reference_id": params["razorpay_payment_link_reference_id"],
            "payment_link_status": params["razorpay_payment_link_status"],
            "razorpay_payment_id": params["razorpay_payment_id"],
            "razorpay_signature": params["razorpay_signature"],
        }
    )


def test_official_stripe_sdk_against_the_simulator(
    stripe_sim: tuple[StripeSimulator, str],
) -> None:
    sim, url = stripe_sim
    client = stripe.StripeClient(
        demo.STRIPE_SECRET_KEY, base_addresses={"api": url}, max_network_retries=0
    )
    params = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "inr",
                    "unit_amount": 45000,
                    "product_data": {"name": "Invoice CL/26-27/0001"},
                },
            }
        ],
        "success_url": "https://lab.example/paid?session_id={CHECKOUT_SESSION_ID}",
        "metadata": {"invoice_id": "x"},
        "payment_intent_data": {"metadata": {"invoice_id": "x"}},
    }
    session = client.v1.checkout.sessions.create(
        params=params, options={"idempotency_key": "one-session-per-invoice"}
    )
    again = client.v1.checkout.sessions.create(
        params=params, options={"idempotency_key": "one-session-per-invoice"}
    )
    assert again.id == session.id
    assert (session.status, session.payment_status, session.amount_total) == (
        "open",
        "unpaid",
        45000,
    )
    back = httpx.post(session.url, data={"outcome": "success"})
    assert back.status_code == 303
    assert back.headers["location"] == f"https://lab.example/paid?session_id={session.id}"
    paid = client.v1.checkout.sessions.retrieve(session.id)
    intent = client.v1.payment_intents.retrieve(paid.payment_intent)
    assert (intent.status, intent.amount_received, intent.metadata["invoice_id"]) == (
        "succeeded",
        45000,
        "x",
    )
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 5000})
    assert refund.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 45000})
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_test_wrong", base_addresses={"api": url}).v1.refunds.retrieve(
            refund.id
        )
    kinds = [d.kind for d in sim.webhooks.queue]
    assert kinds == [
        "checkout.session.completed",
        "payment_intent.succeeded",
        "refund.created",
        "refund.updated",
    ]
    for delivery in sim.webhooks.queue:
        event = stripe.Webhook.construct_event(
            delivery.body.decode(), delivery.headers["Stripe-Signature"], demo.STRIPE_WEBHOOK_SECRET
        )
        assert event.id == delivery.event_id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            sim.webhooks.queue[0].body.decode(),
            sim.webhooks.queue[0].headers["Stripe-Signature"],
            "whsec_other",
        )


def test_payu_hashes_follow_the_documented_field_order() -> None:
    """Hashes computed by hand from PayU's docs (fact sheet section 3)."""
    fields = {
        "key": "JBZaLc",
        "txnid": "t6svtqtjRdl4ws",
        "amount": "10.00",
        "productinfo": "iPhone",
        "firstname": "Ashish",
        "email": "test@gmail.com",
        "udf1": "u1",
    }
    by_hand = hashlib.sha512(
        # udf1..udf5 (4 separators), then udf5 followed by 6 pipes before the salt.
        b"JBZaLc|t6svtqtjRdl4ws|10.00|iPhone|Ashish|test@gmail.com|u1" + b"|" * 10 + b"SALT"
    ).hexdigest()
    assert request_hash(fields, "SALT") == by_hand
    response = {**fields, "status": "success"}
    by_hand = hashlib.sha512(
        b"SALT|success||||||||||u1|test@gmail.com|Ashish|iPhone|10.00|t6svtqtjRdl4ws|JBZaLc"
    ).hexdigest()
    assert reverse_hash(response, "SALT") == by_hand
    with_charges = {**response, "additionalCharges": "2.00"}
    assert (
        reverse_hash(with_charges, "SALT")
        == hashlib.sha512(
            b"2.00|SALT|success||||||||||u1|test@gmail.com|Ashish|iPhone|10.00|t6svtqtjRdl4ws|JBZaLc"
        ).hexdigest()
    )


def test_payu_checkout_hosted_page_and_commands() -> None:
    sim = PayUSimulator(public_url="", webhook_url=None)
    sim.webhooks.hold = True
    for url in serve(sim):
        adapter = PayUGateway(url, url, demo.PAYU_KEY, demo.PAYU_SALT)
        action, fields = adapter.checkout_form(
            txnid="LAB-26-27-0001",
            amount_paise=45000,
            productinfo="Invoice LAB/26-27/0001",
            firstname="Asha",
            email="asha@example.com",
            phone="9876543210",
            surl="https://lab.example/ok",
            furl="https://lab.example/fail",
            udf1="request-1",
        )
        tampered = httpx.post(action, data={**fields, "amount": "4.50"})
        assert tampered.status_code == 400
        assert "hash mismatch" in tampered.text
        page = httpx.post(action, data=fields)
        assert page.status_code == 200
        token = page.text.split("name='token' value='")[1].split("'")[0]
        done = httpx.post(f"{url}/_payment/complete", data={"token": token, "outcome": "success"})
        assert "https://lab.example/ok" in done.text
        (delivery,) = sim.webhooks.queue
        event = adapter.parse_webhook(
            delivery.body, {"content-type": delivery.headers["Content-Type"]}
        )
        (payment,) = event.payments
        assert (payment.status, payment.amount_paise, payment.request_ref) == (
            "captured",
            45000,
            "LAB-26-27-0001",
        )
        import asyncio

        state = asyncio.run(adapter.fetch_request("LAB-26-27-0001", "link"))
        assert state.status == "paid"
        refund = asyncio.run(
            adapter.refund(payment.gateway_payment_id, 10000, refund_id="3f2b", reason="x")
        )
        assert refund.status == "pending"
        settled = asyncio.run(
            adapter.fetch_refund(refund.gateway_refund_id, payment.gateway_payment_id)
        )
        assert (settled.status, settled.amount_paise) == ("processed", 10000)
        bad = httpx.post(
            f"{url}/merchant/postservice.php?form=2",
            data={"key": demo.PAYU_KEY, "command": "verify_payment", "var1": "x", "hash": "0"},
        ).json()
        assert bad == {"status": 0, "msg": "Invalid Hash."}


async def test_delivery_modes_hold_duplicate_and_shuffle() -> None:
    received: list[str] = []

    async def merchant(scope, receive, send):  # type: ignore[no-untyped-def]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(json.loads(body)["event"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with ServedApp(merchant) as merchant_url:
        sim = RazorpaySimulator(public_url="", webhook_url=f"{merchant_url}/hook")
        for url in serve(sim):
            async with httpx.AsyncClient(base_url=url) as http:
                await http.post(
                    "/_sim/webhooks/mode",
                    json={"hold": True, "duplicate_rate": 1.0, "shuffle": True, "seed": 7},
                )
                link = RazorpayGateway(
                    url,
                    demo.RAZORPAY_KEY_ID,
                    demo.RAZORPAY_KEY_SECRET,
                    demo.RAZORPAY_WEBHOOK_SECRET,
                )
                from datetime import UTC, datetime, timedelta

                from nidaan.payments.gateways.base import Customer, LinkRequest

                created = await link.create_link(
                    LinkRequest(
                        amount_paise=10000,
                        currency="INR",
                        reference="R-dup",
                        description="d",
                        customer=Customer("A"),
                        expire_at=datetime.now(UTC) + timedelta(hours=1),
                        notes={},
                    )
                )
                await http.post(f"/_sim/payment_links/{created.gateway_ref}/pay", json={})
                assert received == []
                report = (await http.post("/_sim/webhooks/deliver")).json()
            assert report["queued"] == 0
            # Every event twice, not in the order they happened.
            assert sorted(received) == sorted(
                ["payment.authorized", "payment.captured", "order.paid", "payment_link.paid"] * 2
            )
            assert received != sorted(
                received,
                key=[
                    "payment.authorized",
                    "payment.captured",
                    "order.paid",
                    "payment_link.paid",
                ].index,
            )
