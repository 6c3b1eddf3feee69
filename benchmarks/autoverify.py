"""Autoverification benchmark: rule evaluation throughput and the latency autoverification adds
to an analyzer message landing.

(a) Rule evaluation (``autoverify.domain.evaluate``): a realistic glucose rule set (source,
    reportable range, critical limits, autoverification range, delta against the previous
    result, instrument flags, QC, serum indices, comment, two consistency rules across the
    sample) over N generated results (values, previous results, flags, indices and
    sample-mates drawn at random so that every rule both holds and stops). Figure: results/s.
    Baselines in the same run: the same results through a one-rule set (reportable range
    only) and a bare Python range comparison (``low <= value <= high``), with ratios.
    Goal: >= 5,000 results/s on this machine.
(b) Landing with autoverification on against off: ``--messages`` analyzer messages (one
    sample, a six-test chemistry panel each) land through ``integration_service.
    ingest_results`` (the lander's own call: match, enter, flag, publish ``results.entered``)
    in one transaction, then the ``autoverify.evaluate_entered_results`` subscriber runs as
    its job does (``events.deliver``: claim, decide, verify by the system or stop, commit).
    Messages alternate between a panel whose tests have enabled rule sets (on) and an
    identical panel without rule sets (off), so drift of a busy machine hits both alike.
    Figures: mean / median / p95 milliseconds per message for landing + decision, and the
    added latency (on - off) per message and per result. The decision path of "on" is also
    reported as results/s through the database (facts gathered, evaluations written), next to
    its baseline in the same run: a pathologist verifying the "off" arm's results through
    ``results_service.verify`` (the release work an autoverified result saves a person).

Run:  .venv/bin/python benchmarks/autoverify.py [--results 50000] [--messages 200] [--skip-db]
Uses NIDAAN_DATABASE_URL if set, else an embedded PostgreSQL under var/bench.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("NIDAAN_MODE", "test")
os.environ.setdefault("NIDAAN_LOG_LEVEL", "WARNING")
os.environ.setdefault("NIDAAN_DATA_DIR", str(Path(__file__).resolve().parents[1] / "var" / "bench"))

from nidaan.autoverify import domain

ROOT = Path(__file__).resolve().parents[1]
GOAL_RESULTS_PER_S = 5000
#: Messages of (b) landed before the clock counts (two of each arm).
WARM_UP = 4

#: The glucose rule set of the benchmark (what a lab would validate for a chemistry analyte).
RULES: list[dict[str, Any]] = [
    {"type": "source", "allowed": ["instrument"]},
    {"type": "reportable_range", "low": 2, "high": 750},
    {"type": "no_critical"},
    {"type": "autoverification_range", "low": 60, "high": 200},
    {"type": "delta", "percent": 40, "window_days": 90},
    {"type": "instrument_flags"},
    {"type": "qc", "max_age_hours": 24},
    {"type": "specimen_indices", "H": 200, "I": 20, "L": 500},
    {"type": "no_comment"},
    {"type": "consistency", "expression": "TG < 400", "missing": "pass"},
    {"type": "consistency", "expression": "NA - CL >= 25 and NA - CL <= 45", "missing": "pass"},
]

# ---------------------------------------------------------------------- (a) rules alone


def make_facts(n: int, seed: int = 17) -> list[domain.Facts]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for _ in range(n):
        value = Decimal(f"{rng.gauss(110, 35):.0f}")
        previous = Decimal(f"{rng.gauss(105, 25):.0f}") if rng.random() < 0.6 else None
        out.append(
            domain.Facts(
                value_text=str(value),
                value_numeric=value,
                flag="H" if value > 140 else ("L" if value < 70 else None),
                reference_low=Decimal("70"),
                reference_high=Decimal("140"),
                instrument_flags=("<",) if rng.random() < 0.02 else (),
                comment="lipaemic?" if rng.random() < 0.01 else None,
                source="instrument" if rng.random() < 0.97 else "manual",
                entered_at=now,
                previous_value=previous,
                previous_at=now - timedelta(days=rng.randint(1, 120)) if previous else None,
                instrument_id="c311",
                qc_blocked="QC 1-3s on level 2" if rng.random() < 0.01 else None,
                qc_passed_at=now - timedelta(hours=rng.uniform(0, 30)),
                indices={"H": str(rng.randint(0, 260)), "I": str(rng.randint(0, 25)), "L": "30"},
                sample={
                    "GLU": value,
                    "TG": Decimal(rng.randint(60, 480)),
                    "NA": Decimal(rng.randint(128, 152)),
                    "CL": Decimal(rng.randint(95, 112)),
                },
            )
        )
    return out


def timed(fn: Any, facts: list[domain.Facts], repeat: int = 3) -> float:
    """Best of ``repeat`` runs, in results/s."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(facts)
        best = min(best, time.perf_counter() - start)
    return len(facts) / best


