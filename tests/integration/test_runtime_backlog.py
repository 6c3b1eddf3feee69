"""ASTM messages sent back to back land in order, and stopping lands what was acknowledged."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from nidaan.config import Settings
from nidaan.integration.astm.transport import ASTMClient
from nidaan.integration.models import InterfaceMessage
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.kit.db import session_scope
from nidaan.results.models import Result
from tests.integration.support import World, results_upload


async def test_back_to_back_messages_land_in_order_and_stop_lands_the_rest(
    settings: Settings,
    world: World,
    supervisor: InterfaceSupervisor,
    analyzer: tuple[ASTMClient, Any],
) -> None:
    client, _ = analyzer
    values = ["101", "102", "103", "104", "105", "106"]
    for value in values:
        await client.send(results_upload(world.accession, glu=value), within=5)
    # Everything was acknowledged; stopping must land what is still queued.
    await supervisor.stop()

    async with session_scope(settings) as session:
        stored = list(
            await session.scalars(
                select(InterfaceMessage).where(
                    InterfaceMessage.instrument_id == world.cobas.id,
                    InterfaceMessage.direction == "in",
                )
            )
        )
        [result] = await session.scalars(
            select(Result).where(
                Result.order_test_id == world.placed["GLU"].id, Result.is_current.is_(True)
            )
        )
    assert sorted(m.status for m in stored) == ["ok"] * len(values)
    assert all(len(m.links["results"]) == 1 for m in stored)
    # Each message replaced the previous value, in the order they were sent.
    assert result.value_numeric == Decimal(values[-1])
