"""Billing meets notifications, end to end: the lab holds reports until the invoice is paid.

A patient's order is invoiced; a counter payment (split tender) covers part of it and the
patient gets a payment confirmation; the results are verified and the report is rendered
but, with money still due, not sent. The rest is paid through a gateway link: the payer pays
in the simulator, its signed webhook (delivered twice) reaches our app on a socket, the
invoice turns paid, ``payment.captured`` brings a second confirmation, the hold lifts,
``report.released`` follows and the report goes out. Every step runs through the real job
worker (``run_pending_jobs``) against PostgreSQL, the WhatsApp simulator receiving the
messages.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from nidaan.billing.models import BillingSettings, BranchBillingSettings
from nidaan.config import Settings
from nidaan.events.models import OutboxEvent
from nidaan.kit.jobs import run_pending_jobs
from nidaan.patients.models import Patient
from nidaan.reports.models import Report
from nidaan.reports.release import report_release
from tests.fixtures.billing import LAB_GSTIN
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.objects import bearer_for, create_user
from tests.fixtures.results import enter_and_verify, place_order
from tests.notifications.conftest import Providers
from tests.notifications.world import make_world, notifications_of
from tests.payments.conftest import (  # noqa: F401 - fixtures used by name
    Simulators,
    forward,
    gateways,
    held,
    pay_at_simulator,
    simulators,
)

pytestmark = pytest.mark.usefixtures("job_app_open")


def confirmations(rows: list[Any]) -> list[Any]:
    return [r for r in rows if r.template == "payment_confirmation"]


def report_messages(rows: list[Any]) -> list[Any]:
    return [r for r in rows if r.template == "test_result_ready" and r.kind == "template"]


@pytest.mark.parametrize("gateway", ["razorpay", "stripe", "payu"])
async def test_counter_and_gateway_payments_confirm_and_release_the_held_report(
    gateways: Simulators,  # noqa: F811 - before providers: the app reads patched settings
    providers: Providers,
    settings: Settings,
    committing_session: Any,
    gateway: str,
) -> None:
    world = await make_world(committing_session, verify=False)
    async with committing_session() as session:
        organisation_id = world.organisation_id
        session.add(
            BillingSettings(
                organisation_id=organisation_id,
                legal_name="Sanjeevani Diagnostics Pvt Ltd",
                gstin=LAB_GSTIN,
                state_code="27",
                hold_report_until_paid=True,
                enabled_gateways=[gateway],
                default_gateway=gateway,
                round_to_rupee=True,
            )
        )
        session.add(
            BranchBillingSettings(
                branch_id=world.lab.branch.id,
                organisation_id=organisation_id,
                upi_vpa="sanjeevani@okaxis",
                upi_payee_name="Sanjeevani Diagnostics",
            )
        )
        billing = await create_user(session, world.lab.organisation, roles=("billing",))
        hb = await create_catalog_test(
            session,
            world.lab.organisation,
            code="HB",
            name="Haemoglobin",
            price=Decimal("250"),
            ranges=[{"low": 12, "high": 15}],
        )
        glu = await create_catalog_test(
            session,
            world.lab.organisation,
            code="GLU",
            name="Glucose, fasting",
            price=Decimal("150"),
        )
        patient = await session.get(Patient, world.patient_id)
        placed = await place_order(session, world.lab, patient, [hb, glu])
        order_id = placed.order.id
    front = world.headers("front")
    cashier = bearer_for(billing)

    async with httpx.AsyncClient(base_url=providers.app_url, timeout=30) as app:
        created = await app.post(
            "/api/v1/invoices", json={"order_id": str(order_id)}, headers=front
        )
        assert created.status_code == 201, created.text
        invoice = created.json()
        assert (invoice["grand_total"], invoice["balance_due"]) == ("400.00", "400.00")

        # 1. Counter: cash and UPI in one receipt (split tender), part of the bill.
        counter = await app.post(
            f"/api/v1/invoices/{invoice['id']}/payments",
            json={
                "tenders": [
                    {"method": "cash", "amount": "100"},
                    {"method": "upi", "amount": "50", "utr": "412345678901"},
                ]
            },
            headers=cashier,
        )
        assert counter.status_code == 201, counter.text
        assert counter.json()["amount"] == "150.00"
        await run_pending_jobs(settings)
        rows = await notifications_of(committing_session, world)
        [first] = confirmations(rows)
        assert json.loads(first.parameters)[0] == "₹150.00"
        assert first.subject_id == uuid.UUID(counter.json()["id"])

        # 2. Results verified: the report is rendered but held (₹250 still due).
        async with committing_session() as session:
            await enter_and_verify(session, world.lab, placed["HB"], "13.1")
            await enter_and_verify(session, world.lab, placed["GLU"], "92")
        await run_pending_jobs(settings)
        await run_pending_jobs(settings)
        async with committing_session() as session:
            report = await session.scalar(select(Report).where(Report.order_id == order_id))
            assert report is not None, "the report is produced while held"
            assert await report_release.is_held(session, organisation_id, order_id)
            released = await session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.organisation_id == organisation_id,
                    OutboxEvent.name == "report.released",
                )
            )
            assert released.all() == []
        rows = await notifications_of(committing_session, world)
        assert report_messages(rows) == []
        assert not [r for r in providers.whatsapp_requests(world.mobile) if r["type"] == "document"]

        # 3. The rest through the gateway: link, payment in the simulator, signed webhook.
        linked = await app.post(
            f"/api/v1/invoices/{invoice['id']}/payment-link", json={}, headers=cashier
        )
        assert linked.status_code == 201, linked.text
        link = linked.json()
        assert (link["gateway"], link["amount"]) == (gateway, "250.00")
        await pay_at_simulator(gateways, gateway, link)
        deliveries = held(gateways.of(gateway))
        assert deliveries
        answers = await forward(app, gateway, deliveries + deliveries)  # every one twice
        assert {r.status_code for r in answers} == {200}
        await run_pending_jobs(settings)
        await run_pending_jobs(settings)
        paid = (await app.get(f"/api/v1/invoices/{invoice['id']}", headers=cashier)).json()
        assert (paid["payment_status"], paid["amount_paid"], paid["balance_due"]) == (
            "paid",
            "400.00",
            "0.00",
        )

    async with committing_session() as session:
        assert not await report_release.is_held(session, organisation_id, order_id)
        captured = await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.organisation_id == organisation_id,
                OutboxEvent.name == "payment.captured",
            )
        )
        sources = sorted(e.payload["source"] for e in captured)
        assert sources == sorted(["counter", gateway])
    rows = await notifications_of(committing_session, world)
    first_again, second = confirmations(rows)
    assert first_again.id == first.id
    assert json.loads(second.parameters)[0] == "₹250.00"
    [delivered] = report_messages(rows)  # once, although the webhook came twice
    assert delivered.subject_id == report.id
    sent = [
        r["template"]["name"]
        for r in providers.whatsapp_requests(world.mobile)
        if r["type"] == "template"
    ]
    assert sorted(sent) == ["payment_confirmation", "payment_confirmation", "test_result_ready"]