def bench_rules(n: int) -> bool:
    facts = make_facts(n)
    full = domain.parse(RULES)
    one = domain.parse(RULES[1:2])
    low, high = Decimal(2), Decimal(750)

    def with_full(items: list[domain.Facts]) -> None:
        for f in items:
            domain.evaluate(full, f)

    def with_one(items: list[domain.Facts]) -> None:
        for f in items:
            domain.evaluate(one, f)

    def bare(items: list[domain.Facts]) -> None:
        for f in items:
            _ = f.value_numeric is not None and low <= f.value_numeric <= high

    decisions = [domain.evaluate(full, f) for f in facts]
    released = sum(d.autoverify for d in decisions)
    stopped_by: dict[str, int] = {}
    for d in decisions:
        if not d.autoverify:
            stopped_by[d.decided_by] = stopped_by.get(d.decided_by, 0) + 1
    rate_full = timed(with_full, facts)
    rate_one = timed(with_one, facts)
    rate_bare = timed(bare, facts)
    print(f"(a) rule evaluation, {n} generated glucose results, {len(full)}-rule set")
    print(
        f"    autoverified {released} ({released / n:.0%}); stopped by "
        + ", ".join(f"{k} {v}" for k, v in sorted(stopped_by.items(), key=lambda kv: -kv[1]))
    )
    print(f"    {len(full):>2} rules            {rate_full:>12,.0f} results/s")
    print(
        f"     1 rule (baseline)  {rate_one:>12,.0f} results/s   "
        f"full/one = {rate_full / rate_one:.2f}"
    )
    print(
        f"    bare comparison    {rate_bare:>12,.0f} results/s   "
        f"full/bare = {rate_full / rate_bare:.3f}"
    )
    ok = rate_full >= GOAL_RESULTS_PER_S
    print(f"    goal >= {GOAL_RESULTS_PER_S:,} results/s: {'met' if ok else 'NOT met'}")
    return ok


# ---------------------------------------------------------------------- (b) landing


PANEL = ("GLU", "UREA", "CREA", "NA", "K", "CL")


def _values(rng: random.Random) -> dict[str, str]:
    return {
        "GLU": f"{rng.gauss(100, 15):.0f}",
        "UREA": f"{rng.gauss(30, 6):.0f}",
        "CREA": f"{rng.gauss(0.9, 0.15):.2f}",
        "NA": f"{rng.gauss(140, 2):.0f}",
        "K": f"{rng.gauss(4.3, 0.3):.1f}",
        "CL": f"{rng.gauss(103, 2):.0f}",
    }


