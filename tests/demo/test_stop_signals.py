"""Every process role stops cleanly on SIGTERM (systemd, docker stop) as on Ctrl-C.

Real processes on a real embedded PostgreSQL: the role is started as an operator starts it,
signalled, and must exit 0, say so, stop its children and leave no database server running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

NIDAAN = str(Path(sys.executable).parent / "nidaan")
VAR = Path(__file__).resolve().parents[2] / "var"
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def embedded_env() -> Iterator[dict[str, str]]:
    """A data directory whose embedded database is migrated, and stopped again."""
    # Not under pytest's tmp_path: as root, pgserver runs PostgreSQL as another user, and
    # every pytest session on the machine resets /tmp/pytest-of-root to mode 0700.
    VAR.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="signals-", dir=VAR))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIDAAN_")}
    env.update(
        NIDAAN_MODE="test",
        NIDAAN_DATA_DIR=str(data_dir),
        NIDAAN_ARGON2_TIME_COST="1",
        NIDAAN_ARGON2_MEMORY_KIB="1024",
    )
    upgraded = subprocess.run(
        [NIDAAN, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=300
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert _postmaster_pid(data_dir) is None, "db upgrade left the embedded database running"
    yield env
    shutil.rmtree(data_dir, ignore_errors=True)


def _postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


class Running:
    """A started role whose output is collected line by line in the background."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [NIDAAN, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_until(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            assert self.process.poll() is None, f"exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"not ready in time:\n{self.output}"
            time.sleep(0.2)

    def stop(self, sig: signal.Signals) -> int:
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self._reader.join(timeout=5)
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, f"children left running: {alive}\n{self.output}"
        return code


def _http_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    return ready


ROLES = {
    "serve": lambda port: (["serve", "--port", str(port)], "http"),
    "serve-api-2-processes": lambda port: (
        ["serve", "--role", "api", "--processes", "2", "--port", str(port)],
        "http",
    ),
    "worker": lambda port: (["worker"], "Background worker running"),
    "interfaces": lambda port: (["interfaces"], "Analyzer interfaces running"),
    "interfaces-2-processes": lambda port: (
        ["interfaces", "--processes", "2"],
        "Analyzer interfaces running (process 2 of 2)",
    ),
}


# Every role on SIGTERM (what systemd and docker send), and Ctrl-C on the all-in-one server
# (the other roles share its code path; each start costs seconds of a real database).
CASES = [(role, signal.SIGTERM) for role in sorted(ROLES)] + [("serve", signal.SIGINT)]


@pytest.mark.parametrize(("role", "sig"), CASES, ids=[f"{r}-{s.name}" for r, s in CASES])
def test_role_stops_children_and_embedded_database_on_signal(
    embedded_env: dict[str, str], role: str, sig: signal.Signals
) -> None:
    data_dir = Path(embedded_env["NIDAAN_DATA_DIR"])
    port = _free_port()
    args, ready_on = ROLES[role](port)
    running = Running(args, embedded_env)
    try:
        if ready_on == "http":
            running.wait_until(_http_ready(port))
        else:
            running.wait_until(lambda: any(ready_on in line for line in running.lines))
        assert _postmaster_pid(data_dir) is not None, "the role should use the embedded database"
        code = running.stop(sig)
    finally:
        if running.process.poll() is None:
            running.process.kill()
    assert code == 0, f"exit status {code}:\n{running.output}"
    assert f"Stopping ({sig.name})" in running.output, running.output
    assert f"Embedded database in {data_dir / 'pgdata'} stopped." in running.lines, running.output
    assert running.lines[-1] == "Stopped.", running.output
    assert _postmaster_pid(data_dir) is None, f"embedded database still running:\n{running.output}"
