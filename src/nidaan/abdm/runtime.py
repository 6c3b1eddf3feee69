"""Demo mode: run the ABDM simulator inside the server and register our bridge with it, so a
newcomer can walk ABHA creation, linking, consent and the encrypted push with test OTPs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn
from sqlalchemy import select

from nidaan.abdm.config import abdm_config, uses_embedded_simulator
from nidaan.abdm.gateway import GatewayError, HttpHieGateway
from nidaan.abdm.models import AbdmFacility
from nidaan.config import Settings
from nidaan.kit.db import session_scope
from nidaan.kit.storage import public_base_url

logger = logging.getLogger(__name__)


class EmbeddedSimulator:
    def __init__(self, settings: Settings) -> None:
        from nidaan.simulators.abdm import AbdmSimulator

        self.settings = settings
        self.simulator = AbdmSimulator()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.simulator.app,
                host="127.0.0.1",
                port=settings.abdm_simulator_port,
                log_level="warning",
                lifespan="off",
            )
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(), name="abdm-simulator")
        for _ in range(500):
            if self.server.started or self.task.done():
                break
            await asyncio.sleep(0.01)
        if not self.server.started:
            logger.error(
                "ABDM simulator could not start on port %s "
                "(in use? set NIDAAN_ABDM_SIMULATOR_PORT)",
                self.settings.abdm_simulator_port,
            )
            return
        logger.info("ABDM simulator on http://127.0.0.1:%s", self.settings.abdm_simulator_port)
        await self.register_bridge()

    async def register_bridge(self) -> None:
        """Tell the (simulated) gateway where our callbacks go and which HIP ids we serve."""
        async with session_scope(self.settings) as session:
            facilities = list(
                await session.scalars(select(AbdmFacility).where(AbdmFacility.is_active))
            )
        services = [(f.hip_id, f.name) for f in facilities]
        try:
            await HttpHieGateway(abdm_config(self.settings)).register_bridge(
                public_base_url(self.settings), services
            )
        except GatewayError as exc:
            logger.error("Could not register the bridge with the ABDM simulator: %s", exc)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 5)
        await self.simulator.aclose()


async def start_demo_simulator(settings: Settings) -> EmbeddedSimulator | None:
    """Start the simulator when this demo server is wired to it (None otherwise)."""
    if not uses_embedded_simulator(settings):
        return None
    embedded = EmbeddedSimulator(settings)
    await embedded.start()
    return embedded
