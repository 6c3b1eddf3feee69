"""Notifications benchmark: 1,000 report-ready messages through the WhatsApp simulator.

On a scratch database (on the server of NIDAAN_DATABASE_URL / NIDAAN_TEST_DATABASE_URL if
set, else the embedded PostgreSQL under var/bench), dropped at the end:

- seeded before the clock: --messages patients who opted in to WhatsApp, each with an order
  and an issued report (a stand-in PDF kept through the files service), and one
  ``report.finalized`` event per report in the outbox — exactly what the reports module
  leaves behind;
- then ``nidaan worker`` processes (--workers, each --concurrency jobs) deliver the events
  to the notifications handler, which queues the messages, and send them through the real
  WhatsApp adapter to the simulator (served here on loopback) under the configured rate
  limit (--rate, messages/s; Meta's default for a number is 80). The simulator posts the
  signed status webhooks to ``nidaan serve --role api`` (also started here).

Printed: messages/s over the sending window against the configured limit, how many the
simulator refused for throughput (130429; zero when our limiter holds), duplicates (messages
the simulator received more than once for one notification: must be 0), and the time until
every message was recorded delivered. Baseline in the same run: the same requests posted
straight to the simulator with httpx (no database, no jobs), as fast as it takes them.

Run:  .venv/bin/python benchmarks/notifications.py [--messages 1000] [--rate 80]
      [--workers 2] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

os.environ.setdefault("NIDAAN_MODE", "test")
os.environ.setdefault("NIDAAN_LOG_LEVEL", "WARNING")
os.environ.setdefault("NIDAAN_DATA_DIR", str(Path(__file__).resolve().parents[1] / "var" / "bench"))

import httpx
import psycopg
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
NIDAAN = str(Path(sys.executable).with_name("nidaan"))
TOKEN = "bench-access-token"
APP_SECRET = "bench-app-secret-0123456789abcdef"
PHONE_ID = "100000000000001"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


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


async def seed(database_url: str, count: int) -> uuid.UUID:
    """Patients with WhatsApp consent, orders, issued reports and their report.finalized
    events; returns the organisation id."""
    sys.path.insert(0, str(ROOT))  # for the tests.fixtures helpers
    from tests.fixtures.lab import create_patient
    from tests.fixtures.objects import create_organisation
    from tests.fixtures.results import make_lab, place_order

    from nidaan import migrate
    from nidaan.config import get_settings, reset_settings
    from nidaan.events.service import publish
    from nidaan.files.enums import FilePurpose
    from nidaan.files.service import files_service
    from nidaan.kit import db
    from nidaan.kit.ids import new_id
    from nidaan.kit.time import utcnow
    from nidaan.notifications.models import NotificationConsent, NotificationPolicy
    from nidaan.reports.events import ReportFinalized
    from nidaan.reports.models import Report

    os.environ["NIDAAN_DATABASE_URL"] = database_url
    reset_settings()
    settings = get_settings()
    db.configure(database_url)
    migrate.upgrade(settings)
    async with db.session_scope(settings) as session:
        organisation = await create_organisation(session, "Notifications bench")
        lab = await make_lab(session, organisation)
        # One message per report: the template with its download link (no PDF document).
        session.add(NotificationPolicy(organisation_id=organisation.id, send_report_document=False))
        for i in range(count):
            patient = await create_patient(
                session, organisation, mobile=f"9{i + 100_000_000:09d}"[:10]
            )
            session.add(
                NotificationConsent(
                    organisation_id=organisation.id,
                    patient_id=patient.id,
                    channel="whatsapp",
                    opted_in=True,
                    source="desk",
                    opted_in_at=utcnow(),
                )
            )
            placed = await place_order(session, lab, patient, [])
            report_id = new_id()
            stored = await files_service.store_generated(
                session,
                organisation.id,
                FilePurpose.REPORT,
                PDF,
                filename=f"RPT-B-{i:06d}.pdf",
                document_id=placed.order.id,
                subject=("report", report_id),
                patient_id=patient.id,
                order_id=placed.order.id,
            )
            session.add(
                Report(
                    id=report_id,
                    organisation_id=organisation.id,
                    order_id=placed.order.id,
                    report_number=f"RPT-B-{i:06d}",
                    report_version=1,
                    is_current=True,
                    amended=False,
                    language="en",
                    storage_key=stored.storage_key,
                    file_id=stored.id,
                    sha256=stored.sha256,
                    page_count=1,
                    size_bytes=stored.size_bytes,
                    verification_code=uuid.uuid4().hex[:32],
                    created_at=utcnow(),
                )
            )
            await session.flush()
            await publish(
                session,
                ReportFinalized(
                    organisation_id=organisation.id,
                    order_id=placed.order.id,
                    report_id=report_id,
                    report_version=1,
                    amended=False,
                ),
            )
    await db.dispose()
    return organisation.id


class Served:
    def __init__(self, app: object) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)  # type: ignore[arg-type]
        )
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


LOG_DIR = Path(os.environ.get("NIDAAN_BENCH_LOGS", "/dev/null"))


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``nidaan ...``; its output goes to NIDAAN_BENCH_LOGS/<command>-<pid>.log if set."""
    if LOG_DIR.is_dir():
        log = open(LOG_DIR / f"{args[0]}-{time.time_ns()}.log", "wb")  # noqa: SIM115
        return subprocess.Popen([NIDAAN, *args], env=env, stdout=log, stderr=log)
    return subprocess.Popen(
        [NIDAAN, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def delivered_count(conninfo: str, organisation_id: uuid.UUID) -> Counter[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM notifications WHERE organisation_id = %s GROUP BY status",
            (organisation_id,),
        ).fetchall()
    return Counter({status: n for status, n in rows})


async def baseline(count: int, concurrency: int) -> float:
    """The simulator alone: the same template requests straight over HTTP, no database."""
    from nidaan.simulators.whatsapp import SimulatorOptions, WhatsAppSimulator

    simulator = WhatsAppSimulator(
        access_token=TOKEN,
        app_secret=APP_SECRET,
        webhook_url=None,
        phone_number_id=PHONE_ID,
        options=SimulatorOptions(status_delay=0, fetch_media=False),
    )
    served = Served(simulator.app)
    await served.start()
    payload = {
        "messaging_product": "whatsapp",
        "to": "919000000000",
        "type": "template",
        "template": {
            "name": "test_result_ready",
            "language": {"policy": "deterministic", "code": "en"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Test Patient"},
                        {"type": "text", "text": "your tests"},
                        {"type": "text", "text": "http://127.0.0.1/files/x?expires=1&signature=y"},
                    ],
                }
            ],
        },
    }
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    url = f"{served.url}/v21.0/{PHONE_ID}/messages"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def poster(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            (await client.post(url, json=payload, headers=headers)).raise_for_status()

    started = time.perf_counter()
    async with httpx.AsyncClient() as client:
        await asyncio.gather(*[poster(client) for _ in range(concurrency)])
    took = time.perf_counter() - started
    await simulator.aclose()
    await served.stop()
    return count / took


async def main(count: int, rate: float, workers: int, concurrency: int) -> None:
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    admin_url = _admin_url()
    name = f"nidaan_bench_notify_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = _in_database(admin_url, name)
    database_url = conninfo.replace("postgresql://", "postgresql+psycopg://", 1)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        started = time.perf_counter()
        organisation_id = await seed(database_url, count)
        print(
            f"seeded {count} patients, reports and report.finalized events in "
            f"{time.perf_counter() - started:.1f} s"
        )

        from nidaan.simulators.whatsapp import SimulatorOptions, WhatsAppSimulator

        api_port = _free_port()
        api = f"http://127.0.0.1:{api_port}"
        simulator = WhatsAppSimulator(
            access_token=TOKEN,
            app_secret=APP_SECRET,
            webhook_url=f"{api}/webhooks/whatsapp",
            phone_number_id=PHONE_ID,
            # Meta's own throughput cap at the configured rate: exceeding it costs a 130429.
            options=SimulatorOptions(status_delay=0.02, read_rate=0.0, messages_per_second=rate),
        )
        served = Served(simulator.app)
        await served.start()
        data_dir = Path(os.environ["NIDAAN_DATA_DIR"])
        env = dict(
            os.environ,
            NIDAAN_DATABASE_URL=database_url,
            NIDAAN_DATA_DIR=str(data_dir),
            NIDAAN_WHATSAPP_API_URL=served.url,
            NIDAAN_WHATSAPP_PHONE_NUMBER_ID=PHONE_ID,
            NIDAAN_WHATSAPP_ACCESS_TOKEN=TOKEN,
            NIDAAN_WHATSAPP_APP_SECRET=APP_SECRET,
            NIDAAN_WHATSAPP_VERIFY_TOKEN="bench",
            NIDAAN_WHATSAPP_MESSAGES_PER_SECOND=str(rate),
            NIDAAN_PUBLIC_BASE_URL=api,
        )
        processes.append(
            spawn(["serve", "--role", "api", "--port", str(api_port), "--processes", "1"], env)
        )
        await wait_ready(api, processes[0])
        # Phase 1: the report.finalized events become queued messages (queue "default").
        clock = time.perf_counter()
        events_worker = spawn(["worker", "--concurrency", str(concurrency), "-q", "default"], env)
        processes.append(events_worker)
        deadline = time.monotonic() + max(300.0, count)
        while time.monotonic() < deadline:
            if sum(delivered_count(conninfo, organisation_id).values()) >= count:
                break
            await asyncio.sleep(0.5)
        queued_after = time.perf_counter() - clock
        # Phase 2: send them (queue "notifications") under the rate limit.
        clock = time.perf_counter()
        for _ in range(workers):
            processes.append(
                spawn(["worker", "--concurrency", str(concurrency), "-q", "notifications"], env)
            )
        # Until everything is sent, or nothing more arrives for two minutes (a loaded machine
        # is slow, not stuck).
        seen, last_progress = 0, time.monotonic()
        while len(simulator.messages) < count and time.monotonic() - last_progress < 120:
            await asyncio.sleep(0.5)
            if len(simulator.messages) > seen:
                seen, last_progress = len(simulator.messages), time.monotonic()
        accepted = sorted(m.accepted_at for m in simulator.messages.values())
        sent_window = accepted[-1] - accepted[0] if len(accepted) > 1 else float("nan")
        all_sent = time.perf_counter() - clock
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            statuses = delivered_count(conninfo, organisation_id)
            if statuses["delivered"] + statuses["read"] >= count:
                break
            await asyncio.sleep(0.5)
        all_delivered = time.perf_counter() - clock
        statuses = delivered_count(conninfo, organisation_id)
        per_notification = Counter(
            m.payload.get("biz_opaque_callback_data") for m in simulator.messages.values()
        )
        duplicates = sum(n - 1 for n in per_notification.values() if n > 1)
        throttled = sum(1 for r in simulator.rejected if r["error"][0] == 130429)
        achieved = (len(accepted) - 1) / sent_window if len(accepted) > 1 else 0.0

        load = os.getloadavg()[0]
        print(f"\nmachine load average while sending: {load:.1f} on {os.cpu_count()} cores")
        print(
            f"\nWhatsApp, {count} report-ready notifications, {workers} worker process(es) x "
            f"{concurrency} jobs, configured limit {rate:g} messages/s"
        )
        print(
            f"  accepted by the simulator: {len(accepted)} in {sent_window:.1f} s of sending "
            f"-> {achieved:.1f} messages/s = {achieved / rate:.2f} x the configured limit"
        )
        print(
            f"  {count} report.finalized events became queued messages in {queued_after:.1f} s "
            f"({count / queued_after:.0f}/s, one worker, its start-up included); from the send "
            f"workers' start to the last message sent: {all_sent:.1f} s"
        )
        print(f"  refused by the simulator for throughput (130429): {throttled}")
        print(f"  duplicates (one notification received twice): {duplicates}")
        print(
            f"  statuses recorded: {dict(statuses)}; all delivered after {all_delivered:.1f} s; "
            f"webhooks posted {simulator.webhooks_sent}, failed posts "
            f"{simulator.webhook_failures}"
        )
        await simulator.aclose()
        await served.stop()

        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        processes.clear()

        base = await baseline(count, concurrency * workers)
        print(
            f"\nBaseline, the simulator alone (httpx, {concurrency * workers} connections, "
            f"no database): {base:.0f} messages/s; the pipeline at its limit is "
            f"{achieved / base:.2f} of that"
        )
        print(
            f"\nzero duplicates: {'YES' if duplicates == 0 else 'NO'}; "
            f"every message delivered: "
            f"{'YES' if statuses['delivered'] + statuses['read'] == count else 'NO'}"
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000, help="notifications (1000)")
    parser.add_argument("--rate", type=float, default=80, help="configured messages/s (80)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs per worker (4)")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.rate, args.workers, args.concurrency))
