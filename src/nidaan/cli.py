"""The `nidaan` command: run the server and worker, migrate, seed the demo, manage users.

Each command wires settings and calls services; no business rule lives here.
"""

from __future__ import annotations

import asyncio
import enum
import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from nidaan import command_line
from nidaan.audit.cli import audit_app
from nidaan.autoverify.cli import autoverify_app
from nidaan.command_line import fail, open_database, terminal_interrupts_to_this_process
from nidaan.config import (
    ConfigurationError,
    Mode,
    Settings,
    check_production_ready,
    get_settings,
    reset_settings,
)
from nidaan.files.cli import files_app
from nidaan.integration.cli import interfaces
from nidaan.keys_cli import keys_app
from nidaan.kit.signals import process_role
from nidaan.ops.cli import backup, relay, restore
from nidaan.simulators.abdm_cli import abdm_sim
from nidaan.simulators.cli import analyzer_sim
from nidaan.sync.cli import sync_app
from nidaan.sync.client.cli import app as sync_agent_app
from nidaan.worker.cli import worker

app = typer.Typer(
    help="Nidaan laboratory information system. Start with: nidaan serve --help",
    no_args_is_help=True,
    # Plain help (flags read as flags, not "--once <bool>"); errors are short lines, the
    # traceback only with --debug (command_line.run).
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema: apply and check migrations.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo lab data (only in NIDAAN_MODE=demo).", no_args_is_help=True)
user_app = typer.Typer(help="Staff user accounts.", no_args_is_help=True)
org_app = typer.Typer(help="Organisations (tenants).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(sync_app, name="sync")
app.add_typer(sync_agent_app, name="sync-agent")
app.add_typer(files_app, name="files")
app.add_typer(autoverify_app, name="autoverify")
app.command("worker")(worker)
app.command("analyzer-sim")(analyzer_sim)
app.command("interfaces")(interfaces)
app.command("abdm-sim")(abdm_sim)
app.command("backup")(backup)
app.command("restore")(restore)
app.command("relay")(relay)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback when a command fails")
    ] = False,
) -> None:
    """Nidaan laboratory information system. Start with: nidaan serve --help"""
    command_line.options.debug = debug


def main() -> None:
    """The ``nidaan`` entry point."""
    command_line.run(app)


class ServeRole(enum.StrEnum):
    ALL = "all"
    API = "api"


def _listen_on(host: str | None, port: int | None) -> None:
    """Make ``--host``/``--port`` the settings of this process before they are read, so
    everything derived from them (the demo's simulator URLs and webhooks, links in messages
    and file links) names where we really listen; child processes (``--processes``) read
    the same from the environment."""
    if host:
        os.environ["NIDAAN_HOST"] = host
    if port:
        os.environ["NIDAAN_PORT"] = str(port)
    if host or port:
        reset_settings()


def _settings() -> Settings:
    try:
        settings = get_settings()
        if settings.is_production:
            from nidaan.notifications.channels.registry import simulator_url_problems

            problems = check_production_ready(settings) + simulator_url_problems(settings)
            if problems:
                fail("cannot start in production mode:\n  - " + "\n  - ".join(problems))
        return settings
    except ConfigurationError as exc:
        fail(str(exc))
        raise  # unreachable; keeps type checkers calm


async def _demo_present(settings: Settings) -> bool:
    from nidaan.demo.seed import demo_data_present
    from nidaan.kit.db import dispose, session_scope

    try:
        async with session_scope(settings) as session:
            return await demo_data_present(session)
    finally:
        await dispose()


def _ensure_schema_current(settings: Settings, migrate: bool) -> None:
    from nidaan import migrate as migrations

    current, head = migrations.current_revision(settings), migrations.head_revision()
    if current == head:
        return
    if migrate:
        typer.echo(f"Applying database migrations ({current or 'empty'} -> {head}) ...")
        migrations.upgrade(settings)
        return
    fail(command_line.schema_problem(current, head) or "")


