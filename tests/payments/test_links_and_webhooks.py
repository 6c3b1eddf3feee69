"""Payment links through each gateway's adapter and simulator, and their webhooks applied to
the invoice exactly once — whatever the number and order of deliveries."""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.billing.models import LedgerEntry, Receipt
from nidaan.events.models import OutboxEvent
from nidaan.payments.models import GatewayPayment, WebhookEvent
from tests.fixtures.billing import BillingWorld
from tests.payments.conftest import (
    Simulators,
    forward,
    get_invoice,
    held,
    new_invoice,
    new_link,
    pay_at_simulator,
)

GATEWAYS = ["razorpay", "stripe", "payu"]


async def count(session: AsyncSession, model, *where) -> int:  # type: ignore[no-untyped-def]
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_link_paid_turns_the_invoice_paid_once(
    client: httpx.AsyncClient,
    world: BillingWorld,
    gateways: Simulators,
    session: AsyncSession,
    gateway: str,
) -> None:
    invoice = await new_invoice(client, world, "TSH", "GLU")  # 600
    link = await new_link(client, world, invoice, gateway)
    assert (link["gateway"], link["amount"], link["status"]) == (gateway, "600.00", "created")
    assert link["url"]
    assert link["reference"].startswith(invoice["number"])
    await pay_at_simulator(gateways, gateway, link)
    deliveries = held(gateways.of(gateway))
    assert deliveries, "the simulator sent no webhook"
    responses = await forward(client, gateway, deliveries)
    assert {r.status_code for r in responses} == {200}
    paid = await get_invoice(client, world, invoice["id"])
    assert (paid["payment_status"], paid["amount_paid"], paid["balance_due"]) == (
        "paid",
        "600.00",
        "0.00",
    )
    # Every delivery again: all duplicates, nothing moves.
    again = await forward(client, gateway, deliveries)
    assert {r.json()["status"] for r in again} == {"duplicate"}
    assert (await get_invoice(client, world, invoice["id"]))["amount_paid"] == "600.00"
    invoice_id = uuid.UUID(invoice["id"])
    assert await count(session, LedgerEntry, LedgerEntry.invoice_id == invoice_id) == 1
    assert await count(session, Receipt, Receipt.invoice_id == invoice_id) == 1
    captured = await session.scalars(
        select(OutboxEvent).where(OutboxEvent.name == "payment.captured")
    )
    (event,) = [e for e in captured if e.payload["invoice_id"] == invoice["id"]]
    assert (event.payload["source"], event.payload["amount"]) == (gateway, "600.00")
    requests = (
        await client.get(
            f"/api/v1/invoices/{invoice['id']}/payment-requests", headers=world.billing
        )
    ).json()["items"]
    assert requests[0]["status"] == "paid"
    payments = (
        await client.get(f"/api/v1/invoices/{invoice['id']}/payments", headers=world.billing)
    ).json()["items"]
    assert [(p["source"], p["status"], p["amount"]) for p in payments] == [
        (gateway, "applied", "600.00")
    ]


async def test_an_open_link_is_reused(client: httpx.AsyncClient, world: BillingWorld) -> None:
    invoice = await new_invoice(client, world, "TSH")
    first = await new_link(client, world, invoice, "razorpay")
    again = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payment-link",
        json={"gateway": "razorpay"},
        headers=world.front_desk,
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


