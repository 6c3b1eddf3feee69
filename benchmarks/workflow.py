"""Lab-day benchmark: N concurrent clients drive the real HTTP API through a patient's journey.

register -> order -> collect -> receive -> enter results -> verify, against `nidaan serve
--role api` started here on loopback (embedded PostgreSQL unless NIDAAN_DATABASE_URL is set).
Prints requests/s and p50/p95/p99 latency per endpoint next to the same figures for
/healthz measured in the same run at the same concurrency (the ratio is what counts), then
the PDF report render time per page.

Run:  .venv/bin/python benchmarks/workflow.py [--clients 50] [--journeys 2] [--think-ms 1000]
Target on a 2-core machine: p95 under 50 ms for order creation and result entry at 50
concurrent clients (paced), and saturated journey throughput 3x the figure before issue 19.

--baseline-file FILE: the output of an earlier run (e.g. var/perf/workflow-before.txt, made
on the previous code); this run's figures are then printed beside it.

Two load models are run, both printed:
  * paced: each client is a person at a terminal who waits --think-ms (jittered +-50%)
    between actions, as front desks, phlebotomists and technicians do; clients join
    spread over one think period;
  * saturated: no think time at all, every client fires its next request the moment the
    last one returns. This measures capacity (requests/s); latency then is simply
    clients / throughput, so it says little about what a user feels.
The load generator runs on the same machine and competes for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
NIDAAN = str(Path(sys.executable).parent / "nidaan")
PASSWORD = "nidaan-demo"
# A typical walk-in: a sugar, a kidney and a blood count, on three tubes.
PROCESSES = os.cpu_count() or 1
ORDER_ITEMS = ["GLUF", "CREA", "K", "NA", "HB", "PLT"]
#: Issue 19: paced at 50 clients, order creation and result entry answer within this (p95).
TARGET_P95_MS = 50
#: A loaded machine (other work on the same cores) can take a while to start the server.
READY_TIMEOUT_S = 240
VALUES = {"GLUF": "96", "CREA": "0.9", "K": "4.2", "NA": "140", "HB": "13.5", "PLT": "250"}


class Recorder:
    def __init__(self, think_ms: float = 0) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.think_ms = think_ms

    async def call(
        self, client: httpx.AsyncClient, label: str, method: str, url: str, **kwargs: object
    ) -> httpx.Response:
        if self.think_ms:
            await asyncio.sleep(self.think_ms * random.uniform(0.5, 1.5) / 1000)
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            self.errors[label] += 1
            raise
        self.samples[label].append((time.perf_counter() - started) * 1000)
        if response.status_code >= 400:
            self.errors[label] += 1
            raise RuntimeError(f"{label}: {response.status_code} {response.text[:300]}")
        return response


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NIDAAN_MODE", "demo")
    env["NIDAAN_DATA_DIR"] = str(data_dir)
    env.setdefault("NIDAAN_LOG_LEVEL", "WARNING")
    return env


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = _env(data_dir)
    for command in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run([NIDAAN, *command], env=env, check=True, capture_output=True)
    return subprocess.Popen(
        [NIDAAN, "serve", "--role", "api", "--port", str(port), "--processes", str(PROCESSES)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_ready(base: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit(f"server did not become ready in {READY_TIMEOUT_S} s")


async def login(client: httpx.AsyncClient, role: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": f"{role}@demo.example.com", "password": PASSWORD}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def journey(
    client: httpx.AsyncClient,
    rec: Recorder,
    auth: dict[str, dict[str, str]],
    branches: dict[str, str],
    n: int,
) -> None:
    front, phleb, tech, path = (
        auth["front_desk"],
        auth["phlebotomist"],
        auth["technician"],
        auth["pathologist"],
    )
    patient = await rec.call(
        client,
        "POST /patients",
        "POST",
        "/api/v1/patients",
        headers=front,
        json={
            "full_name": f"Bench Patient {n}",
            "sex": "female" if n % 2 else "male",
            "age_years": 20 + n % 60,
            "preferred_language": "en",
        },
    )
    patient_id = patient.json()["patient"]["id"]
    order = await rec.call(
        client,
        "POST /orders",
        "POST",
        "/api/v1/orders",
        headers={**front, "Idempotency-Key": f"bench-{n}-{time.time_ns()}"},
        json={"patient_id": patient_id, "branch_id": branches["CC1"], "items": ORDER_ITEMS},
    )
    body = order.json()
    for sample in body["samples"]:
        accession = sample["accession"]
        await rec.call(
            client,
            "POST /samples/{a}/collect",
            "POST",
            f"/api/v1/samples/{accession}/collect",
            headers=phleb,
            json={},
        )
        await rec.call(
            client,
            "POST /samples/{a}/receive",
            "POST",
            f"/api/v1/samples/{accession}/receive",
            headers=tech,
            json={"branch_id": branches["CL"]},
        )
    result_ids = []
    for test in body["tests"]:
        entered = await rec.call(
            client,
            "POST /results",
            "POST",
            "/api/v1/results",
            headers=tech,
            json={"order_test_id": test["id"], "value": VALUES[test["code"]]},
        )
        result_ids.append(entered.json()["id"])
    for result_id in result_ids:
        await rec.call(
            client,
            "POST /results/{id}/verify",
            "POST",
            f"/api/v1/results/{result_id}/verify",
            headers=path,
            json={},
        )


async def baseline(client: httpx.AsyncClient, rec: Recorder, clients: int, per_client: int) -> None:
    async def one() -> None:
        for _ in range(per_client):
            await rec.call(client, "GET /healthz (baseline)", "GET", "/healthz")

    await asyncio.gather(*(one() for _ in range(clients)))


@dataclass
class Summary:
    """One load model's figures: per endpoint (count, req/s, p50, p95, p99 ms)."""

    rows: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def journey_rate(self) -> float:
        return sum(row[1] for label, row in self.rows.items() if "baseline" not in label)

    @property
    def healthz_rate(self) -> float:
        return self.rows["GET /healthz (baseline)"][1]

    @property
    def ratio(self) -> float:
        return self.journey_rate / self.healthz_rate


