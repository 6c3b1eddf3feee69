"""Autoverification of entered results: verified by the system, stopped with the reason,
blocked by QC, re-decided after the block lifts, retracted by a pathologist."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.autoverify.models import Evaluation
from nidaan.events.models import OutboxEvent
from nidaan.qc.service import qc_service
from nidaan.results.enums import ResultStatus
from nidaan.results.service import AUTOVERIFIER_ID, results_service
from nidaan.tenancy.models import Organisation
from tests.autoverify.support import GLUCOSE_RULES, deliver, glucose_rules
from tests.qc.support import Bench, make_bench, patient_result, qc_run


@pytest.fixture
async def bench(session: AsyncSession, organisation: Organisation) -> Bench:
    made = await make_bench(session, organisation)
    await glucose_rules(session, made)
    return made


async def evaluations(session: AsyncSession, result_id) -> list[Evaluation]:  # type: ignore[no-untyped-def]
    return list(
        await session.scalars(
            select(Evaluation)
            .where(Evaluation.result_id == result_id)
            .order_by(Evaluation.evaluated_at)
        )
    )


async def test_a_result_passing_every_rule_is_verified_by_the_system(
    session: AsyncSession, bench: Bench
) -> None:
    await qc_run(session, bench, 0.1, -0.3)
    result = await patient_result(session, bench, "95")
    await deliver(session, bench.org)

    stored = await results_service.get(session, bench.who("path"), result.id)
    assert stored.status == ResultStatus.VERIFIED
    assert stored.autoverified
    assert stored.verified_by_id is None  # the system, not a person
    assert stored.entered_by_id is None  # entered by the instrument...
    assert stored.instrument_id == bench.analyzer.id  # ...which is not the verifier either
    [evaluation] = await evaluations(session, result.id)
    assert (evaluation.outcome, evaluation.decided_by) == ("autoverified", "all")
    assert [step["passed"] for step in evaluation.trail] == [True] * len(GLUCOSE_RULES)
    audit = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(result.id), AuditLog.action == "result.autoverified"
        )
    )
    assert audit is not None
    assert (audit.actor_kind, audit.actor_label) == ("system", "autoverification")
    # Released like a person's verification: the order's results.verified event.
    released = await session.scalar(
        select(OutboxEvent).where(
            OutboxEvent.organisation_id == bench.org, OutboxEvent.name == "results.verified"
        )
    )
    assert released is not None
    assert released.payload["order_id"] == str(result.order_id)
    [line] = await results_service.report_lines(session, bench.org, result.order_id)
    assert line.verified_by is not None
    assert (line.verified_by.user_id, line.verified_by.full_name) == (
        AUTOVERIFIER_ID,
        "Autoverified by Nidaan",
    )


async def test_a_stopped_result_waits_on_the_worklist_with_the_rule_that_stopped_it(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    await qc_run(session, bench, 0.0, 0.0)
    result = await patient_result(session, bench, "250")  # above the autoverification range
    await deliver(session, bench.org)
    [evaluation] = await evaluations(session, result.id)
    assert evaluation.outcome == "stopped"
    assert evaluation.decided_by == "4:autoverification_range"
    assert (
        evaluation.reason
        == "Rule 4 (autoverification_range): 250 is above the autoverification range (60-200)"
    )
    worklist = await client.get(
        "/api/v1/worklists/pending-verification", headers=bench.lab.headers("path")
    )
    [row] = [r for r in worklist.json()["items"] if r["result_id"] == str(result.id)]
    assert row["review_reason"] == evaluation.reason
    listed = await client.get(
        "/api/v1/autoverify/evaluations",
        params={"result_id": str(result.id)},
        headers=bench.lab.headers("auditor")
        if "auditor" in bench.lab.users
        else bench.lab.headers("path"),
    )
    assert listed.json()["items"][0]["trail"][3]["passed"] is False


async def test_results_are_never_autoverified_while_qc_is_in_rejection_and_decided_again_after(
    session: AsyncSession, bench: Bench
) -> None:
    await qc_run(session, bench, 0.0, 0.0)
    failed = await qc_run(session, bench, 2.6, 2.3)
    result = await patient_result(session, bench, "96")
    await deliver(session, bench.org)
    [first] = await evaluations(session, result.id)
    assert first.outcome == "stopped"
    assert first.decided_by == "7:qc"
    assert "QC 2-2s rejection" in first.reason

    # Without a qc rule in the set, the block still holds (verification refuses).
    await glucose_rules(session, bench, [r for r in GLUCOSE_RULES if r["type"] != "qc"])
    other = await patient_result(session, bench, "97")
    await deliver(session, bench.org)
    [refused] = await evaluations(session, other.id)
    assert (refused.outcome, refused.decided_by) == ("stopped", "verification")
    assert "QC 2-2s rejection" in refused.reason

    await qc_service.answer(session, bench.who("tech"), failed.violations[-1].id, _action())
    await qc_run(session, bench, 0.2, 0.1)
    await deliver(session, bench.org)
    for blocked in (result, other):
        stored = await results_service.get(session, bench.who("path"), blocked.id)
        assert stored.status == ResultStatus.VERIFIED, blocked.id
        assert (await evaluations(session, blocked.id))[-1].trigger == "qc_released"


async def test_a_pathologist_can_retract_a_system_verification(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    await qc_run(session, bench, 0.0, 0.0)
    result = await patient_result(session, bench, "99")
    await deliver(session, bench.org)
    tech = await client.post(
        f"/api/v1/autoverify/results/{result.id}/retract",
        json={"reason": "Tube was haemolysed on inspection"},
        headers=bench.lab.headers("tech"),
    )
    assert tech.status_code == 403
    response = await client.post(
        f"/api/v1/autoverify/results/{result.id}/retract",
        json={"reason": "Tube was haemolysed on inspection"},
        headers=bench.lab.headers("path"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result_version"] == 2
    assert body["status"] == "held"
    assert body["hold_reason"] == "Autoverification retracted: Tube was haemolysed on inspection"
    assert body["autoverified"] is False
    again = await client.post(
        f"/api/v1/autoverify/results/{result.id}/retract",
        json={"reason": "twice"},
        headers=bench.lab.headers("path"),
    )
    assert again.status_code == 409  # the old version is superseded now
    # A result a person verified is not the system's to retract.
    human = await patient_result(session, bench, "250")
    await results_service.verify(session, bench.who("path"), human.id)
    refused = await client.post(
        f"/api/v1/autoverify/results/{human.id}/retract",
        json={"reason": "no"},
        headers=bench.lab.headers("path"),
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_autoverified"


async def test_rule_sets_are_validated_versioned_and_approved_by_a_pathologist(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    url = f"/api/v1/autoverify/rule-sets/{bench.glucose.id}"
    current = (await client.get(url, headers=bench.lab.headers("tech"))).json()
    assert current["version"] == 1
    assert current["approved_by_id"] == str(bench.lab.users["path"].id)
    bad = await client.put(
        url,
        json={"enabled": True, "rules": [{"type": "delta"}, {"type": "telepathy"}], "version": 1},
        headers=bench.lab.headers("path"),
    )
    assert bad.status_code == 422
    assert [p["rule"] for p in bad.json()["problems"]] == [1, 2]
    forbidden = await client.put(
        url, json={"enabled": False, "rules": []}, headers=bench.lab.headers("admin")
    )
    assert forbidden.status_code == 403
    changed = await client.put(
        url,
        json={"enabled": False, "rules": GLUCOSE_RULES[:2], "version": 1},
        headers=bench.lab.headers("path2"),
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["version"], changed.json()["approved_by_id"]) == (
        2,
        str(bench.lab.users["path2"].id),
    )
    stale = await client.put(
        url,
        json={"enabled": True, "rules": GLUCOSE_RULES, "version": 1},
        headers=bench.lab.headers("path"),
    )
    assert stale.status_code == 409
    # Disabled: entered results are left for people, and no evaluation is recorded.
    result = await patient_result(session, bench, "95")
    await deliver(session, bench.org)
    assert await evaluations(session, result.id) == []
    types = await client.get("/api/v1/autoverify/rule-types", headers=bench.lab.headers("tech"))
    names = {t["type"] for t in types.json()["items"]}
    assert names >= {"delta", "qc", "consistency", "specimen_indices"}


async def test_another_organisations_rule_sets_and_results_are_not_found(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench, other_organisation: Organisation
) -> None:
    other = await make_bench(session, other_organisation)
    await glucose_rules(session, other)
    await qc_run(session, other, 0.0, 0.0)
    result = await patient_result(session, other, "95")
    await deliver(session, other.org)
    headers = bench.lab.headers("path")
    assert (
        await client.get(f"/api/v1/autoverify/rule-sets/{other.glucose.id}", headers=headers)
    ).status_code == 404
    retract = await client.post(
        f"/api/v1/autoverify/results/{result.id}/retract", json={"reason": "x"}, headers=headers
    )
    assert retract.status_code == 404
    listed = await client.get("/api/v1/autoverify/evaluations", headers=headers)
    assert listed.json()["items"] == []


def _action():  # type: ignore[no-untyped-def]
    from nidaan.qc.schemas import CorrectiveActionIn

    return CorrectiveActionIn(action="recalibration", note="recalibrated")
