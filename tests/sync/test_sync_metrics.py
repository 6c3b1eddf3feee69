"""Sync pushes, pulls and the ops they carry are counted on /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from nidaan.kit.ids import new_id
from nidaan.sync.hlc import Clock
from tests.sync.conftest import SYNC, SyncLab, gql
from tests.sync.test_graphql_smoke import op


async def _samples(client) -> dict[tuple[str, str], float]:  # type: ignore[no-untyped-def]
    text = (await client.get("/metrics")).text
    return {
        (sample.name, sample.labels.get("kind") or sample.labels.get("status") or ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name in ("nidaan_sync_requests", "nidaan_sync_ops")
    }


async def test_pushes_pulls_and_applied_ops_move_the_counters(
    live_client, sync_lab: SyncLab
) -> None:  # type: ignore[no-untyped-def]
    before = await _samples(live_client)
    device = str(new_id())
    clock = Clock(device)
    create = op(
        clock,
        1,
        "patient",
        str(new_id()),
        "create",
        {
            "full_name": "Meena Rao",
            "sex": "female",
            "age_years": 51,
            "registered_at_branch_id": str(sync_lab.cc1.id),
        },
    )
    body = await gql(live_client, sync_lab.desk1, SYNC, clientId=device, ops=[create])
    assert body["data"]["syncPendingOperations"]["results"][0]["status"] == "APPLIED"
    after = await _samples(live_client)

    def moved(name: str, label: str) -> float:
        return after.get((name, label), 0.0) - before.get((name, label), 0.0)

    assert moved("nidaan_sync_requests_total", "push") == 1
    assert moved("nidaan_sync_requests_total", "pull") >= 1
    assert moved("nidaan_sync_ops_total", "applied") == 1
