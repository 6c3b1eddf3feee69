"""Role matrix of the autoverification endpoints."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.autoverify.models import RuleSet
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow
from nidaan.results.service import results_service
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_branch, create_user
from tests.fixtures.results import Lab, place_order, principal_of
from tests.http.matrix.base import Case

READERS = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR})
PATHOLOGIST = frozenset({Role.PATHOLOGIST})
SIMULATORS = frozenset({Role.ADMIN, Role.PATHOLOGIST})
RULES = [{"type": "reportable_range", "low": 1, "high": 100}]

CASES = [
    Case("GET", "/api/v1/autoverify/rule-types", READERS),
    Case("GET", "/api/v1/autoverify/rule-sets", READERS),
    Case("GET", "/api/v1/autoverify/rule-sets/{test_id}", READERS),
    Case(
        "PUT",
        "/api/v1/autoverify/rule-sets/{test_id}",
        PATHOLOGIST,
        {"enabled": True, "rules": RULES, "version": 1},
    ),
    Case("GET", "/api/v1/autoverify/evaluations", READERS),
    Case("POST", "/api/v1/autoverify/simulate", SIMULATORS, {"since": "{since}"}),
    # The context's result was verified by nobody: a pathologist passes the role check, 409.
    Case(
        "POST",
        "/api/v1/autoverify/results/{result_id}/retract",
        PATHOLOGIST,
        {"reason": "Rechecked"},
        ok_statuses=(409,),
    ),
    # No model trained in the context: readers pass the role check and get 404.
    Case("GET", "/api/v1/autoverify/model", READERS, ok_statuses=(404,)),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A test with a rule set and an entered (not verified) result of it."""
    lab = Lab(organisation, await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB))
    pathologist = await create_user(session, organisation, roles=("pathologist",))
    test = await create_catalog_test(session, organisation)
    now = utcnow()
    session.add(
        RuleSet(
            id=new_id(),
            organisation_id=organisation.id,
            test_id=test.id,
            enabled=True,
            rules=RULES,
            approved_by_id=pathologist.id,
            created_at=now,
            updated_at=now,
        )
    )
    patient = await create_patient(session, organisation)
    placed = await place_order(session, lab, patient, [test])
    result = await results_service.enter(
        session, principal_of(pathologist), placed.tests[test.code].id, "5", None
    )
    return {
        "test_id": str(test.id),
        "result_id": str(result.id),
        "since": "2025-01-01T00:00:00+05:30",
    }
