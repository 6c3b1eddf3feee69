"""Debit notes through the API: an extra charge against an issued invoice, with its reason,
GST like the invoice's, its own gap-free series, payable on its own; refusals change
nothing; roles and tenancy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.billing.domain import financial_year
from nidaan.billing.models import Invoice
from nidaan.billing.service import today_in_india
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import BillingWorld, create_billing_world, gstin
from tests.fixtures.objects import bearer_for, create_user

_FY = financial_year(today_in_india())
FY = _FY[2:4] + _FY[5:7]

COURIER = {
    "code": "COURIER",
    "description": "Report courier (missed at billing)",
    "unit_price": "118.50",
    "sac": "996812",
    "gst_treatment": "taxable",
    "gst_rate": "18",
}
ADDED_TEST = {"code": "TSH", "description": "TSH added at the bench", "unit_price": "450.00"}


@pytest.fixture
async def world(session: AsyncSession, organisation: Organisation) -> BillingWorld:
    return await create_billing_world(session, organisation)


async def issued_invoice(
    client: httpx.AsyncClient, world: BillingWorld, **body: Any
) -> dict[str, Any]:
    order = await world.order("GLU")
    response = await client.post(
        "/api/v1/invoices", json={"order_id": str(order.id), **body}, headers=world.billing
    )
    assert response.status_code == 201, response.text
    return response.json()


async def debit(
    client: httpx.AsyncClient, world: BillingWorld, invoice_id: str, lines: list[Any], **kw: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/invoices/{invoice_id}/debit-notes",
        json={"reason": "Charge missed at billing", "lines": lines},
        headers=kw.get("headers", world.billing),
    )


async def count_invoices(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Invoice)) or 0)


async def test_a_debit_note_adds_a_taxed_charge_in_its_own_series(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    invoice = await issued_invoice(client, world)
    response = await debit(client, world, invoice["id"], [COURIER, ADDED_TEST])
    assert response.status_code == 201, response.text
    note = response.json()
    assert (note["number"], note["kind"], note["document_type"]) == (
        f"LAB-D/{FY}/00001",
        "debit_note",
        "debit_note",
    )
    assert note["debit_note_for_id"] == invoice["id"]
    assert note["note_reason"] == "Charge missed at billing"
    assert note["buyer_name"] == invoice["buyer_name"]
    assert note["place_of_supply"] == invoice["place_of_supply"]
    courier, added = note["lines"]
    # Intra-state, 18 %: 118.50 x 9 % = 10.665 -> 10.67 each; the test is exempt.
    assert (courier["cgst_amount"], courier["sgst_amount"], courier["igst_amount"]) == (
        "10.67",
        "10.67",
        "0.00",
    )
    assert (added["gst_treatment"], added["line_total"]) == ("exempt", "450.00")
    assert (note["tax_total"], note["grand_total"]) == ("21.34", "590.00")
    # Payable on its own; the invoice is unchanged.
    assert (note["balance_due"], note["payment_status"]) == ("590.00", "unpaid")
    paid = await client.post(
        f"/api/v1/invoices/{note['id']}/payments",
        json={"tenders": [{"method": "cash", "amount": "590"}]},
        headers=world.front_desk,
    )
    assert paid.status_code in (200, 201), paid.text
    again = (await client.get(f"/api/v1/invoices/{note['id']}", headers=world.billing)).json()
    assert again["payment_status"] == "paid"
    original = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=world.billing)).json()
    assert original["grand_total"] == invoice["grand_total"]
    # The series runs on, apart from invoices and credit notes.
    second = (await debit(client, world, invoice["id"], [ADDED_TEST])).json()
    assert second["number"] == f"LAB-D/{FY}/00002"
    assert (await issued_invoice(client, world))["number"] == f"LAB/{FY}/00002"
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.action == "invoice.debit_note_issued", AuditLog.entity_id == note["id"]
        )
    )
    assert entry is not None
    assert entry.changes["after"]["reason"] == "Charge missed at billing"
    pdf = await client.get(f"/api/v1/invoices/{note['id']}/pdf", headers=world.billing)
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")


async def test_out_of_state_buyer_gets_igst_on_the_debit_note(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    invoice = await issued_invoice(
        client, world, buyer={"name": "Acme Pvt Ltd", "gstin": gstin("29", "AAACA1234B")}
    )
    note = (await debit(client, world, invoice["id"], [COURIER])).json()
    assert (note["place_of_supply"], note["supply_type"]) == ("29", "inter_state")
    assert note["lines"][0]["igst_amount"] == "21.33"
    assert note["buyer_gstin"] == invoice["buyer_gstin"]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({**COURIER, "gst_rate": "7"}, "lines"),  # not a GST rate
        ({**COURIER, "gst_rate": "0"}, "lines"),  # taxable without a rate
        ({**ADDED_TEST, "gst_rate": "18"}, "lines"),  # exempt with a rate
        ({**ADDED_TEST, "unit_price": 450.0}, None),  # float money
        ({**ADDED_TEST, "unit_price": "0"}, None),
        ({**ADDED_TEST, "description": "bell\x07"}, None),  # control character
        ({**ADDED_TEST, "sac": "99A"}, None),
    ],
)
async def test_bad_lines_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    world: BillingWorld,
    session: AsyncSession,
    line: dict[str, Any],
    field: str | None,
) -> None:
    invoice = await issued_invoice(client, world)
    before = await count_invoices(session)
    response = await debit(client, world, invoice["id"], [line])
    assert response.status_code == 422, response.text
    assert await count_invoices(session) == before


async def test_only_issued_invoices_take_a_debit_note(
    client: httpx.AsyncClient, world: BillingWorld, session: AsyncSession
) -> None:
    invoice = await issued_invoice(client, world)
    cancelled = await client.post(
        f"/api/v1/invoices/{invoice['id']}/cancel", json={"reason": "Wrong"}, headers=world.billing
    )
    credit_note = cancelled.json()["credit_note"]
    before = await count_invoices(session)
    refused = await debit(client, world, invoice["id"], [ADDED_TEST])
    assert refused.status_code == 409, refused.text
    on_note = await debit(client, world, credit_note["id"], [ADDED_TEST])
    assert on_note.status_code == 422, on_note.text
    fresh = await issued_invoice(client, world)
    first = (await debit(client, world, fresh["id"], [ADDED_TEST])).json()
    on_debit = await debit(client, world, first["id"], [ADDED_TEST])
    assert on_debit.status_code == 422
    assert await count_invoices(session) == before + 2
    empty = await debit(client, world, fresh["id"], [])
    assert empty.status_code == 422


async def test_roles_and_tenancy(
    client: httpx.AsyncClient,
    world: BillingWorld,
    session: AsyncSession,
    other_organisation: Organisation,
) -> None:
    invoice = await issued_invoice(client, world)
    before = await count_invoices(session)
    for role in ("front_desk", "auditor"):
        if role not in world.headers:
            world.headers[role] = bearer_for(
                await create_user(session, world.organisation, roles=(role,))
            )
        refused = await debit(
            client, world, invoice["id"], [ADDED_TEST], headers=world.headers[role]
        )
        assert refused.status_code == 403, (role, refused.text)
    stranger = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    hidden = await debit(client, world, invoice["id"], [ADDED_TEST], headers=stranger)
    assert hidden.status_code == 404
    assert await count_invoices(session) == before
    allowed = await debit(client, world, invoice["id"], [ADDED_TEST], headers=world.admin)
    assert allowed.status_code == 201


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prices=st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2),
        min_size=1,
        max_size=4,
    ),
    rate=st.sampled_from(["5", "12", "18", "28"]),
)
def test_debit_note_totals_add_up_for_any_lines(prices: list[Decimal], rate: str) -> None:
    """The note is priced by the invoice's rules: lines plus tax plus round-off is the total,
    and intra-state CGST equals SGST on each line."""
    from nidaan.billing.domain import GstTreatment, LineInput, price_bill

    lines = [
        LineInput(
            code="X",
            description="x",
            unit_price=p,
            sac="996812",
            treatment=GstTreatment.TAXABLE,
            gst_rate=Decimal(rate),
            kind="service",
            discountable=False,
        )
        for p in prices
    ]
    bill = price_bill(lines, supplier_state="27", place_of_supply="27")
    assert bill.grand_total == sum(line.line_total for line in bill.lines) + bill.round_off
    assert all(line.cgst_amount == line.sgst_amount for line in bill.lines)
    assert bill.grand_total % 1 == 0


async def test_a_debit_note_is_reversed_by_cancelling_it(
    client: httpx.AsyncClient, world: BillingWorld
) -> None:
    """A charge added by mistake: cancelling the debit note issues a credit note against it,
    from the credit-note series; the invoice is untouched."""
    invoice = await issued_invoice(client, world)
    note = (await debit(client, world, invoice["id"], [ADDED_TEST])).json()
    cancelled = await client.post(
        f"/api/v1/invoices/{note['id']}/cancel",
        json={"reason": "Charged twice"},
        headers=world.billing,
    )
    assert cancelled.status_code == 200, cancelled.text
    credit = cancelled.json()["credit_note"]
    assert credit["number"] == f"LAB-C/{FY}/00001"
    assert credit["credit_note_for_id"] == note["id"]
    assert credit["grand_total"] == "-450.00"
    original = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=world.billing)).json()
    assert original["status"] == "issued"
