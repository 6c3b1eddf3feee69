"""The `nidaan` command end to end, as an operator runs it, on a database of its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import APP_PASSWORD, APP_ROLE, _as_role

NIDAAN = str(Path(sys.executable).parent / "nidaan")


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NIDAAN, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def demo_env(scratch_database: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIDAAN_")}
    env.update(
        NIDAAN_MODE="demo",
        NIDAAN_DATA_DIR=str(tmp_path),
        NIDAAN_DATABASE_URL=scratch_database,
        NIDAAN_ARGON2_TIME_COST="1",
        NIDAAN_ARGON2_MEMORY_KIB="1024",
    )
    return env


def counts(url: str) -> tuple[int, ...]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return tuple(
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in (
                "organisations",
                "branches",
                "users",
                "catalog_tests",
                "catalog_panels",
                "patients",
                "orders",
                "samples",
                "results",
                "critical_alerts",
                "audit_log",
            )
        )


def test_upgrade_seed_twice_check_and_verify(
    demo_env: dict[str, str], scratch_database: str
) -> None:
    upgraded = run(demo_env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Upgraded empty ->" in upgraded.stdout
    assert "Already up to date." in run(demo_env, "db", "upgrade").stdout

    first = run(demo_env, "demo", "seed")
    assert first.returncode == 0, first.stderr
    seeded = counts(scratch_database)
    organisations, branches, users, tests, panels, patients, orders, samples, results, alerts, _ = (
        seeded
    )
    assert (organisations, branches, users) == (2, 4, 8)
    assert tests >= 2 * 60
    assert panels >= 2 * 8
    assert (patients, orders) == (8, 6)  # the demo day: one order in each state
    assert samples >= 6
    assert results > 0
    assert alerts == 1
    second = run(demo_env, "demo", "seed")
    assert "nothing changed" in second.stdout
    assert counts(scratch_database) == seeded

    check = run(demo_env, "db", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    verify = run(demo_env, "audit", "verify")
    assert verify.returncode == 0
    assert f"OK: {seeded[-1]} audit entries in 2 organisation(s)" in verify.stdout


def test_production_mode_refuses_demo_data_and_demo_seed(
    demo_env: dict[str, str], scratch_database: str
) -> None:
    assert run(demo_env, "db", "upgrade").returncode == 0
    assert run(demo_env, "demo", "seed").returncode == 0
    secrets = run(demo_env, "keys", "generate").stdout
    # Production connects as a role that owns nothing; the owner runs the migrations.
    production = {
        **demo_env,
        "NIDAAN_MODE": "production",
        "NIDAAN_DATABASE_URL": _as_role(scratch_database, APP_ROLE, APP_PASSWORD),
        "NIDAAN_MIGRATION_DATABASE_URL": scratch_database,
    }
    for line in secrets.splitlines():
        if line.startswith("NIDAAN_") and "=" in line:
            name, _, value = line.partition("=")
            production[name] = value.strip("'")
    granted = run(production, "db", "upgrade")  # grants the application role its privileges
    assert granted.returncode == 0, granted.stderr

    refused = run(production, "serve", "--port", "1")
    assert refused.returncode == 1
    assert "demo data" in refused.stderr
    seed = run(production, "demo", "seed")
    assert seed.returncode == 1
    assert "only in demo mode" in seed.stderr

    no_keys = {
        k: v
        for k, v in production.items()
        if k not in {"NIDAAN_SECRET_KEY", "NIDAAN_BLIND_INDEX_KEY"}
    }
    missing = run(no_keys, "db", "upgrade")
    assert missing.returncode == 1
    assert "NIDAAN_SECRET_KEY is not set" in missing.stderr


def test_first_organisation_and_admin_from_the_cli(demo_env: dict[str, str]) -> None:
    assert run(demo_env, "db", "upgrade").returncode == 0
    created = run(demo_env, "org", "create", "Sai Diagnostics", "--slug", "sai-diagnostics")
    assert created.returncode == 0, created.stderr
    user = run(
        demo_env,
        "user",
        "create",
        "--organisation",
        "sai-diagnostics",
        "--email",
        "owner@sai.in",
        "--role",
        "admin",
        "--role",
        "pathologist",
        stdin="a-strong-password\n",
    )
    assert user.returncode == 0, user.stderr
    assert "owner@sai.in (admin, pathologist)" in user.stdout
    again = run(
        demo_env,
        "user",
        "create",
        "--organisation",
        "sai-diagnostics",
        "--email",
        "owner@sai.in",
        "--role",
        "admin",
        stdin="a-strong-password\n",
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr
    weak = run(
        demo_env,
        "user",
        "create",
        "--organisation",
        "sai-diagnostics",
        "--email",
        "x@sai.in",
        "--role",
        "admin",
        stdin="short\n",
    )
    assert weak.returncode == 1
    assert "password" in weak.stderr
    unknown = run(
        demo_env,
        "user",
        "create",
        "--organisation",
        "nope",
        "--email",
        "y@sai.in",
        "--role",
        "admin",
        stdin="a-strong-password\n",
    )
    assert unknown.returncode == 1
    assert "nidaan org create" in unknown.stderr


def test_every_command_has_help(demo_env: dict[str, str]) -> None:
    for command in (
        [],
        ["serve"],
        ["worker"],
        ["db", "upgrade"],
        ["db", "check"],
        ["demo", "seed"],
        ["demo", "run"],
        ["user", "create"],
        ["org", "create"],
        ["audit", "verify"],
        ["keys", "generate"],
        ["keys", "rotate"],
    ):
        result = run(demo_env, *command, "--help")
        assert result.returncode == 0, command
        assert "Usage" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_run_serves_logs_in_and_stops_cleanly(demo_env: dict[str, str]) -> None:
    port = _free_port()
    analyzer_port = _free_port()
    process = subprocess.Popen(
        [NIDAAN, "demo", "run", "--port", str(port)],
        env={**demo_env, "NIDAAN_DEMO_ANALYZER_PORT": str(analyzer_port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        # Liveness, not speed: a busy CI machine may take a while to start everything.
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "server exited early"
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.3)
        token = httpx.post(
            f"{base}/api/v1/auth/token",
            data={"username": "front_desk@demo.example.com", "password": "nidaan-demo"},
        )
        assert token.status_code == 200
        # Payment links point at this port: the demo's gateway simulators are served here.
        front = {"Authorization": f"Bearer {token.json()['access_token']}"}
        unpaid = httpx.get(
            f"{base}/api/v1/invoices", params={"payment_status": "unpaid"}, headers=front
        ).json()["items"][0]
        link = httpx.post(
            f"{base}/api/v1/invoices/{unpaid['id']}/payment-link", json={}, headers=front
        )
        assert link.status_code == 201, link.text
        assert link.json()["url"].startswith(f"{base}/simulators/razorpay/pay/plink_")
        assert httpx.get(link.json()["url"]).status_code == 200
        other = httpx.post(
            f"{base}/api/v1/auth/token",
            data={"username": "admin@other.example.com", "password": "nidaan-demo"},
        ).json()["access_token"]
        branches = httpx.get(
            f"{base}/api/v1/branches", headers={"Authorization": f"Bearer {other}"}
        ).json()
        assert [b["name"] for b in branches["items"]] == ["Other Lab, Chennai"]
        # The demo analyzer listens on the port of the setting.
        with socket.create_connection(("127.0.0.1", analyzer_port), timeout=5):
            pass
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output  # Ctrl-C is the normal way to stop: a clean exit
    assert "front_desk@demo.example.com" in output  # the banner lists the logins
    assert f"http://127.0.0.1:{port}" in output
    assert "Stopped." in output
    assert "Starting worker" in output  # the all-in-one server runs the job worker
    assert f"Demo analyzer (cobas c311 (demo), ASTM) listens on 127.0.0.1:{analyzer_port}" in output
    assert f"analyzer-sim --driver roche-cobas --port {analyzer_port}" in output


def test_the_demo_analyzer_follows_its_port_setting(
    demo_env: dict[str, str], scratch_database: str
) -> None:
    assert run(demo_env, "db", "upgrade").returncode == 0
    first, second = _free_port(), _free_port()
    assert (
        run({**demo_env, "NIDAAN_DEMO_ANALYZER_PORT": str(first)}, "demo", "seed").returncode == 0
    )
    moved = run({**demo_env, "NIDAAN_DEMO_ANALYZER_PORT": str(second)}, "demo", "seed")
    assert moved.returncode == 0, moved.stderr
    url = scratch_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        ports = conn.execute("SELECT port FROM instruments").fetchall()
    assert ports == [(second,)]
