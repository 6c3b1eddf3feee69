"""Cold-chain time and stability windows: generated collection/receipt times (including a
phone clock ahead of the lab's) against each tube's window — the container's default or a
stricter window of one of its tests in the catalogue — and a tube that arrived too late
flagged on the receipt answer and on its manifest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.catalog.enums import Container
from nidaan.samples import stability
from nidaan.samples.models import Sample
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.objects import bearer_for, create_user
from tests.fixtures.orders import create_lab_world, create_order

BASE = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)


def test_every_container_has_a_sensible_default() -> None:
    for container in Container:
        hours = stability.stability_hours(container)
        assert 1 <= hours <= 48
    assert stability.stability_hours("mystery_tube") == stability.FALLBACK_HOURS
    assert stability.stability_hours(Container.EDTA_LAVENDER, 6) == 6
    # A test cannot stretch its container: the stricter of the two wins.
    assert stability.stability_hours(Container.CITRATE_BLUE, 48) == 4


@given(
    container=st.sampled_from([*Container, "mystery_tube"]),
    windows=st.lists(st.none() | st.integers(min_value=1, max_value=168), max_size=6),
)
def test_the_stricter_of_container_and_tests_wins(
    container: str, windows: list[int | None]
) -> None:
    tests = stability.strictest(windows)
    hours = stability.stability_hours(container, tests)
    default = stability.stability_hours(container)
    assert hours == min([default, *(w for w in windows if w is not None)])
    assert hours <= default
    if tests is None:
        assert hours == default


@given(
    container=st.sampled_from(list(Container)),
    minutes=st.integers(min_value=-600, max_value=72 * 60),
    test_hours=st.none() | st.integers(min_value=1, max_value=72),
)
def test_past_stability_exactly_when_transit_exceeds_the_window(
    container: Container, minutes: int, test_hours: int | None
) -> None:
    received = BASE + timedelta(minutes=minutes)
    spent = stability.transit(BASE, received)
    assert spent is not None
    assert spent >= timedelta(0)
    window = stability.stability_hours(container, test_hours) * 60
    assert window <= stability.stability_hours(container) * 60
    assert stability.past_stability(container, BASE, received, test_hours) is (
        max(minutes, 0) > window
    )
    assert stability.transit(None, received) is None
    assert stability.past_stability(container, BASE, None, test_hours) is False


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


async def _backdate(session: AsyncSession, sample: Sample, hours: float) -> None:
    await session.refresh(sample)
    assert sample.collected_at is not None
    sample.collected_at -= timedelta(hours=hours)
    await session.commit()


async def test_a_strict_test_tightens_its_tube_and_flags_it_on_receipt(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    """Serum keeps 8 h in its tube, but a test wanting 2 h makes the whole tube a 2 h tube:
    three hours on the road is fine for the plain tube and too long for the strict one."""
    world = await create_lab_world(session, organisation)
    admin = bearer_for(await create_user(session, organisation, roles=("admin",)))
    strict = await create_catalog_test(session, organisation, code="LACT", stability_hours=2)
    loose = await create_catalog_test(session, organisation, code="CHOLX", stability_hours=12)
    _, (plain,), _ = await create_order(
        session, organisation, world.patient, [world.tests["ALT"], loose], branch=world.lab
    )
    _, (tight,), _ = await create_order(
        session,
        organisation,
        world.patient,
        [world.tests["ALT"], loose, strict],
        branch=world.lab,
    )
    assert (plain.test_stability_hours, tight.test_stability_hours) == (12, 2)
    for sample in (plain, tight):
        collected = await client.post(f"/api/v1/samples/{sample.accession}/collect", headers=admin)
        assert collected.status_code == 200, collected.text
        await _backdate(session, sample, 3)

    answers = {}
    for sample in (plain, tight):
        received = await client.post(f"/api/v1/samples/{sample.accession}/receive", headers=admin)
        assert received.status_code == 200, received.text
        answers[sample.accession] = received.json()
    assert answers[plain.accession]["stability_hours"] == 8  # 12 h cannot stretch serum
    assert answers[plain.accession]["past_stability"] is False
    assert answers[tight.accession]["stability_hours"] == 2
    assert answers[tight.accession]["test_stability_hours"] == 2
    assert answers[tight.accession]["past_stability"] is True
    listed = await client.get(
        "/api/v1/samples", params={"order_id": str(tight.order_id)}, headers=admin
    )
    assert [s["past_stability"] for s in listed.json()["items"]] == [True]


async def test_a_test_added_later_tightens_the_open_tube_and_a_recollection_keeps_it(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    world = await create_lab_world(session, organisation)
    admin = bearer_for(await create_user(session, organisation, roles=("admin",)))
    strict = await create_catalog_test(session, organisation, code="LACT", stability_hours=2)
    order, (tube,), _ = await create_order(
        session, organisation, world.patient, [world.tests["ALT"]], branch=world.lab
    )
    assert tube.test_stability_hours is None
    added = await client.post(
        f"/api/v1/orders/{order.id}/tests", json={"items": ["LACT"]}, headers=admin
    )
    assert added.status_code in (200, 201), added.text
    await session.refresh(tube)
    assert tube.test_stability_hours == strict.stability_hours == 2
    shown = (await client.get(f"/api/v1/samples/{tube.accession}", headers=admin)).json()
    assert shown["stability_hours"] == 2

    collected = await client.post(f"/api/v1/samples/{tube.accession}/collect", headers=admin)
    assert collected.status_code == 200, collected.text
    rejected = await client.post(
        f"/api/v1/samples/{tube.accession}/reject",
        json={"reason": "delayed_in_transit"},
        headers=admin,
    )
    assert rejected.status_code == 200, rejected.text
    recollection = rejected.json()["recollection"]
    assert recollection is not None
    assert recollection["stability_hours"] == 2


async def test_the_manifest_shows_cold_chain_time_and_flags_late_tubes_at_hand_over(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    world = await create_lab_world(session, organisation)
    admin = bearer_for(await create_user(session, organisation, roles=("admin",)))
    strict = await create_catalog_test(session, organisation, code="LACT", stability_hours=2)
    _, (fresh,), _ = await create_order(
        session, organisation, world.patient, [world.tests["ALT"]], branch=world.centre
    )
    _, (late,), _ = await create_order(
        session, organisation, world.patient, [strict], branch=world.centre
    )
    for sample in (fresh, late):
        collected = await client.post(
            f"/api/v1/samples/{sample.accession}/collect",
            json={"branch_id": str(world.centre.id)},
            headers=admin,
        )
        assert collected.status_code == 200, collected.text
        await _backdate(session, sample, 3)
    made = await client.post(
        "/api/v1/manifests",
        json={
            "from_branch_id": str(world.centre.id),
            "to_branch_id": str(world.lab.id),
            "accessions": [fresh.accession, late.accession],
        },
        headers=admin,
    )
    assert made.status_code == 201, made.text
    manifest = made.json()
    on_the_way = {s["accession"]: s for s in manifest["samples"]}
    assert on_the_way[late.accession]["stability_hours"] == 2
    assert on_the_way[late.accession]["transit_minutes"] is None
    dispatched = await client.post(
        f"/api/v1/manifests/{manifest['id']}/dispatch",
        json={"version": manifest["version"]},
        headers=admin,
    )
    assert dispatched.status_code == 200, dispatched.text
    for sample in (fresh, late):
        received = await client.post(f"/api/v1/samples/{sample.accession}/receive", headers=admin)
        assert received.status_code == 200, received.text

    handed = (await client.get(f"/api/v1/manifests/{manifest['id']}", headers=admin)).json()
    assert handed["status"] == "received"
    by_accession = {s["accession"]: s for s in handed["samples"]}
    assert by_accession[fresh.accession]["past_stability"] is False
    assert by_accession[fresh.accession]["stability_hours"] == 8
    assert by_accession[late.accession]["past_stability"] is True
    assert by_accession[late.accession]["transit_minutes"] >= 180
