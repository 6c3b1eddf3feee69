"""Patients API: registration, encrypted identifiers, duplicates, merge, history, isolation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.auth.principal import Principal
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow
from nidaan.patients.domain import local_date
from nidaan.patients.models import Patient, PatientDuplicateFlag
from nidaan.patients.service import patients_service
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import bearer_for, create_branch, create_user

SUNITA = {
    "full_name": "Sunita  Devi",
    "sex": "female",
    "date_of_birth": "1980-07-01",
    "mobile": "+91 98765-43210",
    "email": "Sunita@Example.com",
    "city": "Patna",
    "state": "Bihar",
    "pincode": "800001",
    "preferred_language": "hi",
    "abha_number": "91-1234-5678-9012",
    "abha_address": "Sunita.Devi@abdm",
    "referring_doctor": "Dr. R. Iyer",
}


@pytest.fixture
async def desk(session: AsyncSession, organisation: Organisation) -> dict[str, str]:
    return bearer_for(await create_user(session, organisation, roles=("front_desk",)))


async def register(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> dict:
    response = await client.post("/api/v1/patients", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_register_masks_identifiers_and_audits_without_them(
    client: httpx.AsyncClient, session: AsyncSession, desk: dict[str, str]
) -> None:
    body = await register(client, desk, **SUNITA)
    patient = body["patient"]

    assert patient["mrn"].startswith("MRN-")
    assert len(patient["mrn"]) == 10
    assert patient["full_name"] == "Sunita Devi"
    assert patient["mobile_masked"] == "+91******3210"
    assert patient["abha_number_masked"] == "**-****-****-9012"
    assert patient["abha_address"] == "sunita.devi@abdm"
    assert patient["email"] == "sunita@example.com"
    assert (patient["date_of_birth"], patient["dob_estimated"]) == ("1980-07-01", False)
    assert patient["preferred_language"] == "hi"
    assert body["possible_duplicates"] == []
    assert "9876543210" not in str(body)
    assert "91123456789012" not in str(body)

    raw = (
        await session.execute(
            text(
                "SELECT mobile_encrypted, mobile_index, abha_number_encrypted, name_normalized "
                "FROM patients WHERE id = :id"
            ),
            {"id": patient["id"]},
        )
    ).one()
    assert raw.mobile_encrypted.startswith("v1.")
    assert "9876543210" not in raw.mobile_encrypted
    assert raw.abha_number_encrypted.startswith("v1.")
    assert "91123456789012" not in raw.abha_number_encrypted
    assert raw.name_normalized == "sunita devi"
    stored = await session.get(Patient, patient["id"])
    assert stored is not None
    assert (stored.mobile, stored.abha_number) == ("+919876543210", "91123456789012")

    entry = await session.scalar(select(AuditLog).where(AuditLog.entity_id == patient["id"]))
    assert entry is not None
    assert (entry.action, entry.entity_type) == ("patient.registered", "patient")
    after = entry.changes["after"]
    assert after["mobile"] == after["abha_number"] == after["email"] == "[redacted]"
    assert after["mrn"] == patient["mrn"]
    assert "9876543210" not in str(entry.changes)
    assert "91123456789012" not in str(entry.changes)


async def test_mrns_come_from_the_sequence(client: httpx.AsyncClient, desk: dict[str, str]) -> None:
    first = await register(client, desk, full_name="A One", sex="male", age_years=30)
    second = await register(client, desk, full_name="B Two", sex="male", age_years=30)
    n1 = int(first["patient"]["mrn"].removeprefix("MRN-"))
    n2 = int(second["patient"]["mrn"].removeprefix("MRN-"))
    assert n2 == n1 + 1


async def test_stated_age_gives_an_estimated_birth_date(
    client: httpx.AsyncClient, desk: dict[str, str]
) -> None:
    adult = await register(client, desk, full_name="Ramesh Kumar", sex="male", age_years=45)
    infant = await register(
        client, desk, full_name="Baby of Sunita", sex="female", age_years=0, age_days=10
    )

    today = local_date(utcnow())
    expected_adult = min(date(today.year - 45, 7, 1), today)
    assert adult["patient"]["date_of_birth"] == expected_adult.isoformat()
    assert adult["patient"]["dob_estimated"] is True
    assert infant["patient"]["dob_estimated"] is True
    assert (today - date.fromisoformat(infant["patient"]["date_of_birth"])).days == 10


async def test_missing_or_bad_fields_are_refused(
    client: httpx.AsyncClient, desk: dict[str, str]
) -> None:
    no_age = await client.post(
        "/api/v1/patients", json={"full_name": "X", "sex": "male"}, headers=desk
    )
    both = await client.post(
        "/api/v1/patients",
        json={"full_name": "X", "sex": "male", "age_years": 3, "date_of_birth": "2020-01-01"},
        headers=desk,
    )
    future = await client.post(
        "/api/v1/patients",
        json={"full_name": "X", "sex": "male", "date_of_birth": "2999-01-01"},
        headers=desk,
    )
    bad_mobile = await client.post(
        "/api/v1/patients",
        json={"full_name": "X", "sex": "male", "age_years": 3, "mobile": "12345"},
        headers=desk,
    )
    bad_language = await client.post(
        "/api/v1/patients",
        json={"full_name": "X", "sex": "male", "age_years": 3, "preferred_language": "xx"},
        headers=desk,
    )
    bad_abha_address = await client.post(
        "/api/v1/patients",
        json={"full_name": "X", "sex": "male", "age_years": 3, "abha_address": "x@gmail.com"},
        headers=desk,
    )

    assert [r.status_code for r in (no_age, both, future, bad_mobile, bad_language)] == [422] * 5
    assert bad_mobile.json()["field"] == "mobile"
    assert "12345" not in bad_mobile.text
    assert bad_abha_address.json()["code"] == "invalid_abha_address"


async def test_aadhaar_is_never_accepted(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    desk: dict[str, str],
) -> None:
    aadhaar = await client.post(
        "/api/v1/patients",
        json={**SUNITA, "aadhaar": "2345 6789 0123"},
        headers=desk,
    )
    aadhaar_number = await client.post(
        "/api/v1/patients",
        json={**SUNITA, "aadhaar_number": "234567890123"},
        headers=desk,
    )
    twelve_digits_as_abha = await client.post(
        "/api/v1/patients",
        json={**SUNITA, "abha_number": "2345 6789 0123"},
        headers=desk,
    )

    for response in (aadhaar, aadhaar_number):
        assert response.status_code == 422
        assert "never accepts or stores Aadhaar" in response.json()["errors"][0]["message"]
        assert "234567890123" not in response.text
        assert "2345 6789 0123" not in response.text
    assert twelve_digits_as_abha.status_code == 422
    problem = twelve_digits_as_abha.json()
    assert problem["code"] == "invalid_abha_number"
    assert "ABHA numbers have 14 digits" in problem["detail"]
    assert "Aadhaar" in problem["detail"]
    # Nothing was stored (other tests may have committed patients of other organisations).
    assert (
        await session.scalar(select(Patient.id).where(Patient.organisation_id == organisation.id))
        is None
    )


async def test_search_by_name_mobile_mrn_and_abha(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    desk: dict[str, str],
) -> None:
    sunita = (await register(client, desk, **SUNITA))["patient"]
    ramesh = await create_patient(
        session, organisation, full_name="Ramesh Kumar", sex="male", mobile="9000000001"
    )

    async def ids(**params: str) -> list[str]:
        response = await client.get("/api/v1/patients", params=params, headers=desk)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["items"]]

    assert await ids(q="SUNITA") == [sunita["id"]]
    assert await ids(q="kumar") == [str(ramesh.id)]
    assert await ids(q=sunita["mrn"].lower()) == [sunita["id"]]
    assert await ids(mobile="098765 43210") == [sunita["id"]]
    assert await ids(mobile="+919000000001") == [str(ramesh.id)]
    assert await ids(mobile="9111111111") == []
    assert await ids(mrn=ramesh.mrn) == [str(ramesh.id)]
    assert await ids(abha_number="91123456789012") == [sunita["id"]]
    assert await ids(q="sunita", mobile="9000000001") == []
    assert sorted(await ids()) == sorted([sunita["id"], str(ramesh.id)])
    bad = await client.get("/api/v1/patients", params={"abha_number": "123"}, headers=desk)
    assert bad.status_code == 422


async def test_likely_duplicate_is_flagged_not_merged(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    desk: dict[str, str],
) -> None:
    existing = await create_patient(
        session,
        organisation,
        full_name="Sunita Devi",
        date_of_birth=date(1980, 7, 1),
        mobile="9876543210",
    )
    # Her husband shares the mobile: same number, different person.
    await create_patient(
        session,
        organisation,
        full_name="Ramesh Kumar",
        sex="male",
        date_of_birth=date(1975, 1, 1),
        mobile="9876543210",
    )

    body = await register(
        client,
        desk,
        full_name="Sunita D.",
        sex="female",
        age_years=local_date(utcnow()).year - 1980,
        mobile="98765 43210",
    )

    assert len(body["possible_duplicates"]) == 1
    duplicate = body["possible_duplicates"][0]
    assert duplicate["candidate"]["id"] == str(existing.id)
    assert duplicate["candidate"]["mobile_masked"] == "+91******3210"
    assert duplicate["score"] >= 70
    assert duplicate["reasons"][:2] == ["same mobile", "similar name"]
    new = await session.get(Patient, body["patient"]["id"])
    await session.refresh(existing)
    assert new is not None
    assert new.is_active
    assert new.merged_into_id is None
    assert existing.is_active
    assert existing.merged_into_id is None
    flag = await session.get(PatientDuplicateFlag, duplicate["flag_id"])
    assert flag is not None
    assert flag.status == "open"

    listed = await client.get("/api/v1/patients/duplicates", headers=desk)
    assert [f["id"] for f in listed.json()["items"]] == [duplicate["flag_id"]]
    assert listed.json()["items"][0]["patient"]["id"] == body["patient"]["id"]

    dismissed = await client.post(
        f"/api/v1/patients/duplicates/{duplicate['flag_id']}/dismiss", headers=desk
    )
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["status"] == "dismissed"
    again = await client.post(
        f"/api/v1/patients/duplicates/{duplicate['flag_id']}/dismiss", headers=desk
    )
    assert again.status_code == 409
    assert (again.json()["code"], again.json()["from_state"]) == ("illegal_transition", "dismissed")
    assert (await client.get("/api/v1/patients/duplicates", headers=desk)).json()["items"] == []
    entry = await session.scalar(select(AuditLog).where(AuditLog.entity_id == duplicate["flag_id"]))
    assert entry is not None
    assert entry.action == "patient_duplicate_flag.dismissed"


async def test_merge_keeps_both_histories(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    desk: dict[str, str],
) -> None:
    keep = await create_patient(session, organisation, full_name="Sunita Devi")
    duplicate = await create_patient(session, organisation, full_name="Sunita D")
    older = await create_patient(session, organisation, full_name="S Devi")
    flag = PatientDuplicateFlag(
        organisation_id=organisation.id,
        patient_id=duplicate.id,
        candidate_id=keep.id,
        score=95,
        reasons="same mobile; similar name",
        status="open",
        created_at=utcnow(),
    )
    session.add(flag)
    older.merged_into_id = duplicate.id
    older.is_active = False
    await session.flush()

    response = await client.post(
        f"/api/v1/patients/{keep.id}/merge",
        json={"duplicate_id": str(duplicate.id)},
        headers=desk,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kept"]["id"] == str(keep.id)
    assert body["kept"]["is_active"] is True
    assert body["merged"]["merged_into_id"] == str(keep.id)
    assert body["merged"]["is_active"] is False
    await session.refresh(flag)
    assert flag.status == "merged"
    assert flag.resolved_at is not None
    caller = Principal("user", new_id(), organisation.id, frozenset({"admin"}), "t")
    history = await patients_service.history_ids(session, caller, keep.id)
    assert history == [keep.id, duplicate.id, older.id]
    # Both records still exist; the merged one is found on request only.
    assert (await client.get(f"/api/v1/patients/{duplicate.id}", headers=desk)).status_code == 200
    default = await client.get("/api/v1/patients", params={"q": "devi"}, headers=desk)
    assert [p["id"] for p in default.json()["items"]] == [str(keep.id)]
    everything = await client.get(
        "/api/v1/patients", params={"q": "devi", "include_merged": "true"}, headers=desk
    )
    assert len(everything.json()["items"]) == 2
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(duplicate.id), AuditLog.action == "patient.merged"
        )
    )
    assert entry is not None
    assert entry.changes["after"]["merged_into_id"] == str(keep.id)

    twice = await client.post(
        f"/api/v1/patients/{keep.id}/merge",
        json={"duplicate_id": str(duplicate.id)},
        headers=desk,
    )
    into_merged = await client.post(
        f"/api/v1/patients/{duplicate.id}/merge",
        json={"duplicate_id": str(keep.id)},
        headers=desk,
    )
    itself = await client.post(
        f"/api/v1/patients/{keep.id}/merge", json={"duplicate_id": str(keep.id)}, headers=desk
    )
    assert [twice.status_code, into_merged.status_code, itself.status_code] == [409, 409, 422]
    assert twice.json()["code"] == "illegal_transition"


async def test_client_id_makes_registration_repeatable(
    client: httpx.AsyncClient, session: AsyncSession, desk: dict[str, str]
) -> None:
    body = {**SUNITA, "id": str(new_id())}
    first = await client.post("/api/v1/patients", json=body, headers=desk)
    again = await client.post("/api/v1/patients", json=body, headers=desk)
    other = await client.post(
        "/api/v1/patients", json={**body, "full_name": "Someone Else"}, headers=desk
    )

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json()["patient"] == first.json()["patient"]
    assert first.json()["patient"]["id"] == body["id"]
    assert other.status_code == 409
    assert other.json()["code"] == "patient_id_conflict"
    count = await session.scalar(select(Patient.id).where(Patient.full_name == "Someone Else"))
    assert count is None


async def test_update_needs_current_version(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    desk: dict[str, str],
) -> None:
    patient = await create_patient(session, organisation, mobile="9876543210")

    changed = await client.patch(
        f"/api/v1/patients/{patient.id}",
        json={
            "version": 1,
            "full_name": "Asha  Verma",
            "mobile": "9123456780",
            "weight_kg": "61.5",
            "pregnant": True,
        },
        headers=desk,
    )
    stale = await client.patch(
        f"/api/v1/patients/{patient.id}", json={"version": 1, "city": "Pune"}, headers=desk
    )
    aadhaar = await client.patch(
        f"/api/v1/patients/{patient.id}", json={"version": 2, "aadhaar": "x"}, headers=desk
    )

    assert changed.status_code == 200, changed.text
    out = changed.json()
    assert (out["full_name"], out["mobile_masked"], out["version"]) == (
        "Asha Verma",
        "+91******6780",
        2,
    )
    assert Decimal(out["weight_kg"]) == Decimal("61.5")
    assert stale.status_code == 409
    assert (stale.json()["code"], stale.json()["current_version"]) == ("version_conflict", 2)
    assert aadhaar.status_code == 422
    found = await client.get("/api/v1/patients", params={"mobile": "9123456780"}, headers=desk)
    assert [p["id"] for p in found.json()["items"]] == [str(patient.id)]
    old = await client.get("/api/v1/patients", params={"mobile": "9876543210"}, headers=desk)
    assert old.json()["items"] == []
    entry = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == str(patient.id), AuditLog.action == "patient.updated"
        )
    )
    assert entry is not None
    assert entry.changes["before"]["mobile"] == entry.changes["after"]["mobile"] == "[redacted]"
    assert entry.changes["after"]["full_name"] == "Asha Verma"
    assert "9123456780" not in str(entry.changes)


async def test_facts_for_ranges_and_formulas(
    session: AsyncSession, organisation: Organisation
) -> None:
    patient = await create_patient(
        session,
        organisation,
        sex="female",
        date_of_birth=date(1990, 1, 1),
        pregnant=True,
        weight_kg=Decimal("58.00"),
        preferred_language="hi",
    )
    # 19:00 UTC on 31 Dec 2024 is already 1 Jan 2025 in India: her 35th birthday.
    facts = patients_service.facts(patient, datetime(2024, 12, 31, 19, 0, tzinfo=UTC))

    assert facts.sex == "female"
    assert facts.age_years == 35
    assert facts.age_days == (date(2025, 1, 1) - date(1990, 1, 1)).days
    assert facts.pregnant is True
    assert facts.weight_kg == Decimal("58.00")
    assert facts.preferred_language == "hi"


async def test_branch_limits_apply_to_registration(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    allowed = await create_branch(session, organisation)
    other = await create_branch(session, organisation)
    phlebotomist = await create_user(
        session, organisation, roles=("phlebotomist",), branches=[allowed]
    )
    headers = bearer_for(phlebotomist)
    base = {"full_name": "Branch Patient", "sex": "male", "age_years": 40}

    ok = await client.post(
        "/api/v1/patients",
        json={**base, "registered_at_branch_id": str(allowed.id)},
        headers=headers,
    )
    refused = await client.post(
        "/api/v1/patients",
        json={**base, "registered_at_branch_id": str(other.id)},
        headers=headers,
    )

    assert ok.status_code == 201, ok.text
    assert refused.status_code == 403
    assert refused.json()["code"] == "branch_not_allowed"


async def test_other_organisations_patients_are_invisible(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    other_organisation: Organisation,
    desk: dict[str, str],
) -> None:
    ours = await create_patient(session, organisation, full_name="Our Patient")
    theirs = await create_patient(
        session, other_organisation, full_name="Their Patient", mobile="9876543210"
    )
    their_twin = await create_patient(session, other_organisation, full_name="Their Patient")
    their_flag = PatientDuplicateFlag(
        organisation_id=other_organisation.id,
        patient_id=their_twin.id,
        candidate_id=theirs.id,
        score=75,
        reasons="same name; same date of birth",
        status="open",
        created_at=utcnow(),
    )
    session.add(their_flag)
    await session.flush()

    for method, path, body in (
        ("GET", f"/api/v1/patients/{theirs.id}", None),
        ("PATCH", f"/api/v1/patients/{theirs.id}", {"version": 1, "city": "X"}),
        ("POST", f"/api/v1/patients/{theirs.id}/merge", {"duplicate_id": str(their_twin.id)}),
        ("POST", f"/api/v1/patients/{ours.id}/merge", {"duplicate_id": str(theirs.id)}),
        ("POST", f"/api/v1/patients/duplicates/{their_flag.id}/dismiss", None),
    ):
        response = await client.request(method, path, json=body, headers=desk)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"

    listed = await client.get("/api/v1/patients", params={"limit": 100}, headers=desk)
    assert [p["id"] for p in listed.json()["items"]] == [str(ours.id)]
    by_mobile = await client.get("/api/v1/patients", params={"mobile": "9876543210"}, headers=desk)
    assert by_mobile.json()["items"] == []
    flags = await client.get("/api/v1/patients/duplicates", headers=desk)
    assert flags.json()["items"] == []
    # Registering the same person in our lab does not flag their record.
    ours_too = await register(
        client,
        desk,
        full_name="Their Patient",
        sex="female",
        date_of_birth="1985-06-15",
        mobile="9876543210",
    )
    assert ours_too["possible_duplicates"] == []
    assert (await session.get(Patient, theirs.id)).is_active  # type: ignore[union-attr]
