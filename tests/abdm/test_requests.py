"""Pending ABDM requests: visible at GET /api/v1/abdm/requests, timed out when no callback."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.exchanges import answer_request, open_request, time_out_requests
from nidaan.kit.time import utcnow
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_user


async def test_requests_are_listed_answered_once_and_timed_out(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
) -> None:
    waiting = await open_request(
        session,
        organisation_id=organisation.id,
        kind="generate_link_token",
        hip_id="IN-T",
        timeout_seconds=60,
    )
    late = await open_request(
        session,
        organisation_id=organisation.id,
        kind="link_care_contexts",
        hip_id="IN-T",
        timeout_seconds=60,
    )
    late.deadline_at = utcnow() - timedelta(seconds=1)
    answered = await open_request(
        session,
        organisation_id=organisation.id,
        kind="context_notify",
        hip_id="IN-T",
        timeout_seconds=60,
    )
    await session.flush()
    assert await answer_request(session, str(answered.request_id), {"ok": True}, None) is not None
    # A repeated callback for the same request changes nothing.
    assert await answer_request(session, str(answered.request_id), {"ok": False}, "x") is None
    assert await answer_request(session, "not-a-uuid", {}, None) is None

    timed_out = await time_out_requests(session)
    assert [r.id for r in timed_out] == [late.id]

    headers = bearer_for(await create_user(session, organisation, roles=("front_desk",)))
    listed = await client.get("/api/v1/abdm/requests", headers=headers)
    assert listed.status_code == 200
    statuses = {r["kind"]: r["status"] for r in listed.json()["items"]}
    assert statuses == {
        "generate_link_token": "pending",
        "link_care_contexts": "timed_out",
        "context_notify": "answered",
    }
    only = await client.get(
        "/api/v1/abdm/requests", params={"status": "timed_out"}, headers=headers
    )
    assert [r["id"] for r in only.json()["items"]] == [str(late.id)]
    outsider = bearer_for(await create_user(session, other_organisation, roles=("admin",)))
    assert (await client.get("/api/v1/abdm/requests", headers=outsider)).json()["items"] == []
    assert waiting.status == "pending"
