"""`nidaan analyzer-sim` argument handling (the wire behaviour is in test_analyzer_sim)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from nidaan.integration.astm.protocol import LinkOptions, Timers
from nidaan.integration.astm.transport import ASTMSerial
from nidaan.simulators.cli import analyzer_sim

app = typer.Typer()
app.command("analyzer-sim")(analyzer_sim)
app.command("other")(lambda: None)  # two commands, so the sub-command name is required
runner = CliRunner()


def test_rejects_unknown_driver_and_fault() -> None:
    assert runner.invoke(app, ["analyzer-sim", "--driver", "nope", "--query", "A"]).exit_code == 2
    result = runner.invoke(app, ["analyzer-sim", "--fault", "fire", "--query", "A"])
    assert result.exit_code == 2


def test_upload_needs_codes() -> None:
    assert runner.invoke(app, ["analyzer-sim", "--upload", "A1"]).exit_code == 2


def test_unreachable_lis_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        result = runner.invoke(
            app, ["analyzer-sim", "--port", str(port), "--upload", "A1", "--codes", "685"]
        )
    assert result.exit_code == 1
    assert f"nothing is listening on 127.0.0.1:{port}" in result.output
    assert "NIDAAN_DEMO_ANALYZER_PORT" in result.output


@contextlib.contextmanager
def not_nidaan() -> Iterator[int]:
    """Another program on the port: a web server that answers every connection in HTTP."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                with contextlib.suppress(OSError):
                    conn.settimeout(8)
                    while conn.recv(1024):
                        pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


@pytest.mark.parametrize("driver", ["generic-hl7", "roche-cobas"])
def test_something_that_is_not_nidaan_is_named(driver: str) -> None:
    with not_nidaan() as port:
        args = ["--driver", driver, "--port", str(port), "--upload", "A1", "--codes", "685"]
        result = runner.invoke(app, ["analyzer-sim", *args])
    assert result.exit_code == 1
    assert f"something answers on 127.0.0.1:{port}" in result.output
    assert "HTTP/1.1 400 Bad Request" in result.output


def test_serial_mode_needs_a_device() -> None:
    result = runner.invoke(
        app, ["analyzer-sim", "--mode", "serial", "--upload", "A1", "--codes", "685"]
    )
    assert result.exit_code == 2


async def test_serial_mode_uploads_over_the_port(tmp_path: Path) -> None:
    """`nidaan analyzer-sim --mode serial --device ...` plays the analyzer on a pty pair."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat not installed")
    lis_end, analyzer_end = tmp_path / "lis", tmp_path / "analyzer"
    pair = await asyncio.create_subprocess_exec(
        socat,
        f"pty,raw,echo=0,link={lis_end}",
        f"pty,raw,echo=0,link={analyzer_end}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if lis_end.exists() and analyzer_end.exists():
                break
            await asyncio.sleep(0.02)
        inbox: asyncio.Queue[list[str]] = asyncio.Queue()
        lis = ASTMSerial(
            str(lis_end),
            9600,
            lambda records, frames: inbox.put_nowait(records),
            LinkOptions(role="host", timers=Timers(ack=2, receive=2, busy=0.05)),
        )
        await lis.start()
        sim = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "nidaan"),
            "analyzer-sim",
            "--driver",
            "roche-cobas",
            "--mode",
            "serial",
            "--device",
            str(analyzer_end),
            "--upload",
            "CC1-20261126-0001",
            "--codes",
            "685",
            "--values",
            "182",
            stdout=asyncio.subprocess.PIPE,
        )
        records = await asyncio.wait_for(inbox.get(), 20)
        output, _ = await asyncio.wait_for(sim.communicate(), 20)
        await lis.close()
    finally:
        pair.terminate()
        await asyncio.wait_for(pair.wait(), 5)
    assert sim.returncode == 0, output
    assert any(r.startswith("R|1|^^^685") and "|182|" in r for r in records), records
    assert b"serial mode" in output
