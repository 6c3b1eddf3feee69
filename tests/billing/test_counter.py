"""Counter payments (split tender, UTR, idempotency), the sync ``payment`` entity landing on
the same invoice, receipts and invoice PDFs, the counter UPI QR and the report hold."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.billing.counter import counter_service
from nidaan.billing.models import BillingSettings, CounterPayment
from nidaan.events.models import OutboxEvent
from nidaan.reports.release import report_release
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import BillingWorld, create_billing_world
from tests.fixtures.orders import system_principal

D = Decimal


@pytest.fixture
async def world(session: AsyncSession, organisation: Organisation) -> BillingWorld:
    return await create_billing_world(session, organisation)


async def new_invoice(client: httpx.AsyncClient, world: BillingWorld, *codes: str) -> dict:  # type: ignore[type-arg]
    order = await world.order(*codes)
    response = await client.post(
        "/api/v1/invoices", json={"order_id": str(order.id)}, headers=world.front_desk
    )
    assert response.status_code == 201, response.text
    return response.json()


def pay(invoice: dict, *tenders: dict, **extra) -> tuple[str, dict]:  # type: ignore[type-arg, no-untyped-def]
    return f"/api/v1/invoices/{invoice['id']}/payments", {"tenders": list(tenders), **extra}


async def test_split_tender_pays_the_invoice_with_one_receipt(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    invoice = await new_invoice(client, world, "HBA1C", "GLU")  # 1400
    path, body = pay(
        invoice,
        {"method": "cash", "amount": "500"},
        {"method": "upi", "amount": "700", "utr": "412345678901"},
        {"method": "card", "amount": "200", "reference": "AUTH 0042"},
    )
    response = await client.post(path, json=body, headers=world.front_desk)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["amount"] == "1400.00"
    assert receipt["number"].startswith("LAB-RCT/")
    assert [(p["method"], p["amount"]) for p in receipt["payments"]] == [
        ("cash", "500.00"),
        ("upi", "700.00"),
        ("card", "200.00"),
    ]
    assert (receipt["invoice"]["payment_status"], receipt["invoice"]["balance_due"]) == (
        "paid",
        "0.00",
    )
    captured = (
        await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.name == "payment.captured",
                OutboxEvent.organisation_id == world.organisation.id,
            )
        )
    ).all()
    assert [e.payload["amount"] for e in captured] == ["1400.00"]
    assert captured[0].payload["methods"] == ["cash", "upi", "card"]
    paid = await session.scalars(
        select(OutboxEvent).where(
            OutboxEvent.name == "invoice.paid",
            OutboxEvent.organisation_id == world.organisation.id,
        )
    )
    assert len(paid.all()) == 1


async def test_partial_payments_then_overpayment_is_refused(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    invoice = await new_invoice(client, world, "TSH")  # 450
    path, body = pay(invoice, {"method": "cash", "amount": "200"})
    first = (await client.post(path, json=body, headers=world.front_desk)).json()
    assert (first["invoice"]["payment_status"], first["invoice"]["balance_due"]) == (
        "partially_paid",
        "250.00",
    )
    path, body = pay(invoice, {"method": "cash", "amount": "250.01"})
    refused = await client.post(path, json=body, headers=world.front_desk)
    assert refused.status_code == 409
    assert refused.json()["code"] == "overpayment"
    got = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=world.billing)).json()
    assert got["amount_paid"] == "200.00"


async def test_upi_needs_a_unique_twelve_digit_utr(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    path, body = pay(invoice, {"method": "upi", "amount": "100"})
    missing = await client.post(path, json=body, headers=world.front_desk)
    assert missing.status_code == 422
    path, body = pay(invoice, {"method": "upi", "amount": "100", "utr": "123456789012"})
    assert (await client.post(path, json=body, headers=world.front_desk)).status_code == 201
    other = await new_invoice(client, world, "GLU")
    path, body = pay(other, {"method": "upi", "amount": "100", "utr": "123456789012"})
    reused = await client.post(path, json=body, headers=world.front_desk)
    assert reused.status_code == 409
    assert reused.json()["code"] == "utr_already_used"


async def test_receipt_id_and_idempotency_key_replay(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    receipt_id = str(uuid.uuid4())
    path, body = pay(invoice, {"method": "cash", "amount": "100"}, id=receipt_id)
    first = await client.post(path, json=body, headers=world.front_desk)
    again = await client.post(path, json=body, headers=world.front_desk)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == receipt_id
    keyed = {**world.front_desk, "Idempotency-Key": "pay-1"}
    path, body = pay(invoice, {"method": "cash", "amount": "50"})
    one = await client.post(path, json=body, headers=keyed)
    two = await client.post(path, json=body, headers=keyed)
    assert two.headers.get("idempotent-replayed") == "true"
    assert one.json()["id"] == two.json()["id"]
    got = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=world.billing)).json()
    assert got["amount_paid"] == "150.00"


async def test_sync_payment_lands_on_the_rest_invoice(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    caller = system_principal(world.organisation, roles=("front_desk",))
    payment, created = await counter_service.record_payment(
        session, caller, order_id=uuid.UUID(invoice["order_id"]), amount="450", method="upi"
    )
    assert created
    assert (payment.invoice_id, payment.status) == (uuid.UUID(invoice["id"]), "applied")
    got = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=world.billing)).json()
    assert got["payment_status"] == "paid"
    # Money taken offline after it was paid is kept, held for a person, never applied twice.
    extra, _ = await counter_service.record_payment(
        session, caller, order_id=uuid.UUID(invoice["order_id"]), amount="450", method="cash"
    )
    assert extra.status == "held"
    assert "exceeds the balance due" in (extra.review_reason or "")
    got = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=world.billing)).json()
    assert got["amount_paid"] == "450.00"


async def test_sync_payment_without_an_invoice_makes_one(
    world: BillingWorld, session: AsyncSession, client: httpx.AsyncClient
) -> None:
    order = await world.order("GLU")
    caller = system_principal(world.organisation, roles=("front_desk",))
    payment_id = uuid.uuid4()
    payment, _ = await counter_service.record_payment(
        session, caller, order_id=order.id, amount="100", method="cash", payment_id=payment_id
    )
    replay, created = await counter_service.record_payment(
        session, caller, order_id=order.id, amount="100", method="cash", payment_id=payment_id
    )
    assert (replay.id, created) == (payment.id, False)
    listed = (
        await client.get(f"/api/v1/invoices?order_id={order.id}", headers=world.billing)
    ).json()
    (summary,) = listed["items"]
    assert (summary["grand_total"], summary["amount_paid"], summary["payment_status"]) == (
        "150.00",
        "100.00",
        "partially_paid",
    )
    # A REST invoice for the same order is refused: it already has this one.
    again = await client.post(
        "/api/v1/invoices", json={"order_id": str(order.id)}, headers=world.billing
    )
    assert again.json()["code"] == "order_already_invoiced"


async def test_invoice_and_receipt_pdfs(client: httpx.AsyncClient, world: BillingWorld) -> None:
    invoice = await new_invoice(client, world, "CBC", "TSH")
    path, body = pay(invoice, {"method": "cash", "amount": "300"})
    receipt = (await client.post(path, json=body, headers=world.front_desk)).json()
    response = await client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers=world.billing)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    for expected in (
        "Bill of Supply",
        invoice["number"],
        "Asha Kulkarni",
        "Complete blood count",
        "999316",
        "Rupees Eight Hundred Only",
        "500.00",  # balance due
        "Scan with any UPI app",
    ):
        assert expected in text, expected
    response = await client.get(f"/api/v1/receipts/{receipt['id']}/pdf", headers=world.front_desk)
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert receipt["number"] in text
    assert "Rupees Three Hundred Only" in text


async def test_counter_upi_qr_follows_npci_and_is_confirmed_by_utr(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    invoice = await new_invoice(client, world, "TSH")
    url = f"/api/v1/invoices/{invoice['id']}/upi-qr/counter"
    data = (
        await client.get(
            url, headers={**world.headers["phlebotomist"], "Accept": "application/json"}
        )
    ).json()
    number = invoice["number"].replace("/", "%2F")
    assert data["upi_uri"] == (
        f"upi://pay?pa=lab@okaxis&pn=Test%20Diagnostics&tr={number}"
        f"&tn=Invoice%20{number}&am=450.00&cu=INR"
    )
    png = await client.get(url, headers=world.front_desk)
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    path, body = pay(invoice, {"method": "upi", "amount": "450", "utr": "509876543210"})
    assert (await client.post(path, json=body, headers=world.front_desk)).status_code == 201
    nothing_due = await client.get(url, headers=world.front_desk)
    assert nothing_due.status_code == 409


async def test_report_is_held_until_the_invoice_is_paid(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    settings = await session.get(BillingSettings, world.organisation.id)
    settings.hold_report_until_paid = True
    await session.flush()
    invoice = await new_invoice(client, world, "TSH")
    order_id = uuid.UUID(invoice["order_id"])
    assert await report_release.is_held(session, world.organisation.id, order_id)
    (hold,) = await report_release.holds(session, world.organisation.id, order_id)
    assert hold.holder == "billing"
    path, body = pay(invoice, {"method": "cash", "amount": "200"})
    await client.post(path, json=body, headers=world.front_desk)
    assert await report_release.is_held(session, world.organisation.id, order_id)
    path, body = pay(invoice, {"method": "cash", "amount": "250"})
    await client.post(path, json=body, headers=world.front_desk)
    assert not await report_release.is_held(session, world.organisation.id, order_id)


async def test_switching_the_hold_off_releases_held_reports(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    settings = await session.get(BillingSettings, world.organisation.id)
    settings.hold_report_until_paid = True
    await session.flush()
    invoice = await new_invoice(client, world, "TSH")
    order_id = uuid.UUID(invoice["order_id"])
    response = await client.put(
        "/api/v1/billing/settings", json={"hold_report_until_paid": False}, headers=world.admin
    )
    assert response.status_code == 200, response.text
    assert not await report_release.is_held(session, world.organisation.id, order_id)


async def test_counter_payments_are_audited(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    from nidaan.audit.models import AuditLog

    invoice = await new_invoice(client, world, "TSH")
    path, body = pay(invoice, {"method": "cash", "amount": "100"})
    receipt = (await client.post(path, json=body, headers=world.front_desk)).json()
    payment = await session.get(CounterPayment, uuid.UUID(receipt["payments"][0]["id"]))
    assert payment is not None
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(payment.id), AuditLog.action == "payment.recorded"
        )
    )
    assert entry is not None
    assert entry.changes["after"]["amount"] == "100.00"


async def test_branch_upi_payee_for_the_offline_counter_qr(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    """The staff app keeps the branch's payee to make the counter QR with no connection; its
    URI is the one the server makes for the same amount and reference."""
    from nidaan.billing.domain import upi_payment_uri
    from tests.fixtures.objects import create_branch, create_organisation

    answer = await client.get(
        f"/api/v1/billing/branches/{world.lab.id}/upi-payee", headers=world.headers["phlebotomist"]
    )
    assert answer.status_code == 200, answer.text
    payee = answer.json()
    assert (payee["upi_vpa"], payee["upi_payee_name"]) == ("lab@okaxis", "Test Diagnostics")
    invoice = await new_invoice(client, world, "TSH")
    server = (
        await client.get(
            f"/api/v1/invoices/{invoice['id']}/upi-qr/counter",
            headers={**world.front_desk, "Accept": "application/json"},
        )
    ).json()["upi_uri"]
    assert server == upi_payment_uri(
        vpa=payee["upi_vpa"],
        payee_name=payee["upi_payee_name"],
        amount=D("450"),
        reference=invoice["number"],
    )
    # A branch without a UPI address, and another lab's branch: not found.
    bare = await create_branch(session, world.organisation, code="CC9")
    other = await create_branch(session, await create_organisation(session), code="OTH")
    for branch in (bare, other):
        missing = await client.get(
            f"/api/v1/billing/branches/{branch.id}/upi-payee", headers=world.admin
        )
        assert missing.status_code == 404, missing.text
    refused = await client.get(
        f"/api/v1/billing/branches/{world.lab.id}/upi-payee", headers=world.headers["technician"]
    )
    assert refused.status_code == 403
