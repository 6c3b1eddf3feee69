"""Idempotency-Key: same key + same body replays; different body is a 422; keys expire."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.idempotency.models import IdempotencyRecord
from nidaan.idempotency.service import idempotency_service
from nidaan.kit.time import utcnow
from nidaan.tenancy.models import Branch, Organisation
from tests.fixtures.objects import bearer_for, create_user

BRANCH = {"code": "CC7", "name": "Collection Centre 7", "kind": "collection_centre"}


async def _branch_count(session: AsyncSession, organisation: Organisation) -> int:
    return int(
        await session.scalar(select(func.count()).where(Branch.organisation_id == organisation.id))
        or 0
    )


async def test_retry_with_same_key_replays_the_first_response(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    headers = {**bearer_for(await create_user(session, organisation)), "Idempotency-Key": "k-123"}

    first = await client.post("/api/v1/branches", json=BRANCH, headers=headers)
    second = await client.post("/api/v1/branches", json=BRANCH, headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert await _branch_count(session, organisation) == 1


async def test_same_key_different_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    headers = {**bearer_for(await create_user(session, organisation)), "Idempotency-Key": "k-456"}
    assert (await client.post("/api/v1/branches", json=BRANCH, headers=headers)).status_code == 201

    response = await client.post(
        "/api/v1/branches", json={**BRANCH, "code": "CC8"}, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert await _branch_count(session, organisation) == 1


async def test_keys_are_per_caller_and_expire_after_the_window(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    alice = bearer_for(await create_user(session, organisation))
    bob = bearer_for(await create_user(session, organisation))
    assert (
        await client.post(
            "/api/v1/branches", json=BRANCH, headers={**alice, "Idempotency-Key": "same"}
        )
    ).status_code == 201
    # Bob's identical key is his own: it runs (and meets the real business rule).
    bob_response = await client.post(
        "/api/v1/branches", json=BRANCH, headers={**bob, "Idempotency-Key": "same"}
    )
    assert bob_response.status_code == 409
    assert bob_response.json()["code"] == "branch_code_taken"

    record = await session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == "same"))
    assert record is not None
    assert record.expires_at - record.created_at == timedelta(hours=24)
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    # After expiry the key is new again: the request runs afresh (and hits the duplicate code).
    retry = await client.post(
        "/api/v1/branches", json=BRANCH, headers={**alice, "Idempotency-Key": "same"}
    )
    assert retry.status_code == 409
    assert "idempotent-replayed" not in retry.headers
    # The failed retry rolled back, so the expired record is still there for the purge job.
    assert await idempotency_service.purge_expired(session) == 1


async def test_failed_request_does_not_burn_the_key(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    headers = {**bearer_for(await create_user(session, organisation)), "Idempotency-Key": "k-789"}
    assert (
        await client.post(
            "/api/v1/branches", json=BRANCH, headers={**headers, "Idempotency-Key": "other"}
        )
    ).status_code == 201

    failed = await client.post(
        "/api/v1/branches", json=BRANCH, headers=headers
    )  # duplicate code -> 409
    assert failed.status_code == 409
    assert (
        await session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == "k-789"))
        is None
    )


async def test_invalid_key_is_rejected(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    headers = {**bearer_for(await create_user(session, organisation)), "Idempotency-Key": "x" * 201}
    response = await client.post("/api/v1/branches", json=BRANCH, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_idempotency_key"
