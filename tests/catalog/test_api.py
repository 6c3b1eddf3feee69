"""Catalogue API and service: tests, ranges, panels, orderables, audit and tenant isolation."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.catalog.errors import UnknownOrderables
from nidaan.catalog.models import CatalogTest, ReferenceRange
from nidaan.catalog.service import catalog_service
from nidaan.kit.ids import new_id
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_panel, create_reference_range
from tests.fixtures.objects import bearer_for, create_user

POTASSIUM = {
    "code": "K",
    "name": "Potassium",
    "loinc": "2823-3",
    "department": "Biochemistry",
    "specimen_type": "serum",
    "container": "sst_yellow",
    "method": "ISE indirect",
    "unit": "mmol/L",
    "unit_conversions": {"mEq/L": "1"},
    "result_type": "numeric",
    "decimals": 1,
    "tat_minutes": 120,
    "price": "200.00",
    "delta_absolute": "1.0",
    "delta_window_days": 2,
    "ranges": [
        {"age_max": "28d", "low": "3.7", "high": "5.9", "critical_low": "2.8"},
        {
            "age_min": "28d",
            "low": "3.5",
            "high": "5.1",
            "critical_low": "2.8",
            "critical_high": "6.2",
        },
    ],
}


@pytest.fixture
async def admin_headers(session: AsyncSession, organisation: Organisation) -> dict[str, str]:
    return bearer_for(await create_user(session, organisation, roles=("admin",)))


async def test_create_test_with_ranges_is_audited_and_searchable(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    response = await client.post("/api/v1/catalog/tests", json=POTASSIUM, headers=admin_headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["code"], body["loinc"], body["unit"], body["version"]) == (
        "K",
        "2823-3",
        "mmol/L",
        1,
    )
    assert body["unit_conversions"] == {"mEq/L": "1"}
    assert Decimal(body["price"]) == Decimal("200.00")
    bands = sorted(body["ranges"], key=lambda r: r["age_min_days"] or 0)
    assert [(b["age_min_days"], b["age_max_days"]) for b in bands] == [(None, 28), (28, None)]
    assert [Decimal(b["critical_high"]) if b["critical_high"] else None for b in bands] == [
        None,
        Decimal("6.2"),
    ]
    entry = await session.scalar(select(AuditLog).where(AuditLog.entity_id == body["id"]))
    assert entry is not None
    assert (entry.action, entry.entity_type) == ("catalog_test.created", "catalog_test")
    assert entry.changes["after"]["code"] == "K"
    assert len(entry.changes["after"]["ranges"]) == 2

    await create_catalog_test(session, organisation, code="NA", loinc="2951-2", name="Sodium")
    await create_catalog_test(
        session, organisation, code="HB", name="Haemoglobin", department="Haematology"
    )
    for params, codes in (
        ({"loinc": "2823-3"}, ["K"]),
        ({"code": "k"}, ["K"]),
        ({"q": "sod"}, ["NA"]),
        ({"department": "haematology"}, ["HB"]),
        ({"q": "nothing-like-this"}, []),
    ):
        found = await client.get("/api/v1/catalog/tests", params=params, headers=admin_headers)
        assert found.status_code == 200
        assert [t["code"] for t in found.json()["items"]] == codes, params


async def test_client_id_makes_create_repeatable(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {**POTASSIUM, "id": str(new_id())}
    first = await client.post("/api/v1/catalog/tests", json=body, headers=admin_headers)
    again = await client.post("/api/v1/catalog/tests", json=body, headers=admin_headers)
    changed = await client.post(
        "/api/v1/catalog/tests", json={**body, "name": "Kalium"}, headers=admin_headers
    )

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] == body["id"]
    assert changed.status_code == 409
    assert changed.json()["code"] == "catalog_id_conflict"


async def test_codes_are_unique_across_tests_and_panels(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    test = await create_catalog_test(session, organisation, code="K")
    await create_panel(session, organisation, [test], code="LIPID")

    same_test = await client.post("/api/v1/catalog/tests", json=POTASSIUM, headers=admin_headers)
    as_panel = await client.post(
        "/api/v1/catalog/tests", json={**POTASSIUM, "code": "LIPID"}, headers=admin_headers
    )
    panel = await client.post(
        "/api/v1/catalog/panels",
        json={"code": "K", "name": "Potassium panel", "tests": ["K"]},
        headers=admin_headers,
    )

    assert [r.status_code for r in (same_test, as_panel, panel)] == [409, 409, 409]
    assert {r.json()["code"] for r in (same_test, as_panel, panel)} == {"catalog_code_taken"}


async def test_calculated_tests_must_use_existing_numeric_codes(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    for code in ("CHOL", "HDL", "TG"):
        await create_catalog_test(session, organisation, code=code)
    await create_catalog_test(
        session,
        organisation,
        code="HBSAG",
        result_type="coded",
        choices=[{"code": "R", "text": "Reactive", "abnormal": True}],
    )
    ldl = {
        **POTASSIUM,
        "code": "LDL",
        "name": "LDL cholesterol",
        "loinc": "13457-7",
        "result_type": "calculated",
        "formula": "CHOL - HDL - TG / 5",
        "unit": "mg/dL",
        "ranges": [],
    }

    created = await client.post("/api/v1/catalog/tests", json=ldl, headers=admin_headers)
    assert created.status_code == 201, created.text

    for formula, message in (
        ("CHOL - XYZ", "XYZ"),
        ("CHOL + HBSAG", "numeric or calculated"),
        ("__import__('os')", "functions"),
        ("CHOL.real", "Attribute"),
        ("VLDL2 + 1", "VLDL2"),
    ):
        bad = await client.post(
            "/api/v1/catalog/tests",
            json={**ldl, "code": "CALC2", "formula": formula},
            headers=admin_headers,
        )
        assert bad.status_code == 422, formula
        assert bad.json()["code"] == "invalid_formula"
        assert message in bad.json()["detail"]

    no_formula = await client.post(
        "/api/v1/catalog/tests",
        json={**ldl, "code": "CALC3", "formula": None},
        headers=admin_headers,
    )
    assert no_formula.json()["code"] == "invalid_formula"
    numeric_with_formula = await client.post(
        "/api/v1/catalog/tests",
        json={**POTASSIUM, "code": "K2", "formula": "CHOL"},
        headers=admin_headers,
    )
    assert numeric_with_formula.json()["code"] == "invalid_formula"


async def test_formula_cycles_are_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    await create_catalog_test(session, organisation, code="A")
    b = await create_catalog_test(
        session, organisation, code="B", result_type="calculated", formula="A * 2"
    )
    c = await create_catalog_test(
        session, organisation, code="C", result_type="calculated", formula="B + 1"
    )

    cycle = await client.patch(
        f"/api/v1/catalog/tests/{b.id}",
        json={"version": b.version, "formula": "C - 1"},
        headers=admin_headers,
    )
    self_ref = await client.patch(
        f"/api/v1/catalog/tests/{c.id}",
        json={"version": c.version, "formula": "C + 1"},
        headers=admin_headers,
    )

    assert cycle.status_code == 422
    assert "depend on itself" in cycle.json()["detail"]
    assert self_ref.status_code == 422


async def test_update_needs_current_version_and_is_audited(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    test = await create_catalog_test(session, organisation, code="K", price=Decimal("200.00"))

    changed = await client.patch(
        f"/api/v1/catalog/tests/{test.id}",
        json={"version": 1, "price": "250.00", "tat_minutes": 90},
        headers=admin_headers,
    )
    stale = await client.patch(
        f"/api/v1/catalog/tests/{test.id}",
        json={"version": 1, "price": "300.00"},
        headers=admin_headers,
    )

    assert changed.status_code == 200, changed.text
    assert (Decimal(changed.json()["price"]), changed.json()["version"]) == (Decimal("250"), 2)
    assert stale.status_code == 409
    assert (stale.json()["code"], stale.json()["current_version"]) == ("version_conflict", 2)
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(test.id), AuditLog.action == "catalog_test.updated"
        )
    )
    assert entry is not None
    assert entry.changes == {
        "before": {"price": "200.00", "tat_minutes": 240},
        "after": {"price": "250.00", "tat_minutes": 90},
    }


async def test_add_and_delete_ranges(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    test = await create_catalog_test(session, organisation, code="TSH")

    added = await client.post(
        f"/api/v1/catalog/tests/{test.id}/ranges",
        json={"sex": "female", "pregnant": True, "low": "0.1", "high": "2.5", "age_min": "18y"},
        headers=admin_headers,
    )
    backwards = await client.post(
        f"/api/v1/catalog/tests/{test.id}/ranges",
        json={"low": "5", "high": "1"},
        headers=admin_headers,
    )
    empty_band = await client.post(
        f"/api/v1/catalog/tests/{test.id}/ranges",
        json={"low": "1", "high": "5", "age_min": "18y", "age_max": "1y"},
        headers=admin_headers,
    )

    assert added.status_code == 201, added.text
    assert (added.json()["age_min_days"], added.json()["pregnant"]) == (6574, True)
    assert backwards.status_code == 422
    assert empty_band.status_code == 422
    deleted = await client.delete(
        f"/api/v1/catalog/tests/{test.id}/ranges/{added.json()['id']}", headers=admin_headers
    )
    assert deleted.status_code == 204
    remaining = await session.scalars(
        select(ReferenceRange.id).where(ReferenceRange.test_id == test.id)
    )
    assert list(remaining) == []
    actions = set(
        await session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == added.json()["id"])
        )
    )
    assert actions == {"catalog_reference_range.created", "catalog_reference_range.deleted"}


async def test_panels_keep_test_order(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    chol = await create_catalog_test(session, organisation, code="CHOL")
    hdl = await create_catalog_test(session, organisation, code="HDL")
    tg = await create_catalog_test(session, organisation, code="TG")

    created = await client.post(
        "/api/v1/catalog/panels",
        json={
            "code": "LIPID",
            "name": "Lipid profile",
            "price": "500",
            "tests": ["TG", str(chol.id), "hdl"],
        },
        headers=admin_headers,
    )
    unknown = await client.post(
        "/api/v1/catalog/panels",
        json={"code": "P2", "name": "P2", "tests": ["TG", "NOPE"]},
        headers=admin_headers,
    )

    assert created.status_code == 201, created.text
    panel = created.json()
    assert [(t["code"], t["position"]) for t in panel["tests"]] == [
        ("TG", 0),
        ("CHOL", 1),
        ("HDL", 2),
    ]
    assert unknown.status_code == 422
    assert unknown.json()["unknown"] == ["NOPE"]
    got = await client.get(f"/api/v1/catalog/panels/{panel['id']}", headers=admin_headers)
    assert got.json() == panel
    listed = await client.get(
        "/api/v1/catalog/panels", params={"q": "lipid"}, headers=admin_headers
    )
    assert [p["code"] for p in listed.json()["items"]] == ["LIPID"]

    updated = await client.patch(
        f"/api/v1/catalog/panels/{panel['id']}",
        json={"version": panel["version"], "tests": ["CHOL", "HDL"]},
        headers=admin_headers,
    )
    assert updated.status_code == 200, updated.text
    assert [t["test_id"] for t in updated.json()["tests"]] == [str(chol.id), str(hdl.id)]
    assert updated.json()["version"] == panel["version"] + 1
    assert tg.id not in {uuid.UUID(t["test_id"]) for t in updated.json()["tests"]}


async def test_resolve_orderables_expands_panels_and_removes_repeats(
    session: AsyncSession, organisation: Organisation, other_organisation: Organisation
) -> None:
    tests = {
        code: await create_catalog_test(session, organisation, code=code)
        for code in ("HB", "WBC", "PLT", "GLUF", "HBA1C", "OLD")
    }
    tests["OLD"].is_active = False
    cbc = await create_panel(
        session, organisation, [tests["WBC"], tests["HB"], tests["PLT"]], code="CBC"
    )
    dm = await create_panel(session, organisation, [tests["GLUF"], tests["HBA1C"]], code="DM")
    theirs = await create_catalog_test(session, other_organisation, code="TSH")
    await session.flush()

    resolved = await catalog_service.resolve_orderables(
        session, organisation.id, ["hb", str(cbc.id), dm.id, "GLUF", tests["PLT"].id]
    )

    assert [(r.test.code, r.panel_id) for r in resolved] == [
        ("HB", None),
        ("WBC", cbc.id),
        ("PLT", cbc.id),
        ("GLUF", dm.id),
        ("HBA1C", dm.id),
    ]
    with pytest.raises(UnknownOrderables) as caught:
        await catalog_service.resolve_orderables(
            session, organisation.id, ["HB", "NOPE", "OLD", str(theirs.id), "TSH"]
        )
    assert caught.value.data["unknown"] == ["NOPE", str(theirs.id), "TSH"]
    assert caught.value.data["inactive"] == ["OLD"]


async def test_service_reads_for_other_modules(
    session: AsyncSession, organisation: Organisation, other_organisation: Organisation
) -> None:
    crea = await create_catalog_test(session, organisation, code="CREA")
    band = await create_reference_range(session, crea, low="0.6", high="1.1")
    egfr = await create_catalog_test(
        session, organisation, code="EGFR", result_type="calculated", formula="CREA * AGE_YEARS"
    )
    theirs = await create_catalog_test(session, other_organisation, code="CREA")

    by_id = await catalog_service.tests_by_ids(session, organisation.id, [crea.id, theirs.id])
    ranges = await catalog_service.ranges_for_tests(session, [crea.id, egfr.id])
    users = await catalog_service.calculated_tests_using(session, organisation.id, "CREA")

    assert list(by_id) == [crea.id]
    assert ranges == {crea.id: [band], egfr.id: []}
    assert users == [egfr]


async def test_other_organisations_catalogue_is_invisible(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    ours = await create_catalog_test(session, organisation, code="HB")
    theirs = await create_catalog_test(session, other_organisation, code="HB")
    their_band = await create_reference_range(session, theirs)
    their_panel = await create_panel(session, other_organisation, [theirs], code="CBC")

    for method, path, body in (
        ("GET", f"/api/v1/catalog/tests/{theirs.id}", None),
        ("PATCH", f"/api/v1/catalog/tests/{theirs.id}", {"version": 1, "name": "Hijacked"}),
        ("POST", f"/api/v1/catalog/tests/{theirs.id}/ranges", {"low": "1", "high": "2"}),
        ("DELETE", f"/api/v1/catalog/tests/{theirs.id}/ranges/{their_band.id}", None),
        ("DELETE", f"/api/v1/catalog/tests/{ours.id}/ranges/{their_band.id}", None),
        ("GET", f"/api/v1/catalog/panels/{their_panel.id}", None),
        ("PATCH", f"/api/v1/catalog/panels/{their_panel.id}", {"version": 1, "name": "X"}),
    ):
        response = await client.request(method, path, json=body, headers=admin_headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"

    tests = await client.get("/api/v1/catalog/tests", headers=admin_headers)
    panels = await client.get("/api/v1/catalog/panels", headers=admin_headers)
    assert [t["id"] for t in tests.json()["items"]] == [str(ours.id)]
    assert panels.json()["items"] == []
    assert (await session.get(CatalogTest, theirs.id)).name != "Hijacked"  # type: ignore[union-attr]
    # A panel cannot pull in another organisation's test either.
    smuggle = await client.post(
        "/api/v1/catalog/panels",
        json={"code": "SMUGGLE", "name": "S", "tests": [str(theirs.id)]},
        headers=admin_headers,
    )
    assert smuggle.status_code == 422


async def test_non_admin_cannot_change_the_catalogue(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    technician = await create_user(session, organisation, roles=("technician",))
    response = await client.post(
        "/api/v1/catalog/tests", json=POTASSIUM, headers=bearer_for(technician)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "role_required"


async def test_a_referred_test_names_its_referral_lab(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    admin_headers: dict[str, str],
) -> None:
    created = await client.post(
        "/api/v1/catalog/tests",
        json={
            **POTASSIUM,
            "code": "VITD",
            "name": "Vitamin D",
            "accredited": False,
            "referral_lab": "Metropolis Healthcare, Mumbai",
        },
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["referral_lab"] == "Metropolis Healthcare, Mumbai"
    back_in_house = await client.patch(
        f"/api/v1/catalog/tests/{created.json()['id']}",
        json={"version": 1, "referral_lab": None},
        headers=admin_headers,
    )
    assert back_in_house.status_code == 200, back_in_house.text
    assert back_in_house.json()["referral_lab"] is None
