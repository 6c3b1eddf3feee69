"""Sync benchmark: push latency, pull cost against a large change log, initial sync of a device.

Against `nidaan serve --role api` started here on loopback, on a scratch database made for
the run (on the server of NIDAAN_DATABASE_URL / NIDAAN_TEST_DATABASE_URL if set, else the
embedded PostgreSQL under var/bench) and dropped at the end:

(a) push: p50/p95 of one ``syncPendingOperations`` call carrying 100 ops (50 registrations,
    50 last-writer-wins edits of patients registered by earlier pushes), next to the same
    figures for an empty call (push nothing, pull nothing) measured in the same run. Target
    on a 2-core machine (issue 19): p95 under 300 ms.
(b) pull: --rows patients seeded with COPY (and their change-log rows), split over three
    collection centres; then k in {0, 1, 10, 1000} of them are edited through sync, and a
    device of one centre pulls: rows, bytes and time. Checked and printed: the rows pulled
    equal the changed rows in the device's scope, and an idle pull is under 2 KB. Bytes are
    fitted to a*k + b.
(c) initial sync: a fresh reference client (``nidaan.sync.client``, SQLite file) pulls the
    --initial rows of one centre: time and peak Python memory (tracemalloc) / max RSS.

Run:  .venv/bin/python benchmarks/sync.py [--rows 100000] [--initial 10000] [--push-runs 30]
      [--only push|pull|initial]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NIDAAN_MODE", "test")
os.environ.setdefault("NIDAAN_LOG_LEVEL", "WARNING")
os.environ.setdefault("NIDAAN_DATA_DIR", str(ROOT / "var" / "bench"))
# Cheap password hashing for the benchmark's users (as the test suite does).
os.environ.setdefault("NIDAAN_ARGON2_TIME_COST", "1")
os.environ.setdefault("NIDAAN_ARGON2_MEMORY_KIB", "1024")

import httpx  # noqa: E402
import psycopg  # noqa: E402

NIDAAN = str(Path(sys.executable).parent / "nidaan")
PASSWORD = "bench-sync-password"
TARGET_PUSH_P95_S = 0.3
PUSH_CREATES = 50
PUSH_EDITS = 50
IDLE_PULL_LIMIT_BYTES = 2048
SYNC = """
mutation Sync($clientId: ID!, $cursor: String, $ops: [SyncOpInput!], $branchId: ID,
              $pullLimit: Int) {
  syncPendingOperations(clientId: $clientId, protocolVersion: 1, schemaVersion: 2,
                        cursor: $cursor, ops: $ops, branchId: $branchId, pullLimit: $pullLimit) {
    results { opId status reason }
    changes { seq entity entityId deleted data }
    cursor hasMore reset
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _libpq(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _admin_url() -> str:
    url = os.environ.get("NIDAAN_DATABASE_URL") or os.environ.get("NIDAAN_TEST_DATABASE_URL")
    if url:
        return _libpq(url)
    from nidaan.kit.embedded import embedded_server

    server = embedded_server(Path(os.environ["NIDAAN_DATA_DIR"]) / "pgdata")
    return _libpq(str(server.get_uri("postgres")))


def _in_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- setup ---------------------------------------------------------------------------------


class Lab:
    def __init__(self, org: str, branches: list[str], emails: dict[str, str]) -> None:
        self.org = org
        self.branches = branches  # three collection centres
        self.emails = emails


async def make_lab(database_url: str) -> Lab:
    sys.path.insert(0, str(ROOT))  # for the tests.fixtures helpers
    from tests.fixtures.objects import create_branch, create_organisation, create_user

    from nidaan import migrate
    from nidaan.config import get_settings, reset_settings
    from nidaan.kit import db

    os.environ["NIDAAN_DATABASE_URL"] = database_url
    reset_settings()
    settings = get_settings()
    migrate.upgrade(settings)
    async with db.session_scope(settings) as session:
        org = await create_organisation(session, "Sync bench")
        branches = [await create_branch(session, org) for _ in range(3)]
        emails = {}
        for name, roles, where in (
            ("admin", ("admin",), []),
            ("desk0", ("front_desk",), [branches[0]]),
            ("desk2", ("front_desk",), [branches[2]]),
        ):
            user = await create_user(session, org, roles=roles, branches=where, password=PASSWORD)
            emails[name] = user.email
        lab = Lab(str(org.id), [str(b.id) for b in branches], emails)
    await db.dispose()
    return lab


def seed_patients(conninfo: str, lab: Lab, rows: int, initial: int) -> dict[str, list[str]]:
    """COPY ``rows`` patients and one change-log row each; the last centre gets ``initial``."""
    from nidaan.kit.ids import new_id

    per_branch: dict[str, list[str]] = {b: [] for b in lab.branches}
    rest = rows - initial
    patients, changes = io.StringIO(), io.StringIO()
    for index in range(rows):
        branch = lab.branches[2] if index >= rest else lab.branches[index % 2]
        patient_id = str(new_id())
        per_branch[branch].append(patient_id)
        name = f"Bench Patient {index}"
        patients.write(
            f"{patient_id}\t{lab.org}\tB{index:09d}\t{name}\t{name.lower()}\tfemale\t"
            f"1980-01-01\tPune\t{branch}\n"
        )
        changes.write(f"{lab.org}\t{index + 1}\tpatient\t{patient_id}\tupsert\t{{{branch}}}\n")
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY patients (id, organisation_id, mrn, full_name, name_normalized, sex, "
            "date_of_birth, city, registered_at_branch_id) FROM STDIN"
        ) as copy:
            copy.write(patients.getvalue())
        with cur.copy(
            "COPY sync_change_log (organisation_id, seq, entity, entity_id, op, scope_keys) "
            "FROM STDIN"
        ) as copy:
            copy.write(changes.getvalue())
        cur.execute(
            "INSERT INTO sync_tenant_state (organisation_id, head_seq) VALUES (%s, %s) "
            "ON CONFLICT (organisation_id) DO UPDATE SET head_seq = excluded.head_seq",
            (lab.org, rows),
        )
        cur.execute("ANALYZE patients")
        cur.execute("ANALYZE sync_change_log")
    return per_branch


def start_server(database_url: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NIDAAN_DATABASE_URL=database_url, NIDAAN_DATA_DIR=str(data_dir))
    return subprocess.Popen(
        [NIDAAN, "serve", "--role", "api", "--port", str(port), "--processes", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"server exited with {server.returncode}")
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit("server did not become ready in 60 s")


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


class Device:
    """A raw protocol client: one client id, its sequence, its HLC and its cursor."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str], branch: str | None):
        self.http, self.headers, self.branch = http, headers, branch
        self.client_id = str(uuid.uuid4())
        self.seq = 0
        self.cursor: str | None = None
        self.counter = 0

    def op(self, entity: str, entity_id: str, operation: str, data: dict[str, Any]) -> Any:
        self.seq += 1
        self.counter += 1
        hlc = f"{time.time_ns() // 1_000_000:015d}-{self.counter % 100000:05d}-{self.client_id}"
        return {
            "opId": str(uuid.uuid4()),
            "clientSeq": self.seq,
            "entity": entity,
            "entityId": entity_id,
            "operation": operation,
            "data": data,
            "hlc": hlc,
        }

    async def call(
        self, ops: list[Any] | None = None, pull_limit: int = 1000
    ) -> tuple[dict[str, Any], int, float]:
        variables = {
            "clientId": self.client_id,
            "cursor": self.cursor,
            "ops": ops or [],
            "branchId": self.branch,
            "pullLimit": pull_limit,
        }
        started = time.perf_counter()
        response = await self.http.post(
            "/graphql", json={"query": SYNC, "variables": variables}, headers=self.headers
        )
        elapsed = time.perf_counter() - started
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"sync failed: {response.status_code} {response.text[:300]}")
        answer = body["data"]["syncPendingOperations"]
        self.cursor = answer["cursor"]
        return answer, len(response.content), elapsed

    async def catch_up(self) -> tuple[int, int, float, set[str]]:
        rows = size = 0
        took = 0.0
        ids: set[str] = set()
        while True:
            answer, nbytes, elapsed = await self.call()
            rows += len(answer["changes"])
            ids.update(c["entityId"] for c in answer["changes"])
            size += nbytes
            took += elapsed
            if not answer["hasMore"]:
                return rows, size, took, ids


# -- (a) push ------------------------------------------------------------------------------


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process and its live children so far (0 without a pid)."""
    if pid is None:
        return 0.0
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def bench_push(
    http: httpx.AsyncClient, lab: Lab, runs: int, server_pid: int | None = None
) -> bool:
    headers = await login(http, lab.emails["desk0"])
    device = Device(http, headers, lab.branches[0])
    await device.catch_up()
    idle: list[float] = []
    for _ in range(max(runs, 10)):
        device.cursor = None
        # An empty call: bind, push nothing, pull an empty page (cursor at head after this).
        await device.call(pull_limit=1)
        _, _, elapsed = await device.call(pull_limit=1)
        idle.append(elapsed)
    made: list[str] = []
    pushes: list[float] = []
    statuses: dict[str, int] = {}
    # Patients for the first push's edits, registered by a push that is not timed.
    first = [
        device.op("patient", str(uuid.uuid4()), "create", _bench_patient(lab, -1, i))
        for i in range(PUSH_EDITS)
    ]
    await device.call(first, pull_limit=1)
    made.extend(op["entityId"] for op in first)
    await device.catch_up()
    cpu = 0.0
    for run in range(runs):
        ops = []
        for index in range(PUSH_CREATES):
            patient_id = str(uuid.uuid4())
            ops.append(device.op("patient", patient_id, "create", _bench_patient(lab, run, index)))
        # Edit the patients the previous push registered (known to the server by now).
        for patient_id in made[-PUSH_EDITS:]:
            ops.append(device.op("patient", patient_id, "update", {"city": f"City {run}"}))
        made.extend(op["entityId"] for op in ops[:PUSH_CREATES])
        before = _cpu_seconds(server_pid)
        answer, _, elapsed = await device.call(ops, pull_limit=1)
        cpu += _cpu_seconds(server_pid) - before
        pushes.append(elapsed)
        for result in answer["results"]:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        await device.catch_up()  # keep the next call's pull small: we time the push
    p50, p95 = statistics.median(pushes), pct(pushes, 0.95)
    b50, b95 = statistics.median(idle), pct(idle, 0.95)
    print(
        f"(a) push of {PUSH_CREATES} registrations + {PUSH_EDITS} edits ({runs} runs; "
        f"results {statuses})"
    )
    print(f"  {'':22}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"  {'empty call (baseline)':22}{b50 * 1000:10.1f}{b95 * 1000:10.1f}")
    print(f"  {'push 100 ops':22}{p50 * 1000:10.1f}{p95 * 1000:10.1f}")
    print(f"  ratio to baseline: p50 x{p50 / b50:.1f}, p95 x{p95 / b95:.1f}")
    print(f"  per op: {p50 * 1000 / 100:.2f} ms (p50)")
    if server_pid is not None:
        # Wall time on a shared machine includes waiting for a core; the server's CPU does not.
        print(f"  server CPU per push: {cpu * 1000 / max(runs, 1):.1f} ms (mean)")
    met = p95 < TARGET_PUSH_P95_S
    print(f"  target p95 < {TARGET_PUSH_P95_S * 1000:.0f} ms: {'MET' if met else 'NOT MET'}")
    return met


def _bench_patient(lab: Lab, run: int, index: int) -> dict[str, Any]:
    return {
        "full_name": f"Push Bench {run}-{index}",
        "sex": "male",
        "age_years": 40,
        "mobile": f"97{(run * 1000 + index) % 10**8:08d}",
        "registered_at_branch_id": lab.branches[0],
        "city": "Pune",
    }


# -- (b) pull ------------------------------------------------------------------------------


async def bench_pull(
    http: httpx.AsyncClient, lab: Lab, per_branch: dict[str, list[str]], rows: int, seed: int
) -> bool:
    import random

    rng = random.Random(seed)
    admin = Device(http, await login(http, lab.emails["admin"]), None)
    reader = Device(http, await login(http, lab.emails["desk0"]), lab.branches[0])
    await reader.catch_up()  # through the seeded log once: the cursor is at head
    every = [(b, p) for b, ids in per_branch.items() for p in ids]
    scope = len(per_branch[lab.branches[0]])
    print(f"\n(b) pull with {rows} seeded rows; device at centre 1 ({scope} rows in scope)")
    print(f"  {'k changed':>10}{'in scope':>10}{'pulled':>8}{'bytes':>10}{'ms':>9}{'  check'}")
    ok = True
    points: list[tuple[int, int]] = []
    for k in (0, 1, 10, 1000):
        chosen = rng.sample(every, k)
        for start in range(0, k, 100):
            batch = [
                admin.op("patient", pid, "update", {"city": f"Changed {k}-{n}"})
                for n, (_, pid) in enumerate(chosen[start : start + 100])
            ]
            answer, _, _ = await admin.call(batch, pull_limit=1)
            bad = [r for r in answer["results"] if r["status"] != "APPLIED"]
            if bad:
                raise RuntimeError(f"edit not applied: {bad[:2]}")
        in_scope = {pid for branch, pid in chosen if branch == lab.branches[0]}
        pulled, size, took, ids = await reader.catch_up()
        good = pulled == len(in_scope) and ids == in_scope
        if k == 0:
            good = good and size < IDLE_PULL_LIMIT_BYTES
        ok = ok and good
        points.append((pulled, size))
        label = "OK" if good else "MISMATCH"
        if k == 0:
            label += f" (idle {'<' if size < IDLE_PULL_LIMIT_BYTES else '>='} 2 KB)"
        print(f"  {k:>10}{len(in_scope):>10}{pulled:>8}{size:>10}{took * 1000:9.1f}  {label}")
    (_, b), (n_hi, s_hi) = points[0], points[-1]
    if n_hi:
        print(f"  bytes ~ a*rows + b: a = {(s_hi - b) / n_hi:.0f} B/row, b = {b} B")
    print(f"  pulled rows == changed rows in scope, idle < 2 KB: {'YES' if ok else 'NO'}")
    return ok


# -- (c) initial sync ----------------------------------------------------------------------


async def bench_initial(http: httpx.AsyncClient, lab: Lab, expected: int) -> None:
    from nidaan.sync.client.engine import SyncClient
    from nidaan.sync.client.store import LocalStore
    from nidaan.sync.client.transport import Transport

    folder = Path(tempfile.mkdtemp(prefix="nidaan-sync-bench-"))
    transport = Transport("", email=lab.emails["desk2"], password=PASSWORD, http=http)
    await transport.login()
    client = SyncClient(
        LocalStore(folder / "device.sqlite"), transport, branch_id=lab.branches[2], pull_limit=1000
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    report = await client.sync()
    took = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = len(client.rows("patient"))
    size = (folder / "device.sqlite").stat().st_size
    print(f"\n(c) initial sync of one centre into the reference client ({expected} rows)")
    print(
        f"  {got} rows in {report.rounds} round(s), {took:.2f} s ({got / took:.0f} rows/s); "
        f"peak Python memory {peak / 2**20:.1f} MiB (tracemalloc), max RSS "
        f"{rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB; SQLite file {size / 2**20:.1f} MiB"
    )
    print(f"  rows == seeded rows in scope: {'YES' if got == expected else 'NO'}")


async def main(rows: int, initial: int, push_runs: int, seed: int, only: str | None) -> None:
    admin_url = _admin_url()
    name = f"nidaan_bench_sync_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = _in_database(admin_url, name)
    database_url = conninfo.replace("postgresql://", "postgresql+psycopg://", 1)
    server = None
    try:
        lab = await make_lab(database_url)
        started = time.perf_counter()
        per_branch = seed_patients(conninfo, lab, rows, initial)
        took = time.perf_counter() - started
        print(f"seeded {rows} patients + change log with COPY in {took:.1f} s")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(database_url, port, Path(tempfile.mkdtemp(prefix="nidaan-bench-")))
        await wait_ready(base, server)
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            if only in (None, "push"):
                await bench_push(http, lab, push_runs, server.pid)
            if only in (None, "pull"):
                await bench_pull(http, lab, per_branch, rows, seed)
            if only in (None, "initial"):
                await bench_initial(http, lab, initial)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="patients seeded (100000)")
    parser.add_argument(
        "--initial", type=int, default=10_000, help="rows of the initial-sync centre (10000)"
    )
    parser.add_argument("--push-runs", type=int, default=30, help="timed 100-op pushes (30)")
    parser.add_argument("--seed", type=int, default=1, help="which rows are changed (1)")
    parser.add_argument("--only", choices=("push", "pull", "initial"), help="one part only")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.initial, args.push_runs, args.seed, args.only))
