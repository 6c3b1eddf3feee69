"""The e-invoice API end to end: our invoice -> schema-1.1 JSON -> the IRP simulator (through
the real adapter, over a socket) -> IRN, signed QR, PDF; idempotency, lost answers, outages,
cancellation, credit notes, eligibility, validation, roles and tenancy."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.billing import domain as billing_domain
from nidaan.billing.render import invoice_html
from nidaan.billing.service import billing_service
from nidaan.einvoice import domain
from nidaan.einvoice.models import EInvoice, IrpExchange
from nidaan.einvoice.service import einvoice_service
from nidaan.kit.time import utcnow
from nidaan.tenancy.models import Organisation
from tests.einvoice.conftest import ACME_GSTIN, EWorld, Irp, create_eworld
from tests.fixtures.billing import LAB_GSTIN
from tests.fixtures.objects import bearer_for, create_user


async def generate(
    client: httpx.AsyncClient, world: EWorld, invoice: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/api/v1/invoices/{invoice['id']}/einvoice", headers=world.headers["billing"]
    )


async def test_b2b_invoice_gets_an_irn_and_its_pdf_carries_the_signed_qr(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp, session: AsyncSession
) -> None:
    invoice = await eworld.invoice(client, "ACME")
    response = await generate(client, eworld, invoice)
    assert response.status_code == 201, response.text
    body = response.json()
    day = domain.parse_doc_date(body["payload"]["DocDtls"]["Dt"])
    assert body["status"] == "generated"
    assert body["doc_type"] == "INV"
    assert body["irn"] == domain.irn_for(LAB_GSTIN, day, "INV", invoice["number"])
    assert body["irn"] in irp.simulator.irns
    assert body["qr_data"]["BuyerGstin"] == ACME_GSTIN
    assert Decimal(str(body["qr_data"]["TotInvVal"])) == Decimal(invoice["grand_total"])
    assert body["qr_data"]["ItemCnt"] == 2
    assert body["qr_png"].startswith("data:image/png;base64,")
    # Karnataka buyer: IGST 18 % on the courier (118.50 -> 21.33), the test exempt.
    items = body["payload"]["ItemList"]
    assert [i["IgstAmt"] for i in items] == [0, 21.33]
    assert body["payload"]["ValDtls"]["TotInvVal"] == 290

    got = await client.get(
        f"/api/v1/invoices/{invoice['id']}/einvoice", headers=eworld.headers["auditor"]
    )
    assert got.status_code == 200
    assert got.json()["irn"] == body["irn"]
    png = await client.get(
        f"/api/v1/invoices/{invoice['id']}/einvoice/qr.png", headers=eworld.headers["billing"]
    )
    assert png.status_code == 200
    assert png.content.startswith(b"\x89PNG")

    principal_user = await create_user(session, eworld.billing.organisation, roles=("billing",))
    del principal_user
    document = await billing_service.get_in(session, eworld.billing.organisation.id, invoice["id"])
    stamp = await einvoice_service.stamp(session, document)
    assert stamp is not None
    assert stamp.irn == body["irn"]
    pdf = await client.get(
        f"/api/v1/invoices/{invoice['id']}/pdf", headers=eworld.headers["billing"]
    )
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")

    exchanges = await client.get(
        f"/api/v1/invoices/{invoice['id']}/einvoice/exchanges", headers=eworld.headers["billing"]
    )
    operations = [x["operation"] for x in exchanges.json()["items"]]
    assert operations == ["auth", "generate"]
    assert "Password" not in str(exchanges.json())
    assert "s3cret" not in str(exchanges.json())
    actions = set(
        await session.scalars(select(AuditLog.action).where(AuditLog.entity_id == str(body["id"])))
    )
    assert actions == {"einvoice.generated"}


async def test_the_pdf_html_shows_irn_ack_and_cancellation(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp, session: AsyncSession
) -> None:
    invoice = await eworld.invoice(client, "RUBY")
    body = (await generate(client, eworld, invoice)).json()
    # Maharashtra buyer: CGST + SGST 9 % each (10.665 -> 10.67).
    courier = body["payload"]["ItemList"][1]
    assert (courier["CgstAmt"], courier["SgstAmt"], courier["IgstAmt"]) == (10.67, 10.67, 0)
    from nidaan.auth.principal import Principal

    caller = Principal(
        kind="user",
        id=eworld.billing.patient.id,
        organisation_id=eworld.billing.organisation.id,
        roles=frozenset({"billing"}),
        label="t",
    )
    html = invoice_html(await billing_service.invoice_document(session, caller, invoice["id"]))
    assert body["irn"] in html
    assert body["ack_no"] in html
    assert "e-invoice QR" in html
    cancel = await client.post(
        f"/api/v1/invoices/{invoice['id']}/einvoice/cancel",
        json={"reason": "2", "remark": "Wrong client billed"},
        headers=eworld.headers["billing"],
    )
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] == "cancelled"
    assert cancel.json()["cancel_reason"] == "2"
    assert irp.simulator.irns[body["irn"]].status == "CNL"
    html = invoice_html(await billing_service.invoice_document(session, caller, invoice["id"]))
    assert "IRN cancelled" in html
    again = await client.post(
        f"/api/v1/invoices/{invoice['id']}/einvoice/cancel",
        json={"reason": "2", "remark": "twice"},
        headers=eworld.headers["billing"],
    )
    assert again.status_code == 200
    assert irp.simulator.calls.count("cancel") == 1
    # A cancelled document keeps its IRN: asking again does not make another.
    regen = await generate(client, eworld, invoice)
    assert regen.status_code == 200
    assert regen.json()["status"] == "cancelled"
    assert len(irp.simulator.irns) == 1


async def test_asking_twice_returns_the_same_irn(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp
) -> None:
    invoice = await eworld.invoice(client)
    first = await generate(client, eworld, invoice)
    second = await generate(client, eworld, invoice)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["irn"] == second.json()["irn"]
    assert irp.simulator.calls.count("generate") == 1
    assert len(irp.simulator.irns) == 1


async def test_a_lost_answer_is_recovered_from_the_duplicate_irn(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp
) -> None:
    invoice = await eworld.invoice(client)
    await irp.control("/_sim/faults", {"lose_next": 1})
    response = await generate(client, eworld, invoice)
    assert response.status_code == 201, response.text
    body = response.json()
    # The IRP made the IRN, its answer was lost (503), our retry got 2150 + DUPIRN, and the
    # existing IRN was fetched and checked rather than a second one made.
    assert body["status"] == "generated"
    assert body["recovered_duplicate"] is True
    assert irp.simulator.calls == ["auth", "generate", "generate", "get_irn"]
    assert list(irp.simulator.irns) == [body["irn"]]


async def test_an_outage_leaves_it_pending_and_the_job_completes_it(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp, session: AsyncSession
) -> None:
    invoice = await eworld.invoice(client)
    await irp.control("/_sim/faults", {"fail_next": 50, "status": 503})
    response = await generate(client, eworld, invoice)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    assert response.json()["irn"] is None
    assert "did not answer" in response.json()["last_error"]
    await irp.control("/_sim/faults", {})
    # Not due yet: the job leaves it alone.
    assert (await einvoice_service.retry_pending(session))["tried"] == 0
    await session.execute(update(EInvoice).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    counts = await einvoice_service.retry_pending(session)
    assert counts == {"tried": 1, "generated": 1, "pending": 0, "rejected": 0}
    got = await client.get(
        f"/api/v1/invoices/{invoice['id']}/einvoice", headers=eworld.headers["billing"]
    )
    assert got.json()["status"] == "generated"
    assert got.json()["attempts"] == 2
    assert len(irp.simulator.irns) == 1


async def test_cancellation_after_24_hours_is_refused_with_a_reason(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp, session: AsyncSession
) -> None:
    invoice = await eworld.invoice(client)
    await generate(client, eworld, invoice)
    await session.execute(update(EInvoice).values(ack_at=utcnow() - timedelta(hours=25)))
    response = await client.post(
        f"/api/v1/invoices/{invoice['id']}/einvoice/cancel",
        json={"reason": "3", "remark": "Order cancelled"},
        headers=eworld.headers["billing"],
    )
    assert response.status_code == 409
    assert response.json()["code"] == "einvoice_cancel_window_closed"
    assert "within 24 hours" in response.json()["detail"]
    assert "cancel" not in irp.simulator.calls  # refused before asking the IRP


async def test_the_irps_own_24_hour_refusal_is_reported_the_same_way(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp
) -> None:
    invoice = await eworld.invoice(client)
    await generate(client, eworld, invoice)
    await irp.control("/_sim/clock", {"advance_hours": 30})  # our clock says < 24 h
    response = await client.post(
        f"/api/v1/invoices/{invoice['id']}/einvoice/cancel",
        json={"reason": "1", "remark": "Duplicate"},
        headers=eworld.headers["billing"],
    )
    assert response.status_code == 409
    assert response.json()["code"] == "einvoice_cancel_window_closed"
    got = await client.get(
        f"/api/v1/invoices/{invoice['id']}/einvoice", headers=eworld.headers["billing"]
    )
    assert got.json()["status"] == "generated"


async def test_a_credit_note_is_reported_as_crn_against_its_invoice(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp
) -> None:
    invoice = await eworld.invoice(client)
    assert (await generate(client, eworld, invoice)).status_code == 201
    cancelled = await client.post(
        f"/api/v1/invoices/{invoice['id']}/cancel",
        json={"reason": "Billed to the wrong client"},
        headers=eworld.headers["billing"],
    )
    assert cancelled.status_code == 200, cancelled.text
    note_id = cancelled.json()["credit_note"]["id"]
    response = await client.post(
        f"/api/v1/invoices/{note_id}/einvoice", headers=eworld.headers["billing"]
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["doc_type"] == "CRN"
    assert body["status"] == "generated"
    assert body["payload"]["RefDtls"]["PrecDocDtls"][0]["InvNo"] == invoice["number"]
    assert body["payload"]["ValDtls"]["TotInvVal"] == 290  # positive on the credit note
    assert len(irp.simulator.irns) == 2


async def test_a_debit_note_is_reported_as_dbn_against_its_invoice(
    client: httpx.AsyncClient,
    eworld: EWorld,
    irp: Irp,
    session: AsyncSession,
    other_organisation: Organisation,
) -> None:
    """An extra charge after the IRN: billing's debit note goes to the IRP (through the real
    adapter) as DBN with the invoice as preceding document; an exempt-only one is not
    reported, and another organisation cannot report ours."""
    invoice = await eworld.invoice(client)
    assert (await generate(client, eworld, invoice)).status_code == 201
    created = await client.post(
        f"/api/v1/invoices/{invoice['id']}/debit-notes",
        json={
            "reason": "Second courier to the ward",
            "lines": [
                {
                    "code": "COURIER",
                    "description": "Report courier",
                    "unit_price": "118.50",
                    "sac": "996812",
                    "gst_treatment": "taxable",
                    "gst_rate": "18",
                }
            ],
        },
        headers=eworld.headers["billing"],
    )
    assert created.status_code == 201, created.text
    note = created.json()
    assert note["number"].startswith(billing_domain.series_of("LAB", "debit-note") + "/")
    stranger = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    hidden = await client.post(f"/api/v1/invoices/{note['id']}/einvoice", headers=stranger)
    assert hidden.status_code == 404
    response = await generate(client, eworld, note)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["doc_type"] == "DBN"
    assert body["status"] == "generated"
    assert (body["payload"]["DocDtls"]["Typ"], body["payload"]["DocDtls"]["No"]) == (
        "DBN",
        note["number"],
    )
    assert body["payload"]["RefDtls"]["PrecDocDtls"][0]["InvNo"] == invoice["number"]
    assert body["payload"]["ValDtls"]["TotInvVal"] == float(note["grand_total"])
    day = domain.parse_doc_date(body["payload"]["DocDtls"]["Dt"])
    assert body["irn"] == domain.irn_for(LAB_GSTIN, day, "DBN", note["number"])
    assert body["irn"] in irp.simulator.irns
    assert len(irp.simulator.irns) == 2
    # Asking again returns the same IRN; nothing more is sent.
    calls = len(irp.simulator.calls)
    assert (await generate(client, eworld, note)).json()["irn"] == body["irn"]
    assert len(irp.simulator.calls) == calls
    # A debit note of exempt lines only needs no IRN.
    exempt = await client.post(
        f"/api/v1/invoices/{invoice['id']}/debit-notes",
        json={"reason": "Test added", "lines": [{"description": "TSH", "unit_price": "450"}]},
        headers=eworld.headers["billing"],
    )
    refused = await generate(client, eworld, exempt.json())
    assert refused.status_code == 409
    assert refused.json()["code"] == "einvoice_not_applicable"


async def test_documents_that_need_no_irn_are_refused_with_the_reason(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp
) -> None:
    b2c = await eworld.invoice(client, None)
    exempt_only = await eworld.invoice(client, "ACME", extras=())
    for invoice, words in ((b2c, "B2C"), (exempt_only, "exempt or nil-rated")):
        response = await generate(client, eworld, invoice)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "einvoice_not_applicable"
        assert words in response.json()["detail"]
    assert irp.simulator.calls == []


async def test_a_broken_schema_rule_is_named_and_nothing_is_sent(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp, session: AsyncSession
) -> None:
    invoice = await eworld.invoice(client, "BADPIN")  # a Delhi PIN for a Karnataka buyer
    response = await generate(client, eworld, invoice)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "einvoice_invalid"
    assert {"field": "BuyerDtls.Pin", "rule": "pin_state"} in [
        {"field": v["field"], "rule": v["rule"]} for v in problem["violations"]
    ]
    assert irp.simulator.calls == []
    assert await session.scalar(select(func.count()).select_from(EInvoice)) == 0


async def test_disabled_organisation_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, other_organisation: Organisation, irp: Irp
) -> None:
    world = await create_eworld(session, other_organisation, client, enabled=False)
    invoice = await world.invoice(client)
    response = await generate(client, world, invoice)
    assert response.status_code == 409
    assert "not enabled" in response.json()["detail"]


async def test_roles_and_tenancy(
    client: httpx.AsyncClient,
    eworld: EWorld,
    irp: Irp,
    session: AsyncSession,
    other_organisation: Organisation,
) -> None:
    invoice = await eworld.invoice(client)
    url = f"/api/v1/invoices/{invoice['id']}/einvoice"
    for role in ("front_desk", "technician", "auditor", "phlebotomist"):
        response = await client.post(url, headers=eworld.headers[role])
        assert response.status_code == 403, role
    for role in ("front_desk", "technician"):
        assert (await client.get(url, headers=eworld.headers[role])).status_code == 403
    cancel = await client.post(
        f"{url}/cancel", json={"reason": "1", "remark": "x"}, headers=eworld.headers["auditor"]
    )
    assert cancel.status_code == 403
    assert (
        await client.put("/api/v1/einvoice/settings", json={}, headers=eworld.headers["billing"])
    ).status_code == 403
    assert (await generate(client, eworld, invoice)).status_code == 201
    stranger = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    for method, path in (("post", url), ("get", url), ("get", f"{url}/qr.png")):
        response = await client.request(method.upper(), path, headers=stranger)
        assert response.status_code == 404, (method, path)
    response = await client.post(
        f"{url}/cancel", json={"reason": "1", "remark": "x"}, headers=stranger
    )
    assert response.status_code == 404
    assert len(irp.simulator.irns) == 1
    assert await session.scalar(select(func.count()).select_from(IrpExchange)) == 2


async def test_settings_validate_the_gstin_with_a_sandbox_switch(
    client: httpx.AsyncClient, eworld: EWorld, session: AsyncSession
) -> None:
    admin = eworld.headers["admin"]
    bad = LAB_GSTIN[:14] + ("A" if LAB_GSTIN[14] != "A" else "B")
    response = await client.put("/api/v1/einvoice/settings", json={"gstin": bad}, headers=admin)
    assert response.status_code == 422
    assert "check character" in response.json()["detail"]
    nic_test = "02AMBPG7773M002"  # NIC's sandbox GSTIN fails the check digit
    response = await client.put(
        "/api/v1/einvoice/settings", json={"gstin": nic_test}, headers=admin
    )
    assert response.status_code == 422
    response = await client.put(
        "/api/v1/einvoice/settings",
        json={"gstin": nic_test, "sandbox": True, "pincode": "171001", "irp_password": "new-pass"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["gstin"] == nic_test
    assert body["state_code"] == "02"
    assert body["sandbox"] is True
    assert body["password_set"] is True
    assert "new-pass" not in response.text
    entry = await session.scalar(
        select(AuditLog).where(AuditLog.action == "einvoice.settings_updated")
    )
    assert entry is not None
    assert "new-pass" not in str(entry.changes)
    # Enabling without credentials names what is missing.
    response = await client.put(
        "/api/v1/einvoice/settings",
        json={"sandbox": False, "gstin": LAB_GSTIN, "pincode": "411005"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    got = await client.get("/api/v1/einvoice/settings", headers=eworld.headers["auditor"])
    assert got.json()["irp_username"] == "lab_api_user"
    assert "password" not in got.json().get("irp_password", "")


@pytest.mark.parametrize("branch_code", ["CC1", "LAB", "COLLECTIONCTR16X", "0042"])
async def test_credit_notes_of_any_branch_code_fit_the_irps_document_number(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp, branch_code: str
) -> None:
    """Once "<branch>-CN/yy-yy/nnnn" (17 characters for CC1) was refused by DocDtls.No; the
    series now always fits, whatever code (up to the 16 characters allowed) the branch has."""
    eworld.billing.lab.code = branch_code
    invoice = await eworld.invoice(client)
    assert (await generate(client, eworld, invoice)).status_code == 201
    cancelled = await client.post(
        f"/api/v1/invoices/{invoice['id']}/cancel",
        json={"reason": "Billed to the wrong client"},
        headers=eworld.headers["billing"],
    )
    note = cancelled.json()["credit_note"]
    assert len(note["number"]) <= 16
    assert len(invoice["number"]) <= 16
    assert note["number"].startswith(billing_domain.series_of(branch_code, "credit-note") + "/")
    response = await client.post(
        f"/api/v1/invoices/{note['id']}/einvoice", headers=eworld.headers["billing"]
    )
    assert response.status_code == 201, response.text
    assert response.json()["doc_type"] == "CRN"
    assert response.json()["payload"]["DocDtls"]["No"] == note["number"]
    assert irp.simulator.calls.count("generate") == 2


async def test_sandbox_reports_under_nics_test_gstin(
    client: httpx.AsyncClient, eworld: EWorld, irp: Irp
) -> None:
    nic_test = "02AMBPG7773M002"  # fails the check digit; NIC's sandbox accepts only such
    irp.simulator.users = {nic_test: ("lab_api_user", "s3cret-irp-password")}
    response = await client.put(
        "/api/v1/einvoice/settings",
        json={"gstin": nic_test, "sandbox": True, "pincode": "171001", "location": "Shimla"},
        headers=eworld.headers["admin"],
    )
    assert response.status_code == 200, response.text
    invoice = await eworld.invoice(client, "ACME")
    generated = await generate(client, eworld, invoice)
    assert generated.status_code == 201, generated.text
    body = generated.json()
    day = domain.parse_doc_date(body["payload"]["DocDtls"]["Dt"])
    assert body["payload"]["SellerDtls"]["Gstin"] == nic_test
    assert body["irn"] == domain.irn_for(nic_test, day, "INV", invoice["number"])
