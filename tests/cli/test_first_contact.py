"""The ``nidaan`` command as a new user meets it: the right database, short errors, clean help.

Each command runs in its own process through the installed entry point, as an operator runs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from nidaan.cli import app

NIDAAN = str(Path(sys.executable).parent / "nidaan")
ROOT = Path(__file__).resolve().parents[2]


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NIDAAN, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIDAAN_")}
    env.update(NIDAAN_ARGON2_TIME_COST="1", NIDAAN_ARGON2_MEMORY_KIB="1024", **values)
    return env


# Commands that read or write an existing database (none of them may create one).
ON_A_MISSING_CLUSTER = (
    ("audit", "verify"),
    ("demo", "seed"),
    ("db", "check"),
    ("keys", "rotate"),
    ("worker",),
)
ON_AN_EMPTY_DATABASE = (
    ("audit", "verify"),
    ("demo", "seed"),
    ("org", "create", "Sai Diagnostics", "--slug", "sai"),
    ("user", "create", "--organisation", "sai", "--email", "a@sai.in", "--role", "admin"),
    ("sync", "compact"),
)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize("command", ON_A_MISSING_CLUSTER, ids=" ".join)
def test_a_command_on_a_missing_embedded_database_says_so_and_creates_nothing(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    data_dir = tmp_path / "elsewhere"
    env = clean_env(NIDAAN_MODE="demo", NIDAAN_DATA_DIR=str(data_dir))
    result = run(env, *command, stdin="a-strong-password\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Database: embedded PostgreSQL at {data_dir / 'pgdata'}" in result.stderr
    [error] = _error_lines(result.stderr)
    assert f"no Nidaan database at {data_dir / 'pgdata'}" in error
    assert "NIDAAN_DATA_DIR" in error
    assert "Traceback" not in result.stderr
    assert not (data_dir / "pgdata" / "PG_VERSION").exists()
    assert len(result.stderr.splitlines()) <= 3


@pytest.mark.parametrize("command", ON_AN_EMPTY_DATABASE, ids=" ".join)
def test_a_command_on_an_unmigrated_database_refuses_in_one_line(
    command: tuple[str, ...], scratch_database: str, tmp_path: Path
) -> None:
    env = clean_env(
        NIDAAN_MODE="demo", NIDAAN_DATA_DIR=str(tmp_path), NIDAAN_DATABASE_URL=scratch_database
    )
    result = run(env, *command, stdin="a-strong-password\n")
    assert result.returncode == 1, result.stdout + result.stderr
    database = make_url(scratch_database).database
    assert "Database: external PostgreSQL " in result.stderr
    assert re.search(rf"^Database: external PostgreSQL .*\b{database}\b", result.stderr, re.M)
    assert "password" not in result.stderr.split("Error:")[0].lower()
    [error] = _error_lines(result.stderr)
    assert "run nidaan db upgrade" in error
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 2  # which database, and the one-line refusal


def test_an_unexpected_error_is_two_lines_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = clean_env(
        NIDAAN_DATA_DIR=str(tmp_path),
        NIDAAN_DATABASE_URL=f"postgresql://nidaan@127.0.0.1:{port}/lis",
    )
    short = run(env, "audit", "verify")
    assert short.returncode == 1
    lines = [line for line in short.stderr.splitlines() if not line.startswith("Database:")]
    assert len(lines) == 2, short.stderr
    assert lines[0].startswith("Error: database error:")
    assert "--debug" in lines[1]
    assert "Traceback" not in short.stderr

    debug = run(env, "--debug", "audit", "verify")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "OperationalError" in debug.stderr


def _commands(command, path):  # type: ignore[no-untyped-def]
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, [*path, name])


def test_help_shows_flags_as_flags_and_no_markup_backticks() -> None:
    import typer

    root = typer.main.get_command(app)
    runner = CliRunner()
    seen = 0
    for path, command in _commands(root, []):
        texts = [command.help or "", command.short_help or ""]
        texts += [getattr(param, "help", None) or "" for param in command.params]
        for text in texts:
            assert "`" not in text, (path, text)
        shown = runner.invoke(app, [*path, "--help"])
        assert shown.exit_code == 0, (path, shown.output)
        assert "<bool>" not in shown.output, (path, shown.output)
        assert "``" not in shown.output
        seen += 1
    assert seen > 25
    agent = runner.invoke(app, ["sync-agent", "--help"]).output
    once = next(line for line in agent.splitlines() if "--once" in line)
    assert once.split()[:3] == ["--once", "Sync", "once"]
    serve = runner.invoke(app, ["serve", "--help"]).output
    assert any(line.split()[:2] == ["--migrate", "Apply"] for line in serve.splitlines())


def test_make_clean_data_deletes_the_data_dir_the_server_uses(tmp_path: Path) -> None:
    # A dry run (-n): printing the command proves which directory it deletes, without
    # risking the checkout's own ./var.
    data_dir = tmp_path / "lab-data"
    env = {**os.environ, "NIDAAN_DATA_DIR": str(data_dir)}
    planned = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "clean-data"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f'rm -rf "{data_dir}"' in planned
    default = {k: v for k, v in os.environ.items() if k != "NIDAAN_DATA_DIR"}
    planned = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "clean-data"],
        env=default,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'rm -rf "var"' in planned
    refused = subprocess.run(
        ["make", "-C", str(ROOT), "clean-data"],
        env={**os.environ, "NIDAAN_DATA_DIR": "/"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "Refusing" in refused.stdout


def test_ctrl_c_on_make_run_stops_cleanly_and_make_exits_0(
    scratch_database: str, tmp_path: Path
) -> None:
    """Ctrl-C typed on the terminal of ``make run``: the server stops, make reports no error."""
    import pty
    import select
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    venv = Path(sys.executable).parent.parent
    env = clean_env(
        NIDAAN_DATA_DIR=str(tmp_path),
        NIDAAN_DATABASE_URL=scratch_database,
        NIDAAN_PORT=str(port),
        TERM="dumb",
    )
    # The install and web-build steps are skipped (-o): the recipe under test is the server's.
    command = [
        "make", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", "-o", "system-deps",
        "-o", "web", "run",
    ]  # fmt: skip
    script = " ".join(f"'{part}'" for part in command) + "; echo MAKE-EXIT=$?"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a shell on the pseudo-terminal, as a user's
        os.execve("/bin/sh", ["/bin/sh", "-c", script], env)
    output = b""

    def read_until(marker: bytes, seconds: float) -> None:
        nonlocal output
        deadline = time.monotonic() + seconds
        while marker not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(terminal, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                output += chunk

    try:
        # Liveness on a busy machine, not speed.
        read_until(b"Press Ctrl-C to stop.", 300)
        assert b"Press Ctrl-C to stop." in output, output.decode(errors="replace")
        read_until(b"Application startup complete", 120)
        os.write(terminal, b"\x03")  # Ctrl-C, as typed
        read_until(b"MAKE-EXIT=", 90)
    finally:
        # Never wait on a server that still writes to a terminal nobody reads: whatever went
        # wrong, the shell's process group is stopped, then killed.
        if b"MAKE-EXIT=" not in output:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            read_until(b"MAKE-EXIT=", 30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(terminal)
    text = output.decode(errors="replace")
    assert "Stopped." in text, text
    assert "MAKE-EXIT=0" in text, text
    assert "Error 130" not in text
    assert "Interrupt" not in text


def test_make_test_measures_line_and_branch_coverage_with_the_readme_figure() -> None:
    """``make test`` runs pytest-cov over src/nidaan with branches, fails under a floor kept
    in pyproject.toml at or above the product's 80 %, and the README shows the figure."""
    import tomllib

    venv = Path(sys.executable).parent.parent
    planned = subprocess.run(
        # Dry run (-n) of the test recipe only: its prerequisites are taken as made (-o).
        ["make", "-n", "-C", str(ROOT), f"VENV={venv}", "-o", "lint", "-o", "system-deps",
         "-o", "web-test", "test"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    [pytest_line] = [line for line in planned.splitlines() if "pytest" in line]
    assert "--cov" in pytest_line.split(), pytest_line
    assert "--cov-report=term" in pytest_line

    coverage = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    assert coverage["run"]["source"] == ["nidaan"]
    assert coverage["run"]["branch"] is True
    floor = coverage["report"]["fail_under"]
    assert floor > 80  # the product's stated target

    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"coverage of `src/nidaan` \(pytest-cov\): \*\*(\d+(?:\.\d)?) %\*\*", readme)
    assert shown, "README.md shows the coverage figure"
    assert float(shown.group(1)) >= floor
    assert f"floor of {floor} %" in readme
