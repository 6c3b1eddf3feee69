"""E-invoice benchmark: what our side adds to one IRN.

No database. Measured in one run:

- build + validate: the schema-1.1 JSON of a generated bill (--items lines, taxable and
  exempt, intra- or inter-state) built and validated, per second;
- generate through the adapter: --count IRNs through ``NicIrp`` (JSON encoding, AES with the
  SEK, HTTP, decrypting the answer, RS256 verification of the signed QR and invoice, the QR
  checked against the payload) to the IRP simulator on loopback;
- baseline in the same run: the same number of Generate requests posted straight to the
  simulator with httpx, already encrypted (no building, validation or verification).

Printed: rates and the ratio adapter / baseline (the overhead of our checks per IRN).

Run:  .venv/bin/python benchmarks/einvoice.py [--count 300] [--items 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import date
from decimal import Decimal
from typing import Any

import httpx

from nidaan.billing.domain import GstTreatment, LineInput, gstin_check_character, price_bill
from nidaan.einvoice import domain, wire
from nidaan.einvoice.gateways.base import IrpCredentials
from nidaan.einvoice.gateways.nic import NicIrp, forget_sessions
from nidaan.simulators.irp import IrpSimulator
from nidaan.simulators.serve import ServedApp

SELLER = "27AAPFU0939F1ZV"


def buyer_gstin() -> str:
    first14 = "29AAACA1234B1Z"
    return first14 + gstin_check_character(first14)


def document(number: int, items: int, rng: random.Random) -> dict[str, Any]:
    lines = [
        LineInput(
            f"T{i}",
            f"Service {i}",
            Decimal(rng.randint(100, 500_000)) / 100,
            quantity=rng.randint(1, 5),
            sac="996812" if i % 3 == 0 else "999316",
            treatment=GstTreatment.TAXABLE if i % 3 == 0 else GstTreatment.EXEMPT,
            gst_rate=Decimal("18") if i % 3 == 0 else Decimal(0),
        )
        for i in range(items)
    ]
    buyer = buyer_gstin()
    bill = price_bill(lines, supplier_state="27", place_of_supply=buyer[:2])
    doc = domain.Document(
        doc_type="INV",
        number=f"BN/26-27/{number:05d}",
        day=date.today(),
        seller=domain.Party(SELLER, "Bench Diagnostics", "12 FC Road", "Pune", "411005", "27"),
        buyer=domain.Party(buyer, "Bench Hospital", "1 MG Road", "Bengaluru", "560001", "29"),
        place_of_supply=buyer[:2],
        items=tuple(
            domain.Item(
                t.description,
                t.sac,
                t.quantity,
                t.unit_price,
                t.gross_amount,
                t.discount_amount,
                t.taxable_value,
                t.gst_rate,
                t.cgst_amount,
                t.sgst_amount,
                t.igst_amount,
                t.line_total,
            )
            for t in bill.lines
        ),
        round_off=bill.round_off,
        grand_total=bill.grand_total,
    )
    return domain.build(doc)


async def main(count: int, items: int) -> None:
    rng = random.Random(7)
    started = time.perf_counter()
    payloads = []
    for n in range(count):
        payload = document(n + 1, items, rng)
        assert domain.validate(payload) == []
        payloads.append(payload)
    built = time.perf_counter() - started

    simulator = IrpSimulator()
    with ServedApp(simulator.app) as url:
        adapter = NicIrp(
            url, simulator.client_id, simulator.client_secret, simulator.public_key_pem
        )
        creds = IrpCredentials(SELLER, "bench", "bench")
        forget_sessions()
        await adapter.generate(creds, document(0, items, rng))  # log in once, warm up
        started = time.perf_counter()
        for payload in payloads:
            record = await adapter.generate(creds, payload)
            qr = adapter.verify_signed(record.signed_qr_code)
            adapter.verify_signed(record.signed_invoice)
            assert domain.qr_mismatches(qr, payload, record.irn) == []
        through_adapter = time.perf_counter() - started

        login = next(iter(simulator.logins.values()))
        simulator.irns.clear()
        bodies = [
            {"Data": wire.b64(wire.aes_encrypt(login.sek, domain.to_json(p).encode()))}
            for p in payloads
        ]
        headers = {
            "client_id": simulator.client_id,
            "client_secret": simulator.client_secret,
            "Gstin": SELLER,
            "user_name": "bench",
            "AuthToken": login.token,
        }
        async with httpx.AsyncClient(base_url=url) as http:
            started = time.perf_counter()
            for body in bodies:
                response = await http.post("/eicore/v1.03/Invoice", json=body, headers=headers)
                assert response.json()["Status"] == "1"
            baseline = time.perf_counter() - started

    print(f"payloads: {count} invoices of {items} lines")
    print(f"build + validate:         {count / built:8.1f} payloads/s")
    print(f"generate via adapter:     {count / through_adapter:8.1f} IRNs/s")
    print(f"baseline (raw httpx):     {count / baseline:8.1f} IRNs/s")
    print(f"ratio adapter / baseline: {through_adapter / baseline:8.2f}x the time")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--items", type=int, default=20)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.count, arguments.items))
