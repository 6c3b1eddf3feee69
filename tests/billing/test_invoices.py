"""Invoices through the API: pricing from rate lists, discounts and approval, GST, numbering,
cancellation with a credit note, consolidated B2B invoices and credit limits."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.billing.domain import financial_year
from nidaan.billing.models import ClientOrder
from nidaan.billing.service import today_in_india
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import BillingWorld, create_billing_world, gstin
from tests.fixtures.objects import bearer_for, create_user

D = Decimal
_FY = financial_year(today_in_india())
FY = _FY[2:4] + _FY[5:7]  # "2627"


@pytest.fixture
async def world(session: AsyncSession, organisation: Organisation) -> BillingWorld:
    return await create_billing_world(session, organisation)


async def invoice_order(
    client: httpx.AsyncClient, world: BillingWorld, *codes: str, headers=None, **body
) -> httpx.Response:  # type: ignore[no-untyped-def]
    order = await world.order(*codes)
    return await client.post(
        "/api/v1/invoices",
        json={"order_id": str(order.id), **body},
        headers=headers or world.billing,
    )


async def test_invoice_prices_the_order_from_the_catalogue(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    response = await invoice_order(client, world, "CBC", "GLU", "TSH")
    assert response.status_code == 201, response.text
    body = response.json()
    # CBC is one line at the panel price, not its three tests.
    assert [(line["code"], line["unit_price"]) for line in body["lines"]] == [
        ("CBC", "350.00"),
        ("GLU", "150.00"),
        ("TSH", "450.00"),
    ]
    assert {line["sac"] for line in body["lines"]} == {"999316"}
    assert {line["gst_treatment"] for line in body["lines"]} == {"exempt"}
    assert body["document_type"] == "bill_of_supply"
    assert body["number"] == f"LAB/{FY}/00001"
    assert (body["grand_total"], body["balance_due"], body["payment_status"]) == (
        "950.00",
        "950.00",
        "unpaid",
    )
    assert body["seller_state_code"] == "27"
    assert body["buyer_name"] == "Asha Kulkarni"
    entries = await session.scalar(
        select(func.count()).where(
            AuditLog.entity_id == body["id"],
            AuditLog.action.in_(["invoice.created", "invoice.issued"]),
        )
    )
    assert entries == 2


async def test_numbers_run_per_branch_and_one_invoice_per_order(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    first = (await invoice_order(client, world, "GLU")).json()
    second = (await invoice_order(client, world, "TSH")).json()
    assert (first["number"], second["number"]) == (f"LAB/{FY}/00001", f"LAB/{FY}/00002")
    again = await client.post(
        "/api/v1/invoices", json={"order_id": str(first["order_id"])}, headers=world.billing
    )
    assert again.status_code == 409
    assert again.json()["code"] == "order_already_invoiced"
    assert again.json()["invoice_id"] == first["id"]


async def test_rate_lists_default_referrer_and_client(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    made = await client.post(
        "/api/v1/rate-lists",
        json={
            "code": "STD",
            "name": "Standard",
            "kind": "default",
            "items": [{"code": "GLU", "price": "140"}],
        },
        headers=world.admin,
    )
    assert made.status_code == 201, made.text
    referrer = await client.post(
        "/api/v1/rate-lists",
        json={
            "code": "MEHTA",
            "name": "Dr Mehta",
            "kind": "referrer",
            "referrer": "dr r mehta",
            "percent_off": "10",
            "items": [{"code": "TSH", "price": "400"}],
        },
        headers=world.admin,
    )
    assert referrer.status_code == 201, referrer.text
    # The patient's referrer is "Dr. R. Mehta": his list applies; GLU is the default 140 - 10 %.
    body = (await invoice_order(client, world, "GLU", "TSH")).json()
    assert [(line["code"], line["unit_price"]) for line in body["lines"]] == [
        ("GLU", "126.00"),
        ("TSH", "400.00"),
    ]
    assert body["rate_list_id"] == referrer.json()["id"]
    # Another referrer: the default list (GLU 140) and the catalogue (TSH 450).
    other = await world.order("GLU", "TSH", referring_doctor="Dr. S. Rao")
    body = (
        await client.post(
            "/api/v1/invoices", json={"order_id": str(other.id)}, headers=world.billing
        )
    ).json()
    assert [line["unit_price"] for line in body["lines"]] == ["140.00", "450.00"]


async def test_discount_within_the_role_limit_is_issued(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    body = (
        await invoice_order(
            client,
            world,
            "HBA1C",
            "GLU",
            "TSH",
            discount={"kind": "percent", "value": "10", "reason": "Senior citizen"},
            headers=world.front_desk,
        )
    ).json()
    # 1850 - 10 % = 1665.
    assert (body["status"], body["gross_total"], body["discount_total"], body["grand_total"]) == (
        "issued",
        "1850.00",
        "185.00",
        "1665.00",
    )
    assert body["discount_reason"] == "Senior citizen"


async def test_discount_above_the_limit_waits_for_an_admin(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    body = (
        await invoice_order(
            client,
            world,
            "HBA1C",
            discount={"kind": "amount", "value": "250", "reason": "Staff family"},
            headers=world.front_desk,
        )
    ).json()
    assert (body["status"], body["number"]) == ("pending_approval", None)
    pay = await client.post(
        f"/api/v1/invoices/{body['id']}/payments",
        json={"tenders": [{"method": "cash", "amount": "1000"}]},
        headers=world.front_desk,
    )
    assert pay.status_code == 409
    assert pay.json()["code"] == "invoice_not_payable"
    refused = await client.post(
        f"/api/v1/invoices/{body['id']}/discount-decision",
        json={"approve": True},
        headers=world.billing,
    )
    assert refused.status_code == 403
    approved = await client.post(
        f"/api/v1/invoices/{body['id']}/discount-decision",
        json={"approve": True, "note": "ok"},
        headers=world.admin,
    )
    assert approved.status_code == 200, approved.text
    out = approved.json()
    assert (out["status"], out["number"], out["grand_total"]) == (
        "issued",
        f"LAB/{FY}/00001",
        "1000.00",
    )


async def test_rejected_discount_issues_at_full_price(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    body = (
        await invoice_order(
            client,
            world,
            "HBA1C",
            "GLU",
            discount={"kind": "percent", "value": "50", "reason": "Camp"},
            headers=world.billing,
        )
    ).json()
    out = (
        await client.post(
            f"/api/v1/invoices/{body['id']}/discount-decision",
            json={"approve": False, "note": "Not a camp day"},
            headers=world.admin,
        )
    ).json()
    assert (out["status"], out["discount_total"], out["grand_total"]) == (
        "issued",
        "0.00",
        "1400.00",
    )
    assert out["discount_kind"] is None


async def test_taxable_service_gets_cgst_sgst_in_state_and_igst_out_of_state(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    item = await client.post(
        "/api/v1/billing/items",
        json={
            "code": "COURIER",
            "name": "Report courier",
            "price": "118.50",
            "sac": "996812",
            "gst_treatment": "taxable",
            "gst_rate": "18",
        },
        headers=world.billing,
    )
    assert item.status_code == 201, item.text
    body = (await invoice_order(client, world, "GLU", extra_items=[{"code": "COURIER"}])).json()
    courier = body["lines"][1]
    # 118.50 x 9 % = 10.665 -> 10.67 twice; 150 + 118.50 + 21.34 = 289.84 -> 290.
    assert (courier["cgst_amount"], courier["sgst_amount"], courier["igst_amount"]) == (
        "10.67",
        "10.67",
        "0.00",
    )
    assert (body["document_type"], body["supply_type"]) == ("tax_invoice", "intra_state")
    assert (body["tax_total"], body["round_off"], body["grand_total"]) == (
        "21.34",
        "0.16",
        "290.00",
    )
    # Billed to a company registered in Karnataka: IGST 18 % = 21.33.
    body = (
        await invoice_order(
            client,
            world,
            "GLU",
            extra_items=[{"code": "COURIER"}],
            buyer={"name": "Acme Pvt Ltd", "gstin": gstin("29", "AAACA1234B")},
        )
    ).json()
    assert (body["place_of_supply"], body["supply_type"]) == ("29", "inter_state")
    assert body["lines"][1]["igst_amount"] == "21.33"
    assert body["grand_total"] == "290.00"


async def test_home_collection_charge_and_its_waiver(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    body = (await invoice_order(client, world, "GLU", home_collection=True)).json()
    assert body["lines"][-1]["code"] == "HOME-COLLECTION"
    assert body["grand_total"] == "250.00"
    # Waived when the tests come to 2000 or more.
    body = (await invoice_order(client, world, "HBA1C", "LIPID", home_collection=True)).json()
    assert [line["code"] for line in body["lines"]] == ["HBA1C", "LIPID"]


async def test_cancel_unpaid_invoice_issues_a_credit_note(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    body = (await invoice_order(client, world, "GLU", "TSH")).json()
    cancelled = await client.post(
        f"/api/v1/invoices/{body['id']}/cancel",
        json={"reason": "Wrong patient"},
        headers=world.billing,
    )
    assert cancelled.status_code == 200, cancelled.text
    out = cancelled.json()
    assert out["invoice"]["status"] == "cancelled"
    note = out["credit_note"]
    assert (note["number"], note["kind"], note["document_type"]) == (
        f"LAB-C/{FY}/00001",
        "credit_note",
        "credit_note",
    )
    assert note["grand_total"] == "-600.00"
    assert [line["line_total"] for line in note["lines"]] == ["-150.00", "-450.00"]
    # The order can be invoiced again.
    again = await client.post(
        "/api/v1/invoices", json={"order_id": body["order_id"]}, headers=world.billing
    )
    assert again.status_code == 201
    assert again.json()["number"] == f"LAB/{FY}/00002"


async def test_cancel_refused_while_money_is_held(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    body = (await invoice_order(client, world, "GLU")).json()
    await client.post(
        f"/api/v1/invoices/{body['id']}/payments",
        json={"tenders": [{"method": "cash", "amount": "50"}]},
        headers=world.front_desk,
    )
    refused = await client.post(
        f"/api/v1/invoices/{body['id']}/cancel", json={"reason": "Wrong"}, headers=world.billing
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "invoice_has_payments"


async def test_monthly_client_orders_make_one_consolidated_invoice(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    listed = await client.post(
        "/api/v1/rate-lists",
        json={
            "code": "RUBY",
            "name": "Ruby Hall",
            "kind": "client",
            "percent_off": "20",
            "items": [{"code": "CBC", "price": "250"}],
        },
        headers=world.admin,
    )
    made = await client.post(
        "/api/v1/billing-clients",
        json={
            "code": "RUBY",
            "name": "Ruby Hall Clinic",
            "kind": "hospital",
            "gstin": gstin("27", "AABCR1234C"),
            "credit_limit": "1900",
            "billing_cycle": "monthly",
            "payment_terms_days": 30,
            "rate_list_id": listed.json()["id"],
        },
        headers=world.billing,
    )
    assert made.status_code == 201, made.text
    client_id = made.json()["id"]
    for codes in (("CBC", "GLU"), ("CBC",), ("TSH",)):
        order = await world.order(*codes)
        added = await client.post(
            f"/api/v1/billing-clients/{client_id}/orders",
            json={"order_id": str(order.id)},
            headers=world.front_desk,
        )
        assert added.status_code == 201, added.text
    # 250 + 120 + 250 + 360 = 980 on account; HBA1C (1250 - 20 % = 1000) would exceed 1900.
    big = await world.order("HBA1C")
    refused = await client.post(
        f"/api/v1/billing-clients/{client_id}/orders",
        json={"order_id": str(big.id)},
        headers=world.front_desk,
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "credit_limit_exceeded"
    # An order on account is not invoiced on its own.
    on_account = (await session.scalars(select(ClientOrder))).first()
    direct = await client.post(
        "/api/v1/invoices", json={"order_id": str(on_account.order_id)}, headers=world.billing
    )
    assert direct.json()["code"] == "order_on_client_account"

    month = today_in_india().strftime("%Y-%m")
    consolidated = await client.post(
        "/api/v1/invoices/consolidated",
        json={"client_id": client_id, "month": month, "branch_id": str(world.lab.id)},
        headers=world.billing,
    )
    assert consolidated.status_code == 201, consolidated.text
    body = consolidated.json()
    assert [
        (line["code"], line["quantity"], line["unit_price"], line["line_total"])
        for line in body["lines"]
    ] == [
        ("CBC", 2, "250.00", "500.00"),
        ("GLU", 1, "120.00", "120.00"),
        ("TSH", 1, "360.00", "360.00"),
    ]
    assert (body["kind"], body["buyer_name"], body["grand_total"]) == (
        "consolidated",
        "Ruby Hall Clinic",
        "980.00",
    )
    assert body["due_date"] is not None
    assert body["period_start"].endswith("-01")
    again = await client.post(
        "/api/v1/invoices/consolidated",
        json={"client_id": client_id, "month": month, "branch_id": str(world.lab.id)},
        headers=world.billing,
    )
    assert again.json()["code"] == "nothing_to_invoice"
    statement = (
        await client.get(f"/api/v1/billing-clients/{client_id}/statement", headers=world.billing)
    ).json()
    assert (statement["outstanding_invoices"], statement["unbilled_orders"]) == ("980.00", "0.00")
    assert statement["available_credit"] == "920.00"


async def test_invoices_of_another_organisation_are_not_found(
    client: httpx.AsyncClient,
    world: BillingWorld,
    session: AsyncSession,
    other_organisation: Organisation,
) -> None:
    body = (await invoice_order(client, world, "GLU")).json()
    stranger = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    for path in (f"/api/v1/invoices/{body['id']}", f"/api/v1/invoices/{body['id']}/pdf"):
        response = await client.get(path, headers=stranger)
        assert response.status_code == 404, path
    paid = await client.post(
        f"/api/v1/invoices/{body['id']}/payments",
        json={"tenders": [{"method": "cash", "amount": "10"}]},
        headers=stranger,
    )
    assert paid.status_code == 404
    listed = (await client.get("/api/v1/invoices", headers=stranger)).json()
    assert listed["items"] == []


async def test_float_amounts_are_refused(client: httpx.AsyncClient, world: BillingWorld) -> None:
    body = (await invoice_order(client, world, "GLU")).json()
    response = await client.post(
        f"/api/v1/invoices/{body['id']}/payments",
        json={"tenders": [{"method": "cash", "amount": 10.5}]},
        headers=world.front_desk,
    )
    assert response.status_code == 422
