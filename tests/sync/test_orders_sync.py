"""Orders over sync: placed offline, clinical notes guarded, cancellation checked."""

from __future__ import annotations

from typing import Any

from nidaan.kit.ids import new_id
from tests.fixtures.lab import create_catalog_test
from tests.sync.conftest import Device, SyncLab
from tests.sync.test_merge_classes import registered


async def placed_order(device: Device, lab: SyncLab, committing_session: Any) -> tuple[str, str]:
    async with committing_session() as session:
        test = await create_catalog_test(
            session, lab.organisation, code=f"G{new_id().hex[-5:].upper()}"
        )
    patient_id = await registered(device, lab)
    order_id = str(new_id())
    placed = await device.sync(
        device.op(
            "order",
            order_id,
            "create",
            {
                "patient_id": patient_id,
                "branch_id": str(lab.cc1.id),
                "items": [test.code],
                "clinical_notes": "fasting",
            },
        )
    )
    assert placed["results"][0]["status"] == "APPLIED", placed
    return patient_id, order_id


async def test_guarded_notes_from_one_base_open_one_conflict(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session
) -> None:
    creator = Device(live_client, sync_lab.desk1)
    other = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    _, order_id = await placed_order(creator, sync_lab, committing_session)
    await other.sync()
    base = other.row("order", order_id)["seq"]
    assert creator.row("order", order_id)["seq"] == base
    first = await other.sync(
        other.op("order", order_id, "update", {"clinical_notes": "on warfarin"}, baseVersion=base)
    )
    assert first["results"][0]["status"] == "APPLIED"
    second = await creator.sync(
        creator.op("order", order_id, "update", {"clinical_notes": "post-op"}, baseVersion=base)
    )
    assert second["results"][0]["status"] == "CONFLICT", second
    assert creator.row("order", order_id)["data"]["clinical_notes"] == "on warfarin"
    assert [t["status"] for t in creator.row("order", order_id)["data"]["tests"]] == ["active"]
