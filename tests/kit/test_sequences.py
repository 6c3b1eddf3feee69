"""Numbers of several scopes drawn with one statement (an order's number and its accessions)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.kit.sequences import next_value, next_values


async def test_next_values_reserves_each_scope_and_continues_its_sequence(
    session: AsyncSession,
) -> None:
    org = uuid.uuid4()
    assert await next_value(session, org, "accession:A", count=3) == 1

    first = await next_values(session, org, {"order": 1, "accession:A": 2})

    assert first == {"order": 1, "accession:A": 4}
    # The numbers were taken: the next draw of each scope starts after them.
    assert await next_value(session, org, "accession:A", count=1) == 6
    assert await next_values(session, org, {"order": 1, "accession:A": 1}) == {
        "order": 2,
        "accession:A": 7,
    }


async def test_next_values_uses_the_transactions_block_of_a_scope_drawn_one_by_one(
    session: AsyncSession,
) -> None:
    org = uuid.uuid4()
    # One at a time in a transaction, blocks grow (1, 2, ...): the second block holds 2 and 3.
    assert [await next_value(session, org, "order") for _ in range(2)] == [1, 2]
    assert await next_values(session, org, {"order": 1, "accession:B": 1}) == {
        "order": 3,
        "accession:B": 1,
    }
    assert await next_value(session, org, "order") == 4


async def test_next_values_refuses_a_count_below_one(session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await next_values(session, uuid.uuid4(), {"order": 1, "accession:C": 0})
