"""Autoverification use cases: rule sets per test, evaluating entered results (verify by the
system, or stop for a person with the reason), the second opinion that can only hold, the
retraction of a system verification, and the second-opinion models.

Results are decided through ``results.service``: ``verify_by_system`` (released exactly like a
person's verification), ``mark_for_review`` (the reason on the pathologist's worklist) and
``hold``. Every evaluation is recorded with the rule that decided it and the whole trail.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.autoverify import domain, facts, second_opinion
from nidaan.autoverify.models import Evaluation, RuleSet, SecondOpinionModel
from nidaan.autoverify.schemas import RuleSetIn
from nidaan.autoverify.training import Evaluation as ModelEvaluation
from nidaan.catalog.models import CatalogTest
from nidaan.catalog.service import catalog_service
from nidaan.config import get_settings
from nidaan.kit.db import any_of
from nidaan.kit.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NidaanError,
    NotFound,
    check_version,
)
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.time import utcnow
from nidaan.orders.service import orders_service
from nidaan.results.bulk import mark_for_review_many
from nidaan.results.enums import ResultStatus
from nidaan.results.models import Result
from nidaan.results.service import results_service, system_principal

__all__ = ["autoverify_service"]

log = logging.getLogger(__name__)

ACTOR_LABEL = "autoverification"


class InvalidRules(InvalidInput):
    code = "invalid_rules"
    title = "Invalid autoverification rules"


class NoModel(Conflict):
    code = "no_model"
    title = "No second-opinion model"


@dataclass(frozen=True)
class ActiveModel:
    row: SecondOpinionModel
    model: second_opinion.TrainedModel


def _rule_set_snapshot(row: RuleSet) -> dict[str, Any]:
    return {
        "test_id": row.test_id,
        "enabled": row.enabled,
        "rules": row.rules,
        "approved_by_id": row.approved_by_id,
        "note": row.note,
    }


def parse_rules(rules: Any) -> list[domain.Rule]:
    try:
        return domain.parse(rules)
    except domain.RuleError as error:
        raise InvalidRules(
            str(error),
            field="rules",
            problems=[
                {"rule": i + 1 if i is not None else None, "problem": m} for i, m in error.problems
            ],
        ) from None


class AutoverifyService:
    # --- rule sets ---------------------------------------------------------------------

    async def list_rule_sets(
        self, session: AsyncSession, caller: Principal, page: PageParams
    ) -> tuple[list[tuple[RuleSet, str]], int]:
        statement = (
            select(RuleSet)
            .join(CatalogTest, CatalogTest.id == RuleSet.test_id)
            .where(RuleSet.organisation_id == caller.organisation_id)
            .order_by(CatalogTest.code)
        )
        rows, total = await paginate(session, statement, page)
        codes = await catalog_service.tests_by_ids(
            session, caller.organisation_id, {row.test_id for row in rows}
        )
        return [(row, codes[row.test_id].code) for row in rows], total

    async def get_rule_set(
        self, session: AsyncSession, caller: Principal, test_id: uuid.UUID
    ) -> tuple[RuleSet, str]:
        test = await catalog_service.get_test(session, caller, test_id)
        row = await self._rule_set(session, caller.organisation_id, test_id)
        if row is None:
            raise NotFound(f"{test.code} has no autoverification rules.", entity="rule_set")
        return row, test.code

    async def _rule_set(
        self, session: AsyncSession, organisation_id: uuid.UUID, test_id: uuid.UUID
    ) -> RuleSet | None:
        return await session.scalar(
            select(RuleSet).where(
                RuleSet.organisation_id == organisation_id, RuleSet.test_id == test_id
            )
        )

    async def put_rule_set(
        self, session: AsyncSession, caller: Principal, test_id: uuid.UUID, data: RuleSetIn
    ) -> tuple[RuleSet, str]:
        """Create or replace a test's rule set; the caller (a pathologist) approves it."""
        if caller.kind != "user":
            raise Forbidden("A rule set is approved by a person.", code_detail="person_required")
        test = await catalog_service.get_test(session, caller, test_id)
        parse_rules(data.rules)
        row = await self._rule_set(session, caller.organisation_id, test_id)
        now = utcnow()
        if row is None:
            row = RuleSet(
                id=new_id(),
                organisation_id=caller.organisation_id,
                test_id=test.id,
                enabled=data.enabled,
                rules=data.rules,
                approved_by_id=caller.id,
                note=data.note,
                created_at=now,
                updated_at=now,
            )
            try:
                async with session.begin_nested():
                    session.add(row)
                    await session.flush()
            except IntegrityError:
                raise Conflict(
                    f"{test.code} got a rule set a moment ago; reload it.", code_detail="exists"
                ) from None
            before = None
        else:
            check_version(row.version, data.version, "rule set")
            before = _rule_set_snapshot(row)
            row.enabled = data.enabled
            row.rules = data.rules
            row.approved_by_id = caller.id
            row.note = data.note
            row.updated_at = now
            await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="autoverify.rule_set_approved",
            entity_type="catalog_test",
            entity_id=test.id,
            before=before,
            after={**_rule_set_snapshot(row), "version": row.version},
        )
        return row, test.code

    async def rule_sets_for(
        self, session: AsyncSession, organisation_id: uuid.UUID, test_ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, RuleSet]:
        if not test_ids:
            return {}
        rows = await session.scalars(
            select(RuleSet).where(
                RuleSet.organisation_id == organisation_id, any_of(RuleSet.test_id, test_ids)
            )
        )
        return {row.test_id: row for row in rows}

    # --- evaluating --------------------------------------------------------------------

    async def evaluate(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        result_ids: Sequence[uuid.UUID],
        *,
        trigger: str = "entered",
    ) -> list[Evaluation]:
        """Decide about entered results of tests with an enabled rule set: verified by the
        system when every rule holds (and the second opinion does not object), else left
        for a person with the stopping rule as the reason (or held by the second opinion).
        Results already verified, superseded or without rules are left alone."""
        results = [
            r
            for r in await session.scalars(
                select(Result)
                .where(
                    Result.organisation_id == organisation_id, any_of(Result.id, set(result_ids))
                )
                .order_by(Result.entered_at, Result.id)
            )
            if r.is_current and r.status in (ResultStatus.ENTERED, ResultStatus.HELD)
        ]
        rule_sets = {
            k: v
            for k, v in (
                await self.rule_sets_for(session, organisation_id, {r.test_id for r in results})
            ).items()
            if v.enabled
        }
        results = [r for r in results if r.test_id in rule_sets]
        if not results:
            return []
        active = await self.active_model(session, organisation_id)
        analytes = active.model.analytes if active is not None else ()
        tests = await catalog_service.tests_by_ids(
            session, organisation_id, {r.test_id for r in results}
        )
        context = await facts.gather(
            session, organisation_id, results, tests, panel_analytes=analytes
        )
        caller = system_principal(organisation_id, ACTOR_LABEL)
        scores: dict[uuid.UUID, float] = {}
        if active is not None:
            judged = [
                sample_id for sample_id, case in context.panels.items() if active.model.enough(case)
            ]
            for sample_id, score in zip(
                judged, active.model.scores([context.panels[s] for s in judged]), strict=True
            ):
                scores[sample_id] = float(score)
        evaluations = []
        # Review reasons of the stopped results, set together after the loop (one flush,
        # one audit INSERT), not one read, UPDATE and INSERT per result.
        to_review: list[tuple[Result, str]] = []
        for result in results:
            rule_set = rule_sets[result.test_id]
            test = context.tests[result.test_id]
            entered_at = result.entered_at
            if result.status == ResultStatus.HELD:
                decision = domain.Decision(
                    False, "hold", f"On hold: {result.hold_reason}"[:300], ()
                )
            else:
                try:
                    decision = domain.evaluate(
                        parse_rules(rule_set.rules), context.facts[result.id]
                    )
                except InvalidRules as error:
                    decision = domain.Decision(
                        False, "rules", f"Rule set unusable: {error.detail}"[:300], ()
                    )
            score = (
                scores.get(result.sample_id) if result.sample_id and test.code in analytes else None
            )
            outcome = "stopped"
            reason = decision.reason
            decided_by = decision.decided_by
            if score is not None and active is not None and score >= active.model.threshold:
                outcome, decided_by = "held", "second_opinion"
                reason = (
                    f"Second opinion: improbable pattern in this sample's panel (score "
                    f"{score:.2f} >= {active.model.threshold:.2f}); check for a mix-up or "
                    "contamination (drip arm, EDTA)"
                )
                if result.status == ResultStatus.ENTERED or result.hold_reason != reason:
                    await results_service.hold(session, caller, result.id, reason)
            elif decision.autoverify:
                try:
                    await results_service.verify_by_system(
                        session,
                        organisation_id,
                        result.id,
                        entered_at=entered_at,
                        label=ACTOR_LABEL,
                        note=f"rule set v{rule_set.version}: every rule held",
                    )
                    outcome = "autoverified"
                except NidaanError as error:
                    decided_by, reason = "verification", error.detail[:300]
            if outcome == "stopped" and result.status == ResultStatus.ENTERED:
                to_review.append((result, reason))
            row = Evaluation(
                id=new_id(),
                organisation_id=organisation_id,
                result_id=result.id,
                test_id=result.test_id,
                entered_at=entered_at,
                rule_set_id=rule_set.id,
                rule_set_version=rule_set.version,
                outcome=outcome,
                decided_by=decided_by[:64],
                reason=reason[:300],
                trail=[o.as_dict() for o in decision.trail],
                model_score=score,
                model_id=active.row.id if active is not None and score is not None else None,
                trigger=trigger,
                evaluated_at=utcnow(),
            )
            session.add(row)
            evaluations.append(row)
        await mark_for_review_many(session, caller, to_review)
        await session.flush()
        return evaluations

    async def after_gate_lifted(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test_id: uuid.UUID,
        since: Any,
        until: Any,
    ) -> list[Evaluation]:
        """A QC block was lifted: decide again about the results it blocked (those held for a
        re-run stay held)."""
        results = await results_service.unverified_of_instrument(
            session,
            organisation_id,
            instrument_id,
            test_id,
            entered_from=since,
            entered_before=until,
        )
        ids = [r.id for r in results if r.status == ResultStatus.ENTERED]
        return await self.evaluate(session, organisation_id, ids, trigger="qc_released")

    async def list_evaluations(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        result_id: uuid.UUID | None = None,
        test_id: uuid.UUID | None = None,
        outcome: str | None = None,
    ) -> tuple[list[Evaluation], int]:
        statement = select(Evaluation).where(Evaluation.organisation_id == caller.organisation_id)
        if caller.branch_ids is not None:
            # Branch limits: evaluations of results of orders at the caller's branches.
            statement = statement.where(
                Evaluation.result_id.in_(
                    select(Result.id).where(
                        Result.order_id.in_(orders_service.ids_reaching(caller.branch_ids))
                    )
                )
            )
        if result_id is not None:
            statement = statement.where(Evaluation.result_id == result_id)
        if test_id is not None:
            statement = statement.where(Evaluation.test_id == test_id)
        if outcome is not None:
            statement = statement.where(Evaluation.outcome == outcome)
        return await paginate(
            session, statement.order_by(Evaluation.evaluated_at.desc(), Evaluation.id), page
        )

    async def retract(
        self, session: AsyncSession, caller: Principal, result_id: uuid.UUID, reason: str
    ) -> Result:
        """A pathologist takes back a system verification (a new version, held)."""
        return await results_service.retract_autoverified(session, caller, result_id, reason)

    # --- second-opinion models ---------------------------------------------------------

    async def active_model(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> ActiveModel | None:
        row = await session.scalar(
            select(SecondOpinionModel)
            .where(
                SecondOpinionModel.organisation_id == organisation_id,
                SecondOpinionModel.active.is_(True),
            )
            .order_by(SecondOpinionModel.created_at.desc())
            .limit(1)
        )
        if row is None:
            return None
        try:
            estimator = second_opinion.load(row.blob, row.signature, _model_key())
        except second_opinion.UntrustedModel:
            log.error("autoverify: model %s has a bad signature; it is not used", row.id)
            return None
        return ActiveModel(
            row, second_opinion.TrainedModel(estimator, tuple(row.analytes), row.threshold)
        )

    async def store_model(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        model: second_opinion.TrainedModel,
        evaluation: ModelEvaluation,
        *,
        trained_on: str,
        actor: Any,
    ) -> SecondOpinionModel:
        """Keep a trained model as the organisation's active one (the previous ones stay,
        inactive, for the evaluations that name them)."""
        blob = second_opinion.dump(model.estimator)
        await session.execute(
            update(SecondOpinionModel)
            .where(SecondOpinionModel.organisation_id == organisation_id)
            .values(active=False)
        )
        row = SecondOpinionModel(
            id=new_id(),
            organisation_id=organisation_id,
            created_at=utcnow(),
            trained_on=trained_on,
            analytes=list(model.analytes),
            threshold=model.threshold,
            metrics=evaluation.as_dict(),
            active=True,
            blob=blob,
            signature=second_opinion.signature(blob, _model_key()),
        )
        session.add(row)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor,
            action="autoverify.model_trained",
            entity_type="autoverify_model",
            entity_id=row.id,
            after={"trained_on": trained_on, "threshold": model.threshold, **evaluation.as_dict()},
        )
        return row

    async def get_active_model(
        self, session: AsyncSession, caller: Principal
    ) -> SecondOpinionModel:
        active = await self.active_model(session, caller.organisation_id)
        if active is None:
            raise NotFound(
                "No second-opinion model is trained for this lab (nidaan autoverify model train).",
                entity="autoverify_model",
            )
        return active.row


def _model_key() -> bytes:
    return second_opinion.model_key(get_settings().jwt_secret())


autoverify_service = AutoverifyService()
