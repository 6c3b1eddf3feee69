"""The dashboard's queries: work by state, turnaround against targets, critical values
waiting, samples in transit — exact figures, tenant and branch scoped."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.models import UserBranch
from nidaan.kit.time import utcnow
from nidaan.samples.enums import SampleStatus
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_reference_range
from tests.fixtures.objects import bearer_for, create_branch, create_user
from tests.fixtures.results import make_lab
from tests.results.conftest import Lab, adult_woman, enter, numeric_test, place_order, verify

A = "/api/v1/analytics"


async def test_work_by_state_counts_todays_orders_tubes_and_tests(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    glu = await numeric_test(session, lab, "GLU", department="Biochemistry")
    hb = await numeric_test(session, lab, "HB", department="Haematology")
    woman = await adult_woman(session, lab)
    await place_order(session, lab, woman, [glu, hb])
    await place_order(session, lab, woman, [glu], sample_status=SampleStatus.COLLECTED)

    body = (await client.get(f"{A}/work-by-state", headers=lab.headers("path"))).json()

    assert body["orders"] == 2
    assert body["samples"] == [
        {"state": "collected", "count": 1},
        {"state": "received", "count": 1},
    ]
    assert body["tests"] == [{"state": "active", "count": 3}]
    yesterday = (utcnow() - timedelta(days=2)).date().isoformat()
    old = (
        await client.get(
            f"{A}/work-by-state", params={"day": yesterday}, headers=lab.headers("path")
        )
    ).json()
    assert (old["orders"], old["samples"], old["tests"]) == (0, [], [])


async def test_turnaround_per_department_against_the_target(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    glu = await numeric_test(session, lab, "GLU", department="Biochemistry", tat_minutes=60)
    hb = await numeric_test(session, lab, "HB", department="Haematology", tat_minutes=120)
    woman = await adult_woman(session, lab)
    now = utcnow()
    fast = await place_order(session, lab, woman, [glu], received_at=now - timedelta(minutes=30))
    slow = await place_order(session, lab, woman, [glu], received_at=now - timedelta(minutes=90))
    late_open = await place_order(
        session, lab, woman, [hb], received_at=now - timedelta(minutes=180)
    )
    for placed in (fast, slow):
        result = await enter(client, lab, placed["GLU"], "90")
        await verify(client, lab, result["id"])

    body = (await client.get(f"{A}/tat", headers=lab.headers("path"))).json()

    rows = {r["department"]: r for r in body["rows"]}
    bio = rows["Biochemistry"]
    assert (bio["verified"], bio["within_target"], bio["target_minutes"]) == (2, 1, 60.0)
    assert 29 <= bio["median_minutes"] - 30 <= 31  # median of ~30 and ~90 minutes is ~60
    assert bio["branch_code"] == lab.branch.code
    assert rows["Haematology"]["verified"] == 0
    assert rows["Haematology"]["overdue_open"] == 1
    assert late_open.order.branch_id == lab.branch.id


async def test_critical_pending_and_in_transit(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    k = await numeric_test(session, lab, "K", department="Biochemistry")
    await create_reference_range(
        session, k, low="3.5", high="5.1", critical_low="2.5", critical_high="6.5"
    )
    woman = await adult_woman(session, lab)
    placed = await place_order(session, lab, woman, [k])
    await enter(client, lab, placed["K"], "7.2")
    collected_at = utcnow() - timedelta(minutes=45)
    await place_order(
        session, lab, woman, [k], sample_status=SampleStatus.COLLECTED, collected_at=collected_at
    )

    critical = (await client.get(f"{A}/critical-pending", headers=lab.headers("path"))).json()
    assert critical["open"] == 1
    assert critical["oldest_minutes"] is not None
    transit = (await client.get(f"{A}/in-transit", headers=lab.headers("admin"))).json()
    assert transit["total"] == 1
    assert transit["rows"][0]["from_branch_code"] == lab.branch.code
    assert 44 <= transit["rows"][0]["oldest_minutes"] <= 46


async def test_another_organisation_and_other_branches_see_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    lab: Lab,
    other_organisation: Organisation,
) -> None:
    glu = await numeric_test(session, lab, "GLU", department="Biochemistry")
    woman = await adult_woman(session, lab)
    await place_order(session, lab, woman, [glu], sample_status=SampleStatus.COLLECTED)
    stranger = await make_lab(session, other_organisation)
    elsewhere = await create_branch(session, lab.organisation, kind=BranchKind.COLLECTION_CENTRE)
    limited = await create_user(session, lab.organisation, roles=("technician",))
    limited_headers = bearer_for(limited)
    session.add(UserBranch(user_id=limited.id, branch_id=elsewhere.id))
    await session.flush()

    for headers in (stranger.headers("admin"), limited_headers):
        work = (await client.get(f"{A}/work-by-state", headers=headers)).json()
        assert work["orders"] == 0
        assert (await client.get(f"{A}/in-transit", headers=headers)).json()["total"] == 0
    refused = await client.get(
        f"{A}/work-by-state", params={"branch_id": str(lab.branch.id)}, headers=limited_headers
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {"date_from": "2026-01-10", "date_to": "2026-01-01"},
        {"date_from": "2025-01-01", "date_to": "2026-01-01"},
    ],
)
async def test_bad_windows_are_refused(
    client: httpx.AsyncClient, lab: Lab, params: dict[str, str]
) -> None:
    response = await client.get(f"{A}/tat", params=params, headers=lab.headers("path"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
