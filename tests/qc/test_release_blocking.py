"""QC results, Westgard violations and the block on patient results (release blocking)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.qc.models import QcViolation
from nidaan.qc.service import qc_service
from nidaan.results.enums import ResultStatus
from nidaan.results.service import results_service
from nidaan.tenancy.models import Organisation
from tests.qc.support import Bench, make_bench, patient_result, qc_run


@pytest.fixture
async def bench(session: AsyncSession, organisation: Organisation) -> Bench:
    return await make_bench(session, organisation)


async def test_z_scores_are_stored_and_a_run_passes(session: AsyncSession, bench: Bench) -> None:
    recorded = await qc_run(session, bench, 0.5, -1.5)
    assert recorded.result.z == Decimal("-1.5000")
    assert recorded.run.outcome == "passed"
    assert recorded.violations == []


async def test_a_failed_run_blocks_verification_with_a_409_naming_the_violation(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    await qc_run(session, bench, 0.2, 0.1)
    before = await patient_result(session, bench)  # entered after a passing run...
    failed = await qc_run(session, bench, 2.4, 2.2)  # ...then QC fails: 2-2s within the run
    assert [(v.rule, v.severity, v.scope) for v in failed.violations] == [
        ("1-2s", "warning", "point"),  # level 1 at +2.4
        ("1-2s", "warning", "point"),  # level 2 at +2.2...
        ("2-2s", "reject", "within_run"),  # ...with level 1 beyond +2 SD in the same run
    ]
    assert failed.run.outcome == "rejected"
    after = await patient_result(session, bench)

    for result in (before, after):
        response = await client.post(
            f"/api/v1/results/{result.id}/verify", headers=bench.lab.headers("path")
        )
        assert response.status_code == 409, response.text
        problem = response.json()
        assert problem["code"] == "verification_blocked"
        assert problem["holder"] == "qc"
        assert "2-2s" in problem["detail"]
        assert bench.glucose.code in problem["detail"]
        assert problem["qc_violation_id"] == str(failed.violations[2].id)
    stored = await results_service.get(session, bench.who("path"), before.id)
    assert stored.status == ResultStatus.ENTERED  # nothing changed

    worklist = await client.get(
        "/api/v1/worklists/pending-verification", headers=bench.lab.headers("path")
    )
    rows = {row["result_id"]: row for row in worklist.json()["items"]}
    assert "2-2s" in rows[str(before.id)]["blocked_reason"]


async def test_results_verified_before_the_last_passing_run_are_not_blocked(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    early = await patient_result(session, bench)
    await qc_run(session, bench, 0.1, 0.3)  # passing run after the result
    await qc_run(session, bench, 3.5, 0.0)  # 1-3s on level 1
    response = await client.post(
        f"/api/v1/results/{early.id}/verify", headers=bench.lab.headers("path")
    )
    assert response.status_code == 200, response.text


async def test_corrective_action_and_a_passing_run_make_results_verifiable_again(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench
) -> None:
    await qc_run(session, bench, 0.0, 0.0)
    failed = await qc_run(session, bench, 2.5, -2.6)  # R-4s
    assert "R-4s" in {v.rule for v in failed.violations}
    result = await patient_result(session, bench)
    reject = next(v for v in failed.violations if v.severity == "reject")

    # A passing run alone is not enough while the rejection is unanswered.
    await qc_run(session, bench, 0.3, -0.2)
    blocked = await client.post(
        f"/api/v1/results/{result.id}/verify", headers=bench.lab.headers("path")
    )
    assert blocked.status_code == 409

    # A front-desk user may not answer it; a technician may.
    forbidden = await client.post(
        f"/api/v1/qc/violations/{reject.id}/corrective-actions",
        json={"action": "recalibration", "note": "Recalibrated glucose"},
        headers=bench.lab.headers("front"),
    )
    assert forbidden.status_code == 403
    answered = await client.post(
        f"/api/v1/qc/violations/{reject.id}/corrective-actions",
        json={"action": "recalibration", "note": "Recalibrated glucose"},
        headers=bench.lab.headers("tech"),
    )
    assert answered.status_code == 201, answered.text
    body = answered.json()
    assert body["released"] is True
    # Every open violation of the instrument and analyte: both points of the failed run.
    open_ones = await qc_service.list_violations(
        session, bench.who("tech"), _page(), instrument_id=bench.analyzer.id
    )
    assert set(body["answered_violations"]) == {str(v.id) for v in open_ones[0]}
    assert {str(v.id) for v in failed.violations} <= set(body["answered_violations"])
    again = await client.post(
        f"/api/v1/qc/violations/{reject.id}/corrective-actions",
        json={"action": "other", "note": "twice"},
        headers=bench.lab.headers("tech"),
    )
    assert again.status_code == 409

    verified = await client.post(
        f"/api/v1/results/{result.id}/verify", headers=bench.lab.headers("path")
    )
    assert verified.status_code == 200, verified.text
    actions = set(
        await session.scalars(select(AuditLog.action).where(AuditLog.organisation_id == bench.org))
    )
    assert {
        "result.verification_blocked",
        "result.verification_unblocked",
        "qc.corrective_action",
    } <= actions


async def test_action_first_then_the_passing_run_also_releases(
    session: AsyncSession, bench: Bench
) -> None:
    failed = await qc_run(session, bench, 3.4, 0.0)
    result = await patient_result(session, bench)
    answered = await qc_service.answer(
        session,
        bench.who("tech"),
        failed.violations[-1].id,
        _action("repeat_control"),
    )
    assert answered.released is False  # no passing run yet
    [status] = await qc_service.status(session, bench.who("tech"), instrument_id=bench.analyzer.id)
    assert status.in_rejection
    assert status.open_violations == 0
    assert "waiting for a passing run" in (status.reason or "")
    await qc_run(session, bench, 0.4, 0.1)
    [status] = await qc_service.status(session, bench.who("tech"), instrument_id=bench.analyzer.id)
    assert not status.in_rejection
    verified = await results_service.verify(session, bench.who("path"), result.id)
    assert verified.status == ResultStatus.VERIFIED


async def test_the_lab_can_require_re_running_the_blocked_results(
    session: AsyncSession, bench: Bench
) -> None:
    await qc_run(session, bench, 0.0, 0.0)
    failed = await qc_run(session, bench, -2.3, -2.1)
    blocked = await patient_result(session, bench, "88")
    await qc_service.answer(
        session,
        bench.who("path"),
        failed.violations[-1].id,
        _action("recalibration", require_rerun=True),
    )
    await qc_run(session, bench, 0.1, 0.2)
    held = await results_service.get(session, bench.who("path"), blocked.id)
    assert held.status == ResultStatus.HELD
    assert held.hold_reason.startswith("Re-run required: QC 2-2s")
    # The re-run from the analyzer replaces the held value and is verifiable.
    later = await patient_result(session, bench, "90")
    assert (await results_service.verify(session, bench.who("path"), later.id)).status == "verified"


async def test_violations_cannot_be_deleted_or_rewritten(
    session: AsyncSession, bench: Bench
) -> None:
    failed = await qc_run(session, bench, 3.2, 0.0)
    violation_id = failed.violations[-1].id
    for statement in (
        "DELETE FROM qc_violations WHERE id = :id",
        "UPDATE qc_violations SET rule = '1-2s' WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match=r"qc_violations|qc violation"):
            async with session.begin_nested():
                await session.execute(text(statement), {"id": violation_id})
    row = await session.get(QcViolation, violation_id)
    assert row is not None
    assert row.rule == "1-3s"


async def test_another_organisations_qc_is_not_found(
    client: httpx.AsyncClient, session: AsyncSession, bench: Bench, other_organisation: Organisation
) -> None:
    other = await make_bench(session, other_organisation)
    failed = await qc_run(session, other, 3.2, 0.0)
    headers = bench.lab.headers("path")
    for path in (
        f"/api/v1/qc/lots/{other.level1.id}",
        f"/api/v1/qc/violations/{failed.violations[-1].id}",
        f"/api/v1/qc/charts/{other.level1.id}.svg",
    ):
        assert (await client.get(path, headers=headers)).status_code == 404, path
    entered = await client.post(
        "/api/v1/qc/results",
        json={"lot_id": str(other.level1.id), "value": "100"},
        headers=bench.lab.headers("tech"),
    )
    assert entered.status_code == 404


def _page():  # type: ignore[no-untyped-def]
    from nidaan.kit.pagination import PageParams

    return PageParams(page=1, limit=100)


def _action(kind: str, *, require_rerun: bool = False):  # type: ignore[no-untyped-def]
    from nidaan.qc.schemas import CorrectiveActionIn

    return CorrectiveActionIn(action=kind, note=f"{kind} done", require_rerun=require_rerun)
