"""What every ``nidaan`` command shares: the database it works on, short errors, --debug.

A command that touches the database first says which one it uses (embedded at PATH, or an
external host:port/name), never initialises a new embedded cluster unless it is meant to
(serve, demo run, db upgrade), and refuses a database whose schema is not the code's with
one line. Unexpected errors print as one or two lines; ``nidaan --debug ...`` shows the
traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

import typer
from sqlalchemy.engine import make_url

from nidaan.config import Settings
from nidaan.kit.embedded import EmbeddedDatabaseMissing, cluster_exists, to_psycopg_url

UPGRADE_HINT = "run nidaan db upgrade"


@dataclass
class _Options:
    debug: bool = False


#: Process-wide options of the root command (set by its ``--debug`` flag).
options = _Options()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``code``."""
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def describe_database(settings: Settings) -> str:
    """``embedded PostgreSQL at /srv/nidaan/var/pgdata`` or ``external PostgreSQL db:5432/lis``
    (never the password)."""
    if settings.database_url:
        url = make_url(to_psycopg_url(settings.database_url))
        database = url.database or ""
        if url.host:
            port = f":{url.port}" if url.port else ""
            return f"external PostgreSQL {url.host}{port}/{database}"
        socket = url.query.get("host")  # a Unix socket directory, e.g. ?host=/run/postgresql
        where = socket if isinstance(socket, str) else "the default directory"
        return f"external PostgreSQL {database} (Unix socket in {where})"
    return f"embedded PostgreSQL at {settings.data_dir / 'pgdata'}"


def schema_problem(current: str | None, head: str | None) -> str | None:
    """One line saying what is wrong with the schema revision, or None when it is the code's."""
    if current == head:
        return None
    if current is None:
        return (
            f"the database is not migrated (empty schema, the code needs {head}): {UPGRADE_HINT}."
        )
    return f"the database schema is at {current}, the code needs {head}: {UPGRADE_HINT}."


def open_database(
    settings: Settings, *, may_create: bool = False, require_current: bool = True
) -> None:
    """Announce the database and check it before a command uses it.

    ``may_create``: the command may initialise the embedded cluster and database (serve,
    demo run, db upgrade); the others refuse when it is not there. ``require_current``:
    refuse a database not at the code's migration head.
    """
    from nidaan import migrate as migrations
    from nidaan.kit.db import database_url

    typer.echo(f"Database: {describe_database(settings)}", err=True)
    pgdata = settings.data_dir / "pgdata"
    if not settings.database_url and not may_create and not cluster_exists(pgdata):
        fail(
            f"no Nidaan database at {pgdata}. Use the NIDAAN_DATA_DIR (or NIDAAN_DATABASE_URL) "
            f"the server uses; a new installation starts with: nidaan db upgrade."
        )
    try:
        database_url(settings, create=may_create)
    except EmbeddedDatabaseMissing:
        fail(schema_problem(None, migrations.head_revision()) or "")
    if require_current:
        problem = schema_problem(migrations.current_revision(settings), migrations.head_revision())
        if problem:
            fail(problem)


def explain(error: BaseException) -> str:
    """An unexpected error as one readable line (the traceback is for --debug)."""
    from sqlalchemy.exc import DBAPIError, ProgrammingError

    if isinstance(error, ProgrammingError) and "does not exist" in str(error.orig):
        first = str(error.orig).strip().splitlines()[0]
        return f"the database is missing something the code needs ({first}): {UPGRADE_HINT}."
    if isinstance(error, DBAPIError):
        first = (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
        return f"database error: {first}"
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def run(app: typer.Typer) -> None:
    """Run the root command; an unexpected error exits 1 with a short message."""
    try:
        app(prog_name="nidaan")
    except Exception as error:
        if options.debug:
            raise
        typer.secho(f"Error: {explain(error)}", fg=typer.colors.RED, err=True)
        typer.echo("(Run it again as nidaan --debug ... to see the traceback.)", err=True)
        raise SystemExit(1) from None


@contextlib.contextmanager
def terminal_interrupts_to_this_process() -> Iterator[None]:
    """Let Ctrl-C stop this process alone when a parent such as make started it on a terminal.

    The terminal sends SIGINT to its foreground process group. Under ``make run`` that group
    holds make too, and make dies of the signal ("make: *** [run] Interrupt", status 130)
    however cleanly the server stops. In a process group of its own that is the terminal's
    foreground, Ctrl-C reaches only the server, which stops and exits 0, and make with it.
    The terminal is handed back on the way out. Nothing changes when the shell started this
    process directly (it already leads its own group) or without a terminal.
    """
    try:
        terminal = sys.stdin.fileno()
        owned = os.isatty(terminal) and os.tcgetpgrp(terminal) == os.getpgrp()
    except (OSError, ValueError):
        owned = False
    previous_group = os.getpgrp()
    if not owned or previous_group == os.getpid():
        yield
        return
    # A background group that touches the terminal's settings gets SIGTTOU; we hand it back.
    previous_handler = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
        os.tcsetpgrp(terminal, os.getpgrp())
    except OSError:
        signal.signal(signal.SIGTTOU, previous_handler)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(terminal, previous_group)
        signal.signal(signal.SIGTTOU, previous_handler)