async def bench_landing(messages: int) -> None:
    sys.path.insert(0, str(ROOT))  # for the tests.fixtures lab helpers
    from sqlalchemy import func, select
    from tests.fixtures.lab import create_catalog_test, create_patient
    from tests.fixtures.objects import create_organisation
    from tests.fixtures.results import make_lab, place_order, principal_of

    from nidaan import migrate
    from nidaan.autoverify.models import Evaluation
    from nidaan.autoverify.schemas import RuleSetIn
    from nidaan.autoverify.service import autoverify_service
    from nidaan.config import get_settings
    from nidaan.events.models import OutboxEvent
    from nidaan.events.registry import load_handler_modules
    from nidaan.events.tasks import deliver
    from nidaan.integration.domain import InstrumentMessage, InstrumentResult
    from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
    from nidaan.integration.service import integration_service
    from nidaan.kit import db
    from nidaan.kit.ids import new_id
    from nidaan.qc.enums import TargetSource
    from nidaan.qc.schemas import LotCreate, MaterialCreate
    from nidaan.qc.service import qc_service
    from nidaan.results.service import results_service

    load_handler_modules()
    settings = get_settings()
    migrate.upgrade(settings)
    ranges = {
        "GLU": ("70", "140", "2", "750", "60", "200"),
        "UREA": ("15", "45", "1", "300", "10", "60"),
        "CREA": ("0.6", "1.3", "0.1", "25", "0.4", "1.6"),
        "NA": ("135", "145", "100", "180", "130", "150"),
        "K": ("3.5", "5.1", "1", "10", "3.2", "5.5"),
        "CL": ("98", "107", "60", "140", "94", "112"),
    }
    rng = random.Random(5)
    suffix = new_id().hex[-4:].upper()
    async with db.session_scope(settings) as session:
        org = await create_organisation(session, f"Autoverify bench {suffix}")
        lab = await make_lab(session, org)
        admin, path = principal_of(lab.users["admin"]), principal_of(lab.users["path"])
        panels: dict[str, list[Any]] = {}
        instruments = {}
        for arm in ("on", "off"):
            tests = []
            for code in PANEL:
                low, high, *_ = ranges[code]
                tests.append(
                    await create_catalog_test(
                        session,
                        org,
                        code=f"{code}{arm.upper()}{suffix}",
                        unit="mg/dL",
                        decimals=2,
                        ranges=[{"low": Decimal(low), "high": Decimal(high)}],
                    )
                )
            panels[arm] = tests
            instruments[arm], _ = await integration_service.create_instrument(
                session,
                admin,
                InstrumentCreate(
                    name=f"c311 {arm} {suffix}",
                    driver="roche-cobas",
                    transport="tcp-server",
                    port=5100,
                    branch_id=lab.branch.id,
                    test_map=[
                        MapEntryIn(instrument_code=code, test_code=test.code)
                        for code, test in zip(PANEL, tests, strict=True)
                    ],
                ),
            )
            # Passing QC on every analyte of both arms (the qc rule needs a passing run).
            for test in tests:
                material = await qc_service.create_material(
                    session, path, MaterialCreate(name=f"Control {test.code}", level="1")
                )
                lot = await qc_service.create_lot(
                    session,
                    path,
                    LotCreate(
                        material_id=material.id,
                        lot_number=f"L{test.code}",
                        expires_on=(datetime.now(UTC) + timedelta(days=90)).date(),
                        instrument_id=instruments[arm].id,
                        test_id=test.id,
                        control_id=f"QC{test.code}",
                        target_source=TargetSource.MANUFACTURER,
                        mean=Decimal("100"),
                        sd=Decimal("5"),
                    ),
                )
                await qc_service.record_manual(session, path, lot.id, Decimal("101"), None)
        for code, test in zip(PANEL, panels["on"], strict=True):
            _, _, rep_low, rep_high, av_low, av_high = ranges[code]
            rules = [
                {"type": "source", "allowed": ["instrument"]},
                {"type": "reportable_range", "low": rep_low, "high": rep_high},
                {"type": "no_critical"},
                {"type": "autoverification_range", "low": av_low, "high": av_high},
                {"type": "delta", "percent": 40, "window_days": 90},
                {"type": "instrument_flags"},
                {"type": "qc", "max_age_hours": 24},
                {"type": "no_comment"},
            ]
            if code in ("NA", "CL"):
                rules.append(
                    {
                        "type": "consistency",
                        "expression": f"[NAON{suffix}] - [CLON{suffix}] >= 25",
                        "missing": "pass",
                    }
                )
            await autoverify_service.put_rule_set(
                session, path, test.id, RuleSetIn(enabled=True, rules=rules, note="bench")
            )
        plan = []
        for index in range(messages + WARM_UP):
            arm = "on" if index % 2 == 0 else "off"
            patient = await create_patient(session, org)
            placed = await place_order(session, lab, patient, panels[arm])
            plan.append((arm, placed.sample.accession, _values(rng)))
    org_id = org.id
    database = "external" if settings.database_url else "embedded"
    print(
        f"(b) landing + decision per analyzer message ({len(PANEL)} results), {messages} "
        f"messages alternating on/off, database: {database}"
    )

    timings: dict[str, list[float]] = {"on": [], "off": []}
    deciding: list[float] = []
    by_person: list[float] = []
    seen: set[Any] = set()
    for index, (arm, accession, values) in enumerate(plan):
        instrument = instruments[arm]
        message = InstrumentMessage(
            dedupe_key=f"bench-{new_id().hex}",
            message_type="ASTM-R",
            results=[
                InstrumentResult(
                    accession=accession,
                    instrument_code=code,
                    value=values[code],
                    unit="mg/dL",
                    status="F",
                    completed_at=datetime.now(UTC).replace(tzinfo=None),
                )
                for code in PANEL
            ],
            raw="H|\\^&\rL|1|N",
        )
        start = time.perf_counter()
        async with db.session_scope(settings) as session:
            report = await integration_service.ingest_results(session, org_id, instrument, message)
            assert not report.exceptions, [e.detail for e in report.exceptions]
            # This message's results.entered event(s): the organisation is the benchmark's own.
            event_ids = [
                event_id
                for event_id in await session.scalars(
                    select(OutboxEvent.id).where(
                        OutboxEvent.organisation_id == org_id,
                        OutboxEvent.name == "results.entered",
                    )
                )
                if event_id not in seen
            ]
            seen.update(event_ids)
        decided_from = time.perf_counter()
        for event_id in event_ids:
            await deliver(event_id=str(event_id), subscriber="autoverify.evaluate_entered_results")
        end = time.perf_counter()
        verified_from = time.perf_counter()
        if arm == "off":  # the baseline: a person verifies what autoverification would have
            async with db.session_scope(settings) as session:
                for result in report.results:
                    await results_service.verify(session, path, result.id)
        verified = time.perf_counter() - verified_from
        if index < WARM_UP:  # first use imports and caches (a model library, statements)
            continue
        timings[arm].append(end - start)
        if arm == "on":
            deciding.append(end - decided_from)
        else:
            by_person.append(verified)

    async with db.session_scope(settings) as session:
        outcomes = dict(
            (
                await session.execute(
                    select(Evaluation.outcome, func.count())
                    .where(Evaluation.organisation_id == org_id)
                    .group_by(Evaluation.outcome)
                )
            ).all()
        )

    def line(label: str, values: list[float]) -> str:
        ms = sorted(v * 1000 for v in values)
        p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
        return (
            f"    {label:<26} mean {statistics.fmean(ms):7.1f} ms   median "
            f"{statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms"
        )

    print(line("autoverification off", timings["off"]))
    print(line("autoverification on", timings["on"]))
    added = statistics.fmean(timings["on"]) - statistics.fmean(timings["off"])
    added_median = statistics.median(timings["on"]) - statistics.median(timings["off"])
    ratio = statistics.fmean(timings["on"]) / statistics.fmean(timings["off"])
    print(
        f"    added by autoverification: {added * 1000:.1f} ms per message mean "
        f"({added_median * 1000:.1f} ms median), {added * 1000 / len(PANEL):.2f} ms per result; "
        f"on/off = {ratio:.2f}"
    )
    rate = len(deciding) * len(PANEL) / sum(deciding)
    person = len(by_person) * len(PANEL) / sum(by_person)
    print(
        f"    decision job alone (facts, rules, verify/stop, evaluation rows, commit): "
        f"{rate:,.0f} results/s"
    )
    print(
        f"    baseline: a person verifying the same results (results_service.verify): "
        f"{person:,.0f} results/s; decision/person = {rate / person:.2f}"
    )
    print(f"    outcomes (on arm): {outcomes}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=int, default=50000, help="results for (a)")
    parser.add_argument("--messages", type=int, default=200, help="analyzer messages for (b)")
    parser.add_argument("--skip-db", action="store_true", help="only (a)")
    args = parser.parse_args()
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    bench_rules(args.results)
    if not args.skip_db:
        asyncio.run(bench_landing(args.messages))


if __name__ == "__main__":
    main()
