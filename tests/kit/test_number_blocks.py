"""Per-process number blocks: concurrent calls share one draw per block."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.kit.db import autonomous_engine
from nidaan.kit.number_blocks import next_from_block
from nidaan.kit.sequences import Sequence


async def test_concurrent_calls_share_one_draw_per_block(session: AsyncSession) -> None:
    organisation_id, scope = uuid.uuid4(), "test.blocks"

    numbers = await asyncio.gather(
        *(next_from_block(session, organisation_id, scope, block=8) for _ in range(20))
    )

    # 20 numbers from blocks of 8: three draws (1-8, 9-16, 17-24), not one per waiting call.
    assert sorted(numbers) == list(range(1, 21))
    async with autonomous_engine(session).connect() as connection:
        drawn = await connection.scalar(
            select(Sequence.last_value).where(
                Sequence.organisation_id == organisation_id, Sequence.scope == scope
            )
        )
    assert drawn == 24
    assert await next_from_block(session, organisation_id, scope, block=8) == 21
