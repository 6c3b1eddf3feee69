"""``nidaan analyzer-sim``: play an analyzer against a running Nidaan interface.

Wired by the main CLI as ``app.command("analyzer-sim")(analyzer_sim)``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Annotated

import typer

from nidaan.simulators.analyzer import (
    DRIVERS,
    AnalyzerSimulator,
    Faults,
    NotTheLIS,
    QueryAnswer,
    ResultTuple,
    UploadReport,
    random_value,
)

FAULTS = ("bad-checksum", "drop", "slow-ack", "garbage")


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _results(codes: list[str], values: list[str], seed: int | None) -> list[ResultTuple]:
    rng = random.Random(seed)  # noqa: S311 - test data
    out: list[ResultTuple] = []
    for i, code in enumerate(codes):
        generated = random_value(code, rng)
        if i < len(values):
            out.append((code, values[i], generated[2], ""))
        else:
            out.append(generated)
    return out


def explain(exc: BaseException, where: str) -> str:
    """One clear sentence on why the LIS did not take the message."""
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"nothing is listening on {where}. Is Nidaan running? `make run` prints the port "
            "of its demo analyzer (NIDAAN_DEMO_ANALYZER_PORT); for your own instruments use "
            "the port registered for them."
        )
    if isinstance(exc, NotTheLIS):
        return f"something answers on {where}, but {exc}."
    if isinstance(exc, OSError | TimeoutError):
        return f"cannot reach the LIS at {where}: {exc or type(exc).__name__}"
    return str(exc) or type(exc).__name__


def _print_upload(report: UploadReport) -> None:
    typer.echo(f"Sent results for {report.accession or '(no barcode)'}:")
    for line in report.records:
        typer.echo(f"  > {line}")
    if report.frames:
        typer.echo(f"  ({report.frames} frames, all acknowledged by the LIS)")
    if report.ack:
        colour = typer.colors.GREEN if report.ack in ("AA", "CA") else typer.colors.RED
        typer.secho(f"  LIS acknowledged: MSA-1 = {report.ack}", fg=colour)


def _print_query(answer: QueryAnswer) -> None:
    typer.echo(f"Query for {answer.accession}:")
    for line in answer.sent:
        if line:
            typer.echo(f"  > {line}")
    if answer.error:
        typer.secho(f"  no answer: {answer.error}", fg=typer.colors.RED)
        return
    for reply in answer.replies:
        for line in reply:
            typer.echo(f"  < {line}")
    codes = ", ".join(answer.test_codes) or "none"
    typer.echo(f"  ordered tests: {codes}")


async def _run(
    sim: AnalyzerSimulator,
    where: str,
    upload: list[str],
    codes: list[str],
    values: list[str],
    query: str | None,
    seed: int | None,
    qc: bool = False,
    lot: str | None = None,
) -> int:
    failures = 0
    async with sim:
        if sim.mode == "server":
            typer.echo(f"Listening on {sim.host}:{sim.port}; waiting for the LIS to connect ...")
        if query:
            answer = await sim.query(query)
            _print_query(answer)
            failures += bool(answer.error)
        for accession in upload:
            try:
                results = _results(codes, values, seed)
                report = await (
                    sim.upload_controls(accession, results, lot=lot)
                    if qc
                    else sim.upload_results(accession, results)
                )
            except (ConnectionRefusedError, NotTheLIS) as exc:
                typer.secho(f"Error: {explain(exc, where)}", fg=typer.colors.RED, err=True)
                return failures + 1
            except Exception as exc:
                typer.secho(
                    f"Upload of {accession} failed: {explain(exc, where)}",
                    fg=typer.colors.RED,
                    err=True,
                )
                failures += 1
                continue
            _print_upload(report)
    return failures


def analyzer_sim(
    driver: Annotated[
        str,
        typer.Option(help=f"Instrument layout to play: {', '.join(DRIVERS)}."),
    ] = "generic-astm",
    host: Annotated[str, typer.Option(help="LIS host (client mode) or address to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int | None, typer.Option(help="TCP port (default 5100 for ASTM, 2575 for HL7).")
    ] = None,
    upload: Annotated[
        str | None,
        typer.Option(help="Accession number(s) to upload results for, comma-separated."),
    ] = None,
    codes: Annotated[
        str, typer.Option(help="Instrument test codes, comma-separated, e.g. 685,767.")
    ] = "",
    values: Annotated[
        str | None,
        typer.Option(help="Values for --codes in the same order; missing ones are random."),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(help="Ask the LIS for the orders of this accession (host query) first."),
    ] = None,
    fault: Annotated[
        str | None,
        typer.Option(help="Inject a fault: bad-checksum, drop, slow-ack or garbage."),
    ] = None,
    fault_frame: Annotated[int, typer.Option(help="Frame number hit by bad-checksum / drop.")] = 2,
    mode: Annotated[
        str,
        typer.Option(
            help="client: connect to the LIS; server: listen for the LIS; serial: talk over "
            "--device (server and serial: ASTM only)."
        ),
    ] = "client",
    device: Annotated[
        str | None,
        typer.Option(help="Serial port for --mode serial, e.g. /dev/ttyUSB0 or a pty path."),
    ] = None,
    baudrate: Annotated[int, typer.Option(help="Serial speed for --mode serial.")] = 9600,
    seed: Annotated[int | None, typer.Option(help="Random seed for generated values.")] = None,
    qc: Annotated[
        bool,
        typer.Option(
            "--qc",
            help="Send --upload ids as quality-control samples (control ids such as QC1): "
            "ASTM H-12 'Q', HL7 SPM-11 'Q'.",
        ),
    ] = False,
    lot: Annotated[
        str | None, typer.Option(help="Control lot the analyzer names (ARCHITECT R-3), with --qc.")
    ] = None,
) -> None:
    """Simulate an analyzer: upload results and/or ask the LIS for orders over ASTM or HL7.

    Example: nidaan analyzer-sim --driver roche-cobas --port 5100
    --upload CC1-20261126-0001 --codes 685,767 --values 112,0.9

    Quality control: nidaan analyzer-sim --driver roche-cobas --qc --upload QC1
    --codes 685 --values 131
    """
    if driver not in DRIVERS:
        raise typer.BadParameter(f"one of {', '.join(DRIVERS)}", param_hint="--driver")
    if fault is not None and fault not in FAULTS:
        raise typer.BadParameter(f"one of {', '.join(FAULTS)}", param_hint="--fault")
    if mode not in ("client", "server", "serial"):
        raise typer.BadParameter("client, server or serial", param_hint="--mode")
    if mode == "serial" and not device:
        raise typer.BadParameter("serial mode needs --device", param_hint="--device")
    accessions = _split(upload)
    code_list = _split(codes)
    if accessions and not code_list:
        raise typer.BadParameter("give the test codes to upload", param_hint="--codes")
    if not accessions and not query:
        raise typer.BadParameter("nothing to do: give --upload and/or --query")
    sim = AnalyzerSimulator(
        driver,
        host,
        port,
        mode=mode,  # type: ignore[arg-type]
        faults=Faults.named(fault, n=fault_frame),
        device=device,
        baudrate=baudrate,
    )
    where = device if mode == "serial" else f"{host}:{sim.port}"
    typer.echo(
        f"{driver} simulator ({DRIVERS[driver].protocol.upper()}, {mode} mode) -> {where}"
        + (f", fault: {fault}" if fault else "")
    )
    try:
        failures = asyncio.run(
            _run(sim, where, accessions, code_list, _split(values), query, seed, qc, lot)
        )
    except (OSError, TimeoutError, NotTheLIS) as exc:
        typer.secho(f"Error: {explain(exc, where)}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if failures:
        raise typer.Exit(1)
