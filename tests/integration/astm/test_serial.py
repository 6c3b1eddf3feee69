"""ASTMSerial through pyserial: a loop:// port, and a socat pty pair when socat is installed."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nidaan.integration.astm.framing import ENQ, EOT, build_frames
from nidaan.integration.astm.protocol import LinkOptions, Timers
from nidaan.integration.astm.transport import ASTMSerial

pytest.importorskip("serial")

FAST = Timers(ack=1.0, receive=0.5, busy=0.05, host_contention=0.3, instrument_contention=0.1)
RECORDS = ["H|\\^&|||DxH|||||||P|LIS2-A", "R|1|!!!WBC!33256-9|7.2|10^3/uL||N||F", "L|1|N"]


async def test_loopback_port_receives_a_transfer() -> None:
    """On loop:// our own ACKs come back to us and are ignored; the transfer is delivered."""
    got: asyncio.Queue[list[str]] = asyncio.Queue()
    port = ASTMSerial(
        "loop://", 9600, lambda records, frames: got.put_nowait(records), LinkOptions(timers=FAST)
    )
    await port.start()
    port._port.write(bytes([ENQ]) + b"".join(build_frames(RECORDS)) + bytes([EOT]))
    assert await asyncio.wait_for(got.get(), 2) == RECORDS
    await port.close()


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat not installed")
    a, b = tmp_path / "lis", tmp_path / "analyzer"
    proc = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if a.exists() and b.exists():
                break
            time.sleep(0.02)
        else:
            pytest.skip("socat did not create the pty pair")
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


async def test_serial_pair_both_directions(pty_pair: tuple[str, str]) -> None:
    lis_inbox: asyncio.Queue[list[str]] = asyncio.Queue()
    analyzer_inbox: asyncio.Queue[list[str]] = asyncio.Queue()
    lis = ASTMSerial(
        pty_pair[0],
        9600,
        lambda r, f: lis_inbox.put_nowait(r),
        LinkOptions(role="host", timers=FAST),
    )
    analyzer = ASTMSerial(
        pty_pair[1],
        9600,
        lambda r, f: analyzer_inbox.put_nowait(r),
        LinkOptions(role="instrument", timers=FAST),
    )
    await lis.start()
    await analyzer.start()
    long_records = [*RECORDS[:2], "M|1|" + "x" * 500, "L|1|N"]
    await analyzer.send(long_records)
    assert await asyncio.wait_for(lis_inbox.get(), 3) == long_records
    await lis.send(RECORDS)
    assert await asyncio.wait_for(analyzer_inbox.get(), 3) == RECORDS
    await lis.close()
    await analyzer.close()
