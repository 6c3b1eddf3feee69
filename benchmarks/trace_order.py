"""The span tree of one order, exported over OTLP with no outside collector.

Starts a loopback OTLP/HTTP sink (``/v1/traces``), then `nidaan serve --role api` and
`nidaan worker` (the production layout; ``--all-in-one``: one `nidaan serve`) in demo mode
on a scratch database (embedded PostgreSQL unless NIDAAN_DATABASE_URL is set) with
NIDAAN_OTLP_ENDPOINT pointing at the sink. Then, through the real HTTP API, it registers a
patient (WhatsApp consent given), creates an order, collects and receives its samples,
enters and verifies the results, waits for the worker's jobs (report render, the result-
ready message to the WhatsApp simulator) and prints two traces as indented trees:

  * the order-creation request (POST /api/v1/orders) and the jobs it enqueued;
  * the verification that completed the order -> report render -> notification jobs,
    including the notification's outbound call to the WhatsApp simulator.

Run:  .venv/bin/python benchmarks/trace_order.py [--items GLUF CREA] [--all-in-one]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow import NIDAAN, VALUES, _env, _free_port, login

from nidaan.observability.span_tree import SpanRecord, decode_otlp, render, roots, traces

ROOT = Path(__file__).resolve().parents[1]
#: How long to wait for the worker's jobs and their spans (a busy machine is slow).
JOBS_TIMEOUT_SECONDS = 180


class Sink:
    """An OTLP/HTTP collector in this process: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []
        self.last_received = time.monotonic()

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            self.spans += decode_otlp(body, request.headers.get("content-encoding"))
            self.last_received = time.monotonic()
            return Response(b"", media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", receive, methods=["POST"])])

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_config=None, lifespan="off")
        )
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
            await asyncio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


