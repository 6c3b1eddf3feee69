"""Scale-out benchmark: the lab-day workflow against 1, 2 and 4 API processes on one PostgreSQL.

For each process count it starts `nidaan serve --role api --processes P` plus one
`nidaan worker` (the production layout) on loopback, then raises the number of paced
clients (people at terminals, --think-ms between actions) step by step until the p95
latency of the workflow's API calls crosses --p95-ms (100 ms). It prints, per process
count, the last step under the limit: clients, req/s and p95, and the ratio of req/s to
the single-process figure measured in the same run (on a machine with fewer cores than
processes, the ratio shows the cost of contention rather than a gain).

Run:  .venv/bin/python benchmarks/scale.py [--processes 1 2 4] [--start 10] [--step 1.5]
Duration: per process count, a fresh database and the processes' start (2-4 minutes on a
busy 2-core machine), then one step per client count, each about one journey long (16
paced calls at --think-ms, ~20 s); with the defaults at most 10 steps (10 .. 366 clients),
so a full run takes 10-25 minutes, less when p95 crosses the limit early.
The projection from these figures to 10,000 users / 10k req/s is in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow import (
    NIDAAN,
    Recorder,
    _env,
    _free_port,
    journey,
    login,
)


async def wait_ready(base: str, seconds: float = 600) -> None:
    """Wait for /readyz (a busy machine takes a while to start several processes)."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit(f"server did not become ready in {seconds:.0f} s")


def prepare(data_dir: Path) -> dict[str, str]:
    env = _env(data_dir)
    for command in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run([NIDAAN, *command], env=env, check=True, capture_output=True)
    return env


def start(env: dict[str, str], port: int, processes: int) -> list[subprocess.Popen[bytes]]:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    api = subprocess.Popen(
        [NIDAAN, "serve", "--role", "api", "--port", str(port), "--processes", str(processes)],
        env=env,
        **quiet,  # type: ignore[call-overload]
    )
    worker = subprocess.Popen([NIDAAN, "worker"], env=env, **quiet)  # type: ignore[call-overload]
    return [api, worker]


async def step(base: str, clients: int, think_ms: float, first: int) -> tuple[float, float, int]:
    """Run ``clients`` paced journeys at once; (req/s, p95 ms, errors)."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        auth = {
            r: await login(client, r)
            for r in ("front_desk", "phlebotomist", "technician", "pathologist")
        }
        listed = (await client.get("/api/v1/branches", headers=auth["front_desk"])).json()
        branches = {b["code"]: b["id"] for b in listed["items"]}
        rec = Recorder(think_ms)

        async def person(index: int) -> None:
            await asyncio.sleep(index * (think_ms / 1000) / clients)
            await journey(client, rec, auth, branches, first + index)

        started = time.perf_counter()
        await asyncio.gather(*(person(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    samples = [s for label, values in rec.samples.items() for s in values]
    p95 = statistics.quantiles(samples, n=100)[94] if len(samples) > 1 else samples[0]
    return len(samples) / elapsed, p95, sum(rec.errors.values())


async def measure(
    processes: int,
    *,
    start_clients: int,
    factor: float,
    limit_ms: float,
    think_ms: float,
    max_clients: int,
) -> tuple[int, float, float]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"nidaan-scale-{processes}-"))
    env = prepare(data_dir)
    port = _free_port()
    children = start(env, port, processes)
    best = (0, 0.0, 0.0)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base)
        clients, first = start_clients, 0
        while clients <= max_clients:
            rate, p95, errors = await step(base, clients, think_ms, first)
            first += clients
            print(
                f"  {processes} process(es), {clients:>4} clients: {rate:7.1f} req/s, "
                f"p95 {p95:7.1f} ms, {errors} errors"
            )
            if p95 > limit_ms or errors:
                if best[0] == 0:  # not even the first step met the limit: report it as is
                    best = (-clients, rate, p95)
                break
            best = (clients, rate, p95)
            clients = max(clients + 1, int(clients * factor))
    finally:
        for child in children:
            child.send_signal(signal.SIGINT)
        for child in children:
            child.wait(timeout=60)
    return best


async def main(args: argparse.Namespace) -> None:
    results = {}
    for processes in args.processes:
        results[processes] = await measure(
            processes,
            start_clients=args.start,
            factor=args.step,
            limit_ms=args.p95_ms,
            think_ms=args.think_ms,
            max_clients=args.max_clients,
        )
    single = results.get(args.processes[0], (0, 0.0, 0.0))[1] or 1.0
    print(
        f"\nLast step with p95 under {args.p95_ms:.0f} ms (paced, think {args.think_ms:.0f} ms), "
        f"{os.cpu_count()} CPU(s), one PostgreSQL, one worker:\n"
    )
    print(f"{'API processes':>14}{'clients':>9}{'req/s':>9}{'p95 ms':>9}{'vs first':>10}")
    for processes, (clients, rate, p95) in results.items():
        over = "  (first step already over the limit)" if clients < 0 else ""
        print(
            f"{processes:>14}{abs(clients):>9}{rate:>9.1f}{p95:>9.1f}{rate / single:>9.2f}x{over}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2, 4], help="API process counts to measure"
    )
    parser.add_argument("--start", type=int, default=10, help="clients of the first step")
    parser.add_argument("--step", type=float, default=1.5, help="client growth per step")
    parser.add_argument("--max-clients", type=int, default=400, help="stop raising here")
    parser.add_argument("--p95-ms", type=float, default=100.0, help="latency limit (p95)")
    parser.add_argument(
        "--think-ms", type=float, default=1000.0, help="pause between a client's actions"
    )
    asyncio.run(main(parser.parse_args()))
