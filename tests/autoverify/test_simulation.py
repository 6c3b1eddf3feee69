"""Simulation over history: the API and ``nidaan autoverify simulate`` against a committed lab."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from nidaan.kit.time import utcnow
from nidaan.results.service import results_service
from tests.autoverify.support import GLUCOSE_RULES, glucose_rules
from tests.fixtures.objects import bearer_for, create_organisation
from tests.qc.support import make_bench, patient_result, qc_run

_RUN = "import sys; from nidaan.cli import app; app(sys.argv[1:], prog_name='nidaan')"


async def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NIDAAN_DATABASE_URL": database_url}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _RUN, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def _history(committing_session: Any) -> dict[str, Any]:
    """A month of glucose in miniature: a normal result, a high one, and one people corrected
    after a person verified it (all verified by people; no rule set was on)."""
    async with committing_session() as session:
        organisation = await create_organisation(session)
        bench = await make_bench(session, organisation)
        path = bench.who("path")
        await qc_run(session, bench, 0.1, -0.2)
        normal = await patient_result(session, bench, "95")
        high = await patient_result(session, bench, "250")
        wrong = await patient_result(session, bench, "120")
        for result in (normal, high, wrong):
            await results_service.verify(session, path, result.id)
        corrected = await results_service.correct(
            session, path, wrong.id, "160", None, "Rerun: the first aspiration had a clot"
        )
        await results_service.verify(session, path2 := bench.who("path2"), corrected.id)
        del path2
    return {"bench": bench, "wrong": wrong, "organisation": organisation}


async def test_simulation_counts_what_the_rules_would_have_done_and_what_was_wrong(
    committing_session: Any, client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    world = await _history(committing_session)
    bench = world["bench"]
    since = (utcnow() - timedelta(hours=1)).isoformat()

    response = await client.post(
        "/api/v1/autoverify/simulate",
        json={"since": since, "rules": {bench.glucose.code: GLUCOSE_RULES}},
        headers=bearer_for(bench.lab.users["path"]),
    )
    assert response.status_code == 200, response.text
    report = response.json()
    # The high one stops at the autoverification range; the correction, typed by a person,
    # has no instrument QC behind it.
    assert (report["results"], report["autoverified"], report["percent"]) == (4, 2, 50.0)
    assert report["stopped_by"] == {"autoverification_range": 1, "qc": 1}
    [wrong] = report["wrongly_released"]
    assert wrong["result_id"] == str(world["wrong"].id)
    assert wrong["why"] == "corrected to 160: Rerun: the first aspiration had a clot"
    assert report["by_test"] == [
        {
            "test_code": bench.glucose.code,
            "results": 4,
            "autoverified": 2,
            "percent": 50.0,
            "wrongly_released": 1,
        }
    ]

    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps({bench.glucose.code: GLUCOSE_RULES}))
    slug = world["organisation"].slug
    run = await run_cli(
        database_url,
        "autoverify",
        "simulate",
        "-o",
        slug,
        "--since",
        since,
        "--rules",
        str(rules_file),
    )
    assert run.returncode == 0, run.stderr
    assert "would have been autoverified: 2 (50.0%)" in run.stdout
    assert "wrongly released (people corrected them later): 1" in run.stdout
    assert "Rerun: the first aspiration had a clot" in run.stdout


async def test_simulation_refuses_bad_rules_and_bad_periods(
    committing_session: Any, client: httpx.AsyncClient, tmp_path: Path, database_url: str
) -> None:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        bench = await make_bench(session, organisation)
        await glucose_rules(session, bench)
    headers = bearer_for(bench.lab.users["admin"])
    since = utcnow().isoformat()
    bad = await client.post(
        "/api/v1/autoverify/simulate",
        json={"since": since, "rules": {bench.glucose.code: [{"type": "nope"}]}},
        headers=headers,
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_rules"
    unknown = await client.post(
        "/api/v1/autoverify/simulate", json={"since": since, "rules": {"XYZ": []}}, headers=headers
    )
    assert unknown.status_code == 422
    backwards = await client.post(
        "/api/v1/autoverify/simulate",
        json={"since": since, "until": (utcnow() - timedelta(days=1)).isoformat()},
        headers=headers,
    )
    assert backwards.status_code == 422
    naive = await client.post(
        "/api/v1/autoverify/simulate", json={"since": "2025-01-01T00:00:00"}, headers=headers
    )
    assert naive.status_code == 422
    garbage = tmp_path / "rules.json"
    garbage.write_text("{not json")
    run = await run_cli(
        database_url,
        "autoverify",
        "simulate",
        "-o",
        organisation.slug,
        "--since",
        "2025-01-01",
        "--rules",
        str(garbage),
    )
    assert run.returncode != 0
    assert "is not valid JSON" in run.stderr
