"""SQL statement budgets of the lab workflow, counted per request through the real HTTP app.

A fresh lab (committed, not rolled back: requests run in their own transactions exactly as in
production) goes through one patient's journey to warm up, then the same patient comes back
for a second visit (so the delta check has a verified result to compare with) and every
request of that visit is counted. Counts, not times: a statement that sneaks into a hot path
fails here on any machine.

The table of measured counts is printed (``-s``) and written to var/perf/statement-counts.txt.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from nidaan.config import Settings
from nidaan.kit import db
from nidaan.tenancy.enums import BranchKind
from tests.fixtures.lab import create_catalog_test, create_panel
from tests.fixtures.objects import (
    TEST_PASSWORD,
    create_branch,
    create_organisation,
    create_user,
)
from tests.perf.statements import Count, count_into, counting

ROOT = Path(__file__).resolve().parents[2]

#: Statement budgets per endpoint (issue 19). Login is the token endpoint; the journey's
#: other calls are authenticated with a bearer token (one statement of each budget).
BUDGETS = {
    "POST /auth/token": 3,
    "POST /orders (2 panels)": 12,
    "POST /samples/{a}/collect": 6,
    "POST /samples/{a}/receive": 6,
    "POST /results": 8,
    "POST /results/{id}/verify": 8,
    "GET /worklists/pending-collection": 3,
    "GET /worklists/pending-receipt": 3,
    "GET /worklists/pending-entry": 3,
    "GET /worklists/pending-verification": 3,
}
#: Endpoints still over their budget: the count measured now, which they must not exceed
#: (their budget test is an expected failure until they get within it; docs/performance.md
#: says what is left). Most of the gap is sync change capture at commit (2-3 statements).
CURRENT_CEILINGS = {
    "POST /results": 13,
    "POST /results/{id}/verify": 13,
}
#: Counted and shown in the table, budgeted elsewhere (patients and sync are issue 19's
#: other half).
UNBUDGETED = ("POST /patients",)


@dataclass
class Measured:
    """Every counted call of an endpoint (several tubes, several results)."""

    calls: dict[str, list[Count]] = field(default_factory=dict)

    def add(self, label: str, count: Count) -> None:
        self.calls.setdefault(label, []).append(count)

    def worst(self, label: str) -> Count:
        return max(self.calls[label], key=lambda c: c.total)


@dataclass
class LabSetup:
    central_lab: uuid.UUID
    centre: uuid.UUID
    emails: dict[str, str]


async def _set_up_lab(settings: Settings) -> LabSetup:
    """A committed organisation: two branches, the four roles of the journey, and two panels
    on two kinds of tube (kidney function on serum, blood count on EDTA blood)."""
    async with db.session_scope(settings) as session:
        organisation = await create_organisation(session)
        centre = await create_branch(session, organisation, kind=BranchKind.COLLECTION_CENTRE)
        lab = await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB)
        emails = {}
        for role in ("front_desk", "phlebotomist", "technician", "pathologist"):
            user = await create_user(session, organisation, roles=(role,))
            emails[role] = user.email

        async def serum(code: str, low: str, high: str, **extra: Any) -> Any:
            return await create_catalog_test(
                session,
                organisation,
                code=code,
                name=code,
                ranges=[{"low": Decimal(low), "high": Decimal(high)}],
                **extra,
            )

        async def blood(code: str, low: str, high: str) -> Any:
            return await create_catalog_test(
                session,
                organisation,
                code=code,
                name=code,
                department="Haematology",
                specimen_type="whole_blood",
                container="edta_lavender",
                ranges=[{"low": Decimal(low), "high": Decimal(high)}],
            )

        kidney = [
            await serum("CREA", "0.6", "1.2", delta_percent=Decimal("50"), delta_window_days=30),
            await serum("UREA", "15", "40"),
            await serum("K", "3.5", "5.1", delta_absolute=Decimal("1.5"), delta_window_days=30),
            await serum("NA", "135", "145"),
        ]
        count = [await blood("HB", "12", "15"), await blood("PLT", "150", "410")]
        await create_panel(session, organisation, kidney, code="KFT")
        await create_panel(session, organisation, count, code="CBC")
    return LabSetup(lab.id, centre.id, emails)


VALUES = {"CREA": "0.9", "UREA": "28", "K": "4.2", "NA": "140", "HB": "13.5", "PLT": "250"}


async def _call(
    http: httpx.AsyncClient,
    measured: Measured | None,
    label: str,
    method: str,
    url: str,
    **kwargs: Any,
) -> httpx.Response:
    count = Count()
    with count_into(count):
        response = await http.request(method, url, **kwargs)
    assert response.status_code < 400, f"{label}: {response.status_code} {response.text}"
    if measured is not None:
        measured.add(label, count)
    return response


async def _login(http: httpx.AsyncClient, measured: Measured | None, email: str) -> dict[str, str]:
    response = await _call(
        http,
        measured,
        "POST /auth/token",
        "POST",
        "/api/v1/auth/token",
        data={"username": email, "password": TEST_PASSWORD},
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _visit(
    http: httpx.AsyncClient,
    measured: Measured | None,
    lab: LabSetup,
    auth: dict[str, dict[str, str]],
    patient_id: str | None,
) -> str:
    """One patient's visit, from registration (first visit only) to verified results."""
    front, phleb, tech, path = (
        auth["front_desk"],
        auth["phlebotomist"],
        auth["technician"],
        auth["pathologist"],
    )
    if patient_id is None:
        patient = await _call(
            http,
            measured,
            "POST /patients",
            "POST",
            "/api/v1/patients",
            headers=front,
            json={"full_name": "Asha Verma", "sex": "female", "date_of_birth": "1985-06-15"},
        )
        patient_id = patient.json()["patient"]["id"]
    order = (
        await _call(
            http,
            measured,
            "POST /orders (2 panels)",
            "POST",
            "/api/v1/orders",
            headers={**front, "Idempotency-Key": str(uuid.uuid4())},
            json={"patient_id": patient_id, "branch_id": str(lab.centre), "items": ["KFT", "CBC"]},
        )
    ).json()
    assert len(order["samples"]) == 2
    assert len(order["tests"]) == 6
    await _call(
        http, measured, "GET /worklists/pending-collection", "GET",
        "/api/v1/worklists/pending-collection", headers=phleb,
    )  # fmt: skip
    for sample in order["samples"]:
        await _call(
            http,
            measured,
            "POST /samples/{a}/collect",
            "POST",
            f"/api/v1/samples/{sample['accession']}/collect",
            headers=phleb,
            json={},
        )
    await _call(
        http, measured, "GET /worklists/pending-receipt", "GET",
        "/api/v1/worklists/pending-receipt", headers=tech,
    )  # fmt: skip
    for sample in order["samples"]:
        await _call(
            http,
            measured,
            "POST /samples/{a}/receive",
            "POST",
            f"/api/v1/samples/{sample['accession']}/receive",
            headers=tech,
            json={"branch_id": str(lab.central_lab)},
        )
    await _call(
        http, measured, "GET /worklists/pending-entry", "GET",
        "/api/v1/worklists/pending-entry", headers=tech,
    )  # fmt: skip
    result_ids = []
    for test in order["tests"]:
        entered = await _call(
            http,
            measured,
            "POST /results",
            "POST",
            "/api/v1/results",
            headers=tech,
            json={"order_test_id": test["id"], "value": VALUES[test["code"]]},
        )
        assert entered.json()["status"] == "entered", entered.text
        result_ids.append(entered.json()["id"])
    await _call(
        http, measured, "GET /worklists/pending-verification", "GET",
        "/api/v1/worklists/pending-verification", headers=path,
    )  # fmt: skip
    for result_id in result_ids:
        verified = await _call(
            http,
            measured,
            "POST /results/{id}/verify",
            "POST",
            f"/api/v1/results/{result_id}/verify",
            headers=path,
            json={},
        )
        assert verified.json()["status"] == "verified", verified.text
    return patient_id