async def test_disabled_gateway_and_paid_invoice_are_refused(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    from nidaan.billing.models import BillingSettings

    invoice = await new_invoice(client, world, "TSH")
    settings = await session.get(BillingSettings, world.organisation.id)
    settings.enabled_gateways = ["razorpay"]
    await session.flush()
    refused = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payment-link",
        json={"gateway": "stripe"},
        headers=world.front_desk,
    )
    assert refused.json()["code"] == "gateway_not_enabled"
    await client.post(
        f"/api/v1/invoices/{invoice['id']}/payments",
        json={"tenders": [{"method": "cash", "amount": "450"}]},
        headers=world.front_desk,
    )
    nothing = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payment-link", json={}, headers=world.front_desk
    )
    assert nothing.json()["code"] == "nothing_due"


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_any_order_and_any_duplicates_apply_once(
    client: httpx.AsyncClient,
    world: BillingWorld,
    gateways: Simulators,
    session: AsyncSession,
    data: st.DataObject,
) -> None:
    gateway = data.draw(st.sampled_from(GATEWAYS))
    invoice = await new_invoice(client, world, "HBA1C")
    link = await new_link(client, world, invoice, gateway)
    await pay_at_simulator(gateways, gateway, link)
    deliveries = held(gateways.of(gateway))
    copies = data.draw(
        st.lists(
            st.integers(min_value=1, max_value=3),
            min_size=len(deliveries),
            max_size=len(deliveries),
        )
    )
    sent = list(
        itertools.chain.from_iterable([d] * n for d, n in zip(deliveries, copies, strict=True))
    )
    order = data.draw(st.permutations(range(len(sent))))
    responses = await forward(client, gateway, [sent[i] for i in order])
    assert {r.status_code for r in responses} == {200}
    paid = await get_invoice(client, world, invoice["id"])
    assert (paid["payment_status"], paid["amount_paid"]) == ("paid", "1250.00")
    invoice_id = uuid.UUID(invoice["id"])
    assert await count(session, LedgerEntry, LedgerEntry.invoice_id == invoice_id) == 1
    assert await count(session, Receipt, Receipt.invoice_id == invoice_id) == 1
    (payment,) = (
        await session.scalars(select(GatewayPayment).where(GatewayPayment.invoice_id == invoice_id))
    ).all()
    assert (payment.status, payment.review_status) == ("captured", "applied")
    rows = await session.scalars(
        select(WebhookEvent).where(
            WebhookEvent.event_id.in_([d.event_id for d in deliveries]),
            WebhookEvent.gateway == gateway,
        )
    )
    assert sorted(r.deliveries for r in rows) == sorted(copies)


