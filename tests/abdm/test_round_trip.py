"""The whole HIP journey over HTTP: ABHA created at the desk -> report finalised -> care
context linked -> consent granted -> health information pushed, Fidelius-encrypted, and
decrypted by the simulator (the HIU) into profile-valid FHIR documents."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, text

from nidaan.abdm.domain import verhoeff_digit
from nidaan.abdm.models import AbdmCareContext, AbdmConsent, AbdmMessage, AbdmRequest, AbdmTransfer
from nidaan.config import Settings
from nidaan.fhir.mappers import validated
from nidaan.fhir.profiles import profile_problems
from nidaan.kit.db import session_scope
from nidaan.patients.models import Patient
from tests.abdm.conftest import AbdmWorld, settle
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.results import enter_and_verify, place_order
from tests.reports.test_reports_flow import text_of

pytestmark = pytest.mark.usefixtures("job_app_open")

# The simulator's Aadhaar registry knows this number: Lakshmi Iyer, F, 30-06-1955.
AADHAAR = "23412341234" + verhoeff_digit("23412341234")


async def _rows(settings: Settings, model: Any, **where: Any) -> list[Any]:
    async with session_scope(settings) as session:
        statement = select(model)
        for key, value in where.items():
            statement = statement.where(getattr(model, key) == value)
        return list(await session.scalars(statement))


async def _report_for(abdm: AbdmWorld, committing_session: Any, patient_id: Any) -> Any:
    async with committing_session() as session:
        patient = await session.get(Patient, patient_id)
        hb = await create_catalog_test(
            session,
            abdm.organisation,
            code="HB",
            name="Haemoglobin",
            loinc="718-7",
            department="Haematology",
            unit="g/dL",
            specimen_type="whole_blood",
            ranges=[{"low": 12, "high": 15}],
        )
        glu = await create_catalog_test(
            session,
            abdm.organisation,
            code="GLU",
            name="Glucose, fasting",
            loinc="1558-6",
            unit="mg/dL",
            ranges=[{"low": 70, "high": 99}],
        )
        placed = await place_order(session, abdm.lab, patient, [hb, glu])
        await enter_and_verify(session, abdm.lab, placed["HB"], "10.8")
        await enter_and_verify(session, abdm.lab, placed["GLU"], "126")
        return placed.order


async def test_abha_creation_linking_consent_and_encrypted_push(
    abdm: AbdmWorld, settings: Settings, committing_session: Any
) -> None:
    async with committing_session() as session:
        patient = await create_patient(
            session,
            abdm.organisation,
            full_name="Lakshmi Iyer",
            sex="female",
            date_of_birth=date(1955, 6, 30),
            mobile="9988776655",
        )

    # 1. ABHA by Aadhaar OTP at the desk (the mobile differs from the Aadhaar-linked one).
    started = await abdm.api(
        "POST",
        "/api/v1/abdm/enrolments",
        json={"patient_id": str(patient.id), "aadhaar_number": AADHAAR, "consent": True},
    )
    assert started.status_code == 201, started.text
    enrolment = started.json()
    assert enrolment["status"] == "otp_sent"
    assert enrolment["aadhaar_masked"] == f"XXXX-XXXX-{AADHAAR[-4:]}"
    assert AADHAAR not in started.text
    wrong = await abdm.api(
        "POST",
        f"/api/v1/abdm/enrolments/{enrolment['id']}/aadhaar-otp",
        json={"otp": "000000", "mobile": "9988776655"},
    )
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "otp_rejected"
    verified = await abdm.api(
        "POST",
        f"/api/v1/abdm/enrolments/{enrolment['id']}/aadhaar-otp",
        json={"otp": abdm.sim.otp, "mobile": "9988776655"},
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "mobile_otp_sent"
    mobile = await abdm.api(
        "POST", f"/api/v1/abdm/enrolments/{enrolment['id']}/mobile-otp", json={"otp": abdm.sim.otp}
    )
    assert mobile.json()["status"] == "address_pending", mobile.text
    suggestions = mobile.json()["address_suggestions"]
    assert suggestions
    chosen = await abdm.api(
        "POST",
        f"/api/v1/abdm/enrolments/{enrolment['id']}/address",
        json={"abha_address": suggestions[0]},
    )
    assert chosen.status_code == 200, chosen.text
    done = chosen.json()
    assert done["status"] == "completed"
    address = done["abha_address"]
    assert address == f"{suggestions[0]}@sbx"
    shown = await abdm.api("GET", f"/api/v1/patients/{patient.id}")
    assert shown.json()["abha_address"] == address
    assert shown.json()["abha_number_masked"].startswith("**-****-****-")

    # Aadhaar never reached our database: not in the enrolment, the log or the audit trail.
    async with session_scope(settings) as session:
        for table in ("abdm_enrolments", "abdm_messages", "audit_log"):
            found = await session.scalar(
                text(f"SELECT count(*) FROM {table} AS r WHERE r::text LIKE :a"),
                {"a": f"%{AADHAAR}%"},
            )
            assert found == 0, table

    # 2. A report is finalised -> its care context is linked to the new ABHA (HIP-initiated).
    order = await _report_for(abdm, committing_session, patient.id)
    contexts = await settle(
        settings,
        lambda: _rows(settings, AbdmCareContext, patient_id=patient.id),
        lambda rows: bool(rows) and all(r.status == "linked" for r in rows),
    )
    assert [c.status for c in contexts] == ["linked"], [(c.status, c.error) for c in contexts]
    [context] = contexts
    assert context.order_id == order.id
    assert context.abha_address == address
    requests = (
        await abdm.api("GET", "/api/v1/abdm/requests", params={"patient_id": str(patient.id)})
    ).json()
    assert {r["kind"]: r["status"] for r in requests["items"]} == {
        "generate_link_token": "answered",
        "link_care_contexts": "answered",
    }
    assert abdm.sim.linked[address][0]["careContextReference"] == context.reference
    # The report shows the linked ABHA (address, number masked).
    pdf = await abdm.api("GET", f"/api/v1/orders/{order.id}/report")
    printed = text_of(pdf.content)
    assert address in printed
    assert f"**-****-****-{shown.json()['abha_number_masked'][-4:]}" in printed

    # 3. The patient grants a consent in their PHR app; the HIP stores the artefact.
    granted = await abdm.sim_call(
        "POST", "/sim/consents", json={"abhaAddress": address, "hipId": abdm.facility.hip_id}
    )
    assert granted.status_code == 201, granted.text
    consent_id = granted.json()["consentId"]
    consents = await settle(
        settings,
        lambda: _rows(settings, AbdmConsent, consent_id=consent_id),
        lambda rows: bool(rows),
    )
    assert consents[0].status == "GRANTED"
    assert consents[0].hi_types == ["DiagnosticReport"]
    assert consents[0].care_contexts[0]["careContextReference"] == context.reference

    # 4. The HIU asks for the records; they are pushed encrypted and decrypted by the HIU.
    asked = await abdm.sim_call(
        "POST", "/sim/health-information/requests", json={"consentId": consent_id}
    )
    txn = asked.json()["transactionId"]

    async def hiu_view() -> dict[str, Any]:
        return (await abdm.sim_call("GET", f"/sim/health-information/requests/{txn}")).json()

    seen = await settle(settings, hiu_view, lambda v: v["notify"] is not None)
    assert seen["acknowledgement"]["hiRequest"]["sessionStatus"] == "ACKNOWLEDGED"
    assert seen["errors"] == []
    [delivered] = seen["decryptedBundles"]
    assert delivered["careContextReference"] == context.reference
    bundle = delivered["bundle"]
    validated(bundle)
    assert [p for p in profile_problems(bundle)] == []
    observations = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    assert sorted(o["valueQuantity"]["value"] for o in observations) == [10.8, 126]
    status = seen["notify"]["notification"]["statusNotification"]
    assert status["sessionStatus"] == "TRANSFERRED"
    assert status["statusResponses"] == [
        {
            "careContextReference": context.reference,
            "hiStatus": "DELIVERED",
            "description": "Delivered",
        }
    ]
    [transfer] = await _rows(settings, AbdmTransfer, transaction_id=txn)
    assert transfer.status == "transferred"
    # Every exchange is on record: the push went out as ciphertext only.
    pushes = [
        m
        for m in await _rows(settings, AbdmMessage, organisation_id=abdm.organisation.id)
        if "/sim/data-push/" in m.path
    ]
    assert pushes
    assert "Lakshmi" not in pushes[0].body
    assert json.loads(pushes[0].body)["entries"][0]["content"]

    # 5. Revoked: a new request is refused and nothing is pushed.
    await abdm.sim_call("POST", f"/sim/consents/{consent_id}/revoke")
    await settle(
        settings,
        lambda: _rows(settings, AbdmConsent, consent_id=consent_id),
        lambda rows: rows[0].status == "REVOKED",
    )
    again = await abdm.sim_call(
        "POST", "/sim/health-information/requests", json={"consentId": consent_id}
    )
    txn2 = again.json()["transactionId"]

    async def hiu_view2() -> dict[str, Any]:
        return (await abdm.sim_call("GET", f"/sim/health-information/requests/{txn2}")).json()

    refused = await settle(settings, hiu_view2, lambda v: v["acknowledgement"] is not None)
    assert refused["acknowledgement"]["error"]["code"] == "ABDM-1017"
    assert refused["decryptedBundles"] == []
    assert await _rows(settings, AbdmRequest, patient_id=patient.id)


async def test_a_failed_push_is_retried_with_backoff_and_every_attempt_is_kept(
    abdm: AbdmWorld, settings: Settings, committing_session: Any
) -> None:
    async with committing_session() as session:
        patient = await create_patient(
            session,
            abdm.organisation,
            full_name="Rohan Mehta",
            sex="male",
            date_of_birth=date(1974, 1, 1),
            mobile="9822012345",
            abha_number="91-4444-5555-6666",
            abha_address="rohan.mehta@sbx",
        )
    await _report_for(abdm, committing_session, patient.id)
    await settle(
        settings,
        lambda: _rows(settings, AbdmCareContext, patient_id=patient.id),
        lambda rows: bool(rows) and rows[0].status == "linked",
    )
    granted = await abdm.sim_call(
        "POST",
        "/sim/consents",
        json={"abhaAddress": "rohan.mehta@sbx", "hipId": abdm.facility.hip_id},
    )
    consent_id = granted.json()["consentId"]
    await settle(
        settings,
        lambda: _rows(settings, AbdmConsent, consent_id=consent_id),
        lambda rows: bool(rows),
    )
    abdm.sim.fail_pushes = 1
    asked = await abdm.sim_call(
        "POST", "/sim/health-information/requests", json={"consentId": consent_id}
    )
    txn = asked.json()["transactionId"]
    transfers = await settle(
        settings,
        lambda: _rows(settings, AbdmTransfer, transaction_id=txn),
        lambda rows: bool(rows) and rows[0].status == "transferred",
        within=30,
    )
    assert transfers[0].status == "transferred"
    assert transfers[0].attempts == 2
    view = (await abdm.sim_call("GET", f"/sim/health-information/requests/{txn}")).json()
    assert len(view["decryptedBundles"]) == 1
    attempts = [
        m
        for m in await _rows(settings, AbdmMessage, organisation_id=abdm.organisation.id)
        if m.path.endswith(f"/sim/data-push/{txn}")
    ]
    assert sorted(m.http_status for m in attempts) == [202, 503]
