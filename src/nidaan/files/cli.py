"""``nidaan files purge``: list (``--dry-run``) or purge deleted files past their retention."""

from __future__ import annotations

import asyncio

import typer

from nidaan.config import get_settings
from nidaan.files.service import PurgeItem, files_service
from nidaan.kit.db import dispose, session_scope

files_app = typer.Typer(help="Stored files: retention clean-up.", no_args_is_help=True)


@files_app.callback()
def _group() -> None:
    """Stored files: retention clean-up."""


@files_app.command("purge")
def purge_command(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only list what would be purged; change nothing"
    ),
) -> None:
    """Purge deleted files whose retention has passed (all organisations)."""
    items = asyncio.run(_purge(dry_run))
    verb = "Would purge" if dry_run else "Purged"
    typer.echo(f"{verb} {len(items)} file(s), {sum(i.size_bytes for i in items)} bytes.")
    for item in items:
        typer.echo(
            f"  {item.file_id}  {item.purpose:<13} {item.size_bytes:>10}  "
            f"deleted {item.deleted_at:%Y-%m-%d}  retention ended {item.purge_after:%Y-%m-%d}"
            f"  {item.filename}"
        )


async def _purge(dry_run: bool) -> list[PurgeItem]:
    try:
        found: list[PurgeItem] = []
        while True:
            async with session_scope(get_settings()) as session:
                batch = await files_service.purge(session, dry_run=dry_run, limit=500)
            found += batch
            if dry_run or len(batch) < 500:
                return found
    finally:
        await dispose()
