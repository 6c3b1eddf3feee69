"""Readable per-scope counters: MRNs, order, accession and report numbers.

``next_value`` draws numbers in a short transaction of its own, committed at once, so
concurrent requests never queue behind each other's commits for a number (an order at a
busy centre would otherwise wait for every other order's transaction to finish). The price
is that a rolled-back request leaves a gap, which is fine for identifiers. Counters that
must have no gaps (GST invoice numbers) use ``next_value_gapless``, which draws inside the
caller's transaction and so serialises writers of that scope until they commit.

A transaction that draws many numbers of one scope (a sync batch registering 60 patients
offline, an analyzer batch) reserves them in growing blocks (1, 2, 4 … 16) instead of one
short transaction per number; numbers of the last block it does not use become a gap.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, String
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.db import autonomous_engine, transaction_state
from nidaan.kit.model_base import Base


class Sequence(Base):
    __tablename__ = "sequences"

    # No foreign key: numbers are drawn outside the caller's transaction, where a tenant
    # created in that same transaction is not visible yet.
    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(120), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger)


def _increment(organisation_id: uuid.UUID, scope: str, count: int):  # type: ignore[no-untyped-def]
    return (
        insert(Sequence)
        .values(organisation_id=organisation_id, scope=scope, last_value=count)
        .on_conflict_do_update(
            index_elements=["organisation_id", "scope"],
            set_={"last_value": Sequence.last_value + count},
        )
        .returning(Sequence.last_value)
    )


MAX_BLOCK = 16


async def next_value(
    session: AsyncSession, organisation_id: uuid.UUID, scope: str, *, count: int = 1
) -> int:
    """Reserve ``count`` numbers in ``scope`` and return the first (1, 2, 3, ...)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if count > 1:
        return await _draw(session, organisation_id, scope, count)
    # [next unused, end (exclusive), size of the last block drawn]
    blocks: dict[tuple[uuid.UUID, str], list[int]] = transaction_state(
        session, "nidaan.sequences.blocks", dict
    )
    block = blocks.get((organisation_id, scope))
    if block is None or block[0] >= block[1]:
        size = 1 if block is None else min(block[2] * 2, MAX_BLOCK)
        first = await _draw(session, organisation_id, scope, size)
        block = blocks[(organisation_id, scope)] = [first, first + size, size]
    value = block[0]
    block[0] += 1
    return value


async def _draw(session: AsyncSession, organisation_id: uuid.UUID, scope: str, count: int) -> int:
    # Committed without waiting for the disk: safe, as any transaction that uses the number
    # commits later with a synchronous commit, which flushes this commit's WAL record first.
    async with autonomous_engine(session, synchronous_commit=False).begin() as connection:
        last = (await connection.execute(_increment(organisation_id, scope, count))).scalar_one()
    return int(last) - count + 1


async def next_value_gapless(session: AsyncSession, organisation_id: uuid.UUID, scope: str) -> int:
    """The next number, drawn in the caller's transaction: no gaps, but writers queue."""
    return int((await session.execute(_increment(organisation_id, scope, 1))).scalar_one())
