"""ABDM tests run the real HTTP adapters against the simulator on loopback, and our own app on
loopback too (the simulator calls it back); jobs run inline through the real worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

import nidaan.abdm.handlers  # noqa: F401  (registers the report.finalized subscriber)
from nidaan.abdm import clients
from nidaan.abdm.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, AbdmConfig
from nidaan.abdm.gateway import HttpHieGateway
from nidaan.abdm.models import AbdmFacility
from nidaan.config import Settings
from nidaan.kit.ids import new_id
from nidaan.kit.jobs import close_job_app, open_job_app, run_pending_jobs
from nidaan.main import create_app
from nidaan.simulators.abdm import AbdmSimulator
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, make_lab

T = TypeVar("T")


class Served:
    """An ASGI app on a real loopback port, in the test's event loop."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await self.task


@pytest.fixture(scope="session")
async def job_app_open(settings: Settings) -> AsyncIterator[None]:
    await open_job_app(settings)
    yield
    await close_job_app()


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[AbdmSimulator, str]]:
    sim = AbdmSimulator()
    async with Served(sim.app) as served:
        yield sim, served.url
    await sim.aclose()


@pytest.fixture
async def hip_url(settings: Settings) -> AsyncIterator[str]:
    async with Served(create_app(settings)) as served:
        yield served.url


@dataclass
class AbdmWorld:
    sim: AbdmSimulator
    sim_url: str
    hip_url: str
    lab: Lab
    organisation: Any
    facility: AbdmFacility
    http: httpx.AsyncClient

    def headers(self, who: str = "front") -> dict[str, str]:
        return self.lab.headers(who)

    async def api(
        self, method: str, path: str, who: str = "front", **kwargs: Any
    ) -> httpx.Response:
        return await self.http.request(
            method, self.hip_url + path, headers=self.headers(who), **kwargs
        )

    async def sim_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, self.sim_url + path, timeout=30, **kwargs)


def config_for(sim_url: str) -> AbdmConfig:
    return AbdmConfig(
        gateway_url=sim_url + "/api/hiecm",
        abha_url=sim_url + "/abha/api",
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        cm_id="sbx",
        callback_timeout_seconds=120,
        otp_sms_url=sim_url + "/sim/phone/messages",
        simulated=True,
    )


@pytest.fixture
async def abdm(
    simulator: tuple[AbdmSimulator, str], hip_url: str, committing_session: Any, job_app_open: None
) -> AsyncIterator[AbdmWorld]:
    sim, sim_url = simulator
    clients.use_config(config_for(sim_url))
    async with committing_session() as session:
        organisation = await create_organisation(session, name="Sanjeevani Diagnostics")
        lab = await make_lab(session, organisation)
        facility = AbdmFacility(
            organisation_id=organisation.id,
            hip_id=f"IN27{new_id().hex[-8:].upper()}",
            name="Sanjeevani Diagnostics, Pune",
            branch_id=lab.branch.id,
            counter_code="REG-1",
            is_active=True,
        )
        session.add(facility)
    await HttpHieGateway(config_for(sim_url)).register_bridge(
        hip_url, [(facility.hip_id, facility.name)]
    )
    async with httpx.AsyncClient(timeout=30) as http:
        yield AbdmWorld(sim, sim_url, hip_url, lab, organisation, facility, http)
    clients.use_config(None)


async def settle(
    settings: Settings,
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    within: float = 20.0,
) -> T:
    """Run due jobs and let callbacks fly until ``ok(probe())`` (or time runs out)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        await run_pending_jobs(settings)
        value = await probe()
        if ok(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)
