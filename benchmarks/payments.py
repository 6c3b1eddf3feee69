"""Payments benchmark: webhook deliveries against the simulator-backed app, exactly once.

Against `nidaan serve --role api` started here on loopback (its adapters pointed at the three
gateway simulators, served by this process), on a scratch database made for the run (on the
server of NIDAAN_DATABASE_URL / NIDAAN_TEST_DATABASE_URL if set, else the embedded
PostgreSQL under var/bench) and dropped at the end:

1. --invoices invoices are made through the API, each with a payment link at Razorpay,
   Stripe or PayU (in turn), and each link is paid in its simulator with webhooks held.
   The simulators sign every event exactly as the gateway does (Razorpay 4 events per
   payment, Stripe 2, PayU 1).
2. The unique events are topped up with --duplicates (fraction of the total) redeliveries,
   shuffled (seeded), and posted to /webhooks/<gateway> with --concurrency clients.
3. Printed: deliveries/s and unique events applied/s, against a baseline measured in the
   same run (GET /healthz on the same server with the same concurrency); then the
   exactly-once check: every invoice paid in full, one ledger entry, one receipt, one
   payment.captured event each, and every delivery counted on its stored event.

Run:  .venv/bin/python benchmarks/payments.py [--deliveries 1000] [--duplicates 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NIDAAN_MODE", "test")
os.environ.setdefault("NIDAAN_LOG_LEVEL", "WARNING")
os.environ.setdefault("NIDAAN_DATA_DIR", str(ROOT / "var" / "bench"))
os.environ.setdefault("NIDAAN_ARGON2_TIME_COST", "1")
os.environ.setdefault("NIDAAN_ARGON2_MEMORY_KIB", "1024")

import httpx  # noqa: E402
import psycopg  # noqa: E402

NIDAAN = str(Path(sys.executable).parent / "nidaan")
EVENTS_PER_PAYMENT = {"razorpay": 4, "stripe": 2, "payu": 1}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _libpq(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
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


def plan(deliveries: int, duplicates: float) -> dict[str, int]:
    """Payments per gateway so that unique events = deliveries x (1 - duplicates)."""
    unique = round(deliveries * (1 - duplicates))
    per_round = sum(EVENTS_PER_PAYMENT.values())  # one payment at each gateway
    rounds, rest = divmod(unique, per_round)
    counts = {g: rounds for g in EVENTS_PER_PAYMENT}
    # Fill the remainder with PayU payments (one event each).
    counts["payu"] += rest
    return counts


async def make_lab(database_url: str, payments: int) -> tuple[dict[str, str], list[str]]:
    """An organisation with billing set up and ``payments`` open orders; returns the
    logins' bearer headers and the order ids."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.billing import create_billing_world
    from tests.fixtures.objects import create_organisation

    from nidaan import migrate
    from nidaan.billing.models import BillingSettings
    from nidaan.config import get_settings, reset_settings
    from nidaan.kit import db

    os.environ["NIDAAN_DATABASE_URL"] = database_url
    reset_settings()
    settings = get_settings()
    migrate.upgrade(settings)
    async with db.session_scope(settings) as session:
        organisation = await create_organisation(session, "Payments bench")
        world = await create_billing_world(session, organisation)
        row = await session.get(BillingSettings, organisation.id)
        assert row is not None
        row.enabled_gateways = ["razorpay", "stripe", "payu"]
        row.default_gateway = "razorpay"
        orders = [str((await world.order("TSH", "GLU")).id) for _ in range(payments)]
        headers = {
            "desk": world.front_desk["Authorization"],
            "billing": world.billing["Authorization"],
        }
    await db.dispose()
    return headers, orders


