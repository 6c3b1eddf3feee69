"""``nidaan audit verify``: recompute the audit hash chains from the command line."""

from __future__ import annotations

import asyncio
import uuid

import typer
from sqlalchemy import column, select, table

from nidaan.audit.service import VerifyReport, audit_service
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
) -> None:
    """Verify every audit hash chain; exit 1 if any link is broken."""
    open_database(get_settings())
    report = asyncio.run(_verify(organisation))
    if report.ok:
        typer.echo(
            f"OK: {report.entries_checked} audit entries in "
            f"{report.organisations_checked} organisation(s) verified."
        )
        return
    broken = report.first_broken
    assert broken is not None
    typer.echo("BROKEN: the audit trail has been altered.", err=True)
    typer.echo(f"  organisation: {broken.organisation_id}", err=True)
    typer.echo(f"  seq:          {broken.seq}", err=True)
    typer.echo(f"  entry id:     {broken.entry_id or '-'}", err=True)
    typer.echo(f"  reason:       {broken.reason}", err=True)
    typer.echo(f"  entries checked before stopping: {report.entries_checked}", err=True)
    raise typer.Exit(1)


async def _verify(organisation: str | None) -> VerifyReport:
    try:
        return await _verify_in_session(organisation)
    finally:
        # The pool belongs to this asyncio.run() loop; close it before the loop goes away.
        await dispose()


async def _verify_in_session(organisation: str | None) -> VerifyReport:
    async with session_scope(get_settings()) as session:
        organisation_id = None
        if organisation is not None:
            try:
                organisation_id = uuid.UUID(organisation)
            except ValueError:
                organisation_id = await session.scalar(
                    select(_organisations.c.id).where(_organisations.c.slug == organisation)
                )
            if organisation_id is None:
                typer.echo(f"No organisation with slug {organisation!r}.", err=True)
                raise typer.Exit(2)
        return await audit_service.verify(session, organisation_id)
