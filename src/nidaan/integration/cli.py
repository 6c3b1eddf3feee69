"""``nidaan interfaces``: run the analyzer connections (HL7/MLLP and ASTM) of this lab."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def interfaces(
    reload_interval: Annotated[
        float,
        typer.Option(
            "--reload-interval",
            min=0.5,
            help="How often (seconds) instrument settings are re-read; edits made in Nidaan "
            "(enable/disable, port, test map) apply within this time, without a restart.",
        ),
    ] = 5.0,
    listen_host: Annotated[
        str | None,
        typer.Option(
            "--listen-host",
            help="Address that 'tcp-server' instruments listen on when none is set on the "
            "instrument: this computer's lab network address (default "
            "NIDAAN_INTERFACES_LISTEN_HOST, itself 127.0.0.1; 0.0.0.0 = every network card).",
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            max=64,
            help="Spread the instruments over this many processes (one per CPU core is a good "
            "start for a busy lab); each instrument is run by exactly one of them.",
        ),
    ] = 1,
    shard: Annotated[
        str | None,
        typer.Option("--shard", hidden=True, help="i/N: run the i-th of N shares (internal)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve Prometheus metrics of this process at http://NIDAAN_METRICS_HOST:PORT"
            "/metrics (with --processes N: ports PORT .. PORT+N-1).",
        ),
    ] = None,
) -> None:
    """Connect Nidaan to the lab's analyzers and keep the connections running.

    Every enabled instrument (Settings > Instruments) gets its connection: Nidaan listens on
    the instrument's port ('tcp-server'), dials the analyzer ('tcp-client') or opens the
    serial port ('serial'). Results the analyzers send land as entered (unverified) results;
    anything that cannot be matched goes to the instrument exceptions queue. Sample queries
    from the analyzer are answered with the tests ordered on that sample.

    Leave this running on the computer the analyzers are cabled or networked to (it must reach
    the database). Check each instrument's status in Nidaan. Press Ctrl-C to stop.
    """
    import asyncio
    import gc

    from nidaan.config import get_settings
    from nidaan.events.registry import load_handler_modules
    from nidaan.integration.journal import JournalBusy
    from nidaan.integration.runtime import InterfaceSupervisor
    from nidaan.kit import tracing
    from nidaan.kit.signals import process_role, run_until_stopped
    from nidaan.logging import configure_logging
    from nidaan.observability.metrics import start_metrics_server

    settings = get_settings()
    configure_logging(settings)
    listen_host = listen_host or settings.interfaces_listen_host
    if processes > 1 and shard is None:
        with process_role(typer.echo):
            _run_processes(settings, processes, reload_interval, listen_host, metrics_port)
        return
    index, count = _parse_shard(shard)
    tracing.configure(settings.otlp_endpoint, settings.service_name or "nidaan-interfaces")

    async def run() -> None:
        start_metrics_server(settings, metrics_port)
        # Import every event subscriber now (the first landing would, while an analyzer waits),
        # then move what start-up left behind out of the garbage collector's way: landing
        # creates many short-lived objects, and each full collection would walk the modules'
        # hundreds of thousands of long-lived ones again.
        load_handler_modules()
        gc.collect()
        gc.freeze()
        supervisor = InterfaceSupervisor(
            settings,
            reload_interval=reload_interval,
            listen_host=listen_host,
            shard=index,
            shards=count,
        )
        try:
            await supervisor.start()
        except JournalBusy as exc:
            typer.echo(f"Cannot start: {exc}", err=True)
            raise typer.Exit(1) from None
        running = len(supervisor.connections)
        share = f" (process {index + 1} of {count})" if count > 1 else ""
        typer.echo(
            f"Analyzer interfaces running{share}: {running} instrument(s). Press Ctrl-C to stop."
        )
        for connection in supervisor.connections.values():
            c = connection.config
            where = (
                c.device
                if c.transport == "serial"
                else f"{c.host or listen_host}:{connection.port}"
            )
            typer.echo(f"  {c.name}  [{c.driver}, {c.transport}]  {where}")
        # SIGTERM (systemd, docker stop) stops as Ctrl-C does: what was received lands first.
        try:
            await asyncio.Event().wait()
        finally:
            await supervisor.stop()

    with process_role(typer.echo):
        run_until_stopped(run())


def _parse_shard(shard: str | None) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    index, _, count = shard.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        raise typer.BadParameter("use i/N with 0 <= i < N", param_hint="--shard")
    return int(index), int(count)


def _run_processes(
    settings: Any, processes: int, reload_interval: float, host: str, metrics_port: int | None
) -> None:
    """Start one child per share and wait; Ctrl-C (or one child failing) stops them all."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from nidaan.kit.db import database_url

    # Children find the (possibly embedded) database through the environment.
    env = {**os.environ, "NIDAAN_DATABASE_URL": database_url(settings)}
    command = [str(Path(sys.executable).parent / "nidaan"), "interfaces"]
    options = ["--reload-interval", str(reload_interval), "--listen-host", host]

    def metrics(i: int) -> list[str]:
        return ["--metrics-port", str(metrics_port + i)] if metrics_port else []

    children = [
        subprocess.Popen(  # noqa: S603
            [*command, *options, *metrics(i), "--shard", f"{i}/{processes}"], env=env
        )
        for i in range(processes)
    ]
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child.args for child in children if child.returncode not in (None, 0)]
        if failed:
            typer.echo(f"An interfaces process stopped ({len(failed)}); stopping the others.")
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
