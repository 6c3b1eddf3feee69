"""A token bucket in PostgreSQL, shared by every worker process sending on one channel.

Each ``acquire`` is one short UPDATE in its own transaction (never inside a send's
transaction, so the bucket row is locked for a millisecond, not for an HTTP call). When the
bucket is empty the caller sleeps until a token is due.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_ensured: set[tuple[int, str]] = set()

_TAKE = text(
    """
    UPDATE notification_rate_buckets AS b
    SET tokens = t.available - CASE WHEN t.available >= 1 THEN 1 ELSE 0 END,
        refilled_at = t.now
    FROM (
        SELECT LEAST(:burst, tokens + EXTRACT(EPOCH FROM clock_timestamp() - refilled_at)
                     * :rate) AS available,
               clock_timestamp() AS now
        FROM notification_rate_buckets WHERE name = :name FOR UPDATE
    ) AS t
    WHERE b.name = :name
    RETURNING t.available
    """
)


def burst_for(rate: float) -> float:
    """No burst: tokens come every 1/rate seconds, so no one-second window (how Meta counts,
    130429) ever holds more than the rate."""
    return 1.0


async def acquire(engine: AsyncEngine, name: str, rate: float) -> float:
    """Take one token from bucket ``name`` refilled at ``rate`` per second; returns the
    seconds waited."""
    burst = burst_for(rate)
    if (id(engine), name) not in _ensured:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO notification_rate_buckets (name, tokens, refilled_at) "
                    "VALUES (:name, :burst, clock_timestamp()) ON CONFLICT (name) DO NOTHING"
                ),
                {"name": name, "burst": burst},
            )
        _ensured.add((id(engine), name))
    waited = 0.0
    while True:
        async with engine.begin() as connection:
            available = float(
                (
                    await connection.execute(_TAKE, {"name": name, "rate": rate, "burst": burst})
                ).scalar_one()
            )
        if available >= 1:
            return waited
        pause = (1 - available) / rate
        waited += pause
        await asyncio.sleep(pause)