def start_server(database_url: str, port: int, data_dir: Path, env: dict[str, str]) -> Any:
    full_env = dict(os.environ, NIDAAN_DATABASE_URL=database_url, NIDAAN_DATA_DIR=str(data_dir))
    full_env.update(env)
    return subprocess.Popen(
        [NIDAAN, "serve", "--role", "api", "--port", str(port), "--processes", "1"],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_ready(base: str, server: Any) -> None:
    deadline = time.monotonic() + 90
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
    raise SystemExit("server did not become ready in 90 s")


Headers = dict[str, str] | Callable[[], dict[str, str]]


async def blast(
    base: str, requests: list[tuple[str, str, bytes, Headers]], concurrency: int
) -> tuple[float, list[int]]:
    """Send (method, path, body, headers) with ``concurrency`` clients; (seconds, statuses).
    Callable headers are made when the request goes out (Stripe signs each attempt)."""
    queue: asyncio.Queue[tuple[int, tuple[str, str, bytes, Headers]]] = asyncio.Queue()
    for item in enumerate(requests):
        queue.put_nowait(item)
    statuses = [0] * len(requests)

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            while not queue.empty():
                index, (method, path, body, headers) = queue.get_nowait()
                sent = headers() if callable(headers) else headers
                response = await client.request(method, path, content=body, headers=sent)
                statuses[index] = response.status_code

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, statuses


async def run(args: argparse.Namespace) -> None:
    from nidaan.payments.gateways import demo
    from nidaan.simulators.payments.payu import PayUSimulator
    from nidaan.simulators.payments.razorpay import RazorpaySimulator
    from nidaan.simulators.payments.stripe import StripeSimulator
    from nidaan.simulators.serve import ServedApp

    counts = plan(args.deliveries, args.duplicates)
    payments = sum(counts.values())
    admin = _admin_url()
    name = f"nidaan_bench_payments_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = _in_database(admin, name)
    sims = {
        "razorpay": RazorpaySimulator(public_url="", webhook_url=None),
        "stripe": StripeSimulator(public_url="", webhook_url=None),
        "payu": PayUSimulator(public_url="", webhook_url=None),
    }
    served = {g: ServedApp(sim.app) for g, sim in sims.items()}
    for gateway, sim in sims.items():
        sim.public_url = served[gateway].url
        sim.webhooks.hold = True
        served[gateway].start()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = None
    try:
        print(f"Setting up {payments} invoices ({counts}) ...", flush=True)
        headers, orders = await make_lab(database_url, payments)
        env = {
            "NIDAAN_RAZORPAY_API_URL": served["razorpay"].url,
            "NIDAAN_RAZORPAY_KEY_ID": demo.RAZORPAY_KEY_ID,
            "NIDAAN_RAZORPAY_KEY_SECRET": demo.RAZORPAY_KEY_SECRET,
            "NIDAAN_RAZORPAY_WEBHOOK_SECRET": demo.RAZORPAY_WEBHOOK_SECRET,
            "NIDAAN_STRIPE_API_URL": served["stripe"].url,
            "NIDAAN_STRIPE_SECRET_KEY": demo.STRIPE_SECRET_KEY,
            "NIDAAN_STRIPE_WEBHOOK_SECRET": demo.STRIPE_WEBHOOK_SECRET,
            "NIDAAN_PAYU_PAYMENT_URL": served["payu"].url,
            "NIDAAN_PAYU_API_URL": served["payu"].url,
            "NIDAAN_PAYU_KEY": demo.PAYU_KEY,
            "NIDAAN_PAYU_SALT": demo.PAYU_SALT,
            "NIDAAN_PORT": str(port),
        }
        # The same data directory: the server signs tokens with the keys our logins used.
        if True:
            server = start_server(database_url, port, Path(os.environ["NIDAAN_DATA_DIR"]), env)
            await wait_ready(base, server)
            gateways = [g for g in EVENTS_PER_PAYMENT for _ in range(counts[g])]
            invoices: list[dict[str, Any]] = []
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                desk = {"Authorization": headers["desk"]}
                for order_id, gateway in zip(orders, gateways, strict=True):
                    invoice = (
                        await http.post(
                            "/api/v1/invoices", json={"order_id": order_id}, headers=desk
                        )
                    ).json()
                    link = (
                        await http.post(
                            f"/api/v1/invoices/{invoice['id']}/payment-link",
                            json={"gateway": gateway},
                            headers=desk,
                        )
                    ).json()
                    await pay(sims, served, gateway, link)
                    invoices.append(invoice)
            unique = [d for sim in sims.values() for d in sim.webhooks.take()]
            deliveries = [(gateway_of(d), d) for d in unique]
            rng = random.Random(args.seed)
            extra = args.deliveries - len(deliveries)
            deliveries += [rng.choice(deliveries) for _ in range(extra)]
            rng.shuffle(deliveries)
            # Headers are made at sending time: Stripe signs each attempt with its time.
            requests: list[tuple[str, str, bytes, Headers]] = [
                ("POST", f"/webhooks/{g}", d.body, d.current_headers) for g, d in deliveries
            ]
            health: list[tuple[str, str, bytes, Headers]] = [("GET", "/healthz", b"", {})] * len(
                requests
            )
            await blast(base, health[:50], args.concurrency)  # warm-up
            baseline_s, _ = await blast(base, health, args.concurrency)
            seconds, statuses = await blast(base, requests, args.concurrency)
            check = await exactly_once(database_url, invoices, unique, len(requests))
        report(args, counts, len(unique), len(requests), seconds, baseline_s, statuses, check)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        for item in served.values():
            item.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def gateway_of(delivery: Any) -> str:
    headers = {k.lower() for k in delivery.headers}
    if "x-razorpay-signature" in headers:
        return "razorpay"
    if "stripe-signature" in headers:
        return "stripe"
    return "payu"


async def pay(
    sims: dict[str, Any], served: dict[str, Any], gateway: str, link: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(base_url=served[gateway].url) as http:
        if gateway == "razorpay":
            path, body = f"/_sim/payment_links/{link['gateway_ref']}/pay", {}
        elif gateway == "stripe":
            path, body = f"/_sim/checkout/sessions/{link['gateway_ref']}/pay", {}
        else:
            path = "/_sim/pay"
            body = {"txnid": link["gateway_ref"], "amount": link["amount"], "udf1": link["id"]}
        response = await http.post(path, json=body)
        response.raise_for_status()


async def exactly_once(
    database_url: str, invoices: list[dict[str, Any]], unique: list[Any], sent: int
) -> dict[str, Any]:
    conninfo = _libpq(database_url)
    ids = [i["id"] for i in invoices]
    with psycopg.connect(conninfo) as conn:
        paid = conn.execute(
            "SELECT count(*) FROM invoices WHERE id = ANY(%s::uuid[]) AND payment_status = 'paid' "
            "AND amount_paid = grand_total AND amount_refunded = 0",
            (ids,),
        ).fetchone()[0]
        ledger = conn.execute(
            "SELECT count(*), count(DISTINCT invoice_id) FROM billing_ledger "
            "WHERE invoice_id = ANY(%s::uuid[])",
            (ids,),
        ).fetchone()
        receipts = conn.execute(
            "SELECT count(*) FROM billing_receipts WHERE invoice_id = ANY(%s::uuid[])", (ids,)
        ).fetchone()[0]
        captured = conn.execute(
            "SELECT count(*), count(DISTINCT payload->>'invoice_id') FROM event_outbox "
            "WHERE name = 'payment.captured' AND payload->>'invoice_id' = ANY(%s)",
            ([str(i) for i in ids],),
        ).fetchone()
        stored = conn.execute(
            "SELECT count(*), coalesce(sum(deliveries), 0), "
            "count(*) FILTER (WHERE status = 'processed') FROM payment_webhook_events"
        ).fetchone()
        held = conn.execute(
            "SELECT count(*) FROM gateway_payments WHERE review_status <> 'applied'"
        ).fetchone()[0]
    n = len(ids)
    return {
        "invoices": n,
        "paid_in_full": paid,
        "ledger_entries": ledger[0],
        "invoices_with_entries": ledger[1],
        "receipts": receipts,
        "payment_captured_events": captured[0],
        "invoices_announced": captured[1],
        "stored_events": stored[0],
        "deliveries_counted": stored[1],
        "processed_events": stored[2],
        "payments_not_applied": held,
        "unique_sent": len(unique),
        "sent": sent,
        "ok": (
            paid == n
            and ledger[0] == n
            and ledger[1] == n
            and receipts == n
            and captured[0] == n
            and stored[0] == len(unique)
            and stored[1] == sent
            and stored[2] == len(unique)
            and held == 0
        ),
    }


def report(
    args: argparse.Namespace,
    counts: dict[str, int],
    unique: int,
    sent: int,
    seconds: float,
    baseline_s: float,
    statuses: list[int],
    check: dict[str, Any],
) -> None:
    rate = sent / seconds
    baseline = sent / baseline_s
    print()
    print(
        f"Payments (per gateway): {counts}; unique signed events: {unique}; "
        f"deliveries: {sent} ({sent - unique} duplicates, shuffled, seed {args.seed}); "
        f"concurrency {args.concurrency}"
    )
    print(f"  webhook deliveries:    {rate:8.1f} /s   ({seconds:.2f} s)")
    print(f"  unique events applied: {unique / seconds:8.1f} /s")
    print(f"  baseline GET /healthz: {baseline:8.1f} /s   (same server, same concurrency)")
    print(f"  ratio deliveries/baseline: {rate / baseline:.2f}")
    print(f"  HTTP statuses: { {s: statuses.count(s) for s in sorted(set(statuses))} }")
    print("Exactly-once check:")
    for key, value in check.items():
        if key != "ok":
            print(f"  {key:26} {value}")
    print(
        f"  => {'PASS' if check['ok'] else 'FAIL'}: every invoice paid once, "
        "one ledger entry, one receipt and one payment.captured each"
    )
    if not check["ok"]:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=13)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
