"""Home-collection booking benchmark: bookings/s through the real service on PostgreSQL, each
booking its own committed transaction, with the capacity rule (an atomic
``UPDATE ... WHERE booked < capacity``) and the one-visit-per-patient-per-day index.

On a scratch database (on the server of NIDAAN_DATABASE_URL / NIDAAN_TEST_DATABASE_URL if set,
else the embedded PostgreSQL under var/bench), dropped at the end:

* baseline: --bookings bookings one after another, spread over the day's windows;
* spread: the same with --concurrency bookings at a time;
* hot window: --concurrency at a time all into ONE window (every booking waits for the
  slot's row lock), with more requests than places: the surplus must be refused.

Printed: bookings/s of each and its ratio to the baseline, and the check that no window
holds more visits than its capacity and every refusal was "slot full".

Run:  .venv/bin/python benchmarks/appointments.py [--bookings 300] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import time as clock
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("NIDAAN_MODE", "test")
os.environ.setdefault("NIDAAN_LOG_LEVEL", "WARNING")
os.environ.setdefault("NIDAAN_DATA_DIR", str(Path(__file__).resolve().parents[1] / "var" / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from benchmarks.payments import _admin_url, _in_database


async def run(args: argparse.Namespace) -> None:
    admin = _admin_url()
    name = f"nidaan_bench_appointments_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        await measure(_in_database(admin, name), args)
    finally:
        from nidaan.kit import db

        await db.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(database_url: str, args: argparse.Namespace) -> None:
    os.environ["NIDAAN_DATABASE_URL"] = database_url.replace(
        "postgresql://", "postgresql+psycopg://", 1
    )
    from sqlalchemy import select
    from tests.appointments.support import booking, build_home_lab, tomorrow
    from tests.fixtures.lab import create_patient
    from tests.fixtures.objects import create_organisation
    from tests.fixtures.orders import system_principal

    from nidaan import migrate
    from nidaan.appointments.errors import SlotFull
    from nidaan.appointments.models import Slot
    from nidaan.appointments.schemas import SlotsGenerate, WindowIn
    from nidaan.appointments.service import appointments_service
    from nidaan.config import get_settings, reset_settings
    from nidaan.kit import db

    reset_settings()
    settings = get_settings()
    db.configure(os.environ["NIDAAN_DATABASE_URL"])
    migrate.upgrade(settings)
    n = args.bookings
    print(f"Setting up a lab with {3 * n} patients ...", flush=True)
    async with db.session_scope(settings) as session:
        organisation = await create_organisation(session, "Appointments bench")
        lab = await build_home_lab(session, organisation, people=False)
        patients = [lab.patient.id] + [
            (await create_patient(session, organisation)).id for _ in range(3 * n - 1)
        ]
    caller = system_principal(organisation, roles=("front_desk",))

    async def open_day(offset: int, windows: int, capacity: int, people: int = 1) -> list:
        day = tomorrow() + timedelta(days=offset)
        async with db.session_scope(settings) as session:
            await appointments_service.generate_slots(
                session,
                caller,
                lab.branch.id,
                SlotsGenerate(
                    first_day=day,
                    last_day=day,
                    windows=[
                        WindowIn(
                            start=clock(6 + w // 4, (w % 4) * 15),
                            end=clock(6 + w // 4, (w % 4) * 15 + 14),
                        )
                        for w in range(windows)
                    ],
                    phlebotomists=people,
                    visits_per_phlebotomist=capacity,
                ),
            )
            return await appointments_service.slots(session, organisation.id, lab.branch.id, day)

    async def book(slot, patient_id) -> str:  # type: ignore[no-untyped-def]
        try:
            async with db.session_scope(settings) as session:
                await appointments_service.book(session, caller, booking(lab, slot, patient_id))
        except SlotFull:
            return "full"
        return "booked"

    async def phase(requests: list, concurrency: int) -> tuple[float, list[str]]:
        queue = list(enumerate(requests))
        outcomes: list[str] = [""] * len(requests)

        async def worker() -> None:
            while queue:
                index, (slot, patient_id) = queue.pop(0)
                outcomes[index] = await book(slot, patient_id)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, outcomes

    spread_slots = await open_day(2, 16, -(-n // 16))
    base_elapsed, base_out = await phase([(spread_slots[i % 16], patients[i]) for i in range(n)], 1)
    spread2 = await open_day(3, 16, -(-n // 16))
    spread_elapsed, spread_out = await phase(
        [(spread2[i % 16], patients[n + i]) for i in range(n)], args.concurrency
    )
    places = max(10, n // 2 // 10 * 10)  # phlebotomists x 10 visits each
    (hot,) = await open_day(4, 1, 10, places // 10)
    hot_elapsed, hot_out = await phase(
        [(hot, patients[2 * n + i]) for i in range(n)], args.concurrency
    )

    async with db.session_scope(settings) as session:
        rows = list(await session.scalars(select(Slot).where(Slot.branch_id == lab.branch.id)))
    over = [s for s in rows if s.booked > s.capacity]
    base_rate = n / base_elapsed
    print(f"baseline   (1 at a time, spread): {base_rate:7.1f} bookings/s")
    for label, elapsed, outcomes in (
        (f"spread     ({args.concurrency} at a time)", spread_elapsed, spread_out),
        (f"hot window ({args.concurrency} at a time)", hot_elapsed, hot_out),
    ):
        rate = n / elapsed
        print(
            f"{label:33}: {rate:7.1f} requests/s  ({rate / base_rate:4.2f}x baseline); "
            f"booked {outcomes.count('booked')}, refused full {outcomes.count('full')}"
        )
    assert base_out.count("booked") == n
    assert spread_out.count("booked") == n
    assert hot_out.count("booked") == places, hot_out.count("booked")
    assert hot_out.count("full") == n - places
    assert not over, over
    print(
        f"check: no window over capacity ({len(rows)} windows); "
        f"hot window full at {places}/{places}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=300, help="at most 320")
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
