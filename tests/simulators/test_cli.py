"""`nidaan analyzer-sim` argument handling (the wire behaviour is in test_analyzer_sim)."""

from __future__ import annotations

import socket

import typer
from typer.testing import CliRunner

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
    assert "failed" in result.output or "cannot reach" in result.output
