"""``nidaan sync-agent``: keep a collection centre's local copy in step with the server.

Without a subcommand it runs the agent (``--once`` for a single round). The subcommands read
and write the same SQLite file and are meant for a demo and for making a conflict by hand:
``status``, ``list``, ``show``, ``edit``, ``create``, ``failed``, ``conflicts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from nidaan.sync.client.engine import SyncClient
from nidaan.sync.client.errors import SyncError
from nidaan.sync.client.model import Row
from nidaan.sync.client.scheduler import SyncScheduler
from nidaan.sync.client.store import LocalStore
from nidaan.sync.client.transport import Transport

DEFAULT_DATA = Path("nidaan-sync.sqlite")

app = typer.Typer(
    help="Offline sync agent for a collection centre (see docs/sync.md).",
    invoke_without_command=True,
    pretty_exceptions_show_locals=False,
)

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="The agent's SQLite file [default: ./nidaan-sync.sqlite]"),
]


def _say(message: str) -> None:
    typer.echo(f"[{datetime.now().strftime('%H:%M:%S')}] {message}")


def _fail(message: str) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _data_path(ctx: typer.Context, data: Path | None) -> Path:
    return data or (ctx.obj or {}).get("data") or DEFAULT_DATA


def _open_store(path: Path, *, must_exist: bool = True) -> LocalStore:
    if must_exist and not path.exists():
        _fail(f"{path} does not exist; run `nidaan sync-agent --server ... --email ...` first")
    return LocalStore(path)


def _parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``field=text`` sets a string; ``field:=json`` sets a number, boolean, null or object."""
    values: dict[str, Any] = {}
    for item in assignments:
        if ":=" in item:
            key, raw = item.split(":=", 1)
            try:
                values[key] = json.loads(raw)
            except ValueError:
                _fail(f"{item!r}: the part after ':=' must be JSON (e.g. 45, true, null)")
        elif "=" in item:
            key, text = item.split("=", 1)
            values[key] = text
        else:
            _fail(f"{item!r}: write field=value (text) or field:=value (JSON)")
    return values


async def _resolve_branch(transport: Transport, branch: str) -> str:
    """A branch id as given, or the id of the branch with this code."""
    try:
        return str(uuid.UUID(branch))
    except ValueError:
        pass
    page = 1
    while True:
        body = await transport.get_json("/api/v1/branches", page=page, limit=100)
        for item in body.get("items", []):
            if str(item.get("code", "")).upper() == branch.upper():
                return str(item["id"])
        if page >= int((body.get("pagination") or {}).get("max_page", page)):
            break
        page += 1
    _fail(f"no branch with code {branch!r} is visible to this user")
    raise AssertionError  # unreachable


@app.callback()
def agent(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option("--server", help="Nidaan server URL, e.g. https://lab.example.com"),
    ] = None,
    email: Annotated[str | None, typer.Option("--email", help="Login of the agent's user")] = None,
    password_env: Annotated[
        str, typer.Option("--password-env", help="Environment variable holding the password")
    ] = "NIDAAN_SYNC_PASSWORD",  # noqa: S107 - the variable's name, not a password
    data: DataOption = None,
    branch: Annotated[
        str | None,
        typer.Option("--branch", help="Branch this device serves: its id or code (e.g. CC1)"),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Sync once and exit")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=1.0, help="Seconds between routine syncs")
    ] = 30.0,
) -> None:
    """Run the sync agent: push local changes, pull the branch's data, repeat.

    Leave it running on the collection centre's computer. It syncs a second or two after each
    local change, every --interval seconds, and as soon as the line comes back; while the
    server cannot be reached it retries with growing pauses (5 s up to 5 min). Ctrl-C stops it;
    nothing queued is lost.
    """
    ctx.obj = {"data": data}
    if ctx.invoked_subcommand is not None:
        return
    path = data or DEFAULT_DATA
    store = _open_store(path, must_exist=False)
    server = server or store.get_meta("server_url")
    email = email or store.get_meta("email")
    if not server or not email:
        _fail("give --server and --email (they are remembered in the data file afterwards)")
    password = os.environ.get(password_env)
    if password is None:
        _fail(f"set the password in the environment variable {password_env}")
    store.set_meta("email", email)
    code = asyncio.run(_run_agent(store, server, email, password, branch, once, interval))
    raise typer.Exit(code)


async def _run_agent(
    store: LocalStore,
    server: str,
    email: str,
    password: str | None,
    branch: str | None,
    once: bool,
    interval: float,
) -> int:
    transport = Transport(server, email=email, password=password)
    try:
        branch_id = await _resolve_branch(transport, branch) if branch else None
        client = SyncClient(store, transport, branch_id=branch_id)
        scheduler = SyncScheduler(client, interval_s=interval, on_event=_say)
        _say(f"sync agent {client.client_id} -> {server} (data: {store.path})")
        if once:
            report = await scheduler.attempt()
            _say(scheduler.status().line())
            return 0 if report is not None else 2
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        status_task = asyncio.create_task(_print_status(scheduler, stop, interval))
        await scheduler.run(stop)
        stop.set()
        await status_task
        _say(f"stopped. {scheduler.status().line()}")
        return 0 if scheduler.stopped is None else 3
    except SyncError as exc:
        _say(f"error: {exc}")
        return 2
    finally:
        await transport.aclose()
        store.close()


async def _print_status(scheduler: SyncScheduler, stop: asyncio.Event, every: float) -> None:
    last = ""
    while not stop.is_set():
        line = scheduler.status().line()
        if line != last:
            _say(line)
            last = line
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


