"""Deletes reach devices as tombstones; past the horizon, or after a restore, devices reset."""

from __future__ import annotations

from sqlalchemy import text

from nidaan.config import get_settings
from nidaan.sync.service import sync_service
from tests.sync.conftest import Device, SyncLab
from tests.sync.test_merge_classes import registered


async def test_delete_is_a_tombstone_then_old_cursors_reset(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session
) -> None:
    desk = Device(live_client, sync_lab.desk1)
    admin = Device(live_client, sync_lab.admin)
    late = Device(live_client, sync_lab.desk1)
    patient_id = await registered(desk, sync_lab)
    await admin.sync()
    await late.sync()
    stale_cursor = late.cursor
    gone = await admin.sync(admin.op("patient", patient_id, "delete", {}))
    assert gone["results"][0]["status"] == "APPLIED"
    await desk.sync()
    assert desk.row("patient", patient_id)["deleted"] is True
    assert desk.row("patient", patient_id)["data"] is None
    # Within the horizon, a device that was away still gets the tombstone.
    # Past it, the delete is forgotten and the device must start over.
    async with committing_session() as session:
        await session.execute(
            text(
                "UPDATE sync_change_log SET committed_at = now() - interval '90 days' "
                "WHERE organisation_id = :org AND op = 'delete'"
            ),
            {"org": sync_lab.organisation.id},
        )
        await sync_service.compact(session, get_settings())
    late.cursor = stale_cursor
    reset = await late.sync()
    assert reset["reset"] is True
    assert reset["cursor"] is None
    late.rows.clear()
    await late.sync()
    assert ("patient", patient_id) not in late.rows


async def test_epoch_bump_resets_every_device(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session
) -> None:
    desk = Device(live_client, sync_lab.desk1)
    await registered(desk, sync_lab)
    async with committing_session() as session:
        await sync_service.bump_epoch(session, sync_lab.organisation.id)
    assert (await desk.sync())["reset"] is True
