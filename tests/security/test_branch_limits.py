"""Finding 4: a user limited to one branch reaches nothing of other branches, on any surface.

The probe's phlebotomist limited to CC1 rejected a central-lab sample over REST (GraphQL
refused the same). This walks every operation of the OpenAPI document with a user who holds
every role but is limited to a collection centre of their own, against the role matrix's
real rows (all at other branches): actions on those rows are refused, lists show none of
them. The GraphQL operations get the same walk. Patients, the catalogue and the platform's
settings are the organisation's, not a branch's (a returning patient may come to any
centre), and are listed as such.
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

import tests.http.matrix as matrix_package
from nidaan.config import Settings
from nidaan.kit.ids import new_id
from nidaan.sync.models import SyncConflict
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import bearer_for, create_branch, create_user
from tests.http.matrix.base import Case, fill_body
from tests.security.openapi_walk import ALL_ROLES, operations

MODULES: list[ModuleType] = [
    importlib.import_module(f"tests.http.matrix.{info.name}")
    for info in pkgutil.iter_modules(matrix_package.__path__)
    if info.name != "base"
]
CASES: list[tuple[ModuleType, Case]] = [(m, c) for m in MODULES for c in m.CASES]

#: Operations on one branch's rows (named in the path or the body): refused.
ACTIONS = {
    ("POST", "/api/v1/instruments"),
    ("GET", "/api/v1/instruments/{instrument_id}"),
    ("PATCH", "/api/v1/instruments/{instrument_id}"),
    ("GET", "/api/v1/instruments/{instrument_id}/status"),
    ("GET", "/api/v1/instruments/{instrument_id}/messages"),
    ("POST", "/api/v1/integration/exceptions/{exception_id}/resolve"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/orders/{order_id}"),
    ("POST", "/api/v1/orders/{order_id}/tests"),
    ("POST", "/api/v1/orders/{order_id}/tests/{order_test_id}/cancel"),
    ("GET", "/api/v1/orders/{order_id}/labels"),
    ("GET", "/api/v1/samples/{accession}/label"),
    ("POST", "/api/v1/samples/{accession}/reject"),
    ("GET", "/api/v1/orders/{order_id}/report"),
    ("GET", "/api/v1/orders/{order_id}/reports"),
    ("GET", "/api/v1/reports/{report_id}/pdf"),
    ("GET", "/api/v1/results"),  # walked with ?order_id= of another branch's order
    ("POST", "/api/v1/results"),
    ("POST", "/api/v1/results/{result_id}/verify"),
    ("POST", "/api/v1/results/{result_id}/correct"),
    ("POST", "/api/v1/results/{result_id}/release"),
    ("POST", "/api/v1/critical-alerts/{alert_id}/acknowledge"),
    ("GET", "/api/v1/samples/{accession}"),
    ("POST", "/api/v1/samples/{accession}/collect"),
    ("POST", "/api/v1/samples/{accession}/receive"),
    ("POST", "/api/v1/manifests"),
    ("POST", "/api/v1/manifests/{manifest_id}/dispatch"),
    ("GET", "/api/v1/manifests/{manifest_id}"),
    ("GET", "/api/v1/sync/conflicts/{conflict_id}"),
    ("PATCH", "/api/v1/branches/{branch_id}"),
    # Home collection: a branch's areas, windows, blackouts, runs and visits.
    ("GET", "/api/v1/appointments/branches/{branch_id}/areas"),
    ("PUT", "/api/v1/appointments/branches/{branch_id}/areas"),
    ("GET", "/api/v1/appointments/branches/{branch_id}/slots"),
    ("POST", "/api/v1/appointments/branches/{branch_id}/slots"),
    ("GET", "/api/v1/appointments/branches/{branch_id}/blackouts"),
    ("POST", "/api/v1/appointments/branches/{branch_id}/blackouts"),
    ("GET", "/api/v1/appointments/branches/{branch_id}/suggestions"),
    ("POST", "/api/v1/appointments"),
    ("POST", "/api/v1/appointments/assignments"),
    ("GET", "/api/v1/appointments/runs/{phlebotomist_id}"),
    ("GET", "/api/v1/appointments/{appointment_id}"),
    ("POST", "/api/v1/appointments/{appointment_id}/reschedule"),
    ("POST", "/api/v1/appointments/{appointment_id}/cancel"),
    ("POST", "/api/v1/appointments/{appointment_id}/status"),
    ("POST", "/api/v1/appointments/{appointment_id}/collect"),
    ("POST", "/api/v1/orders/{order_id}/reports/provisional"),
    ("POST", "/api/v1/autoverify/results/{result_id}/retract"),
    # Billing: an invoice, its receipts and payments are at the invoice's branch.
    ("POST", "/api/v1/invoices"),
    ("GET", "/api/v1/invoices/{invoice_id}"),
    ("GET", "/api/v1/invoices/{invoice_id}/pdf"),
    ("POST", "/api/v1/invoices/{invoice_id}/cancel"),
    ("POST", "/api/v1/invoices/{invoice_id}/discount-decision"),
    ("POST", "/api/v1/invoices/{invoice_id}/payment-link"),
    ("GET", "/api/v1/invoices/{invoice_id}/payment-requests"),
    ("POST", "/api/v1/invoices/{invoice_id}/payments"),
    ("GET", "/api/v1/invoices/{invoice_id}/payments"),
    ("GET", "/api/v1/invoices/{invoice_id}/receipts"),
    ("POST", "/api/v1/invoices/{invoice_id}/upi-qr"),
    ("GET", "/api/v1/invoices/{invoice_id}/upi-qr/counter"),
    ("GET", "/api/v1/receipts/{receipt_id}"),
    ("GET", "/api/v1/receipts/{receipt_id}/pdf"),
    ("GET", "/api/v1/payments/{payment_id}"),
    ("POST", "/api/v1/payments/{payment_id}/apply"),
    ("POST", "/api/v1/payments/{payment_id}/capture"),
    ("POST", "/api/v1/payments/{payment_id}/verify"),
    ("POST", "/api/v1/payments/{payment_id}/refunds"),
    ("GET", "/api/v1/payments/{payment_id}/refunds"),
    # QC belongs to the instrument, and the instrument to its branch.
    ("POST", "/api/v1/qc/lots"),
    ("GET", "/api/v1/qc/lots/{lot_id}"),
    ("POST", "/api/v1/qc/lots/{lot_id}/expire"),
    ("POST", "/api/v1/qc/results"),
    ("GET", "/api/v1/qc/violations/{violation_id}"),
    ("POST", "/api/v1/qc/violations/{violation_id}/corrective-actions"),
    ("GET", "/api/v1/qc/charts/{lot_id}.svg"),
    ("GET", "/api/v1/qc/charts/{lot_id}.png"),
    # E-invoices, debit notes and the counter payee belong to the invoice's (branch's) branch.
    ("POST", "/api/v1/invoices/{invoice_id}/debit-notes"),
    ("GET", "/api/v1/invoices/{invoice_id}/einvoice"),
    ("POST", "/api/v1/invoices/{invoice_id}/einvoice"),
    ("POST", "/api/v1/invoices/{invoice_id}/einvoice/cancel"),
    ("GET", "/api/v1/invoices/{invoice_id}/einvoice/exchanges"),
    ("GET", "/api/v1/invoices/{invoice_id}/einvoice/qr.png"),
    ("GET", "/api/v1/billing/branches/{branch_id}/upi-payee"),
    # A report's message goes again only from a branch that can read the report.
    ("POST", "/api/v1/reports/{report_id}/notifications"),
}

#: Lists of branch rows: they must show none of another branch's.
LISTS = {
    ("GET", "/api/v1/instruments"),
    ("GET", "/api/v1/integration/exceptions"),
    ("GET", "/api/v1/orders"),
    ("GET", "/api/v1/critical-alerts"),
    ("GET", "/api/v1/worklists/pending-entry"),
    ("GET", "/api/v1/worklists/pending-verification"),
    ("GET", "/api/v1/worklists/critical-alerts"),
    ("GET", "/api/v1/worklists/tat-breaches"),
    ("GET", "/api/v1/samples"),
    ("GET", "/api/v1/worklists/pending-collection"),
    ("GET", "/api/v1/worklists/pending-receipt"),
    ("GET", "/api/v1/sync/conflicts"),
    ("GET", "/api/v1/appointments"),
    ("GET", "/api/v1/invoices"),
    ("GET", "/api/v1/payments"),
    ("GET", "/api/v1/qc/lots"),
    ("GET", "/api/v1/qc/results"),
    ("GET", "/api/v1/qc/violations"),
    ("GET", "/api/v1/qc/unmatched"),
    ("GET", "/api/v1/qc/status"),
    ("GET", "/api/v1/autoverify/evaluations"),
}
#: Lists the role matrix's context leaves empty for everyone (their branch filter is the
#: same as their neighbours'; the walk still checks the limited user sees none).
EMPTY_IN_THE_MATRIX = {
    ("GET", "/api/v1/worklists/tat-breaches"),
    ("GET", "/api/v1/payments"),
    ("GET", "/api/v1/qc/unmatched"),
    ("GET", "/api/v1/autoverify/evaluations"),
}

#: The organisation's own records, shared by its branches.
ORGANISATION_WIDE = {
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/organisation"),
    ("GET", "/api/v1/branches"),
    ("GET", "/api/v1/branches/{branch_id}"),
    ("POST", "/api/v1/branches"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/{user_id}"),
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/users/{user_id}"),
    ("GET", "/api/v1/api-keys"),
    ("POST", "/api/v1/api-keys"),
    ("DELETE", "/api/v1/api-keys/{key_id}"),
    ("GET", "/api/v1/audit/entries"),
    ("POST", "/api/v1/audit/verify"),
    ("GET", "/api/v1/catalog/tests"),
    ("GET", "/api/v1/catalog/tests/{test_id}"),
    ("POST", "/api/v1/catalog/tests"),
    ("PATCH", "/api/v1/catalog/tests/{test_id}"),
    ("POST", "/api/v1/catalog/tests/{test_id}/ranges"),
    ("DELETE", "/api/v1/catalog/tests/{test_id}/ranges/{range_id}"),
    ("GET", "/api/v1/catalog/panels"),
    ("GET", "/api/v1/catalog/panels/{panel_id}"),
    ("POST", "/api/v1/catalog/panels"),
    ("PATCH", "/api/v1/catalog/panels/{panel_id}"),
    ("GET", "/api/v1/patients"),
    ("GET", "/api/v1/patients/{patient_id}"),
    ("POST", "/api/v1/patients"),
    ("PATCH", "/api/v1/patients/{patient_id}"),
    ("GET", "/api/v1/patients/duplicates"),
    ("POST", "/api/v1/patients/duplicates/{flag_id}/dismiss"),
    ("POST", "/api/v1/patients/{patient_id}/merge"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    # Preparation is per test; the dashboard counts only the caller's branches' visits.
    ("GET", "/api/v1/appointments/preparations"),
    ("PUT", "/api/v1/appointments/preparations"),
    ("GET", "/api/v1/appointments/dashboard"),
    # The patient booking link: public, scoped by the link's branch and a mobile code.
    ("GET", "/api/v1/public/book/{organisation}/{branch}/slots"),
    ("GET", "/api/v1/public/book/{organisation}/{branch}/tests"),
    ("POST", "/api/v1/public/book/{organisation}/{branch}/code"),
    ("POST", "/api/v1/public/book/{organisation}/{branch}/verify"),
    ("POST", "/api/v1/public/book/{organisation}/{branch}/appointments"),
    ("GET", "/api/v1/public/book/{organisation}/{branch}/appointments"),
    (
        "POST",
        "/api/v1/public/book/{organisation}/{branch}/appointments/{appointment_id}/reschedule",
    ),
    ("POST", "/api/v1/public/book/{organisation}/{branch}/appointments/{appointment_id}/cancel"),
    # DPDP: a patient's privacy records follow the patient (the organisation's), and the
    # registers (requests, holds, retention, breaches) are the organisation's duties.
    *(
        (method, "/api/v1/patients/{patient_id}/privacy" + tail)
        for method, tail in [
            ("GET", "/notice"),
            ("PUT", "/consents/{purpose}"),
            ("GET", "/summary"),
            ("GET", "/export"),
            ("GET", "/access-log"),
            ("GET", "/nominee"),
            ("PUT", "/nominee"),
            ("POST", "/requests"),
            ("POST", "/link"),
            ("POST", "/legal-holds"),
        ]
    ),
    # The staff session (web app), the organisation's settings and signatures.
    ("POST", "/api/v1/auth/session"),
    ("POST", "/api/v1/auth/session/logout"),
    ("POST", "/api/v1/auth/session/refresh"),
    ("PATCH", "/api/v1/organisation"),
    ("PUT", "/api/v1/users/{user_id}/signature"),
    # Billing set-up and B2B client accounts are the organisation's (a client's orders come
    # from any centre); branch billing settings are an admin's; reconciliation is per gateway.
    ("GET", "/api/v1/billing/settings"),
    ("PUT", "/api/v1/billing/settings"),
    ("GET", "/api/v1/billing/branches/{branch_id}"),
    ("PUT", "/api/v1/billing/branches/{branch_id}"),
    ("GET", "/api/v1/billing/items"),
    ("POST", "/api/v1/billing/items"),
    ("GET", "/api/v1/rate-lists"),
    ("POST", "/api/v1/rate-lists"),
    ("GET", "/api/v1/rate-lists/{rate_list_id}"),
    ("PATCH", "/api/v1/rate-lists/{rate_list_id}"),
    ("GET", "/api/v1/billing-clients"),
    ("POST", "/api/v1/billing-clients"),
    ("GET", "/api/v1/billing-clients/{client_id}"),
    ("PATCH", "/api/v1/billing-clients/{client_id}"),
    ("POST", "/api/v1/billing-clients/{client_id}/orders"),
    ("GET", "/api/v1/billing-clients/{client_id}/statement"),
    ("POST", "/api/v1/invoices/consolidated"),
    ("GET", "/api/v1/payments/reconciliation"),
    ("POST", "/api/v1/payments/reconciliation"),
    # Notifications concern patients (the organisation's) and the lab's policy and doctors.
    ("GET", "/api/v1/notifications"),
    ("GET", "/api/v1/notifications/{notification_id}"),
    ("GET", "/api/v1/patients/{patient_id}/notification-consents"),
    ("PUT", "/api/v1/patients/{patient_id}/notification-consents/{channel}"),
    ("GET", "/api/v1/notification-policy"),
    ("PATCH", "/api/v1/notification-policy"),
    ("GET", "/api/v1/notification-doctors"),
    ("PUT", "/api/v1/notification-doctors"),
    # ABDM: the facility and the patients' health ids are the organisation's.
    *(
        (method, "/api/v1/abdm" + tail)
        for method, tail in [
            ("POST", "/abha-links"),
            ("POST", "/abha-links/{enrolment_id}/otp"),
            ("POST", "/bridge"),
            ("GET", "/care-contexts"),
            ("GET", "/consents"),
            ("POST", "/enrolments"),
            ("GET", "/enrolments/{enrolment_id}"),
            ("POST", "/enrolments/{enrolment_id}/aadhaar-otp"),
            ("POST", "/enrolments/{enrolment_id}/address"),
            ("POST", "/enrolments/{enrolment_id}/mobile-otp"),
            ("POST", "/facilities"),
            ("GET", "/facilities"),
            ("GET", "/facilities/{facility_id}/qr"),
            ("GET", "/messages"),
            ("POST", "/patients/{patient_id}/link"),
            ("GET", "/requests"),
            ("GET", "/share-tokens"),
            ("POST", "/share-tokens/{token_id}/dismiss"),
            ("POST", "/share-tokens/{token_id}/match"),
            ("POST", "/share-tokens/{token_id}/register"),
            ("GET", "/transfers"),
        ]
    ),
    # Dashboards: aggregates the analytics service filters to the caller's branches.
    ("GET", "/api/v1/analytics/critical-pending"),
    ("GET", "/api/v1/analytics/in-transit"),
    ("GET", "/api/v1/analytics/tat"),
    ("GET", "/api/v1/analytics/work-by-state"),
    # Autoverification rules and the second-opinion model are the organisation's.
    ("GET", "/api/v1/autoverify/model"),
    ("GET", "/api/v1/autoverify/rule-sets"),
    ("GET", "/api/v1/autoverify/rule-sets/{test_id}"),
    ("PUT", "/api/v1/autoverify/rule-sets/{test_id}"),
    ("GET", "/api/v1/autoverify/rule-types"),
    ("POST", "/api/v1/autoverify/simulate"),
    # QC materials and rules are per analyte, for every instrument; the monthly summary is
    # filtered to the caller's instruments; purging deleted files is an admin's duty.
    ("GET", "/api/v1/qc/materials"),
    ("POST", "/api/v1/qc/materials"),
    ("GET", "/api/v1/qc/rules/{test_id}"),
    ("PUT", "/api/v1/qc/rules/{test_id}"),
    ("GET", "/api/v1/qc/summary/{month}.csv"),
    ("GET", "/api/v1/qc/summary/{month}.pdf"),
    ("POST", "/api/v1/files/purge"),
    # The matrix's files are linked to no order (the organisation's); files of an order are
    # at the order's branch: tests/files/test_branch_limits.py walks those.
    ("GET", "/api/v1/files"),
    ("POST", "/api/v1/files"),
    ("GET", "/api/v1/files/{file_id}"),
    ("DELETE", "/api/v1/files/{file_id}"),
    ("GET", "/api/v1/files/{file_id}/content"),
    ("PUT", "/api/v1/files/{file_id}/legal-hold"),
    ("GET", "/api/v1/files/{file_id}/presigned-url"),
    ("GET", "/api/v1/files/{file_id}/versions"),
    ("GET", "/api/v1/privacy/requests"),
    ("GET", "/api/v1/privacy/requests/{request_id}"),
    ("POST", "/api/v1/privacy/requests/{request_id}/close"),
    ("GET", "/api/v1/privacy/legal-holds"),
    ("POST", "/api/v1/privacy/legal-holds/{hold_id}/release"),
    ("GET", "/api/v1/privacy/retention"),
    ("POST", "/api/v1/privacy/retention/run"),
    ("POST", "/api/v1/privacy/breaches"),
    ("GET", "/api/v1/privacy/breaches"),
    ("GET", "/api/v1/privacy/breaches/{breach_id}"),
    ("PATCH", "/api/v1/privacy/breaches/{breach_id}"),
    ("GET", "/api/v1/privacy/breaches/{breach_id}/affected"),
    # The organisation's GST e-invoicing settings (one GSTIN for every branch).
    ("GET", "/api/v1/einvoice/settings"),
    ("PUT", "/api/v1/einvoice/settings"),
}


def test_every_operation_of_the_openapi_document_is_classified(app: FastAPI) -> None:
    walked = {
        (op.method, op.path) for op in operations(app.openapi()) if op.path.startswith("/api/v1")
    }
    classified = ACTIONS | LISTS | ORGANISATION_WIDE
    assert walked - classified == set(), "new endpoints: say how branch limits apply"
    assert not (ACTIONS & LISTS)
    assert not ((ACTIONS | LISTS) & ORGANISATION_WIDE)


def _items(body: Any) -> list[Any]:
    if isinstance(body, dict) and "items" in body:
        return list(body["items"])
    if isinstance(body, list):
        return body
    raise AssertionError(f"not a list response: {body!r}"[:300])


@pytest.mark.parametrize(
    ("module", "case"),
    [(m, c) for m, c in CASES if (c.method, c.path) in ACTIONS | LISTS],
    ids=[f"{c.method} {c.path}" for m, c in CASES if (c.method, c.path) in ACTIONS | LISTS],
)
async def test_a_branch_limited_user_reaches_nothing_of_other_branches(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    module: ModuleType,
    case: Case,
) -> None:
    admin = await create_user(session, organisation, roles=("admin",))
    params = await module.context(session, organisation, client, bearer_for(admin))
    if "conflict_id" in params:
        # The matrix's conflict concerns no branch (visible to all); make it another's.
        elsewhere = await create_branch(session, organisation)
        conflict = await session.get(SyncConflict, uuid.UUID(params["conflict_id"]))
        assert conflict is not None
        conflict.scope_keys = [elsewhere.id]
        await session.flush()
    own = await create_branch(session, organisation, code=f"CX{new_id().hex[-4:].upper()}")
    limited = await create_user(session, organisation, roles=ALL_ROLES, branches=[own])
    n = limited.id.hex[-6:].upper()
    path = case.path.format(**params)
    if (case.method, case.path) == ("GET", "/api/v1/results"):
        path += f"?order_id={params['order_id']}"
    body = fill_body(case.body, n=n, **params)

    response = await client.request(case.method, path, json=body, headers=bearer_for(limited))

    if (case.method, case.path) in ACTIONS:
        assert response.status_code in (403, 404), response.text
        if response.status_code == 403:
            assert response.json()["code"] == "branch_not_allowed", response.text
    else:
        assert response.status_code == 200, response.text
        assert _items(response.json()) == []
    # The same request by an unlimited user of the same roles is not refused for branch.
    unlimited = await create_user(session, organisation, roles=ALL_ROLES)
    control = await client.request(case.method, path, json=body, headers=bearer_for(unlimited))
    assert control.status_code not in (403,), control.text
    # (Some lists are empty for everyone in the matrix, e.g. no test past its turnaround.)
    if (case.method, case.path) in LISTS - EMPTY_IN_THE_MATRIX:
        assert _items(control.json()) != [], "the context should put rows in this list"


# ---- GraphQL ------------------------------------------------------------------------

GRAPHQL_OPERATIONS = {
    "getSyncStatus",
    "conflicts",
    "syncPendingOperations",
    "queueOperation",
    "resolveConflict",
}
QUEUE = """mutation Q($entity: String!, $operation: String!, $data: JSON!, $entityId: ID) {
  queueOperation(entity: $entity, operation: $operation, data: $data, entityId: $entityId) {
    status reason } }"""
SYNC = """mutation S($clientId: ID!, $ops: [SyncOpInput!], $branchId: ID) {
  syncPendingOperations(clientId: $clientId, protocolVersion: 1, schemaVersion: 2, ops: $ops,
                        branchId: $branchId) {
    results { status reason } changes { entity entityId } } }"""
STATUS = "query($c: ID) { getSyncStatus(clientId: $c) { openConflicts } }"
CONFLICTS = "{ conflicts(status: null) { id } }"
RESOLVE = """mutation R($id: ID!) { resolveConflict(conflictId: $id, resolution: KEEP_SERVER,
  reason: "checked") { id status } }"""


def test_every_graphql_operation_is_walked() -> None:
    from nidaan.sync.graphql import schema

    graphql_schema = schema._schema
    names = set(graphql_schema.query_type.fields) | set(graphql_schema.mutation_type.fields)  # type: ignore[union-attr]
    assert names == GRAPHQL_OPERATIONS, "a new GraphQL operation: add it to the walk below"


async def test_graphql_operations_refuse_another_branchs_rows(
    committing_session, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from nidaan.main import create_app
    from nidaan.samples.models import Sample
    from tests.fixtures.objects import create_organisation
    from tests.http.matrix.samples import lab_context

    # Real commits: the sync mutation commits its push before it pulls.
    async with committing_session() as session:
        organisation = await create_organisation(session)
        params = await lab_context(session, organisation)  # rows at LAB and CC1
        lab_sample = await session.scalar(
            select(Sample).where(
                Sample.organisation_id == organisation.id,
                Sample.accession == params["collected_accession"],
            )
        )
        assert lab_sample is not None
        conflict = SyncConflict(
            organisation_id=organisation.id,
            entity="sample",
            entity_id=lab_sample.id,
            field="status",
            kind="guarded",
            status="OPEN",
            scope_keys=[uuid.UUID(params["lab_id"])],
        )
        session.add(conflict)
        own = await create_branch(session, organisation, code=f"CX{new_id().hex[-4:].upper()}")
        limited = bearer_for(
            await create_user(session, organisation, roles=ALL_ROLES, branches=[own])
        )
    transport = httpx.ASGITransport(app=create_app(settings))
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    reject = {"to": "rejected", "reason": "haemolysed"}

    async def gql(query: str, **variables: Any) -> dict[str, Any]:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=limited
        )
        assert response.status_code == 200, response.text
        return response.json()

    queued = await gql(
        QUEUE, entity="sample", operation="transition", data=reject, entityId=str(lab_sample.id)
    )
    assert queued["data"]["queueOperation"]["status"] == "REJECTED"
    assert "branch" in queued["data"]["queueOperation"]["reason"]

    device = str(new_id())
    op = {
        "opId": str(new_id()),
        "clientSeq": 1,
        "entity": "sample",
        "entityId": str(lab_sample.id),
        "operation": "transition",
        "data": reject,
        "hlc": f"{1_700_000_000_000}:0:{device}",
    }
    pushed = await gql(SYNC, clientId=device, ops=[op])
    assert [r["status"] for r in pushed["data"]["syncPendingOperations"]["results"]] == ["REJECTED"]
    pulled = {c["entityId"] for c in pushed["data"]["syncPendingOperations"]["changes"]}
    assert str(lab_sample.id) not in pulled

    other_device = await gql(SYNC, clientId=str(new_id()), branchId=params["lab_id"])
    assert other_device["errors"][0]["extensions"]["code"] == "forbidden"

    assert (await gql(STATUS, c=device))["data"]["getSyncStatus"]["openConflicts"] == 0
    listed = await gql(CONFLICTS)
    assert str(conflict.id) not in {c["id"] for c in listed["data"]["conflicts"]}
    resolved = await gql(RESOLVE, id=str(conflict.id))
    assert resolved["errors"][0]["extensions"]["code"] in {"not_found", "branch_not_allowed"}

    await client.aclose()
    async with committing_session() as session:
        stored = await session.get(Sample, lab_sample.id)
        assert stored is not None
        assert stored.status == "collected"
