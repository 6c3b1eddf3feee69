"""Restore drill: back up a lab day, restore it into an empty database, prove it is the same."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.config import Settings
from nidaan.kit.db import session_scope
from nidaan.ops.backup import BackupError, check_archive, create_backup, restore_backup
from nidaan.sync.service import sync_service
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.schemas import BranchCreate
from nidaan.tenancy.service import tenancy_service


def _owner_url() -> str:
    return os.environ["NIDAAN_MIGRATION_DATABASE_URL"]


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _tables(url: str) -> int:
    with psycopg.connect(_libpq(url)) as connection:
        return len(
            connection.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
                "'information_schema')"
            ).fetchall()
        )


@pytest.fixture
def stores(settings: Settings, tmp_path: Path) -> tuple[Settings, Settings]:
    """Settings of the lab being backed up and of the machine it is restored on."""
    source = tmp_path / "source-files"
    (source / "reports" / "2026").mkdir(parents=True)
    (source / "reports" / "2026" / "R-1.pdf").write_bytes(b"%PDF-1.7 report " * 500)
    (source / "uploads.bin").write_bytes(os.urandom(9000))
    key = SecretStr(base64.urlsafe_b64encode(os.urandom(32)).decode())
    lab = settings.model_copy(update={"storage_url": source.as_uri(), "backup_key": key})
    restored = settings.model_copy(
        update={"storage_url": (tmp_path / "restored-files").as_uri(), "backup_key": key}
    )
    return lab, restored


async def _lab_day(settings: Settings) -> uuid.UUID:
    async with session_scope(settings) as session:
        organisation = await tenancy_service.create_organisation(
            session,
            name="Drill Diagnostics",
            slug=f"drill-{uuid.uuid4().hex[:8]}",
            actor=SYSTEM_ACTOR,
        )
        await tenancy_service.create_branch_in(
            session,
            organisation.id,
            BranchCreate(code="CL", name="Drill central lab", kind=BranchKind.CENTRAL_LAB),
            actor=SYSTEM_ACTOR,
        )
    async with session_scope(settings) as session:
        await audit_service.chain_pending(session, organisation.id, wait=True)
    return organisation.id


async def test_restore_drill_round_trips_database_files_and_audit_chain(
    stores: tuple[Settings, Settings], scratch_database: str, tmp_path: Path
) -> None:
    lab, restored = stores
    organisation_id = await _lab_day(lab)
    archive = tmp_path / "lab.nbk"

    manifest = create_backup(lab, _owner_url(), archive)

    assert archive.stat().st_mode & 0o777 == 0o600
    assert b"Drill Diagnostics" not in archive.read_bytes()  # encrypted, not just packed
    assert manifest["row_counts"]["public.organisations"] >= 1
    assert {m["path"] for m in manifest["members"]} >= {
        "database.dump",
        "files/reports/2026/R-1.pdf",
        "files/uploads.bin",
    }
    assert check_archive(lab, archive)["members"] == manifest["members"]

    report = restore_backup(restored, archive, scratch_database)

    assert report.ok, report.mismatched_tables
    assert report.row_counts == manifest["row_counts"]
    assert report.files_restored == 2
    source_root = Path(lab.storage_url.removeprefix("file://"))  # type: ignore[union-attr]
    target_root = Path(restored.storage_url.removeprefix("file://"))  # type: ignore[union-attr]
    for name in ("reports/2026/R-1.pdf", "uploads.bin"):
        assert (target_root / name).read_bytes() == (source_root / name).read_bytes()

    # The restored database verifies its audit chains and moves the sync epoch.
    engine = create_async_engine(scratch_database)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            verified = await audit_service.verify(session, organisation_id)
            assert verified.ok
            assert verified.entries_checked >= 2
            # Every organisation moves, also one that never synced (no state row yet):
            # its devices hold the default epoch 1, which must stop matching.
            await session.execute(
                text("DELETE FROM sync_tenant_state WHERE organisation_id = :org"),
                {"org": organisation_id},
            )
            organisations = await session.scalar(text("SELECT count(*) FROM organisations"))
            assert await sync_service.bump_epoch(session, None) == organisations
            after = await session.scalar(
                text("SELECT epoch FROM sync_tenant_state WHERE organisation_id = :org"),
                {"org": organisation_id},
            )
            assert after == 2
            assert await sync_service.bump_epoch(session, organisation_id) == 1
            again = await session.scalar(
                text("SELECT epoch FROM sync_tenant_state WHERE organisation_id = :org"),
                {"org": organisation_id},
            )
            assert again == after + 1
            await session.rollback()
    finally:
        await engine.dispose()

    # A second restore into the now non-empty database is refused.
    with pytest.raises(BackupError, match="not empty"):
        restore_backup(restored, archive, scratch_database)


@pytest.mark.parametrize("damage", ["flip", "truncate", "wrong_key"])
async def test_a_damaged_archive_restores_nothing(
    stores: tuple[Settings, Settings], scratch_database: str, tmp_path: Path, damage: str
) -> None:
    lab, restored = stores
    archive = tmp_path / "lab.nbk"
    create_backup(lab, _owner_url(), archive)
    data = bytearray(archive.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 100]
    else:
        other = base64.urlsafe_b64encode(os.urandom(32)).decode()
        restored = restored.model_copy(update={"backup_key": SecretStr(other)})
    archive.write_bytes(bytes(data))

    with pytest.raises(BackupError):
        restore_backup(restored, archive, scratch_database)
    assert _tables(scratch_database) == 0
