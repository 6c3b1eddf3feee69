"""Finding 7: schemathesis over the whole OpenAPI document finds no server error (5xx).

A real server (`nidaan serve --role api`, its own process and port) on the test database is
fuzzed by the schemathesis CLI as a user with every role (its token outlives a long run),
every operation and phase. `make test` runs a small budget per
operation; `make fuzz` the same run with a large one:

    NIDAAN_FUZZ_EXAMPLES=200 NIDAAN_FUZZ_PHASES=examples,coverage,fuzzing,stateful \\
        .venv/bin/pytest -q -s tests/security/test_fuzz_openapi.py

The summary (operations, requests, failures) is printed and written to
``var/fuzz/summary.txt``; the JSON report sits beside it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nidaan.auth.enums import Role
from nidaan.config import Settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLES = int(os.environ.get("NIDAAN_FUZZ_EXAMPLES", "4"))
PHASES = os.environ.get("NIDAAN_FUZZ_PHASES", "examples,coverage,fuzzing")
SEED = os.environ.get("NIDAAN_FUZZ_SEED", "18")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fuzz_server(database_url: str, settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIDAAN_")}
    env.update(
        NIDAAN_MODE="test",
        NIDAAN_DATABASE_URL=database_url,
        NIDAAN_DATA_DIR=str(settings.data_dir),  # the tests' keys (tokens, signatures)
        NIDAAN_LOG_LEVEL="WARNING",
        NIDAAN_ARGON2_TIME_COST="1",
        NIDAAN_ARGON2_MEMORY_KIB="1024",
        NIDAAN_ACCESS_TOKEN_MINUTES="600",
        # The WhatsApp webhook answers 503 "not configured" without its verify token and
        # app secret (with them: 403 for a wrong token, 401 for a bad signature).
        NIDAAN_WHATSAPP_VERIFY_TOKEN="fuzz-verify-token",
        NIDAAN_WHATSAPP_APP_SECRET="fuzz-app-secret",
    )
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "nidaan"), "serve", "--role", "api", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "fuzz server did not start"
            time.sleep(0.3)
        # Build the OpenAPI document once before schemathesis asks for it (it gives up
        # after 10 s, and building ~200 operations on a busy machine can take longer).
        assert httpx.get(f"{base}/openapi.json", timeout=120).status_code == 200
        yield base
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
        errors = [
            line
            for line in (tmp_path / "server.log").read_text().splitlines()
            if "unhandled_error" in line
        ]
        shutil.copy(tmp_path / "server.log", _report_dir() / "server.log")
        assert errors == [], "the server logged unhandled errors:\n" + "\n".join(errors[:20])


def _report_dir() -> Path:
    path = ROOT / "var" / "fuzz"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _bearer_token(committing_session, base: str) -> str:  # type: ignore[no-untyped-def]
    """A login with every role in a fresh organisation with a central lab (the server
    issues tokens valid for the whole run)."""
    from nidaan.tenancy.enums import BranchKind
    from tests.fixtures.objects import (
        TEST_PASSWORD,
        create_branch,
        create_organisation,
        create_user,
    )

    async with committing_session() as session:
        organisation = await create_organisation(session)
        await create_branch(session, organisation, code="LAB", kind=BranchKind.CENTRAL_LAB)
        admin = await create_user(session, organisation, roles=sorted(Role))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post(
            "/api/v1/auth/token", data={"username": admin.email, "password": TEST_PASSWORD}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def summary_of(output: str) -> str:
    """The summary block schemathesis prints at the end of a run."""
    start = output.rfind("=" * 10)
    start = output.rfind("\n", 0, output.rfind("SUMMARY")) if "SUMMARY" in output else start
    return output[max(start, 0) :].strip()


async def test_schemathesis_finds_no_server_error(
    fuzz_server: str, committing_session, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    token = await _bearer_token(committing_session, fuzz_server)
    reports = _report_dir()
    command = [
        str(BIN / "schemathesis"),
        "run",
        f"{fuzz_server}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--phases",
        PHASES,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "2",
        "--header",
        f"Authorization: Bearer {token}",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "json",
        "--report-json-path",
        str(reports / "report.json"),
        "--no-color",
    ]
    run = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=3600, check=False
    )
    output = run.stdout + run.stderr
    summary = summary_of(output)
    (reports / "summary.txt").write_text(summary + "\n")
    (reports / "output.txt").write_text(output)  # every failure with its curl command
    print("\n" + summary)
    assert run.returncode == 0, output[-6000:]
    assert re.search(r"\b5\d\d\b.*(Internal|Server Error)", output) is None, output[-6000:]
