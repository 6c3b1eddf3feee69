"""Generated replays: any sequence of requests, retry-job runs, outages, throttling, lost
answers and expired tokens ends with exactly one IRN per invoice, the same one every time it
is reported, and the IRP never asked to make a second."""

from __future__ import annotations

from datetime import timedelta

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.einvoice.models import EInvoice
from nidaan.einvoice.service import einvoice_service
from nidaan.kit.time import utcnow
from tests.einvoice.conftest import EWorld, Irp

STEPS = st.lists(
    st.sampled_from(
        ["post", "post", "job", "outage", "throttle", "blip", "lose", "lose_twice", "expire"]
    ),
    min_size=1,
    max_size=7,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
async def test_any_replay_makes_exactly_one_irn(
    client: httpx.AsyncClient,
    eworld: EWorld,
    irp: Irp,
    session: AsyncSession,
    steps: list[str],
) -> None:
    irp.simulator.faults.fail_next = irp.simulator.faults.lose_next = 0
    invoice = await eworld.invoice(client)
    url = f"/api/v1/invoices/{invoice['id']}/einvoice"
    headers = eworld.headers["billing"]
    seen: set[str] = set()

    async def due_job() -> None:
        await session.execute(
            update(EInvoice)
            .where(EInvoice.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        await einvoice_service.retry_pending(session)

    for step in steps:
        if step == "post":
            response = await client.post(url, headers=headers)
            assert response.status_code in (200, 201, 202), response.text
            if response.json()["irn"]:
                seen.add(response.json()["irn"])
        elif step == "job":
            await due_job()
        elif step == "outage":
            await irp.control("/_sim/faults", {"fail_next": 10, "status": 503})
        elif step == "throttle":
            await irp.control("/_sim/faults", {"fail_next": 3, "status": 429})
        elif step == "blip":
            await irp.control("/_sim/faults", {"fail_next": 1, "status": 502})
        elif step == "lose":
            await irp.control("/_sim/faults", {"lose_next": 1})
        elif step == "lose_twice":
            await irp.control("/_sim/faults", {"lose_next": 2})
        elif step == "expire":
            await irp.control("/_sim/expire-tokens")
    # The IRP comes back; a last request or job run settles whatever is pending.
    await irp.control("/_sim/faults", {})
    await due_job()
    final = await client.post(url, headers=headers)
    assert final.status_code in (200, 201), final.text
    body = final.json()
    assert body["status"] == "generated"
    seen.add(body["irn"])
    made = [e for e in irp.simulator.irns.values() if e.doc_no == invoice["number"]]
    assert len(made) == 1
    assert seen == {made[0].irn}
    assert body["ack_no"] == str(made[0].ack_no)
