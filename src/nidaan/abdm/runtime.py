"""Demo mode: run the ABDM simulator inside the server and register our bridge with it, so a
newcomer can walk ABHA creation, linking, consent and the encrypted push with test OTPs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from sqlalchemy import select

from nidaan.abdm.config import abdm_config, uses_embedded_simulator
from nidaan.abdm.gateway import GatewayError, HttpHieGateway
from nidaan.abdm.models import AbdmFacility
from nidaan.config import Settings
from nidaan.kit.db import session_scope
from nidaan.kit.storage import public_base_url

logger = logging.getLogger(__name__)


class _SimulatorServer(uvicorn.Server):
    """Leaves Ctrl-C / SIGTERM to the main server (which stops this one in its lifespan)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedSimulator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.simulator: Any = None
        self.server: _SimulatorServer | None = None
        self.task: asyncio.Task[None] | None = None
        self.registration: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from nidaan.simulators.abdm import AbdmSimulator

        # Its RSA keys take a moment: made off the event loop, which keeps serving.
        self.simulator = await asyncio.to_thread(AbdmSimulator)
        self.server = _SimulatorServer(
            uvicorn.Config(
                self.simulator.app,
                host="127.0.0.1",
                port=self.settings.abdm_simulator_port,
                log_level="warning",
                lifespan="off",
            )
        )
        # Bind first: uvicorn exits the whole process when its own bind fails.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.settings.abdm_simulator_port))
        except OSError as exc:
            listener.close()
            logger.error(
                "ABDM simulator not started: port %s is taken (%s); set NIDAAN_ABDM_SIMULATOR_PORT",
                self.settings.abdm_simulator_port,
                exc,
            )
            return
        logger.info("ABDM simulator on http://127.0.0.1:%s", self.settings.abdm_simulator_port)
        self.registration = asyncio.create_task(self._register_when_up(), name="abdm-bridge")
        await self.server.serve(sockets=[listener])

    async def _register_when_up(self) -> None:
        for _ in range(1000):
            if self.server is not None and self.server.started:
                await self.register_bridge()
                return
            await asyncio.sleep(0.01)

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
        if self.registration is not None:
            self.registration.cancel()
        if self.server is not None:
            self.server.should_exit = True
        if self.task is not None:
            if self.server is None:
                self.task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.task, 5)
        if self.simulator is not None:
            await self.simulator.aclose()


async def start_demo_simulator(settings: Settings) -> EmbeddedSimulator | None:
    """Start the simulator in the background when this demo server is wired to it."""
    if not uses_embedded_simulator(settings):
        return None
    embedded = EmbeddedSimulator(settings)
    embedded.task = asyncio.create_task(embedded.start(), name="abdm-simulator")
    return embedded
