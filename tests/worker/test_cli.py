"""``nidaan worker --help`` explains itself to the lab's IT person."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from nidaan.worker.cli import worker


def test_worker_help_lists_its_options() -> None:
    app = typer.Typer()
    app.command()(worker)

    result = CliRunner().invoke(app, ["--help"], terminal_width=200)

    assert result.exit_code == 0, result.output
    assert "Run background jobs" in result.output
    assert "--concurrency" in result.output
    assert "--queue" in result.output
