"""Cold-chain time and stability windows: generated collection/receipt times (including a
phone clock ahead of the lab's) against each container's window, and a tube that arrived
too late flagged on the receipt answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.catalog.enums import Container
from nidaan.samples import stability
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user
from tests.fixtures.orders import create_lab_world, create_order

BASE = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)


def test_every_container_has_a_sensible_default() -> None:
    for container in Container:
        hours = stability.stability_hours(container)
        assert 1 <= hours <= 48
    assert stability.stability_hours("mystery_tube") == stability.FALLBACK_HOURS
    assert stability.stability_hours(Container.EDTA_LAVENDER, override=6) == 6


@given(
    container=st.sampled_from(list(Container)),
    minutes=st.integers(min_value=-600, max_value=72 * 60),
    override=st.none() | st.integers(min_value=1, max_value=72),
)
def test_past_stability_exactly_when_transit_exceeds_the_window(
    container: Container, minutes: int, override: int | None
) -> None:
    received = BASE + timedelta(minutes=minutes)
    spent = stability.transit(BASE, received)
    assert spent is not None
    assert spent >= timedelta(0)
    window = stability.stability_hours(container, override) * 60
    assert stability.past_stability(container, BASE, received, override) is (
        max(minutes, 0) > window
    )
    assert stability.transit(None, received) is None
    assert stability.past_stability(container, BASE, None, override) is False


async def test_receipt_shows_cold_chain_time_and_flags_a_late_tube(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    world = await create_lab_world(session, organisation)
    admin = bearer_for(await create_user(session, organisation, roles=("admin",)))
    _, (fresh,), _ = await create_order(
        session, organisation, world.patient, [world.tests["GLU"]], branch=world.lab
    )
    _, (late,), _ = await create_order(
        session, organisation, world.patient, [world.tests["GLU"]], branch=world.lab
    )
    for sample in (fresh, late):
        collected = await client.post(f"/api/v1/samples/{sample.accession}/collect", headers=admin)
        assert collected.status_code == 200, collected.text
        assert collected.json()["transit_minutes"] is None
        assert collected.json()["past_stability"] is False
    await session.refresh(late)
    window = stability.stability_hours(late.container)
    late.collected_at = late.collected_at - timedelta(hours=window, minutes=30)
    await session.commit()

    ok = (await client.post(f"/api/v1/samples/{fresh.accession}/receive", headers=admin)).json()
    assert ok["status"] == "received"
    assert ok["transit_minutes"] is not None
    assert ok["transit_minutes"] < 5
    assert ok["past_stability"] is False
    flagged = (await client.post(f"/api/v1/samples/{late.accession}/receive", headers=admin)).json()
    assert flagged["stability_hours"] == window
    assert flagged["transit_minutes"] >= window * 60 + 30
    assert flagged["past_stability"] is True
