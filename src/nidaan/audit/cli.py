"""``nidaan audit verify``: recompute the audit hash chains from the command line."""

from __future__ import annotations

import asyncio
import uuid

import typer
from sqlalchemy import column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.checkpoints import (
    AnchoredReport,
    CheckpointWritten,
    checkpoint_store,
    signer_from_settings,
    verify_anchored,
    write_checkpoints,
)
from nidaan.audit.domain import format_timestamp
from nidaan.command_line import open_database
from nidaan.config import get_settings
from nidaan.kit.db import dispose, session_scope

audit_app = typer.Typer(help="Audit trail tools.", no_args_is_help=True)


@audit_app.callback()
def _group() -> None:
    """Audit trail tools."""
    # A callback keeps `verify` a subcommand even while it is the only command.


# A lightweight table clause, not the tenancy model: audit sits below tenancy in the
# import layers and only needs to turn a slug into an id.
_organisations = table("organisations", column("id"), column("slug"))


@audit_app.command("verify")
def verify_command(
    organisation: str | None = typer.Option(
        None, "--organisation", "-o", help="Organisation id or slug (default: all organisations)"
    ),
    checkpoints: int | None = typer.Option(
        None,
        "--checkpoints",
        min=1,
        help="Check against only the newest N signed checkpoints (default: all of them)",
    ),
) -> None:
    """Verify every audit hash chain, and each against its signed checkpoints (kept outside
    the database); exit 1 and name the first entry that differs if anything was altered."""
    open_database(get_settings())
    report = asyncio.run(_verify(organisation, checkpoints))
    if report.ok:
        typer.echo(
            f"OK: {report.entries_checked} audit entries in "
            f"{report.organisations_checked} organisation(s) verified."
        )
        _print_checkpoints(report, err=False)
        return
    broken = report.first_broken
    assert broken is not None
    typer.echo("BROKEN: the audit trail has been altered.", err=True)
    typer.echo(f"  organisation: {broken.organisation_id}", err=True)
    typer.echo(f"  seq:          {broken.seq}", err=True)
    typer.echo(f"  entry id:     {broken.entry_id or '-'}", err=True)
    typer.echo(f"  reason:       {broken.reason}", err=True)
    typer.echo(f"  entries checked before stopping: {report.entries_checked}", err=True)
    _print_checkpoints(report, err=True)
    raise typer.Exit(1)


def _print_checkpoints(report: AnchoredReport, *, err: bool) -> None:
    """The latest signed checkpoint of each organisation: copy these lines somewhere the
    lab keeps records (they let anyone re-check the trail later)."""
    typer.echo("Signed checkpoints (latest per organisation):", err=err)
    for checkpoints in report.checkpoints:
        latest = checkpoints.latest
        if latest is None:
            typer.echo(f"  {checkpoints.organisation_id}: no checkpoint yet", err=err)
            continue
        typer.echo(
            f"  {checkpoints.organisation_id}: seq {latest.seq} head {latest.head_hash} "
            f"at {format_timestamp(latest.created_at)} key {latest.key_id} "
            f"signature {latest.signature} "
            f"({checkpoints.checkpoints_checked} checkpoint(s), "
            f"{checkpoints.entries_checked} entries compared)",
            err=err,
        )


@audit_app.command("checkpoint")
def checkpoint_command(
    organisation: str | None = typer.Option(
        None, "--organisation", "-o", help="Organisation id or slug (default: all organisations)"
    ),
) -> None:
    """Sign and store a checkpoint of every chain that moved on (the worker does this
    every five minutes)."""
    written = asyncio.run(_checkpoint(organisation))
    refused = [w for w in written if w.checkpoint is None and w.skipped != "no new entries"]
    for item in written:
        if item.checkpoint is not None:
            typer.echo(
                f"{item.organisation_id}: checkpoint of seq {item.checkpoint.seq} written to "
                f"{item.key} (key {item.checkpoint.key_id})"
            )
        else:
            typer.echo(f"{item.organisation_id}: {item.skipped}", err=item in refused)
    if refused:
        raise typer.Exit(1)


async def _checkpoint(organisation: str | None) -> list[CheckpointWritten]:
    settings = get_settings()
    try:
        async with session_scope(settings) as session:
            organisation_id = await _organisation_id(session, organisation)
            return await write_checkpoints(
                session, checkpoint_store(settings), signer_from_settings(settings), organisation_id
            )
    finally:
        await dispose()


async def _verify(organisation: str | None, checkpoints: int | None) -> AnchoredReport:
    try:
        return await _verify_in_session(organisation, checkpoints)
    finally:
        # The pool belongs to this asyncio.run() loop; close it before the loop goes away.
        await dispose()


async def _verify_in_session(organisation: str | None, checkpoints: int | None) -> AnchoredReport:
    settings = get_settings()
    async with session_scope(settings) as session:
        organisation_id = await _organisation_id(session, organisation)
        return await verify_anchored(session, settings, organisation_id, limit=checkpoints)


async def _organisation_id(session: AsyncSession, organisation: str | None) -> uuid.UUID | None:
    if organisation is None:
        return None
    try:
        return uuid.UUID(organisation)
    except ValueError:
        found = await session.scalar(
            select(_organisations.c.id).where(_organisations.c.slug == organisation)
        )
    if found is None:
        typer.echo(f"No organisation with slug {organisation!r}.", err=True)
        raise typer.Exit(2)
    return uuid.UUID(str(found))
