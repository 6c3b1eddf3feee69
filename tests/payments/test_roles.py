"""Role matrix of every billing and payments endpoint: each role outside an endpoint's list
gets 403 (and changes nothing), each role inside it is never refused for its role."""

from __future__ import annotations

import uuid

import httpx

from tests.fixtures.billing import BillingWorld
from tests.payments.conftest import Simulators, new_invoice

ALL = {"admin", "billing", "front_desk", "auditor", "technician", "phlebotomist"}
READERS = {"admin", "billing", "front_desk", "auditor"}
MANAGERS = {"admin", "billing"}
CASHIERS = {"admin", "billing", "front_desk"}
REVIEWERS = {"admin", "billing", "auditor"}
COLLECTORS = {"admin", "billing", "front_desk", "phlebotomist"}
ADMIN = {"admin"}

# (method, path, who may, body); {invoice}, {payment}, {receipt}, {branch}, {other} are filled in.
MATRIX: list[tuple[str, str, set[str], dict | None]] = [  # type: ignore[type-arg]
    ("GET", "/api/v1/billing/settings", REVIEWERS, None),
    ("PUT", "/api/v1/billing/settings", ADMIN, {"round_to_rupee": True}),
    ("GET", "/api/v1/billing/branches/{branch}", MANAGERS, None),
    ("PUT", "/api/v1/billing/branches/{branch}", ADMIN, {"upi_payee_name": "Lab"}),
    ("GET", "/api/v1/billing/branches/{branch}/upi-payee", COLLECTORS, None),
    ("GET", "/api/v1/billing/items", READERS, None),
    ("POST", "/api/v1/billing/items", MANAGERS, {"code": "X", "name": "X", "price": "1"}),
    ("GET", "/api/v1/rate-lists", READERS, None),
    ("POST", "/api/v1/rate-lists", MANAGERS, {"name": "X", "kind": "default"}),
    ("GET", "/api/v1/rate-lists/{other}", READERS, None),
    ("PATCH", "/api/v1/rate-lists/{other}", MANAGERS, {"name": "Y"}),
    ("GET", "/api/v1/billing-clients", READERS, None),
    ("POST", "/api/v1/billing-clients", MANAGERS, {"code": "C", "name": "C"}),
    ("GET", "/api/v1/billing-clients/{other}", READERS, None),
    ("PATCH", "/api/v1/billing-clients/{other}", MANAGERS, {"name": "D"}),
    ("POST", "/api/v1/billing-clients/{other}/orders", CASHIERS, {"order_id": "{other}"}),
    ("GET", "/api/v1/billing-clients/{other}/statement", REVIEWERS, None),
    ("POST", "/api/v1/invoices", CASHIERS, {"order_id": "{other}"}),
    ("POST", "/api/v1/invoices/consolidated", MANAGERS, {"client_id": "{other}"}),
    ("GET", "/api/v1/invoices", READERS, None),
    ("GET", "/api/v1/invoices/{invoice}", READERS, None),
    ("GET", "/api/v1/invoices/{invoice}/pdf", READERS, None),
    ("POST", "/api/v1/invoices/{invoice}/discount-decision", ADMIN, {"approve": True}),
    ("POST", "/api/v1/invoices/{invoice}/cancel", MANAGERS, {"reason": "wrong patient"}),
    (
        "POST",
        "/api/v1/invoices/{invoice}/payments",
        CASHIERS,
        {"tenders": [{"method": "cash", "amount": "1"}]},
    ),
    ("GET", "/api/v1/invoices/{invoice}/receipts", READERS, None),
    ("GET", "/api/v1/invoices/{invoice}/upi-qr/counter", COLLECTORS, None),
    ("GET", "/api/v1/receipts/{receipt}", READERS, None),
    ("GET", "/api/v1/receipts/{receipt}/pdf", READERS, None),
    ("POST", "/api/v1/invoices/{invoice}/payment-link", CASHIERS, {}),
    ("POST", "/api/v1/invoices/{invoice}/upi-qr", CASHIERS, None),
    ("GET", "/api/v1/invoices/{invoice}/payment-requests", READERS, None),
    ("GET", "/api/v1/invoices/{invoice}/payments", READERS, None),
    ("GET", "/api/v1/payments/reconciliation", REVIEWERS, None),
    ("POST", "/api/v1/payments/reconciliation", MANAGERS, None),
    ("GET", "/api/v1/payments", REVIEWERS, None),
    ("GET", "/api/v1/payments/{payment}", READERS, None),
    ("POST", "/api/v1/payments/{payment}/refunds", MANAGERS, {"reason": "Test not done"}),
    ("GET", "/api/v1/payments/{payment}/refunds", READERS, None),
    ("POST", "/api/v1/payments/{payment}/verify", MANAGERS, None),
    ("POST", "/api/v1/payments/{payment}/capture", MANAGERS, None),
    ("POST", "/api/v1/payments/{payment}/apply", ADMIN, {"note": "looked at it"}),
]


def fill(value: object, ids: dict[str, str]) -> object:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


async def test_every_endpoint_refuses_the_roles_outside_its_list(
    client: httpx.AsyncClient, world: BillingWorld, gateways: Simulators
) -> None:
    invoice = await new_invoice(client, world, "TSH")  # 450
    paid = await client.post(
        f"/api/v1/invoices/{invoice['id']}/payments",
        json={"tenders": [{"method": "cash", "amount": "100"}]},
        headers=world.billing,
    )
    assert paid.status_code == 201, paid.text
    receipt = paid.json()
    ids = {
        "invoice": invoice["id"],
        "payment": receipt["payments"][0]["id"],
        "receipt": receipt["id"],
        "branch": str(world.lab.id),
        "other": str(uuid.uuid4()),
    }
    before = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=world.admin)).json()
    wrong: list[str] = []
    for method, template, allowed, body in MATRIX:
        path = str(fill(template, ids))
        for role in sorted(ALL - allowed):
            answer = await client.request(
                method, path, json=fill(body, ids), headers=world.headers[role]
            )
            if answer.status_code != 403:
                wrong.append(f"{role} {method} {template}: {answer.status_code}")
        for role in sorted(allowed):
            if method != "GET":
                continue  # reading is enough to show the role is let in
            answer = await client.request(method, path, headers=world.headers[role])
            if answer.status_code == 403:
                wrong.append(f"{role} {method} {template}: refused")
    assert wrong == []
    after = (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=world.admin)).json()
    assert after == before  # nothing a refused caller sent changed the invoice
