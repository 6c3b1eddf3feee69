"""The README's lab day, run as written: its shell blocks against `nidaan demo run`.

A new user copies these commands from README.md into a terminal; so does this test (bash,
curl and python3, as on a lab's Debian machine), with the server's port and the demo
analyzer's port from the settings the README names.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.demo.test_cli_and_demo import _free_port

ROOT = Path(__file__).resolve().parents[2]
NIDAAN = str(Path(sys.executable).parent / "nidaan")


def lab_day_blocks() -> list[str]:
    """The shell blocks of the README's "A lab day in the demo" section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A lab day in the demo", 1)[1].split("\n## ", 1)[0]
    section = section.split("Offline collection centres", 1)[0]  # the sync walk needs agents
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def test_the_readme_has_the_lab_day_and_the_analyzer_blocks() -> None:
    day, analyzer = lab_day_blocks()
    assert "pending-entry" in day
    assert "order_test_id" in day
    assert "/verify" in day
    assert "mktemp" in day
    assert "/tmp/" not in day
    assert "--port ${NIDAAN_DEMO_ANALYZER_PORT:-5100}" in analyzer
    assert "mktemp" in analyzer


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's commands use curl")
def test_the_readme_lab_day_runs_as_written(scratch_database: str, tmp_path: Path) -> None:
    port, analyzer_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIDAAN_")}
    env.update(
        NIDAAN_MODE="demo",
        NIDAAN_DATA_DIR=str(tmp_path / "var"),
        NIDAAN_DATABASE_URL=scratch_database,
        NIDAAN_ARGON2_TIME_COST="1",
        NIDAAN_ARGON2_MEMORY_KIB="1024",
        NIDAAN_PORT=str(port),
        NIDAAN_DEMO_ANALYZER_PORT=str(analyzer_port),
    )
    server_log = tmp_path / "server.log"  # a file: a pipe nobody reads would stall the server
    with server_log.open("w") as log_file:
        server = subprocess.Popen(
            [NIDAAN, "demo", "run"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    checkout = tmp_path / "checkout"  # the README's commands run from the checkout (.venv/)
    checkout.mkdir()
    (checkout / ".venv").symlink_to(Path(sys.executable).parent.parent)
    try:
        deadline = time.monotonic() + 240  # liveness on a busy machine, not speed
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "server exited early"
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.5)
        script = "set -e\n" + "\n".join(lab_day_blocks())
        walk = subprocess.run(
            ["bash", "-c", script],
            cwd=checkout,
            env={**env, "TMPDIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    log = server_log.read_text()
    assert server.returncode == 0, log[-3000:]
    out = walk.stdout
    assert walk.returncode == 0, f"{out}\n{walk.stderr}\n--- server ---\n{log[-3000:]}"
    lines = out.splitlines()
    # 4. every test of the order got its result, with units and flags
    assert any(re.fullmatch(r"[0-9a-f-]{36} UREA", line) for line in lines), out
    for entered in ("UREA 28 mg/dL N", "CREA 0.90 mg/dL N", "GLUF 92 mg/dL N"):
        assert any(line.startswith(entered) for line in lines), (entered, out)
    # 5. each verified
    verified = [line for line in lines if line.endswith(" verified")]
    assert {line.split()[0] for line in verified} >= {"UREA", "CREA", "GLUF", "NA", "K"}, out
    # 6. the final report, version 1, kept as a PDF in the user's temporary file
    assert re.search(r"^RPT-\S+ 1 final$", out, re.M), out
    report = Path(re.search(r"^report: (\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert report.parent == tmp_path
    assert report.read_bytes().startswith(b"%PDF")
    # The analyzer section: the fresh order's results arrive; the demo's autoverification
    # verifies the in-range ones (NA, CL) and the pathologist's worklist keeps the rest with
    # the rule that stopped them, calculated BUN and eGFR with them.
    assert "(9 frames, all acknowledged by the LIS)" in out
    waiting = re.compile(r"^(\S+) .* (entered|held)(?: .*)?$")
    arrived = {
        found.group(1): line
        for line in out.split("(9 frames, all acknowledged by the LIS)", 1)[1].splitlines()
        if (found := waiting.match(line.rstrip() + " "))
    }
    assert (
        {"CREA", "UREA", "K", "BUN", "EGFR"}
        <= set(arrived)
        <= {"CREA", "UREA", "NA", "K", "CL", "BUN", "EGFR"}
    ), out
    assert arrived["K"].startswith("K 5.9 mmol/L H "), out
    assert arrived["CREA"].startswith("CREA 1.40 mg/dL H "), out
    assert "Traceback" not in walk.stderr
