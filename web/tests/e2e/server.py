"""Start a real Nidaan server for the browser tests: the demo lab on a database of its own.

Usage: python server.py  (prints ``ABDM_SIMULATOR <url>`` and ``READY <base url>`` once /readyz
answers; SIGTERM stops it)

The database is a fresh one on NIDAAN_TEST_DATABASE_URL's server when that is set (the
machine's PostgreSQL in CI), else the embedded PostgreSQL under a temporary data directory.
The server is `nidaan demo run` itself: migrations, the demo seed and lab day, the API, the
worker and the web app, exactly as `make run` serves them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NIDAAN = ROOT / ".venv" / "bin" / "nidaan"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin_url() -> str | None:
    url = os.environ.get("NIDAAN_TEST_DATABASE_URL")
    return url.replace("postgresql+psycopg://", "postgresql://", 1) if url else None


def create_database(url: str, name: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database = make_url(url).set(drivername="postgresql+psycopg", database=name)
    return database.render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="nidaan-web-e2e-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIDAAN_")}
    env.update(
        NIDAAN_MODE="demo",
        NIDAAN_DATA_DIR=str(data_dir),
        NIDAAN_ARGON2_TIME_COST="1",
        NIDAAN_ARGON2_MEMORY_KIB="1024",
        NIDAAN_LOG_LEVEL="WARNING",
        # The demo's providers (payment and IRP simulators) are reached at this server's URL.
        NIDAAN_PORT=str(port),
    )
    # The embedded ABDM simulator on a port of its own (8090 may be another run's); the
    # browser tests play the patient's PHR app through it.
    abdm_port = free_port()
    env["NIDAAN_ABDM_SIMULATOR_PORT"] = str(abdm_port)
    # The demo wires WhatsApp/SMS to simulators mounted in this server and e-mail to an SMTP
    # sink: both are found through NIDAAN_PORT (``--port`` alone leaves them on 8000/8025).
    env["NIDAAN_PORT"] = str(port)
    env["NIDAAN_DEMO_SMTP_PORT"] = str(free_port())
    for key in ("NIDAAN_WEB_IDLE_MINUTES",):
        if key in os.environ:
            env[key] = os.environ[key]
    admin, name = admin_url(), f"nidaan_web_e2e_{os.getpid()}"
    if admin:
        env["NIDAAN_DATABASE_URL"] = create_database(admin, name)
    log_path = Path(os.environ.get("NIDAAN_E2E_SERVER_LOG", data_dir / "server.log"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    process = subprocess.Popen(  # noqa: S603
        [str(NIDAAN), "demo", "run", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not stopping:
            if process.poll() is not None:
                log.flush()
                print(log_path.read_text()[-5000:], file=sys.stderr)
                print("server exited early", file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                print("server did not become ready", file=sys.stderr)
                return 1
            time.sleep(0.3)
        print(f"ABDM_SIMULATOR http://127.0.0.1:{abdm_port}", flush=True)
        print(f"READY {base}", flush=True)
        while not stopping and process.poll() is None:
            time.sleep(0.2)
        return 0
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if admin:
            drop_database(admin, name)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