def summarise(rec: Recorder, elapsed: dict[str, float]) -> Summary:
    summary = Summary()
    for label, samples in rec.samples.items():
        q = statistics.quantiles(samples, n=100) if len(samples) > 1 else [samples[0]] * 99
        phase = "baseline" if "baseline" in label else "journey"
        summary.rows[label] = (
            len(samples),
            len(samples) / elapsed[phase],
            statistics.median(samples),
            q[94],
            q[98],
        )
    return summary


def parse_output(text: str) -> dict[str, Summary]:
    """The summaries in an earlier run's output (this script's table format), by model."""
    found: dict[str, Summary] = {}
    current: Summary | None = None
    for line in text.splitlines():
        if line.startswith("== "):
            model = "paced" if line.startswith("== paced") else "saturated"
            current = found[model] = Summary()
            continue
        parts = line.split()
        if current is None or len(parts) < 7 or not parts[-1].endswith("x"):
            continue
        try:
            numbers = tuple(float(p) for p in parts[-6:-1])
        except ValueError:
            continue
        current.rows[" ".join(parts[:-6])] = numbers
    return found


def print_comparison(before: dict[str, Summary], after: dict[str, Summary]) -> None:
    """This run beside an earlier one (e.g. the code before a change), model by model."""
    for model, now in after.items():
        then = before.get(model)
        if then is None:
            continue
        print(f"\n== {model}: before -> after")
        print(f"{'':<32}{'before':>10}{'after':>10}{'after/before':>14}")
        for name, old, new in (
            ("journey req/s", then.journey_rate, now.journey_rate),
            ("healthz req/s", then.healthz_rate, now.healthz_rate),
            ("journey/healthz ratio", then.ratio, now.ratio),
        ):
            print(f"{name:<32}{old:>10.3f}{new:>10.3f}{new / old:>13.2f}x")
        for label, row in now.rows.items():
            if label in then.rows and "baseline" not in label:
                old_p95, new_p95 = then.rows[label][3], row[3]
                print(
                    f"{label + ' p95 ms':<32}{old_p95:>10.1f}{new_p95:>10.1f}"
                    f"{new_p95 / old_p95:>13.2f}x"
                )


def print_ratio(rec: Recorder, elapsed: dict[str, float]) -> None:
    """Journey throughput against /healthz's, both measured in this run: the ratio is what
    compares across machines and runs (the load generator shares the cores)."""
    journey = sum(len(v) for k, v in rec.samples.items() if "baseline" not in k)
    journey_rate = journey / elapsed["journey"]
    healthz_rate = len(rec.samples["GET /healthz (baseline)"]) / elapsed["baseline"]
    print(
        f"journey {journey_rate:.1f} req/s / healthz {healthz_rate:.1f} req/s = "
        f"ratio {journey_rate / healthz_rate:.3f}"
    )


