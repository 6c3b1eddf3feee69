"""Platform benchmark: costs of the audit chain, authentication and transactional enqueue.

Each figure is printed next to a baseline measured in the same run on the same database:
  - audit.record vs a plain INSERT of a comparable row (the price of hash chaining),
  - an authenticated API read vs /healthz (the price of auth + tenant scoping),
  - enqueue() of a job vs the same INSERT (the price of procrastinate's defer).

Run:  .venv/bin/python benchmarks/platform_bench.py [--n 500]
Uses NIDAAN_DATABASE_URL if set, else an embedded PostgreSQL under var/bench.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("NIDAAN_MODE", "test")
os.environ.setdefault("NIDAAN_LOG_LEVEL", "WARNING")
os.environ.setdefault("NIDAAN_DATA_DIR", str(Path(__file__).resolve().parents[1] / "var" / "bench"))

import httpx
from sqlalchemy import text

from nidaan import migrate
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.auth.schemas import UserCreate
from nidaan.auth.service import auth_service
from nidaan.auth.tokens import issue_access_token
from nidaan.config import get_settings
from nidaan.kit import db
from nidaan.kit.ids import new_id
from nidaan.kit.jobs import close_job_app, enqueue, open_job_app
from nidaan.main import create_app
from nidaan.tenancy.service import tenancy_service


async def timed(n: int, action: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await action(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(name: str, samples: list[float]) -> tuple[str, float]:
    p50 = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[-1]
    print(f"  {name:<44} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms   {1000 / p50:8.0f}/s")
    return name, p50


async def main(n: int) -> None:
    settings = get_settings()
    migrate.upgrade(settings)
    sessionmaker = db.get_sessionmaker(settings)
    async with sessionmaker() as session:
        organisation = await tenancy_service.create_organisation(
            session, name="Bench", slug=f"bench-{new_id().hex[-8:]}", actor=SYSTEM_ACTOR
        )
        user = await auth_service.create_user_in(
            session,
            organisation.id,
            UserCreate(
                email=f"bench-{new_id().hex[-8:]}@example.com",
                full_name="Bench",
                password="bench-password-1",
                roles=["admin"],
            ),
        )
        await session.commit()

    print(
        f"Platform benchmark, n={n} each, "
        f"database: {'external' if settings.database_url else 'embedded'}"
    )

    async def plain_insert(i: int) -> None:
        async with sessionmaker() as s:
            await s.execute(
                text("INSERT INTO bench_plain VALUES (:id, CAST(:body AS jsonb))"),
                {"id": new_id(), "body": '{"after": {"status": "received"}}'},
            )
            await s.commit()

    async def audit_record(i: int) -> None:
        async with sessionmaker() as s:
            await audit_service.record(
                s,
                organisation_id=organisation.id,
                actor=SYSTEM_ACTOR,
                action="sample.received",
                entity_type="sample",
                entity_id=f"s-{i}",
                after={"status": "received"},
            )
            await s.commit()

    async def job_enqueue(i: int) -> None:
        async with sessionmaker() as s:
            from nidaan.events.tasks import prune_outbox

            await enqueue(s, prune_outbox, timestamp=i)
            await s.commit()

    async with sessionmaker() as s:
        await s.execute(
            text("CREATE TABLE IF NOT EXISTS bench_plain (id uuid PRIMARY KEY, body jsonb)")
        )
        await s.commit()
    await open_job_app(settings)

    print("Writes (one committed transaction each):")
    _, base = summary("baseline: plain INSERT + commit", await timed(n, plain_insert))
    _, audit = summary("audit_service.record + commit", await timed(n, audit_record))
    _, job = summary("enqueue job + commit", await timed(n, job_enqueue))
    print(f"  ratio audit/baseline {audit / base:5.2f}x   enqueue/baseline {job / base:5.2f}x")

    # Concurrency: 8 writers on one tenant serialise on the chain head (by design).
    started = time.perf_counter()
    await asyncio.gather(*(audit_record(i) for i in range(n)))
    concurrent_rate = n / (time.perf_counter() - started)
    print(f"  audit entries/s with {n} concurrent writers on one tenant: {concurrent_rate:8.0f}/s")

    app = create_app(settings)
    token = issue_access_token(settings, user)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as client:

        async def health(i: int) -> None:
            assert (await client.get("/healthz")).status_code == 200

        async def branches(i: int) -> None:
            assert (await client.get("/api/v1/branches", headers=headers)).status_code == 200

        print("Reads (in-process ASGI, no network):")
        _, base_read = summary("baseline: GET /healthz", await timed(n, health))
        _, auth_read = summary(
            "GET /api/v1/branches (JWT + tenant scope)", await timed(n, branches)
        )
        print(f"  ratio authenticated/baseline {auth_read / base_read:5.2f}x")

    async with sessionmaker() as s:
        report = await audit_service.verify(s, organisation.id)
        started = time.perf_counter()
        report = await audit_service.verify(s, organisation.id)
        elapsed = time.perf_counter() - started
    print(
        f"Audit verify: {report.entries_checked} entries in {elapsed * 1000:.1f} ms "
        f"({report.entries_checked / elapsed:,.0f} entries/s), ok={report.ok}"
    )
    async with sessionmaker() as s:
        await s.execute(text("DROP TABLE bench_plain"))
        await s.commit()
    await close_job_app()
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="operations per measurement")
    asyncio.run(main(parser.parse_args().n))
