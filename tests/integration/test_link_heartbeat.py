"""Link state across processes: `nidaan interfaces` publishes a heartbeat per instrument, so
an API process elsewhere reports the truth; a stale heartbeat reads as unknown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from nidaan.config import Settings
from nidaan.integration.runtime import InterfaceSupervisor
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.kit.time import utcnow
from tests.fixtures.results import principal_of
from tests.integration.support import World


async def _status(world: World, instrument_id: Any) -> Any:
    async with session_scope(Settings()) as session:
        return await integration_service.status(
            session, principal_of(world.lab.users["admin"]), instrument_id
        )


@pytest.fixture
def elsewhere() -> Any:
    """Forget this process's own link states: the status reads as an API process would."""
    saved = dict(integration_service._links)

    def forget() -> None:
        integration_service._links.clear()

    yield forget
    integration_service._links.clear()
    integration_service._links.update(saved)


async def test_api_elsewhere_reads_the_heartbeat_and_stale_means_unknown(
    settings: Settings, world: World, elsewhere: Any
) -> None:
    supervisor = InterfaceSupervisor(
        settings, reload_interval=0.2, listen_host="127.0.0.1", organisation_id=world.org
    )
    await supervisor.start()
    try:
        instrument = world.cobas.id
        integration_service.report_link(instrument, True)  # the analyzer is connected
        await supervisor._heartbeat()
        elsewhere()
        status = await _status(world, instrument)
        assert status.connected is True
        assert status.state == "connected"

        # The interfaces process stops beating (killed, stuck, network cut).
        async with session_scope(settings) as session:
            await session.execute(
                text(
                    "UPDATE instrument_link_heartbeats SET heartbeat_at = :old "
                    "WHERE instrument_id = :id"
                ),
                {"old": utcnow() - timedelta(minutes=2), "id": instrument},
            )
        status = await _status(world, instrument)
        assert status.connected is None  # unknown, never "connected"
        assert status.state != "connected"
    finally:
        await supervisor.stop()
    async with session_scope(settings) as session:
        left = await session.scalar(
            text("SELECT count(*) FROM instrument_link_heartbeats WHERE organisation_id = :org"),
            {"org": world.org},
        )
    assert left == 0  # a clean stop withdraws them: unknown at once