def print_table(rec: Recorder, elapsed: dict[str, float]) -> None:
    base = rec.samples["GET /healthz (baseline)"]
    base_p95 = statistics.quantiles(base, n=100)[94]
    print(
        f"{'endpoint':<32}{'count':>7}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'p95/base':>10}"
    )
    for label, samples in rec.samples.items():
        q = statistics.quantiles(samples, n=100) if len(samples) > 1 else [samples[0]] * 99
        phase = "baseline" if "baseline" in label else "journey"
        rate = len(samples) / elapsed[phase]
        print(
            f"{label:<32}{len(samples):>7}{rate:>9.1f}{statistics.median(samples):>9.1f}"
            f"{q[94]:>9.1f}{q[98]:>9.1f}{q[94] / base_p95:>9.1f}x"
        )
    for label in ("POST /orders", "POST /results"):
        p95 = statistics.quantiles(rec.samples[label], n=100)[94]
        verdict = "meets" if p95 < TARGET_P95_MS else "MISSES"
        print(f"target p95 < {TARGET_P95_MS} ms for {label}: {p95:.1f} ms ({verdict})")
    print_ratio(rec, elapsed)
    if rec.errors:
        print(f"failed calls: {dict(rec.errors)}")


def render_timing(runs: int) -> None:
    from nidaan.reports.render import measure_render
    from nidaan.reports.sample import sample_document

    for language in ("en", "hi"):
        timing = measure_render(sample_document(language=language), runs=runs)
        print(
            f"report render ({language}, {timing.pages} pages, {runs} runs): "
            f"median {timing.median_seconds_per_page * 1000:.0f} ms/page, "
            f"p95 {timing.p95_seconds_per_page * 1000:.0f} ms/page"
        )


async def run_phase(
    client: httpx.AsyncClient,
    auth: dict[str, dict[str, str]],
    branches: dict[str, str],
    *,
    clients: int,
    journeys: int,
    think_ms: float,
    first_patient: int,
) -> Summary:
    rec = Recorder(think_ms)
    elapsed: dict[str, float] = {}
    started = time.perf_counter()
    await baseline(client, rec, clients, per_client=10 if think_ms else 20)
    elapsed["baseline"] = time.perf_counter() - started

    async def worker(index: int) -> None:
        if think_ms:
            # Staff do not all press Enter in the same second: clients join over one
            # think period, as they would over a morning (the saturated run has no ramp).
            await asyncio.sleep(index * (think_ms / 1000) / clients)
        for j in range(journeys):
            try:
                await journey(client, rec, auth, branches, first_patient + index * 1000 + j)
            except (RuntimeError, httpx.TransportError) as error:
                # A failed call ends this patient's journey (counted and shown), not the run.
                print(f"journey {first_patient + index * 1000 + j} stopped: {error!r}"[:300])

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed["journey"] = time.perf_counter() - started
    total = sum(len(v) for k, v in rec.samples.items() if "baseline" not in k)
    model = f"paced, think time {think_ms:.0f} ms +-50%" if think_ms else "saturated, no think time"
    print(
        f"\n== {model}: {clients} concurrent clients x {journeys} journeys "
        f"({clients * journeys} patients, {total} API calls in {elapsed['journey']:.1f} s, "
        f"{total / elapsed['journey']:.0f} req/s), {os.cpu_count()} CPU(s)\n"
    )
    print_table(rec, elapsed)
    return summarise(rec, elapsed)


async def main(
    clients: int,
    journeys: int,
    think_ms: float,
    saturate: bool,
    keep: bool,
    baseline: str | None = None,
    render: bool = True,
) -> None:
    data_dir = (
        ROOT / "var" / "bench-workflow" if keep else Path(tempfile.mkdtemp(prefix="nidaan-bench-"))
    )
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port)
    try:
        await wait_ready(base_url)
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
            auth = {
                r: await login(client, r)
                for r in ("front_desk", "phlebotomist", "technician", "pathologist")
            }
            listed = (await client.get("/api/v1/branches", headers=auth["front_desk"])).json()
            branches = {b["code"]: b["id"] for b in listed["items"]}
            summaries = {}
            summaries["paced"] = await run_phase(
                client,
                auth,
                branches,
                clients=clients,
                journeys=journeys,
                think_ms=think_ms,
                first_patient=0,
            )
            if saturate:
                summaries["saturated"] = await run_phase(
                    client,
                    auth,
                    branches,
                    clients=clients,
                    journeys=journeys,
                    think_ms=0,
                    first_patient=500_000,
                )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    if baseline is not None:
        print_comparison(parse_output(baseline), summaries)
    if render:
        print()
        render_timing(runs=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--journeys", type=int, default=2, help="patients per client (default 2)")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=1000,
        help="pause between a client's actions in the paced run (default 1000)",
    )
    parser.add_argument(
        "--no-saturate",
        dest="saturate",
        action="store_false",
        help="skip the run without think time",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the data under var/bench-workflow"
    )
    parser.add_argument(
        "--baseline-file",
        type=Path,
        help="output of an earlier run to print this run's figures beside",
    )
    parser.add_argument(
        "--no-render", dest="render", action="store_false", help="skip the PDF render timing"
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            args.clients,
            args.journeys,
            args.think_ms,
            args.saturate,
            args.keep,
            args.baseline_file.read_text() if args.baseline_file else None,
            args.render,
        )
    )
