"""Claim an idempotency key in the request's transaction and remember the first response.

The claim is an INSERT on a unique key, so two concurrent requests with the same key
serialise on the index: the second waits for the first to commit and then replays it. If the
first request fails, its transaction (claim included) rolls back and a retry runs afresh.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.idempotency.errors import (
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    InvalidIdempotencyKey,
)
from nidaan.idempotency.models import IdempotencyRecord
from nidaan.kit import bundle
from nidaan.kit.time import utcnow

MAX_KEY_LENGTH = 200
_TABLE = IdempotencyRecord.__table__


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


@dataclass(frozen=True)
class Claim:
    """Either a fresh claim (record_id set, replay None) or a replay of the first response."""

    record_id: uuid.UUID | None
    replay: StoredResponse | None


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b"\0" + path.encode() + b"\0" + body).hexdigest()


class IdempotencyService:
    async def claim(
        self,
        session: AsyncSession,
        *,
        organisation_id: uuid.UUID,
        principal_key: str,
        key: str,
        method: str,
        path: str,
        body: bytes,
        ttl: timedelta,
    ) -> Claim:
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise InvalidIdempotencyKey(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters; "
                "a UUID is ideal."
            )
        fingerprint = request_fingerprint(method, path, body)
        now = utcnow()
        claim = (
            insert(IdempotencyRecord)
            .values(
                organisation_id=organisation_id,
                principal_key=principal_key,
                key=key,
                method=method,
                path=path,
                request_hash=fingerprint,
                created_at=now,
                expires_at=now + ttl,
            )
            .on_conflict_do_nothing(index_elements=["organisation_id", "principal_key", "key"])
            .returning(IdempotencyRecord.id)
        )
        # A fresh key (the usual case) is one statement; only a key seen before is looked at.
        inserted = await session.scalar(claim)
        if inserted is not None:
            return Claim(record_id=inserted, replay=None)
        same_key = (
            IdempotencyRecord.organisation_id == organisation_id,
            IdempotencyRecord.principal_key == principal_key,
            IdempotencyRecord.key == key,
        )
        existing = await session.scalar(select(IdempotencyRecord).where(*same_key))
        if existing is None or existing.expires_at <= now:
            # An expired key is forgotten, so the same key may start a new request (the
            # first claim may also have met a row deleted meanwhile).
            await session.execute(
                delete(IdempotencyRecord).where(*same_key, IdempotencyRecord.expires_at <= now)
            )
            inserted = await session.scalar(claim)
            if inserted is not None:
                return Claim(record_id=inserted, replay=None)
            existing = await session.scalar(
                select(IdempotencyRecord).where(*same_key).execution_options(populate_existing=True)
            )
        assert existing is not None
        if existing.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different request; use a new key."
            )
        if existing.response_status is None:
            raise IdempotencyRequestInProgress(
                "The first request with this key has not finished; retry shortly."
            )
        return Claim(
            record_id=None, replay=StoredResponse(existing.response_status, existing.response_body)
        )

    async def remember(
        self, session: AsyncSession, record_id: uuid.UUID, status_code: int, body: Any
    ) -> None:
        # The UPDATE by id goes with the transaction's bundle (one statement at commit with
        # the audit entries, outbox events and change capture): nothing in the request reads
        # the record again, and a concurrent retry waits for this transaction's commit anyway.
        bundle.defer_update(
            session,
            _TABLE,
            "id",
            {"id": record_id, "response_status": status_code, "response_body": body},
        )

    async def purge_expired(self, session: AsyncSession) -> int:
        result = await session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= utcnow())
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


idempotency_service = IdempotencyService()