@pytest.fixture(scope="module")
async def measured(settings: Settings) -> AsyncIterator[Measured]:
    from nidaan.audit.service import chainer
    from nidaan.main import create_app

    lab = await _set_up_lab(settings)
    app = create_app(settings)
    # As `nidaan serve` does: audit entries are chained in the background after commit.
    chainer.start()
    transport = httpx.ASGITransport(app=app)
    result = Measured()
    try:
        with counting(db.get_engine(settings)):
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                auth = {role: await _login(http, None, email) for role, email in lab.emails.items()}
                # Warm up (caches, the first order of the day's number sequence, prepared
                # statements), then count the same patient's second visit.
                patient_id = await _visit(http, None, lab, auth, None)
                await _login(http, result, lab.emails["technician"])
                await _visit(http, result, lab, auth, patient_id)
                # Registration is counted on a new patient (shown, budgeted elsewhere).
                await _visit(http, result, lab, auth, None)
        _write_table(result)
        yield result
    finally:
        await chainer.stop()


def _table(result: Measured) -> str:
    lines = [
        f"{'endpoint':<38}{'calls':>6}{'sql':>6}{'driver':>8}{'total':>7}{'budget':>8}",
    ]
    for label in (*BUDGETS, *UNBUDGETED):
        if label not in result.calls:
            continue
        worst = result.worst(label)
        budget = str(BUDGETS[label]) if label in BUDGETS else "-"
        lines.append(
            f"{label:<38}{len(result.calls[label]):>6}{len(worst.sql):>6}{worst.jobs:>8}"
            f"{worst.total:>7}{budget:>8}"
        )
    lines.append(
        "(worst call of each endpoint; sql: statements SQLAlchemy sent; driver: statements "
        "sent beside it on the same connection, i.e. job inserts; the pool's pre-ping and "
        "BEGIN/COMMIT are not counted)"
    )
    return "\n".join(lines)


