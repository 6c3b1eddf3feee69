"""``nidaan sync``: server-side sync tools (the device side is ``nidaan sync-agent``)."""

from __future__ import annotations

import asyncio
import uuid

import typer
from sqlalchemy import select

from nidaan.command_line import open_database
from nidaan.config import get_settings
from nidaan.graphql import sdl
from nidaan.kit.db import dispose, session_scope
from nidaan.sync.service import sync_service
from nidaan.tenancy.models import Organisation

sync_app = typer.Typer(help="Offline sync server tools (docs/sync.md).", no_args_is_help=True)


@sync_app.command("schema")
def schema_command() -> None:
    """Print the sync GraphQL schema (SDL), as served at /graphql/schema.graphql."""
    typer.echo(sdl())


@sync_app.command("bump-epoch")
def bump_epoch_command(
    organisation: str | None = typer.Option(
        None, "--organisation", "-o", help="Organisation id or slug (default: all)"
    ),
) -> None:
    """Run after restoring a backup: every device resets its local copy (its outbox is kept)
    and pulls again, so nobody keeps rows the restored database never had."""
    open_database(get_settings())
    changed = asyncio.run(_bump(organisation))
    typer.echo(f"Sync epoch bumped for {changed} organisation(s); devices reset on next sync.")


@sync_app.command("compact")
def compact_command() -> None:
    """Compact the change log now (the worker also does it daily)."""
    open_database(get_settings())
    counts = asyncio.run(_compact())
    typer.echo(", ".join(f"{name.replace('_', ' ')}: {value}" for name, value in counts.items()))


async def _bump(organisation: str | None) -> int:
    settings = get_settings()
    try:
        async with session_scope(settings) as session:
            org_id: uuid.UUID | None = None
            if organisation:
                found = await session.scalar(
                    select(Organisation.id).where(
                        (Organisation.slug == organisation)
                        | (Organisation.id == _maybe_uuid(organisation))
                    )
                )
                if found is None:
                    raise typer.BadParameter(f"no organisation {organisation!r}")
                org_id = found
            return await sync_service.bump_epoch(session, org_id)
    finally:
        await dispose()


async def _compact() -> dict[str, int]:
    settings = get_settings()
    try:
        async with session_scope(settings) as session:
            return await sync_service.compact(session, settings)
    finally:
        await dispose()


def _maybe_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