async def test_wrong_amount_or_currency_is_held_not_applied(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators, session: AsyncSession
) -> None:
    invoice = await new_invoice(client, world, "TSH")  # 450
    link = await new_link(client, world, invoice, "razorpay")
    await pay_at_simulator(gateways, "razorpay", link, amount=40000)  # 400.00
    await forward(client, "razorpay", held(gateways.razorpay))
    after = await get_invoice(client, world, invoice["id"])
    assert (after["payment_status"], after["amount_paid"]) == ("unpaid", "0.00")
    (payment,) = (
        await client.get(f"/api/v1/invoices/{invoice['id']}/payments", headers=world.billing)
    ).json()["items"]
    assert payment["status"] == "held"
    assert "request was for 450.00" in payment["review_reason"]
    report = (
        await client.get("/api/v1/payments/reconciliation", headers=world.headers["auditor"])
    ).json()
    assert [i["kind"] for i in report["items"]] == ["held_payment"]
    # An admin looks and accepts it: 400 of 450 paid.
    refused = await client.post(
        f"/api/v1/payments/{payment['id']}/apply", json={"note": "ok"}, headers=world.billing
    )
    assert refused.status_code == 403
    applied = await client.post(
        f"/api/v1/payments/{payment['id']}/apply",
        json={"note": "Patient paid less, rest at the counter"},
        headers=world.admin,
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["status"] == "applied"
    after = await get_invoice(client, world, invoice["id"])
    assert (after["payment_status"], after["balance_due"]) == ("partially_paid", "50.00")

    other = await new_invoice(client, world, "GLU")
    link = await new_link(client, world, other, "stripe")
    await pay_at_simulator(gateways, "stripe", link, currency="usd")
    await forward(client, "stripe", held(gateways.stripe))
    (payment,) = (
        await client.get(f"/api/v1/invoices/{other['id']}/payments", headers=world.billing)
    ).json()["items"]
    assert (payment["status"], payment["currency"]) == ("held", "USD")
    refused = await client.post(
        f"/api/v1/payments/{payment['id']}/apply", json={"note": "accept"}, headers=world.admin
    )
    assert refused.json()["code"] == "payment_not_held"


async def test_paid_twice_holds_the_second_payment(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    razorpay_link = await new_link(client, world, invoice, "razorpay")
    stripe_link = await new_link(client, world, invoice, "stripe")
    await pay_at_simulator(gateways, "razorpay", razorpay_link)
    await pay_at_simulator(gateways, "stripe", stripe_link)
    await forward(client, "stripe", held(gateways.stripe))
    await forward(client, "razorpay", held(gateways.razorpay))
    after = await get_invoice(client, world, invoice["id"])
    assert after["amount_paid"] == "450.00"
    payments = (
        await client.get(f"/api/v1/invoices/{invoice['id']}/payments", headers=world.billing)
    ).json()["items"]
    assert sorted((p["source"], p["status"]) for p in payments) == [
        ("razorpay", "held"),
        ("stripe", "applied"),
    ]
    held_one = next(p for p in payments if p["status"] == "held")
    assert "paid twice" in held_one["review_reason"]
    # The held money goes back in full.
    refund = await client.post(
        f"/api/v1/payments/{held_one['id']}/refunds",
        json={"reason": "Paid twice"},
        headers=world.billing,
    )
    assert refund.status_code == 201, refund.text
    await forward(client, "razorpay", held(gateways.razorpay))
    assert (await get_invoice(client, world, invoice["id"]))["amount_paid"] == "450.00"


async def test_failed_payment_leaves_the_invoice_unpaid(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    link = await new_link(client, world, invoice, "razorpay")
    await pay_at_simulator(gateways, "razorpay", link, outcome="failure")
    await forward(client, "razorpay", held(gateways.razorpay))
    (payment,) = (
        await client.get(f"/api/v1/invoices/{invoice['id']}/payments", headers=world.billing)
    ).json()["items"]
    assert payment["status"] == "not_applied"
    assert (await get_invoice(client, world, invoice["id"]))["payment_status"] == "unpaid"


async def test_upi_qr_from_razorpay_is_a_png_and_pays_the_invoice(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    response = await client.post(
        f"/api/v1/invoices/{invoice['id']}/upi-qr", headers=world.front_desk
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    qr_id = response.headers["x-gateway-ref"]
    assert qr_id.startswith("qr_")
    async with httpx.AsyncClient(base_url=gateways.urls["razorpay"]) as http:
        paid = await http.post(f"/_sim/qr_codes/{qr_id}/pay", json={})
    assert paid.status_code == 200
    deliveries = held(gateways.razorpay)
    assert "qr_code.credited" in [d.kind for d in deliveries]
    await forward(client, "razorpay", deliveries)
    after = await get_invoice(client, world, invoice["id"])
    assert after["payment_status"] == "paid"


async def test_bad_signatures_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators, session: AsyncSession
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    sent: list[str] = []
    for gateway in GATEWAYS:
        link = await new_link(client, world, invoice, gateway)
        await pay_at_simulator(gateways, gateway, link)
        (first, *_) = held(gateways.of(gateway))
        sent.append(first.event_id)
        tampered = first.body.replace(b"45000", b"45001").replace(b"450.00", b"450.01")
        assert tampered != first.body
        response = await client.post(
            f"/webhooks/{gateway}", content=tampered, headers=first.headers
        )
        assert response.status_code == 400, (gateway, response.text)
        assert response.json()["code"] == "webhook_signature_invalid"
        unsigned = {k: v for k, v in first.headers.items() if "ignature" not in k}
        if gateway != "payu":
            response = await client.post(
                f"/webhooks/{gateway}", content=first.body, headers=unsigned
            )
            assert response.status_code == 400
    assert await count(session, WebhookEvent, WebhookEvent.event_id.in_(sent)) == 0
    assert (await get_invoice(client, world, invoice["id"]))["amount_paid"] == "0.00"


async def test_stripe_signature_older_than_five_minutes_is_refused(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    import hashlib
    import hmac
    import time

    from nidaan.payments.gateways import demo

    body = b'{"id": "evt_old", "type": "payment_intent.succeeded", "data": {"object": {}}}'
    stamp = int(time.time()) - 301
    signature = hmac.new(
        demo.STRIPE_WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    response = await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": f"t={stamp},v1={signature}"},
    )
    assert response.status_code == 400


async def test_signed_but_unreadable_body_is_kept_with_its_error(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    import hashlib
    import hmac

    from nidaan.payments.gateways import demo

    body = b"this is not json"
    signature = hmac.new(demo.RAZORPAY_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = await client.post(
        "/webhooks/razorpay",
        content=body,
        headers={"X-Razorpay-Signature": signature, "X-Razorpay-Event-Id": "evt_garbage"},
    )
    assert response.status_code == 200
    row = await session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == "evt_garbage"))
    assert row is not None
    assert (row.status, row.raw_body) == ("failed", body)
    assert "Not a Razorpay event" in (row.error or "")


async def test_webhook_about_someone_elses_payment_is_ignored(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators, session: AsyncSession
) -> None:
    async with httpx.AsyncClient(
        base_url=gateways.urls["razorpay"],
        auth=("rzp_test_nidaandemo", "nidaan-demo-razorpay-key-secret"),
    ) as http:
        import time

        link = (
            await http.post(
                "/v1/payment_links",
                json={
                    "amount": 1000,
                    "currency": "INR",
                    "expire_by": int(time.time()) + 3600,
                },
            )
        ).json()
        await http.post(f"/_sim/payment_links/{link['id']}/pay", json={})
    deliveries = held(gateways.razorpay)
    responses = await forward(client, "razorpay", deliveries)
    assert {r.json()["status"] for r in responses} == {"ignored"}
    payment_id = gateways.razorpay.links[link["id"]]["payments"][0]["payment_id"]
    assert (
        await count(session, GatewayPayment, GatewayPayment.gateway_payment_id == payment_id) == 0
    )


async def test_cancelling_an_invoice_cancels_its_open_links(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators, session: AsyncSession
) -> None:
    from nidaan.billing.events import InvoiceCancelled
    from nidaan.payments.handlers import cancel_requests_of_cancelled_invoice

    invoice = await new_invoice(client, world, "TSH")
    link = await new_link(client, world, invoice, "razorpay")
    cancelled = await client.post(
        f"/api/v1/invoices/{invoice['id']}/cancel",
        json={"reason": "Wrong test"},
        headers=world.billing,
    )
    assert cancelled.status_code == 200
    (event,) = (
        await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.name == "invoice.cancelled",
                OutboxEvent.organisation_id == world.organisation.id,
            )
        )
    ).all()
    await cancel_requests_of_cancelled_invoice(
        session, InvoiceCancelled.from_payload(event.payload)
    )
    assert gateways.razorpay.links[link["gateway_ref"]]["status"] == "cancelled"
    (request,) = (
        await client.get(
            f"/api/v1/invoices/{invoice['id']}/payment-requests", headers=world.billing
        )
    ).json()["items"]
    assert request["status"] == "cancelled"


async def test_razorpay_return_page_checks_the_callback_signature(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    response = await client.get(
        "/pay/razorpay/return",
        params={
            "razorpay_payment_id": "pay_x",
            "razorpay_payment_link_id": "plink_x",
            "razorpay_payment_link_reference_id": "R",
            "razorpay_payment_link_status": "paid",
            "razorpay_signature": "0" * 64,
        },
    )
    assert response.status_code == 400
    assert "could not be verified" in response.text
