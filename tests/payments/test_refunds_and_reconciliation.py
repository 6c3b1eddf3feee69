"""Refunds (full, partial, over-refund refused, counter and gateway, failures), capture,
verification, reconciliation after missed webhooks, and tenant isolation."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import BillingWorld
from tests.fixtures.objects import bearer_for, create_user
from tests.payments.conftest import (
    Simulators,
    forward,
    get_invoice,
    held,
    new_invoice,
    new_link,
    pay_at_simulator,
)


async def paid_by(
    client: httpx.AsyncClient, world: BillingWorld, sims: Simulators, gateway: str, *codes: str
) -> tuple[dict, dict]:  # type: ignore[type-arg]
    invoice = await new_invoice(client, world, *codes)
    link = await new_link(client, world, invoice, gateway)
    await pay_at_simulator(sims, gateway, link)
    await forward(client, gateway, held(sims.of(gateway)))
    (payment,) = (
        await client.get(f"/api/v1/invoices/{invoice['id']}/payments", headers=world.billing)
    ).json()["items"]
    return invoice, payment


@pytest.mark.parametrize("gateway", ["razorpay", "stripe", "payu"])
async def test_partial_then_full_refund_through_the_gateway(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators, gateway: str
) -> None:
    invoice, payment = await paid_by(client, world, gateways, gateway, "HBA1C")  # 1250
    path = f"/api/v1/payments/{payment['id']}/refunds"
    denied = await client.post(
        path, json={"amount": "100", "reason": "Test not done"}, headers=world.front_desk
    )
    assert denied.status_code == 403
    partial = await client.post(
        path, json={"amount": "250", "reason": "Test not done"}, headers=world.billing
    )
    assert partial.status_code == 201, partial.text
    assert partial.json()["gateway_refund_id"]
    after = await get_invoice(client, world, invoice["id"])
    assert (after["amount_refunded"], after["payment_status"], after["balance_due"]) == (
        "250.00",
        "partially_paid",
        "250.00",
    )
    too_much = await client.post(
        path, json={"amount": "1000.01", "reason": "Too much"}, headers=world.billing
    )
    assert too_much.status_code == 409
    assert too_much.json()["code"] == "over_refund"
    rest = await client.post(path, json={"reason": "Order cancelled"}, headers=world.admin)
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == "1000.00"
    # The gateway confirms by webhook: each refund processed once.
    await forward(client, gateway, held(gateways.of(gateway)))
    refunds = (await client.get(path, headers=world.billing)).json()["items"]
    assert [(r["amount"], r["status"]) for r in refunds] == [
        ("250.00", "processed"),
        ("1000.00", "processed"),
    ]
    after = await get_invoice(client, world, invoice["id"])
    assert (after["amount_refunded"], after["payment_status"]) == ("1250.00", "refunded")
    nothing = await client.post(path, json={"reason": "Again"}, headers=world.admin)
    assert nothing.status_code == 409


async def test_failed_refund_gives_the_money_back_to_the_invoice(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    gateways.razorpay.auto_process_refunds = False
    try:
        invoice, payment = await paid_by(client, world, gateways, "razorpay", "TSH")
        refund = (
            await client.post(
                f"/api/v1/payments/{payment['id']}/refunds",
                json={"reason": "Duplicate test"},
                headers=world.billing,
            )
        ).json()
        assert refund["status"] == "pending"
        assert (await get_invoice(client, world, invoice["id"]))["amount_refunded"] == "450.00"
        async with httpx.AsyncClient(base_url=gateways.urls["razorpay"]) as http:
            await http.post(
                f"/_sim/refunds/{refund['gateway_refund_id']}/settle", json={"outcome": "failed"}
            )
        deliveries = held(gateways.razorpay)
        await forward(client, "razorpay", deliveries + deliveries)
        after = await get_invoice(client, world, invoice["id"])
        assert (after["amount_refunded"], after["payment_status"]) == ("0.00", "paid")
        (stored,) = (
            await client.get(f"/api/v1/payments/{payment['id']}/refunds", headers=world.billing)
        ).json()["items"]
        assert stored["status"] == "failed"
    finally:
        gateways.razorpay.auto_process_refunds = True


async def test_counter_payment_refund_is_immediate_and_bounded(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    receipt = (
        await client.post(
            f"/api/v1/invoices/{invoice['id']}/payments",
            json={
                "tenders": [
                    {"method": "cash", "amount": "300"},
                    {"method": "card", "amount": "150", "reference": "A1"},
                ]
            },
            headers=world.front_desk,
        )
    ).json()
    cash = receipt["payments"][0]
    path = f"/api/v1/payments/{cash['id']}/refunds"
    refund = await client.post(
        path, json={"amount": "100", "reason": "Test not done"}, headers=world.billing
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["status"] == "processed"
    over = await client.post(
        path, json={"amount": "200.01", "reason": "Too much"}, headers=world.billing
    )
    assert over.json()["code"] == "over_refund"
    after = await get_invoice(client, world, invoice["id"])
    assert (after["amount_paid"], after["amount_refunded"], after["balance_due"]) == (
        "450.00",
        "100.00",
        "100.00",
    )
    view = (await client.get(f"/api/v1/payments/{cash['id']}", headers=world.billing)).json()
    assert view["amount_refunded"] == "100.00"


async def test_reconciliation_settles_what_missed_webhooks_left(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoices = {}
    for gateway in ("razorpay", "stripe", "payu"):
        invoice = await new_invoice(client, world, "TSH")
        link = await new_link(client, world, invoice, gateway)
        await pay_at_simulator(gateways, gateway, link)
        held(gateways.of(gateway))  # the webhooks are lost
        invoices[gateway] = invoice
    report = (await client.post("/api/v1/payments/reconciliation", headers=world.billing)).json()
    assert report["payments_applied"] == 3, report
    assert report["errors"] == []
    for invoice in invoices.values():
        assert (await get_invoice(client, world, invoice["id"]))["payment_status"] == "paid"
    # Running again, and the late webhooks, change nothing.
    again = (await client.post("/api/v1/payments/reconciliation", headers=world.billing)).json()
    assert again["payments_applied"] == 0
    for invoice in invoices.values():
        assert (await get_invoice(client, world, invoice["id"]))["amount_paid"] == "450.00"


async def test_authorized_payment_is_captured_then_applied_once(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    link = await new_link(client, world, invoice, "razorpay")
    await pay_at_simulator(gateways, "razorpay", link, capture=False)
    await forward(client, "razorpay", held(gateways.razorpay))
    (payment,) = (
        await client.get(f"/api/v1/invoices/{invoice['id']}/payments", headers=world.billing)
    ).json()["items"]
    assert payment["status"] == "pending"
    report = (await client.get("/api/v1/payments/reconciliation", headers=world.billing)).json()
    assert [i["kind"] for i in report["items"]] == ["authorized_not_captured"]
    captured = await client.post(f"/api/v1/payments/{payment['id']}/capture", headers=world.billing)
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "applied"
    await forward(client, "razorpay", held(gateways.razorpay))  # payment.captured, late
    after = await get_invoice(client, world, invoice["id"])
    assert (after["payment_status"], after["amount_paid"]) == ("paid", "450.00")
    verified = await client.post(f"/api/v1/payments/{payment['id']}/verify", headers=world.billing)
    assert verified.json()["status"] == "applied"


async def test_payments_of_another_organisation_are_not_found(
    client: httpx.AsyncClient,
    world: BillingWorld,
    gateways: Simulators,
    session: AsyncSession,
    other_organisation: Organisation,
) -> None:
    invoice, payment = await paid_by(client, world, gateways, "razorpay", "TSH")
    stranger = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    for method, path, body in (
        ("GET", f"/api/v1/payments/{payment['id']}", None),
        ("POST", f"/api/v1/payments/{payment['id']}/refunds", {"reason": "steal"}),
        ("POST", f"/api/v1/invoices/{invoice['id']}/payment-link", {}),
        ("GET", f"/api/v1/invoices/{invoice['id']}/payments", None),
    ):
        response = await client.request(method, path, json=body, headers=stranger)
        assert response.status_code == 404, (path, response.text)
    listed = (await client.get("/api/v1/payments", headers=stranger)).json()
    assert listed["items"] == []
