"""Role matrix of the results endpoints (entry, verification, alerts, worklists)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.enums import Role
from nidaan.kit.time import utcnow
from nidaan.results.models import CriticalAlert
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient, create_reference_range
from tests.fixtures.objects import create_branch
from tests.fixtures.results import Lab, place_order
from tests.http.matrix.base import Case

READERS = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR})
ENTER = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.PATHOLOGIST})
PATHOLOGIST = frozenset({Role.PATHOLOGIST})
ACKNOWLEDGE = frozenset({Role.TECHNICIAN, Role.PATHOLOGIST})

CASES = [
    # Without ?order_id= an allowed caller gets 422; the role check comes first.
    Case("GET", "/api/v1/results", READERS, ok_statuses=(422,)),
    Case("POST", "/api/v1/results", ENTER, {"order_test_id": "{order_test_id}", "value": "5"}),
    Case("POST", "/api/v1/results/{result_id}/verify", PATHOLOGIST),
    Case(
        "POST",
        "/api/v1/results/{result_id}/correct",
        PATHOLOGIST,
        {"value": "6", "reason": "Rerun"},
    ),
    # The context's result is not held: a pathologist passes the role check and gets 409.
    Case(
        "POST",
        "/api/v1/results/{result_id}/release",
        PATHOLOGIST,
        {"note": "Reviewed"},
        ok_statuses=(409,),
    ),
    Case("GET", "/api/v1/critical-alerts", READERS),
    Case(
        "POST",
        "/api/v1/critical-alerts/{alert_id}/acknowledge",
        ACKNOWLEDGE,
        {"notified_person": "Dr. Ward", "notified_at": "{notified_at}", "read_back": True},
    ),
    Case("GET", "/api/v1/worklists/pending-entry", ENTER),
    Case("GET", "/api/v1/worklists/pending-verification", PATHOLOGIST),
    Case("GET", "/api/v1/worklists/critical-alerts", ACKNOWLEDGE),
    Case("GET", "/api/v1/worklists/tat-breaches", ENTER),
]


async def context(
    session: AsyncSession, organisation: Organisation, client, admin_headers
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An order with a test awaiting its result, and an entered critical result."""
    lab = Lab(organisation, await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB))
    test = await create_catalog_test(session, organisation)
    await create_reference_range(session, test, low="1", high="10", critical_high="20")
    patient = await create_patient(session, organisation)
    placed = await place_order(session, lab, patient, [test])
    other = await place_order(session, lab, patient, [test])
    entered = await client.post(
        "/api/v1/results",
        json={"order_test_id": str(other.tests[test.code].id), "value": "25"},
        headers=admin_headers,
    )
    alert_id = await session.scalar(
        select(CriticalAlert.id).where(CriticalAlert.result_id == entered.json()["id"])
    )
    return {
        "order_id": str(placed.order.id),
        "order_test_id": str(placed.tests[test.code].id),
        "result_id": entered.json()["id"],
        "alert_id": str(alert_id),
        "notified_at": utcnow().isoformat(),
    }
