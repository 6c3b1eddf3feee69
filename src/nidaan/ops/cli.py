"""``nidaan backup`` and ``nidaan restore``: wiring only; the work is in ``ops.backup``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from nidaan.command_line import fail, open_database
from nidaan.config import ConfigurationError, get_settings
from nidaan.ops.backup import (
    BackupError,
    check_archive,
    create_backup,
    iter_summary,
    restore_backup,
)


def backup(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Archive to write (default: <NIDAAN_DATA_DIR>/backups/nidaan-<time>.nbk). "
            "Copy it off this machine: a backup on the same disk is no backup.",
        ),
    ] = None,
) -> None:
    """Back up the database (one consistent snapshot) and the file store into one archive,
    encrypted with NIDAAN_BACKUP_KEY, with a manifest of checksums and row counts.

    Safe while Nidaan runs. Restore it with: nidaan restore ARCHIVE
    """
    from nidaan.kit.db import migration_url

    settings = get_settings()
    open_database(settings)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out or settings.data_dir / "backups" / f"nidaan-{stamp}.nbk"
    try:
        manifest = create_backup(settings, migration_url(settings), target)
    except (BackupError, ConfigurationError) as exc:
        fail(str(exc))
    typer.echo(f"Backup written: {target} ({target.stat().st_size} bytes)")
    for line in iter_summary(manifest):
        typer.echo(f"  {line}")


def restore(
    archive: Annotated[Path, typer.Argument(help="A backup archive made by nidaan backup")],
    check_only: Annotated[
        bool,
        typer.Option("--check", help="Only decrypt and check the archive; restore nothing"),
    ] = False,
) -> None:
    """Restore a backup into an EMPTY database (a new NIDAAN_DATA_DIR, or a new database
    in NIDAAN_DATABASE_URL), then verify it: row counts against the manifest, the audit
    hash chains, and move the sync epoch so the collection centres re-pull."""
    from nidaan.kit.db import migration_url

    settings = get_settings()
    if not archive.is_file():
        fail(f"no such archive: {archive}")
    try:
        if check_only:
            manifest = check_archive(settings, archive)
            typer.echo(f"Archive OK: {archive}")
            for line in iter_summary(manifest):
                typer.echo(f"  {line}")
            return
        open_database(settings, may_create=True, require_current=False)
        report = restore_backup(settings, archive, migration_url(settings))
    except (BackupError, ConfigurationError) as exc:
        fail(str(exc))
    typer.echo(f"Restored {archive}:")
    for line in iter_summary(report.manifest):
        typer.echo(f"  {line}")
    typer.echo(f"  {report.files_restored} file(s) put back in the file store")
    if not report.ok:
        for table, (expected, found) in sorted(report.mismatched_tables.items()):
            typer.echo(f"  MISMATCH {table}: {found} rows, the backup had {expected}", err=True)
        raise typer.Exit(1)
    typer.echo(f"  row counts match the manifest ({len(report.row_counts)} tables)")
    audit_ok, audit_line, epochs = asyncio.run(after_restore(settings))
    typer.echo(f"  audit: {audit_line}")
    typer.echo(f"  sync epoch moved for {epochs} organisation(s): centres will re-pull")
    if not audit_ok:
        raise typer.Exit(1)


async def after_restore(settings) -> tuple[bool, str, int]:  # type: ignore[no-untyped-def]
    """Verify the audit chains of the restored data and move every sync epoch."""
    from nidaan.audit.service import audit_service
    from nidaan.kit.db import dispose, session_scope
    from nidaan.sync.service import sync_service

    try:
        async with session_scope(settings) as session:
            report = await audit_service.verify(session)
        async with session_scope(settings) as session:
            epochs = await sync_service.bump_epoch(session, None)
    finally:
        await dispose()
    if report.ok:
        line = f"OK, {report.entries_checked} entries in {report.organisations_checked} chain(s)"
        return True, line, epochs
    broken = report.first_broken
    return False, f"BROKEN at seq {broken.seq if broken else '?'}", epochs


def relay(
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between rounds when idle")
    ] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Publish what waits now, then stop")] = False,
) -> None:
    """Publish domain events from the outbox to NIDAAN_EVENTS_URL (nats:// or kafka://),
    in order and at least once (each message carries the event id for de-duplication).

    Run one next to the workers; a second one waits (only one publishes at a time).
    """
    from nidaan.events.relay import drain, open_sink, run_relay
    from nidaan.kit.db import dispose
    from nidaan.kit.signals import process_role, run_until_stopped
    from nidaan.logging import configure_logging

    settings = get_settings()
    if not settings.events_url:
        fail("NIDAAN_EVENTS_URL is not set (e.g. nats://127.0.0.1:4222 or kafka://host:9092)")
    configure_logging(settings)
    open_database(settings)

    async def run_once() -> None:
        sink = await open_sink(settings)
        try:
            typer.echo(f"Published {await drain(settings, sink)} event(s).")
        finally:
            await sink.close()
            await dispose()

    async def run_forever() -> None:
        typer.echo("Event relay running. Press Ctrl-C to stop.")
        try:
            await run_relay(settings, interval=interval)
        finally:
            await dispose()

    with process_role(typer.echo):
        run_until_stopped(run_once() if once else run_forever())
