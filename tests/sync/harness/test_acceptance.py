"""Seeded randomised acceptance run of offline sync (spec §4; issue 5, "Acceptance harness").

Ten devices (the reference client, each with its own SQLite file, user, branch and clock) work
against the real app and PostgreSQL through a faulty transport, then the faults stop, every
device drains its outbox, and the properties are checked. Reproduce one seed with
``pytest tests/sync/harness --seed N``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from nidaan.config import Settings
from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import UpgradeRequired
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport
from nidaan.sync.service import sync_service
from tests.fixtures.objects import TEST_PASSWORD
from tests.sync.harness import checks
from tests.sync.harness.sim import Simulation
from tests.sync.harness.world import build_world

ROUNDS = 22


async def test_acceptance(
    seed: int,
    live_client: httpx.AsyncClient,
    settings: Settings,
    committing_session: Any,
    superuser_conninfo: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    try:
        summary = await _run(
            seed, live_client, settings, committing_session, superuser_conninfo, tmp_path
        )
    except BaseException as error:
        raise AssertionError(
            f"sync harness failed with seed {seed} "
            f"(reproduce: pytest tests/sync/harness --seed {seed}): {error}"
        ) from error
    with capsys.disabled():
        print(f"\nsync harness seed {seed}: {summary} in {time.monotonic() - started:.1f}s")


async def _run(
    seed: int,
    http: httpx.AsyncClient,
    settings: Settings,
    committing_session: Any,
    conninfo: str,
    folder: Path,
) -> dict[str, Any]:
    world = await build_world(committing_session)
    sim = Simulation(seed, world, http, folder)
    org = world.organisation_id

    # Rounds with faults, and a reader tailing the change log while devices write.
    tailer = checks.Tailer(conninfo, org)
    tail = asyncio.create_task(tailer.run())
    try:
        await sim.run(ROUNDS)
        # A scripted delete while the sleeper is away, so its cursor predates a tombstone.
        await sim.quiesce([d for d in sim.devices.values() if d.name == "admin"])
        sim._delete_patient(sim.devices["admin"])
    finally:
        tailer.stop = True
        await tail
    assert not tailer.violations, tailer.violations[:5]

    # Faults stop; everyone but the sleeper drains and catches up.
    sim.plan.enabled = False
    awake = [d for d in sim.devices.values() if d.name != "sleeper"]
    await sim.quiesce(awake)
    head = await checks.check_contiguous(sim, committing_session)

    # 8. The sleeper was away past the horizon: tombstones are forgotten, it must reset.
    sleeper = sim.devices["sleeper"]
    await _backdate_and_compact(committing_session, settings, org)
    queued = len(sleeper.client.pending())
    await sim.quiesce([sleeper])
    horizon = await checks.scalar(
        committing_session,
        "SELECT tombstone_horizon_seq FROM sync_tenant_state WHERE organisation_id = :org",
        org=org,
    )
    assert sleeper.resets >= 1, (
        f"the sleeper was not reset after the horizon (horizon seq {horizon}, "
        f"its cursor {sleeper.client.cursor}, {sim.log[-3:]})"
    )
    await sim.quiesce(awake)

    summary: dict[str, Any] = {"ops": len(sim.ops), "head_seq": head}
    summary["statuses"] = await checks.check_results(sim, committing_session)
    summary["lww_fields"], summary["lww_ambiguous"] = await checks.check_lww(
        sim, committing_session
    )
    summary["appends"] = await checks.check_appends(sim, committing_session)
    summary["conflicts"] = await checks.check_conflicts(sim, committing_session)
    summary["verified_edits_rejected"] = await checks.check_verified(sim, committing_session)
    summary["v1_ops_applied"] = checks.check_schema_window(sim)
    await checks.check_clock_flags(sim)
    summary["rows_compared"] = await checks.check_convergence(sim, http, folder, "final")
    summary["replays"] = await checks.check_replay(sim, committing_session, http)

    # 5. Resolve conflicts (once, then again), then everyone converges on the outcome.
    summary["resolved"], _ = await checks.resolve_all(sim, committing_session)
    await sim.quiesce(list(sim.devices.values()))
    await checks.check_convergence(sim, http, folder, "resolved")

    # 8. A restore: the epoch bump resets every device, which converges again.
    async with committing_session() as session:
        await sync_service.bump_epoch(session, _uuid(org))
    resets = {d.name: d.resets for d in sim.devices.values()}
    await sim.quiesce(list(sim.devices.values()))
    assert all(d.resets > resets[d.name] for d in sim.devices.values()), "epoch bump: no reset"
    await checks.check_convergence(sim, http, folder, "epoch")

    # 11. Outside the schema window nothing is applied and the client is told to upgrade.
    await _check_upgrade_required(http, world.emails["admin"], folder)
    summary["faults"] = {
        "dropped": sim.recorder.dropped,
        "duplicated": sim.recorder.duplicated,
        "replayed": sim.recorder.replayed,
        "sleeper_queued": queued,
    }
    return summary


async def _backdate_and_compact(committing_session: Any, settings: Settings, org: str) -> None:
    async with committing_session() as session:
        from sqlalchemy import text

        await session.execute(
            text(
                "UPDATE sync_change_log SET committed_at = committed_at - interval '400 days' "
                "WHERE organisation_id = :org AND op = 'delete'"
            ),
            {"org": org},
        )
        await sync_service.compact(session, settings)


async def _check_upgrade_required(http: httpx.AsyncClient, email: str, folder: Path) -> None:
    transport = Transport("", email=email, password=TEST_PASSWORD, http=http)
    old = SyncClient(LocalStore(folder / "too-old.sqlite"), transport, schema_version=0)
    old.update("patient", "0190f000-0000-7000-8000-000000000000", {"city": "Pune"})
    with pytest.raises(UpgradeRequired):
        await old.sync()
    assert old.upgrade_required
    assert len(old.pending()) == 1


def _uuid(value: str) -> Any:
    import uuid

    return uuid.UUID(value)
