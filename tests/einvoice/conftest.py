"""E-invoice tests: the IRP simulator on loopback (uvicorn, a real socket) for the whole
session, our NIC adapter pointed at it, and a lab with B2B clients (Maharashtra and
Karnataka) and a taxable service item, e-invoicing enabled."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.einvoice.gateways import registry
from nidaan.einvoice.gateways.nic import NicIrp, forget_sessions
from nidaan.einvoice.models import EInvoiceSettings
from nidaan.simulators.irp import Faults, IrpSimulator
from nidaan.simulators.serve import ServedApp
from nidaan.tenancy.models import Organisation
from tests.fixtures.billing import LAB_GSTIN, BillingWorld, create_billing_world, gstin

IRP_USER = "lab_api_user"
IRP_PASSWORD = "s3cret-irp-password"
ACME_GSTIN = gstin("29", "AAACA1234B")  # Karnataka: IGST
RUBY_GSTIN = gstin("27", "AABCR1234C")  # Maharashtra: CGST + SGST


@dataclass
class Irp:
    simulator: IrpSimulator
    url: str
    adapter: NicIrp

    async def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.post(path, json=body or {})
            response.raise_for_status()
            return response.json()


@pytest.fixture(scope="session")
def irp_server() -> Iterator[tuple[IrpSimulator, str]]:
    simulator = IrpSimulator(users={LAB_GSTIN: (IRP_USER, IRP_PASSWORD)})
    served = ServedApp(simulator.app)
    served.start()
    yield simulator, served.url
    served.stop()


@pytest.fixture
def irp(irp_server: tuple[IrpSimulator, str]) -> Iterator[Irp]:
    simulator, url = irp_server
    simulator.reset()
    simulator.irns.clear()
    simulator.users = {LAB_GSTIN: (IRP_USER, IRP_PASSWORD)}
    forget_sessions()
    adapter = NicIrp(
        url,
        simulator.client_id,
        simulator.client_secret,
        simulator.public_key_pem,
        attempts=3,
        backoff_seconds=0.01,
    )
    previous = registry.set_irp(adapter)
    yield Irp(simulator, url, adapter)
    registry.set_irp(previous)
    simulator.faults = Faults()


@dataclass
class EWorld:
    billing: BillingWorld
    clients: dict[str, str]

    @property
    def headers(self) -> dict[str, dict[str, str]]:
        return self.billing.headers

    async def invoice(
        self,
        client: httpx.AsyncClient,
        client_code: str | None = "ACME",
        *,
        tests: tuple[str, ...] = ("GLU",),
        extras: tuple[tuple[str, int], ...] = (("COURIER", 1),),
    ) -> dict[str, Any]:
        order = await self.billing.order(*tests)
        body: dict[str, Any] = {
            "order_id": str(order.id),
            "extra_items": [{"code": c, "quantity": q} for c, q in extras],
        }
        if client_code is not None:
            body["client_id"] = self.clients[client_code]
        response = await client.post("/api/v1/invoices", json=body, headers=self.billing.billing)
        assert response.status_code == 201, response.text
        return dict(response.json())


async def create_eworld(
    session: AsyncSession,
    organisation: Organisation,
    client: httpx.AsyncClient,
    *,
    enabled: bool = True,
) -> EWorld:
    world = await create_billing_world(session, organisation)
    admin = world.admin
    response = await client.post(
        "/api/v1/billing/items",
        json={
            "code": "COURIER",
            "name": "Report courier",
            "price": "118.50",
            "sac": "996812",
            "gst_treatment": "taxable",
            "gst_rate": "18",
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    clients = {}
    for code, name, gst, address, pin in (
        (
            "ACME",
            "Acme Software Private Limited",
            ACME_GSTIN,
            "80 Outer Ring Road, Bengaluru",
            "560103",
        ),
        ("RUBY", "Ruby Hall Clinic", RUBY_GSTIN, "40 Sassoon Road, Pune", "411001"),
        (
            "BADPIN",
            "Wrong Pin Hospital",
            gstin("29", "AABCW1234D"),
            "1 MG Road, Bengaluru",
            "110001",
        ),
    ):
        response = await client.post(
            "/api/v1/billing-clients",
            json={
                "code": code,
                "name": name,
                "kind": "hospital",
                "gstin": gst,
                "address": address,
                "pincode": pin,
                "billing_cycle": "per_order",
            },
            headers=admin,
        )
        assert response.status_code == 201, response.text
        clients[code] = response.json()["id"]
    session.add(
        EInvoiceSettings(
            organisation_id=organisation.id,
            enabled=enabled,
            sandbox=False,
            thirty_day_limit=False,
            location="Pune",
            irp_username=IRP_USER,
            irp_password=IRP_PASSWORD,
        )
    )
    await session.flush()
    return EWorld(world, clients)


@pytest.fixture
async def eworld(
    session: AsyncSession, organisation: Organisation, client: httpx.AsyncClient, irp: Irp
) -> EWorld:
    return await create_eworld(session, organisation, client)