def _write_table(result: Measured) -> None:
    table = _table(result)
    print(f"\nSQL statements per request ({date.today().isoformat()}):\n{table}")
    out = ROOT / "var" / "perf" / "statement-counts.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    # Every statement of each endpoint's worst call, to see where the budget goes.
    listing = []
    for label in result.calls:
        worst = result.worst(label)
        listing.append(f"== {label}: {worst.total}")
        listing += [f"  {_one_line(s)}" for s in worst.sql]
        listing += [f"  [driver] {_one_line(s)}" for s in worst.outside if s.strip() != ";"]
    (out.parent / "statement-log.txt").write_text("\n".join(listing) + "\n")


def _one_line(statement: str) -> str:
    return " ".join(statement.split())[:400]


def _over_budget(label: str) -> Any:
    return pytest.param(
        label,
        marks=pytest.mark.xfail(
            strict=True,
            reason=f"over budget: {CURRENT_CEILINGS[label]} statements (docs/performance.md)",
        ),
    )


def _listing(count: Count) -> str:
    return "\n".join([*count.sql, *(f"[driver] {s}" for s in count.outside)])


@pytest.mark.parametrize(
    "label", [_over_budget(label) if label in CURRENT_CEILINGS else label for label in BUDGETS]
)
def test_endpoint_stays_within_its_statement_budget(measured: Measured, label: str) -> None:
    worst = measured.worst(label)
    assert worst.total <= BUDGETS[label], (
        f"{label} issued {worst.total} statements (budget {BUDGETS[label]}):\n{_listing(worst)}"
    )


@pytest.mark.parametrize("label", list(CURRENT_CEILINGS))
def test_endpoint_over_budget_does_not_regress(measured: Measured, label: str) -> None:
    worst = measured.worst(label)
    assert worst.total <= CURRENT_CEILINGS[label], (
        f"{label} issued {worst.total} statements (was {CURRENT_CEILINGS[label]}, budget "
        f"{BUDGETS[label]}):\n{_listing(worst)}"
    )


def test_every_counted_call_reached_the_database(measured: Measured) -> None:
    """The counters see the requests' statements (a broken hook would pass every budget)."""
    for label in BUDGETS:
        assert all(count.total >= 1 for count in measured.calls[label]), label
    orders = measured.calls["POST /orders (2 panels)"]
    assert all(count.jobs >= 1 for count in orders), "job inserts beside SQLAlchemy not seen"
