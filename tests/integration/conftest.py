"""Fixtures of the interface runtime tests (see ``support``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nidaan.config import Settings
from nidaan.integration.astm.transport import ASTMClient
from nidaan.integration.runtime import InterfaceSupervisor
from tests.integration.support import ANALYZER, World, make_world


@pytest.fixture
async def world(committing_session: Any) -> World:
    return await make_world(committing_session)


@pytest.fixture
async def supervisor(settings: Settings, world: World) -> AsyncIterator[InterfaceSupervisor]:
    running = InterfaceSupervisor(
        settings, reload_interval=0.3, listen_host="127.0.0.1", organisation_id=world.org
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def analyzer(
    supervisor: InterfaceSupervisor, world: World
) -> AsyncIterator[tuple[ASTMClient, asyncio.Queue[list[str]]]]:
    """The cobas itself: an instrument-role ASTM link connected to our listener."""
    replies: asyncio.Queue[list[str]] = asyncio.Queue()
    port = supervisor.port_of(world.cobas.id)
    assert port is not None
    client = ASTMClient(
        "127.0.0.1", port, lambda records, _frames: replies.put_nowait(records), ANALYZER
    )
    await client.start()
    await client.wait_connected(5)
    try:
        yield client, replies
    finally:
        await client.close()