def start(data_dir: Path, port: int, otlp: str, all_in_one: bool) -> list[subprocess.Popen[bytes]]:
    env = _env(data_dir)
    for command in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run([NIDAAN, *command], env=env, check=True, capture_output=True)
    env |= {
        "NIDAAN_OTLP_ENDPOINT": otlp,
        # The worker's messages go to the simulators mounted on this API port.
        "NIDAAN_PORT": str(port),
        # Export every 200 ms rather than every 5 s, so the tree is complete sooner.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    env.pop("NIDAAN_SERVICE_NAME", None)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if all_in_one:
        return [subprocess.Popen([NIDAAN, "serve"], env=env, **quiet)]  # type: ignore[call-overload]
    env["NIDAAN_WORKER_IN_PROCESS"] = "false"
    api = subprocess.Popen([NIDAAN, "serve", "--role", "api"], env=env, **quiet)  # type: ignore[call-overload]
    worker = subprocess.Popen([NIDAAN, "worker"], env=env, **quiet)  # type: ignore[call-overload]
    return [api, worker]


async def wait_ready(base: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 300
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a server process exited before it was ready")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.5)
    raise SystemExit("server did not become ready in 300 s")


async def one_order(client: httpx.AsyncClient, items: list[str]) -> tuple[str, str]:
    """Register, order, collect, receive, enter, verify; the order's and patient's ids."""
    auth = {r: await login(client, r) for r in ("front_desk", "phlebotomist", "technician")}
    auth["pathologist"] = await login(client, "pathologist")

    async def call(role: str, method: str, url: str, **kwargs: object) -> dict:
        response = await client.request(method, url, headers=auth[role], **kwargs)  # type: ignore[arg-type]
        if response.status_code >= 400:
            raise SystemExit(f"{method} {url}: {response.status_code} {response.text[:300]}")
        return response.json()  # type: ignore[no-any-return]

    branches = {
        b["code"]: b["id"] for b in (await call("front_desk", "GET", "/api/v1/branches"))["items"]
    }
    patient = (
        await call(
            "front_desk",
            "POST",
            "/api/v1/patients",
            json={
                "full_name": "Trace Patient",
                "sex": "female",
                "age_years": 41,
                # A number of its own: the demo's patients' numbers have messages of their
                # own, which would hold ours back (one message per recipient per 6 s).
                "mobile": f"9{random.randrange(10**8, 10**9)}",
                "preferred_language": "en",
            },
        )
    )["patient"]
    await call(
        "front_desk",
        "PUT",
        f"/api/v1/patients/{patient['id']}/notification-consents/whatsapp",
        json={"opted_in": True},
    )
    order = await call(
        "front_desk",
        "POST",
        "/api/v1/orders",
        json={"patient_id": patient["id"], "branch_id": branches["CC1"], "items": items},
    )
    for sample in order["samples"]:
        accession = sample["accession"]
        await call("phlebotomist", "POST", f"/api/v1/samples/{accession}/collect", json={})
        await call(
            "technician",
            "POST",
            f"/api/v1/samples/{accession}/receive",
            json={"branch_id": branches["CL"]},
        )
    results = [
        await call(
            "technician",
            "POST",
            "/api/v1/results",
            json={"order_test_id": test["id"], "value": VALUES[test["code"]]},
        )
        for test in order["tests"]
    ]
    for result in results:
        await call("pathologist", "POST", f"/api/v1/results/{result['id']}/verify", json={})
    return str(order["id"]), str(patient["id"])


async def wait_for_messages(client: httpx.AsyncClient, patient_id: str) -> list[str]:
    """Until the patient's result-ready messages have left (sent, or failed for good): each
    with its status, or an empty list after ``JOBS_TIMEOUT_SECONDS``."""
    auth = await login(client, "front_desk")
    deadline = time.monotonic() + JOBS_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        listed = await client.get(
            "/api/v1/notifications", params={"patient": patient_id}, headers=auth
        )
        items = listed.json()["items"]
        if items and not {"pending", "sending"} & {item["status"] for item in items}:
            return [_message(item) for item in reversed(items)]
        await asyncio.sleep(1)
    return []


def _message(item: dict) -> str:
    error = f" ({item['error_code']} {item['error_title']})" if item["error_code"] else ""
    return f"{item['channel']} {item['kind']} {item['status']}{error}"


def _route(span: SpanRecord) -> str:
    return span.attributes.get("http.route", "")


def print_traces(spans: list[SpanRecord], sql_listed: int) -> None:
    grouped = traces(spans)
    services = sorted({s.service for s in spans})
    print(f"received {len(spans)} spans in {len(grouped)} traces from {', '.join(services)}\n")
    chosen: list[tuple[str, list[SpanRecord]]] = []
    for trace in grouped.values():
        top = roots(trace)
        if not top or top[0].kind != "server":
            continue
        method = top[0].attributes.get("http.request.method") or top[0].attributes.get(
            "http.method", ""
        )
        if method == "POST" and _route(top[0]) == "/api/v1/orders":
            chosen.append(("order creation", trace))
        elif _route(top[0]).endswith("/verify") and any(s.name.startswith("job ") for s in trace):
            chosen.append(("verification -> report -> notification", trace))
    if not chosen:
        print("no order-creation or verification trace was received")
    for title, trace in chosen:
        jobs = sorted({s.name for s in trace if s.name.startswith("job ")})
        print(f"== {title}: trace {trace[0].trace_id}, {len(trace)} spans")
        if jobs:
            print(f"   jobs: {', '.join(jobs)}")
        print("\n".join(render(trace, sql_listed=sql_listed)))
        print()


async def main(items: list[str], all_in_one: bool, sql_listed: int, data_dir: Path) -> None:
    sink = Sink()
    async with sink.serving() as otlp:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        processes = start(data_dir, port, otlp, all_in_one)
        try:
            await wait_ready(base, processes)
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                order_id, patient_id = await one_order(client, items)
                statuses = await wait_for_messages(client, patient_id)
            print(f"order {order_id}; messages to the patient: {'; '.join(statuses) or 'NOT SENT'}")
            # The processes export every 200 ms; the delivery webhooks follow the sends.
            await asyncio.sleep(3)
        finally:
            for process in processes:
                process.send_signal(signal.SIGINT)
            for process in processes:
                process.wait(timeout=60)
    print_traces(sink.spans, sql_listed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--items",
        nargs="+",
        default=["GLUF", "CREA"],
        choices=sorted(VALUES),
        help="test codes of the order (default GLUF CREA)",
    )
    parser.add_argument(
        "--all-in-one",
        action="store_true",
        help="one `nidaan serve` (API + worker) instead of API and worker processes",
    )
    parser.add_argument(
        "--sql-listed",
        type=int,
        default=3,
        help="list SQL statements one by one up to this many per span, else count them",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data under var/trace-order")
    args = parser.parse_args()
    os.environ.setdefault("NIDAAN_LOG_LEVEL", "WARNING")
    data_dir = (
        ROOT / "var" / "trace-order"
        if args.keep
        else Path(tempfile.mkdtemp(prefix="nidaan-trace-"))
    )
    asyncio.run(main(args.items, args.all_in_one, args.sql_listed, data_dir))
