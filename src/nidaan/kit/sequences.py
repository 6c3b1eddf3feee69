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
from collections.abc import Mapping

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


def _increment_many(organisation_id: uuid.UUID, counts: Mapping[str, int]):  # type: ignore[no-untyped-def]
    # Scopes in a fixed order, so two transactions drawing the same scopes lock their rows
    # in the same order (no deadlock).
    statement = insert(Sequence).values(
        [
            {"organisation_id": organisation_id, "scope": scope, "last_value": count}
            for scope, count in sorted(counts.items())
        ]
    )
    return statement.on_conflict_do_update(
        index_elements=["organisation_id", "scope"],
        set_={"last_value": Sequence.last_value + statement.excluded.last_value},
    ).returning(Sequence.scope, Sequence.last_value)


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


async def next_values(
    session: AsyncSession, organisation_id: uuid.UUID, counts: Mapping[str, int]
) -> dict[str, int]:
    """Reserve ``counts[scope]`` numbers in each scope with one statement (an order's number
    and its tubes' accessions); return the first of each.

    A scope drawn one at a time keeps its transaction's block (see ``next_value``): a number
    left in the block is used without drawing.
    """
    if any(count < 1 for count in counts.values()):
        raise ValueError("count must be at least 1")
    blocks: dict[tuple[uuid.UUID, str], list[int]] = transaction_state(
        session, "nidaan.sequences.blocks", dict
    )
    firsts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for scope, count in counts.items():
        block = blocks.get((organisation_id, scope)) if count == 1 else None
        if block is not None and block[0] < block[1]:
            firsts[scope] = block[0]
            block[0] += 1
        elif count == 1:
            sizes[scope] = 1 if block is None else min(block[2] * 2, MAX_BLOCK)
        else:
            sizes[scope] = count
    if not sizes:
        return firsts
    if len(sizes) == 1:
        ((scope, size),) = sizes.items()
        drawn = {scope: await _draw(session, organisation_id, scope, size)}
    else:
        async with autonomous_engine(session, synchronous_commit=False).begin() as connection:
            rows = await connection.execute(_increment_many(organisation_id, sizes))
            drawn = {row.scope: int(row.last_value) - sizes[row.scope] + 1 for row in rows}
    for scope, first in drawn.items():
        firsts[scope] = first
        if counts[scope] == 1:
            size = sizes[scope]
            blocks[(organisation_id, scope)] = [first + 1, first + size, size]
    return firsts


async def _draw(session: AsyncSession, organisation_id: uuid.UUID, scope: str, count: int) -> int:
    # Committed without waiting for the disk: safe, as any transaction that uses the number
    # commits later with a synchronous commit, which flushes this commit's WAL record first.
    async with autonomous_engine(session, synchronous_commit=False).begin() as connection:
        last = (await connection.execute(_increment(organisation_id, scope, count))).scalar_one()
    return int(last) - count + 1


async def next_value_gapless(session: AsyncSession, organisation_id: uuid.UUID, scope: str) -> int:
    """The next number, drawn in the caller's transaction: no gaps, but writers queue."""
    return int((await session.execute(_increment(organisation_id, scope, 1))).scalar_one())
