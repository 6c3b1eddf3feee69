"""``nidaan interfaces``: run the analyzer connections (HL7/MLLP and ASTM) of this lab."""

from __future__ import annotations

from typing import Annotated

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
        str,
        typer.Option(
            "--listen-host",
            help="Address that 'tcp-server' instruments listen on when none is set on the "
            "instrument (0.0.0.0 = every network card of this computer).",
        ),
    ] = "0.0.0.0",  # noqa: S104 - analyzers connect from the lab network
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
    import contextlib

    from nidaan.config import get_settings
    from nidaan.integration.runtime import InterfaceSupervisor
    from nidaan.logging import configure_logging

    settings = get_settings()
    configure_logging(settings)

    async def run() -> None:
        supervisor = InterfaceSupervisor(
            settings, reload_interval=reload_interval, listen_host=listen_host
        )
        await supervisor.start()
        running = len(supervisor.connections)
        typer.echo(f"Analyzer interfaces running: {running} instrument(s). Press Ctrl-C to stop.")
        for connection in supervisor.connections.values():
            c = connection.config
            where = (
                c.device
                if c.transport == "serial"
                else f"{c.host or listen_host}:{connection.port}"
            )
            typer.echo(f"  {c.name}  [{c.driver}, {c.transport}]  {where}")
        try:
            await asyncio.Event().wait()
        finally:
            await supervisor.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    typer.echo("Stopped.")
