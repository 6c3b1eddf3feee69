"""The NIC adapter against the IRP simulator over a real socket: authentication with an
RSA-encrypted AppKey and a SEK, encrypted Generate/Get/Cancel IRN, signed JWTs, token reuse and
refresh, retries, duplicate IRN and the cancellation rules."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import jwt
import pytest

from nidaan.billing.domain import GstTreatment, LineInput, price_bill
from nidaan.einvoice import domain
from nidaan.einvoice.gateways.base import (
    IrpAuthFailed,
    IrpCredentials,
    IrpDuplicate,
    IrpRejected,
    IrpUnavailable,
)
from nidaan.einvoice.gateways.nic import NicIrp
from tests.einvoice.conftest import ACME_GSTIN, IRP_PASSWORD, IRP_USER, Irp
from tests.fixtures.billing import LAB_GSTIN

CREDS = IrpCredentials(LAB_GSTIN, IRP_USER, IRP_PASSWORD)


def payload(number: str = "LAB/26-27/0001", day: date | None = None) -> dict[str, Any]:
    bill = price_bill(
        [
            LineInput("GLU", "Glucose", Decimal("150")),
            LineInput(
                "COURIER",
                "Courier",
                Decimal("118.50"),
                sac="996812",
                treatment=GstTreatment.TAXABLE,
                gst_rate=Decimal("18"),
            ),
        ],
        supplier_state="27",
        place_of_supply="29",
    )
    items = tuple(
        domain.Item(
            line.description,
            line.sac,
            line.quantity,
            line.unit_price,
            line.gross_amount,
            line.discount_amount,
            line.taxable_value,
            line.gst_rate,
            line.cgst_amount,
            line.sgst_amount,
            line.igst_amount,
            line.line_total,
        )
        for line in bill.lines
    )
    document = domain.Document(
        doc_type="INV",
        number=number,
        day=day or date.today(),
        seller=domain.Party(LAB_GSTIN, "Test Diagnostics", "12 FC Road", "Pune", "411005", "27"),
        buyer=domain.Party(ACME_GSTIN, "Acme Software", "80 ORR", "Bengaluru", "560103", "29"),
        place_of_supply="29",
        items=items,
        round_off=bill.round_off,
        grand_total=bill.grand_total,
    )
    built = domain.build(document)
    assert domain.validate(built) == []
    return built


async def test_generate_get_and_cancel_speak_the_wire_format(irp: Irp) -> None:
    sent = payload()
    record = await irp.adapter.generate(CREDS, sent)
    day = domain.parse_doc_date(sent["DocDtls"]["Dt"])
    assert record.irn == domain.irn_for(LAB_GSTIN, day, "INV", "LAB/26-27/0001")
    assert record.status == "ACT"
    assert len(record.ack_no) == 15
    qr = irp.adapter.verify_signed(record.signed_qr_code)
    assert domain.qr_mismatches(qr, sent, record.irn) == []
    assert qr["MainHsnCode"] == "999316"  # the 150 test outweighs the 118.50 courier
    invoice = irp.adapter.verify_signed(record.signed_invoice)
    assert invoice["Irn"] == record.irn
    assert invoice["ValDtls"]["TotInvVal"] == Decimal("290")
    # The simulator received exactly what we built (decrypted with the session key).
    assert irp.simulator.irns[record.irn].payload["ItemList"][1]["IgstAmt"] == Decimal("21.33")

    again = await irp.adapter.get_by_irn(CREDS, record.irn)
    by_doc = await irp.adapter.get_by_document(
        CREDS, "INV", "LAB/26-27/0001", sent["DocDtls"]["Dt"]
    )
    assert again.irn == by_doc.irn == record.irn
    assert again.ack_no == record.ack_no

    cancelled = await irp.adapter.cancel(CREDS, record.irn, "2", "Data entry mistake")
    assert cancelled.irn == record.irn
    with pytest.raises(IrpRejected) as twice:
        await irp.adapter.cancel(CREDS, record.irn, "2", "again")
    assert twice.value.codes == ["9999"]
    assert (await irp.adapter.get_by_irn(CREDS, record.irn)).status == "CNL"
    # One login served every call (the token is cached until its expiry).
    assert irp.simulator.calls.count("auth") == 1


async def test_a_forged_signature_does_not_verify(irp: Irp) -> None:
    record = await irp.adapter.generate(CREDS, payload())
    other = NicIrp(irp.url, "x", "y", irp.simulator.public_key_pem)
    forged = jwt.encode({"data": "{}"}, domain_key := _other_key(), algorithm="RS256")
    assert domain_key is not None
    with pytest.raises(jwt.InvalidSignatureError):
        other.verify_signed(forged)
    assert other.verify_signed(record.signed_qr_code)["Irn"] == record.irn


def _other_key() -> Any:
    from nidaan.einvoice import wire

    return wire.new_key_pair()


async def test_duplicate_irn_names_the_existing_one(irp: Irp) -> None:
    first = await irp.adapter.generate(CREDS, payload())
    with pytest.raises(IrpDuplicate) as duplicate:
        await irp.adapter.generate(CREDS, payload())
    assert duplicate.value.existing_irn == first.irn
    assert len(irp.simulator.irns) == 1


async def test_expired_token_is_refreshed_once(irp: Irp) -> None:
    await irp.adapter.generate(CREDS, payload("LAB/26-27/0001"))
    await irp.control("/_sim/expire-tokens")
    record = await irp.adapter.generate(CREDS, payload("LAB/26-27/0002"))
    assert record.irn in irp.simulator.irns
    # The cached token was refused (1005), a new login was made, the call repeated once.
    assert irp.simulator.calls == ["auth", "generate", "generate", "auth", "generate"]


async def test_wrong_password_is_an_auth_failure(irp: Irp) -> None:
    with pytest.raises(IrpAuthFailed) as failed:
        await irp.adapter.generate(IrpCredentials(LAB_GSTIN, IRP_USER, "wrong"), payload())
    assert failed.value.codes == ["1006"]
    assert irp.simulator.irns == {}


async def test_outages_are_retried_then_reported(irp: Irp) -> None:
    await irp.control("/_sim/faults", {"fail_next": 2, "status": 503})
    record = await irp.adapter.generate(CREDS, payload())  # third attempt succeeds
    assert record.irn in irp.simulator.irns
    await irp.control("/_sim/faults", {"fail_next": 3, "status": 429})
    with pytest.raises(IrpUnavailable):
        await irp.adapter.generate(CREDS, payload("LAB/26-27/0002"))
    assert len(irp.simulator.irns) == 1


async def test_cancellation_closes_after_24_hours(irp: Irp) -> None:
    record = await irp.adapter.generate(CREDS, payload())
    await irp.control("/_sim/clock", {"advance_hours": 24.1})
    with pytest.raises(IrpRejected) as late:
        await irp.adapter.cancel(CREDS, record.irn, "1", "Duplicate")
    assert late.value.codes == ["2270"]
    with pytest.raises(IrpRejected) as bad_reason:
        await irp.adapter.cancel(CREDS, record.irn, "7", "no such reason")
    assert bad_reason.value.codes == ["2172"]
