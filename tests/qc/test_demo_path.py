"""The demo path of docs/qc.md on the seeded demo lab: the analyzer's control run fails ->
its patient results of that analyte are blocked (409 naming the rule, never autoverified) ->
a corrective action and a passing run -> the held-back result is autoverified, and one out
of its range waits for the pathologist with the rule that stopped it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.models import User
from nidaan.autoverify.models import Evaluation, RuleSet
from nidaan.catalog.models import CatalogTest
from nidaan.demo.lab_day import DEMO_ANALYZER_NAME
from nidaan.demo.seed import seed_demo
from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.models import Instrument
from nidaan.integration.service import integration_service
from nidaan.kit.ids import new_id
from nidaan.qc.models import QcLot, QcResult
from nidaan.qc.service import qc_service
from nidaan.results.enums import ResultStatus
from nidaan.results.models import Result
from nidaan.tenancy.models import Branch, Organisation
from tests.autoverify.support import deliver
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import bearer_for
from tests.fixtures.results import Lab, place_order, principal_of


async def _send(
    session: AsyncSession,
    org: Organisation,
    analyzer: Instrument,
    accession: str,
    value: str,
    *,
    control: bool = False,
) -> list[Result]:
    """One message from the demo analyzer (its glucose code is 685), as its driver reads it."""
    report = await integration_service.ingest_results(
        session,
        org.id,
        analyzer,
        InstrumentMessage(
            dedupe_key=f"demo-{new_id().hex}",
            message_type="ASTM-R",
            results=[
                InstrumentResult(
                    accession=accession,
                    instrument_code="685",
                    value=value,
                    unit="mg/dL",
                    status="F",
                    completed_at=datetime.now(UTC).replace(tzinfo=None),
                    control=control,
                )
            ],
            raw="H|\\^&|||c311^1|||||host|RSUPL^REAL|Q|1\rL|1|N",
        ),
    )
    assert report.exceptions == [], [e.detail for e in report.exceptions]
    await deliver(session, org.id, prefix="qc.")
    await deliver(session, org.id, prefix="autoverify.")
    return list(report.results)


async def test_the_demo_path_from_failed_qc_to_autoverified_results(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await seed_demo(session)
    org = await session.scalar(select(Organisation).where(Organisation.slug == "demo-diagnostics"))
    assert org is not None
    analyzer = await session.scalar(
        select(Instrument).where(
            Instrument.organisation_id == org.id, Instrument.name == DEMO_ANALYZER_NAME
        )
    )
    assert analyzer is not None
    assert analyzer.settings["control_ids"] == ["QC*"]
    assert analyzer.settings["allowed_peers"] == ["127.0.0.1"]
    glucose = await session.scalar(
        select(CatalogTest).where(CatalogTest.organisation_id == org.id, CatalogTest.code == "GLUF")
    )
    assert glucose is not None
    lots = list(await session.scalars(select(QcLot).where(QcLot.test_id == glucose.id)))
    assert sorted(lot.control_id for lot in lots) == ["QC1", "QC2"]
    history = await session.scalar(
        select(func.count()).select_from(QcResult).where(QcResult.test_id == glucose.id)
    )
    assert history == 42  # 21 mornings (today's included) x 2 levels, all in control
    assert (
        await session.scalar(
            select(func.count()).select_from(RuleSet).where(RuleSet.organisation_id == org.id)
        )
        == 6
    )
    users = {
        u.roles[0]: u
        for u in await session.scalars(select(User).where(User.organisation_id == org.id))
    }
    tech, path = principal_of(users["technician"]), principal_of(users["pathologist"])
    # Three weeks of runs on all six analytes and not one Westgard violation (an in-control
    # history: 4-1s and 10x look across runs and levels).
    statuses = await qc_service.status(session, tech, instrument_id=analyzer.id)
    assert len(statuses) == 6
    assert not any(s.in_rejection for s in statuses)
    assert (await qc_service.list_violations(session, tech, _page(), instrument_id=analyzer.id))[
        1
    ] == 0

    # 1. The analyzer's morning QC: level 1 at +3.5 SD -> 1-3s, rejection.
    await _send(session, org, analyzer, "QC1", "106", control=True)  # (106 - 95) / 3 = 3.7
    [status] = await qc_service.status(session, tech, instrument_id=analyzer.id, test_id=glucose.id)
    assert status.in_rejection
    assert "1-3s" in (status.reason or "")

    # 2. A patient's glucose from the analyzer is blocked: not autoverified, 409 for a person.
    branch = await session.get(Branch, analyzer.branch_id)
    assert branch is not None
    lab = Lab(org, branch, users)
    placed = await place_order(session, lab, await create_patient(session, org), [glucose])
    [blocked] = await _send(session, org, analyzer, placed.sample.accession, "98")
    evaluation = await session.scalar(select(Evaluation).where(Evaluation.result_id == blocked.id))
    assert evaluation is not None
    assert evaluation.outcome == "stopped"
    assert "1-3s" in evaluation.reason
    refused = await client.post(
        f"/api/v1/results/{blocked.id}/verify", headers=bearer_for(users["pathologist"])
    )
    assert refused.status_code == 409
    assert "1-3s" in refused.json()["detail"]

    # 3. Corrective action, then a passing run from the analyzer: the block lifts and the
    # held-back result is decided again -> autoverified by the system.
    violations, _ = await qc_service.list_violations(
        session, tech, _page(), instrument_id=analyzer.id
    )
    reject = next(v for v in violations if v.severity == "reject")
    from nidaan.qc.schemas import CorrectiveActionIn

    await qc_service.answer(
        session,
        tech,
        reject.id,
        CorrectiveActionIn(action="recalibration", note="Recalibrated glucose, new R1 bottle"),
    )
    await _send(session, org, analyzer, "QC1", "96", control=True)
    await _send(session, org, analyzer, "QC2", "251", control=True)
    [status] = await qc_service.status(session, tech, instrument_id=analyzer.id, test_id=glucose.id)
    assert not status.in_rejection
    await deliver(session, org.id, prefix="autoverify.")
    released = await session.get(Result, blocked.id)
    assert released is not None
    await session.refresh(released)
    assert released.status == ResultStatus.VERIFIED
    assert released.autoverified

    # 4. A glucose outside the autoverification range waits for the pathologist, with why.
    other = await place_order(session, lab, await create_patient(session, org), [glucose])
    [high] = await _send(session, org, analyzer, other.sample.accession, "240")
    await session.refresh(high)
    assert high.status == ResultStatus.ENTERED
    assert high.review_reason is not None
    assert "autoverification range" in high.review_reason
    verified = await client.post(
        f"/api/v1/results/{high.id}/verify", headers=bearer_for(users["pathologist"])
    )
    assert verified.status_code == 200, verified.text
    assert path.id == users["pathologist"].id
    assert Decimal(verified.json()["value_numeric"]) == Decimal("240")


def _page():  # type: ignore[no-untyped-def]
    from nidaan.kit.pagination import PageParams

    return PageParams(page=1, limit=100)