def _print_row(row: Row) -> None:
    flags = (" [deleted]" if row.deleted else "") + (
        f" [{row.pending} pending]" if row.pending else ""
    )
    typer.echo(f"{row.entity} {row.id} v{row.version}{flags}")
    typer.echo(json.dumps(row.data, indent=2, ensure_ascii=False, sort_keys=True))


@app.command("status")
def status_command(ctx: typer.Context, data: DataOption = None) -> None:
    """What the local copy holds and what is waiting to be sent."""
    store = _open_store(_data_path(ctx, data))
    meta = store.meta()
    typer.echo(f"client id      {store.client_id}")
    typer.echo(f"server         {meta.get('server_url', '-')} as {meta.get('email', '-')}")
    typer.echo(f"branch         {meta.get('branch_id') or 'whole organisation / default'}")
    typer.echo(f"last sync      {meta.get('last_sync_at', 'never')}")
    typer.echo(f"clock offset   {meta.get('clock_offset_ms', '0')} ms")
    typer.echo(f"pending ops    {store.pending_count()}")
    typer.echo(f"failed ops     {store.failed_count()}")
    typer.echo(f"open conflicts {store.open_conflict_count()}")
    if meta.get("upgrade_required"):
        typer.secho("UPGRADE REQUIRED: the server no longer accepts this client", fg="red")
    for entity, count in store.counts().items():
        typer.echo(f"  {entity:<12} {count} rows")
    store.close()


@app.command("list")
def list_command(
    ctx: typer.Context,
    entity: Annotated[str, typer.Argument(help="patient, order, sample, payment, conflict ...")],
    data: DataOption = None,
    include_deleted: Annotated[bool, typer.Option("--all", help="Include deleted rows")] = False,
) -> None:
    """One line per local row (local changes not yet synced are marked *)."""
    store = _open_store(_data_path(ctx, data))
    rows = store.rows(entity, include_deleted=include_deleted)
    if not rows:
        typer.echo(f"no {entity} rows in the local copy")
    else:
        typer.echo(f"  {'ID':<36}  {'VERSION':<7}  NAME / NUMBER")
    for row in rows:
        label = (
            row.data.get("full_name")
            or row.data.get("accession")
            or row.data.get("order_number")
            or row.data.get("status")
            or ""
        )
        mark = "*" if row.pending else " "
        gone = " (deleted)" if row.deleted else ""
        typer.echo(f"{mark} {row.id!s:<36}  {'v' + str(row.version):<7}  {label}{gone}")
    store.close()


@app.command("show")
def show_command(ctx: typer.Context, entity: str, entity_id: str, data: DataOption = None) -> None:
    """A row as the user sees it, and as last synced."""
    store = _open_store(_data_path(ctx, data))
    row = store.get(entity, entity_id)
    if row is None:
        _fail(f"no {entity} {entity_id} in the local copy")
    assert row is not None
    _print_row(row)
    for op in store.pending_for(entity, entity_id):
        typer.echo(f"pending #{op.client_seq} {op.operation} {json.dumps(op.data)}")
    store.close()


def _local_client(store: LocalStore) -> SyncClient:
    # Queuing needs no network: the transport is never used here.
    return SyncClient(store, Transport(store.get_meta("server_url") or ""))


@app.command("edit")
def edit_command(
    ctx: typer.Context,
    entity: str,
    entity_id: str,
    assignments: Annotated[list[str], typer.Argument(help="field=text or field:=json")],
    data: DataOption = None,
    base_version: Annotated[
        int | None,
        typer.Option("--base-version", help="Version you edited [default: the synced one]"),
    ] = None,
) -> None:
    """Queue a local update (sent at the next sync). Edit the same field on two agents to
    make a conflict."""
    store = _open_store(_data_path(ctx, data))
    changes = _parse_assignments(assignments)
    op = _local_client(store).update(entity, entity_id, changes, base_version=base_version)
    typer.echo(f"queued #{op.client_seq} update {entity} {entity_id} (base v{op.base_version})")
    store.close()


@app.command("create")
def create_command(
    ctx: typer.Context,
    entity: str,
    assignments: Annotated[list[str], typer.Argument(help="field=text or field:=json")],
    data: DataOption = None,
) -> None:
    """Queue a new row (sent at the next sync).

    Example: create patient full_name='Asha Verma' sex=female age_years:=45
    """
    store = _open_store(_data_path(ctx, data))
    row_id = _local_client(store).create(entity, _parse_assignments(assignments))
    typer.echo(f"queued create {entity} {row_id}")
    store.close()


@app.command("failed")
def failed_command(ctx: typer.Context, data: DataOption = None) -> None:
    """Changes the server refused (they are never retried; redo them in Nidaan if needed)."""
    store = _open_store(_data_path(ctx, data))
    for failed in store.failed():
        op = failed.op
        typer.echo(
            f"#{op.client_seq} {op.operation} {op.entity} {op.entity_id}: {failed.reason} "
            f"{json.dumps(op.data)}"
        )
    store.close()


@app.command("conflicts")
def conflicts_command(
    ctx: typer.Context,
    data: DataOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="Resolved ones too")] = False,
) -> None:
    """Conflicts this copy knows of; they are resolved in the lab (docs/sync.md)."""
    store = _open_store(_data_path(ctx, data))
    conflicts = store.conflicts(None if show_all else "OPEN")
    if not conflicts:
        typer.echo("no conflicts" if show_all else "no open conflicts")
    for conflict in conflicts:
        values = conflict.data
        server, client = values.get("server_value"), values.get("client_value")
        now = values.get("current_value", server)
        typer.echo(
            f"{conflict.id} {conflict.status} {conflict.kind or ''} {conflict.entity} "
            f"{conflict.entity_id} {conflict.field or ''}: server={server!r} client={client!r} "
            f"now={now!r}"
        )
    store.close()