def _check_database_role(settings: Settings) -> None:
    """Production refuses a database role that could switch the audit triggers off."""
    from nidaan import migrate as migrations

    problems = migrations.database_role_problems(settings)
    if not problems:
        return
    advice = (
        "; give it its own role without ownership and let NIDAAN_MIGRATION_DATABASE_URL run "
        "migrations (docs/security.md, 'Database roles')"
    )
    if settings.is_production:
        fail(", ".join(problems) + advice)
    typer.secho(f"Warning: {', '.join(problems)}{advice}.", fg=typer.colors.YELLOW, err=True)


def _serve(
    settings: Settings,
    role: ServeRole,
    banner: str | None = None,
    processes: int = 1,
) -> None:
    """Serve on ``settings.host:settings.port`` (``--host``/``--port`` are already in them:
    ``_listen_on``; child processes read the same from the environment)."""
    import uvicorn

    from nidaan.kit.db import database_url
    from nidaan.kit.signals import ServerProcesses
    from nidaan.main import create_app

    host, port = settings.host, settings.port
    run_worker = role is ServeRole.ALL and settings.worker_in_process
    if banner:
        typer.echo(banner)
    typer.echo(f"Nidaan is running on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    typer.echo("Press Ctrl-C to stop.")
    with terminal_interrupts_to_this_process():
        if processes > 1:
            # Child processes find the (possibly embedded) database through the environment.
            os.environ["NIDAAN_DATABASE_URL"] = database_url(settings)
            os.environ["NIDAAN_WORKER_IN_PROCESS"] = "true" if run_worker else "false"
            config = uvicorn.Config(
                "nidaan.main:app_from_environment",
                factory=True,
                host=host,
                port=port,
                workers=processes,
                log_config=None,
                proxy_headers=True,
                # Each process imports the whole app before it answers the supervisor's health
                # check; on a busy machine that takes longer than uvicorn's default 5 s.
                timeout_worker_healthcheck=60,
            )
            ServerProcesses(config, sockets=[config.bind_socket()]).run()
        else:
            # One process: it also runs the analyzer connections (several processes would
            # all try to bind the instruments' ports; run `nidaan interfaces` then).
            application = create_app(
                settings,
                run_worker=run_worker,
                run_interfaces=role is ServeRole.ALL,
                metrics_port=settings.metrics_port,
                freeze_gc=True,
            )
            uvicorn.Server(
                uvicorn.Config(
                    application, host=host, port=port, log_config=None, proxy_headers=True
                )
            ).run()


@app.command()
def serve(
    role: Annotated[
        ServeRole,
        typer.Option(
            help="all: API + background worker in one process (default). api: API only, "
            "for scaling out behind a load balancer with separate nidaan worker processes."
        ),
    ] = ServeRole.ALL,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default NIDAAN_HOST or 127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default NIDAAN_PORT or 8000)")
    ] = None,
    migrate: Annotated[
        bool, typer.Option("--migrate", help="Apply pending database migrations first")
    ] = False,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            help="Server processes sharing the port (use the number of CPU cores for the API "
            "role on a dedicated machine).",
        ),
    ] = 1,
) -> None:
    """Start the Nidaan server.

    Without NIDAAN_DATABASE_URL it starts an embedded PostgreSQL under NIDAAN_DATA_DIR
    (default ./var) and stops it again on Ctrl-C.
    """
    _listen_on(host, port)
    settings = _settings()
    with process_role(typer.echo):
        open_database(settings, may_create=True, require_current=False)
        _ensure_schema_current(settings, migrate)
        # Demo data first: no database role makes a demo database fit for production.
        if settings.is_production and asyncio.run(_demo_present(settings)):
            fail(
                "this database holds demo data (demo organisations and passwords); "
                "production mode refuses to start with it. Use a fresh database."
            )
        _check_database_role(settings)
        _serve(settings, role, processes=processes)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (safe to run repeatedly)."""
    from nidaan import migrate as migrations

    settings = _settings()
    open_database(settings, may_create=True, require_current=False)
    before = migrations.current_revision(settings)
    migrations.upgrade(settings)
    after = migrations.current_revision(settings)
    typer.echo(
        "Already up to date." if before == after else f"Upgraded {before or 'empty'} -> {after}."
    )


@db_app.command("check")
def db_check() -> None:
    """Check the schema is at the latest migration and matches the code; exit 1 if not."""
    from nidaan import migrate as migrations

    settings = _settings()
    open_database(settings, require_current=True)
    head = migrations.head_revision()
    differences = migrations.schema_differences(settings)
    if differences:
        fail("the models differ from the schema:\n  " + "\n  ".join(map(repr, differences)))
    typer.echo(f"OK: schema at {head} and matching the models.")


def demo_banner() -> str:
    from nidaan.demo.seed import demo_logins

    lines = ["", "Demo logins (password for all: nidaan-demo):"]
    lines += [f"  {login}" for login, _ in demo_logins()]
    lines += abdm_banner()
    lines.append("")
    return "\n".join(lines)


def abdm_banner() -> list[str]:
    from nidaan.abdm.config import simulator_base_url, uses_embedded_simulator

    settings = get_settings()
    if not uses_embedded_simulator(settings):
        return []
    return [
        "",
        f"ABDM simulator: {simulator_base_url(settings)}  (test OTP 123456; walk-through in "
        "docs/abdm.md)",
    ]


async def _seed(settings: Settings) -> list[str]:
    from nidaan.demo.seed import seed_demo
    from nidaan.kit.db import dispose, session_scope

    try:
        async with session_scope(settings) as session:
            return (await seed_demo(session)).created
    finally:
        await dispose()


def _require_demo_mode(settings: Settings) -> None:
    if settings.mode is Mode.PRODUCTION:
        fail(
            "demo data exists only in demo mode; set NIDAAN_MODE=demo "
            "(never on a real lab's database)."
        )


@demo_app.command("seed")
def demo_seed() -> None:
    """Create the demo organisations, branches and users (idempotent)."""
    settings = _settings()
    _require_demo_mode(settings)
    open_database(settings)
    created = asyncio.run(_seed(settings))
    typer.echo(
        f"Created {len(created)} demo records."
        if created
        else "Demo data already present; nothing changed."
    )


@demo_app.command("run")
def demo_run(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default NIDAAN_PORT or 8000)")
    ] = None,
) -> None:
    """Migrate, seed the demo lab and serve it (what make run does)."""
    _listen_on(host, port)
    settings = _settings()
    _require_demo_mode(settings)
    with process_role(typer.echo):
        open_database(settings, may_create=True, require_current=False)
        _ensure_schema_current(settings, migrate=True)
        created = asyncio.run(_seed(settings))
        typer.echo(
            f"Demo data: created {len(created)} records."
            if created
            else "Demo data: already present."
        )
        from nidaan.demo.lab_day import demo_analyzer_banner

        typer.echo(demo_analyzer_banner(settings.demo_analyzer_port))
        _serve(settings, ServeRole.ALL, banner=demo_banner())


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="Display name, e.g. 'Sai Diagnostics'")],
    slug: Annotated[str, typer.Option(help="Short unique id: lower-case letters, digits, dashes")],
    lab_code: Annotated[str, typer.Option(help="Code of the central lab branch")] = "CL",
) -> None:
    """Create an organisation with its central lab branch."""
    settings = _settings()
    open_database(settings)
    asyncio.run(_org_create(settings, name, slug, lab_code))


async def _org_create(settings: Settings, name: str, slug: str, lab_code: str) -> None:
    from nidaan.audit.schemas import SYSTEM_ACTOR
    from nidaan.kit.db import dispose, session_scope
    from nidaan.kit.errors import NidaanError
    from nidaan.tenancy.enums import BranchKind
    from nidaan.tenancy.schemas import BranchCreate
    from nidaan.tenancy.service import tenancy_service

    try:
        async with session_scope(settings) as session:
            organisation = await tenancy_service.create_organisation(
                session, name=name, slug=slug, actor=SYSTEM_ACTOR
            )
            await tenancy_service.create_branch_in(
                session,
                organisation.id,
                BranchCreate(
                    code=lab_code, name=f"{name} central lab", kind=BranchKind.CENTRAL_LAB
                ),
                actor=SYSTEM_ACTOR,
            )
        typer.echo(f"Created organisation {name} ({slug}), id {organisation.id}.")
        typer.echo(
            f"Next: nidaan user create --organisation {slug} --email you@lab.in --role admin"
        )
    except NidaanError as exc:
        fail(exc.detail)
    finally:
        await dispose()


@org_app.command("disable")
def org_disable(
    organisation: Annotated[str, typer.Argument(help="Organisation slug or id")],
) -> None:
    """Disable an organisation: its users, tokens and API keys stop working at once."""
    asyncio.run(_org_set_active(_settings(), organisation, active=False))


@org_app.command("enable")
def org_enable(
    organisation: Annotated[str, typer.Argument(help="Organisation slug or id")],
) -> None:
    """Enable a disabled organisation again (its users log in afresh)."""
    asyncio.run(_org_set_active(_settings(), organisation, active=True))


async def _org_set_active(settings: Settings, organisation: str, *, active: bool) -> None:
    from nidaan.audit.schemas import SYSTEM_ACTOR
    from nidaan.kit.db import dispose, session_scope
    from nidaan.tenancy.service import tenancy_service

    try:
        async with session_scope(settings) as session:
            org = await tenancy_service.find_organisation(session, organisation)
            if org is None:
                fail(f"no organisation {organisation!r}.")
            assert org is not None
            changed = await tenancy_service.set_organisation_active(
                session, org, active=active, actor=SYSTEM_ACTOR
            )
        state = "enabled" if active else "disabled"
        typer.echo(f"{org.name} ({org.slug}) {'is now' if changed else 'was already'} {state}.")
    finally:
        await dispose()


@user_app.command("create")
def user_create(
    organisation: Annotated[str, typer.Option(help="Organisation slug or id")],
    email: Annotated[str, typer.Option(help="Login e-mail")],
    role: Annotated[
        list[str],
        typer.Option(
            help="Role; repeat for several: admin, front_desk, "
            "phlebotomist, technician, pathologist, billing, auditor"
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Full name (default: the e-mail)")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="Password (10+ characters). Omit to be asked without echo; "
            "avoid it on shared machines "
            "because it stays in the shell history."
        ),
    ] = None,
) -> None:
    """Create a staff user, e.g. the first admin of a new organisation."""
    settings = _settings()
    if password is None:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Repeat password: ") != password:
                fail("the passwords differ.")
    open_database(settings)
    asyncio.run(_user_create(settings, organisation, email, role, name, password))


async def _user_create(
    settings: Settings,
    organisation: str,
    email: str,
    roles: list[str],
    name: str | None,
    password: str,
) -> None:
    from pydantic import ValidationError

    from nidaan.auth.schemas import UserCreate
    from nidaan.auth.service import auth_service
    from nidaan.kit.db import dispose, session_scope
    from nidaan.kit.errors import NidaanError
    from nidaan.tenancy.service import tenancy_service

    try:
        data = UserCreate(email=email, full_name=name or email, password=password, roles=roles)  # type: ignore[arg-type]
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    try:
        async with session_scope(settings) as session:
            org = await tenancy_service.find_organisation(session, organisation)
            if org is None:
                fail(f"no organisation {organisation!r}; create one with `nidaan org create`.")
            assert org is not None
            user = await auth_service.create_user_in(session, org.id, data)
        typer.echo(f"Created user {user.email} ({', '.join(user.roles)}) in {org.name}.")
    except NidaanError as exc:
        fail(exc.detail)
    finally:
        await dispose()


@app.command("report-sample")
def report_sample(
    out: Annotated[
        Path, typer.Option(help="Directory for report-en/hi.pdf and their page-1 PNGs")
    ] = Path("docs"),
    png: Annotated[bool, typer.Option("--png/--no-png", help="Also write page 1 as PNG")] = True,
) -> None:
    """Render the sample report (English and Hindi) with the real renderer: the pictures
    in docs/ are made with: nidaan report-sample --out docs"""
    from nidaan.reports.pictures import write_sample_pictures

    try:
        written = write_sample_pictures(out, png=png)
    except RuntimeError as exc:
        fail(str(exc))
    for picture in written:
        typer.echo(", ".join([f"{picture.language}: {picture.pdf}", *map(str, picture.pngs)]))
