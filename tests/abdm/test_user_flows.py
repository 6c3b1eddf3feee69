"""User-initiated discovery and linking, scan and share at the desk, linking an existing ABHA,
and how callbacks are authenticated, de-duplicated and kept."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from nidaan.abdm.domain import wire_timestamp
from nidaan.abdm.models import AbdmCareContext, AbdmMessage
from nidaan.config import Settings
from nidaan.kit.db import session_scope
from nidaan.patients.models import Patient
from tests.abdm.conftest import AbdmWorld
from tests.abdm.test_round_trip import _report_for, _rows
from tests.fixtures.lab import create_patient

pytestmark = pytest.mark.usefixtures("job_app_open")


async def settle(settings: Settings, probe: Any, ok: Any, within: float = 20.0) -> Any:
    """Wait (the background worker below runs the jobs) until ``ok(probe())``."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if ok(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def _sunita(abdm: AbdmWorld, committing_session: Any, **overrides: Any) -> Patient:
    """The simulator's demo person who already has an ABHA (91-1111-2222-3333)."""
    values = {
        "full_name": "Sunita Devi Sharma",
        "sex": "female",
        "date_of_birth": date(1968, 3, 14),
        "mobile": "9876543210",
    }
    values.update(overrides)
    async with committing_session() as session:
        return await create_patient(session, abdm.organisation, **values)


async def test_patient_discovers_links_with_the_otp_we_send(
    abdm: AbdmWorld, settings: Settings, committing_session: Any
) -> None:
    patient = await _sunita(abdm, committing_session)
    await _report_for(abdm, committing_session, patient.id)
    await settle(
        settings,
        lambda: _rows(settings, AbdmCareContext, patient_id=patient.id),
        lambda rows: bool(rows),
    )

    discovered = await abdm.sim_call(
        "POST",
        "/sim/phr/discover",
        json={"abhaAddress": "sunita.sharma@sbx", "hipId": abdm.facility.hip_id},
    )
    # The HIP answers from a job: run jobs until the PHR's wait is over.
    assert discovered.status_code in (200, 504)
    if discovered.status_code == 504:
        pytest.fail("discover was not answered")
    answer = discovered.json()
    assert answer["matchedBy"] == ["MOBILE"]
    [found] = answer["patient"]
    assert found["referenceNumber"] == patient.mrn
    assert found["count"] == 1
    reference = found["careContexts"][0]["referenceNumber"]

    init = await abdm.sim_call(
        "POST",
        "/sim/phr/link/init",
        json={
            "hipId": abdm.facility.hip_id,
            "abhaAddress": "sunita.sharma@sbx",
            "transactionId": answer["transactionId"],
            "patient": [
                {
                    "referenceNumber": patient.mrn,
                    "careContexts": [{"referenceNumber": reference}],
                    "hiType": "DiagnosticReport",
                    "count": 1,
                }
            ],
        },
    )
    link = init.json()["link"]
    assert link["meta"]["communicationMedium"] == "MOBILE"
    sms = (await abdm.sim_call("GET", "/sim/phone/messages", params={"to": "9876543210"})).json()
    otp = re.match(r"(\d{6}) is your OTP", sms[-1]["message"]).group(1)  # type: ignore[union-attr]

    wrong = await abdm.sim_call(
        "POST",
        "/sim/phr/link/confirm",
        json={
            "hipId": abdm.facility.hip_id,
            "linkRefNumber": link["referenceNumber"],
            "otp": "000000" if otp != "000000" else "111111",
            "abhaAddress": "sunita.sharma@sbx",
        },
    )
    assert wrong.json()["error"]["code"] == "ABDM-1035"
    confirmed = await abdm.sim_call(
        "POST",
        "/sim/phr/link/confirm",
        json={
            "hipId": abdm.facility.hip_id,
            "linkRefNumber": link["referenceNumber"],
            "otp": otp,
            "abhaAddress": "sunita.sharma@sbx",
        },
    )
    assert confirmed.json()["patient"][0]["careContexts"][0]["referenceNumber"] == reference
    [context] = await _rows(settings, AbdmCareContext, patient_id=patient.id)
    assert (context.status, context.linked_via, context.abha_address) == (
        "linked",
        "user",
        "sunita.sharma@sbx",
    )
    # The used link reference cannot be confirmed twice.
    again = await abdm.sim_call(
        "POST",
        "/sim/phr/link/confirm",
        json={"hipId": abdm.facility.hip_id, "linkRefNumber": link["referenceNumber"], "otp": otp},
    )
    assert again.json()["error"]["code"] == "ABDM-1036"


@pytest.fixture(autouse=True)
async def _worker(settings: Settings) -> Any:
    """Run jobs in the background: the PHR calls above wait for answers made by jobs."""
    import asyncio

    from nidaan.kit.jobs import run_pending_jobs

    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await run_pending_jobs(settings)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    yield
    stop.set()
    await task


async def test_unknown_patient_is_not_found(abdm: AbdmWorld) -> None:
    answer = (
        await abdm.sim_call(
            "POST",
            "/sim/phr/discover",
            json={"abhaAddress": "rohan.mehta@sbx", "hipId": abdm.facility.hip_id},
        )
    ).json()
    assert answer["error"]["code"] == "ABDM-1010"


async def test_scan_and_share_queues_a_token_the_desk_registers_or_matches(
    abdm: AbdmWorld, settings: Settings, committing_session: Any
) -> None:
    shared = await abdm.sim_call(
        "POST",
        "/sim/phr/share",
        json={"abhaAddress": "rohan.mehta@sbx", "hipId": abdm.facility.hip_id, "counter": "REG-1"},
    )
    ack = shared.json()["acknowledgement"]
    assert ack["status"] == "SUCCESS"
    assert ack["profile"]["tokenNumber"] == "1"
    queue = (await abdm.api("GET", "/api/v1/abdm/share-tokens")).json()
    [token] = queue["items"]
    assert (token["token_number"], token["name"], token["abha_address"]) == (
        1,
        "Rohan Mehta",
        "rohan.mehta@sbx",
    )
    assert token["abha_number_masked"] == "**-****-****-6666"
    assert token["candidates"] == []

    registered = await abdm.api(
        "POST", f"/api/v1/abdm/share-tokens/{token['id']}/register", json={}
    )
    assert registered.status_code == 201, registered.text
    patient = (await abdm.api("GET", f"/api/v1/patients/{registered.json()['patient_id']}")).json()
    assert (patient["full_name"], patient["sex"], patient["date_of_birth"]) == (
        "Rohan Mehta",
        "male",
        "1974-01-01",
    )
    assert patient["abha_address"] == "rohan.mehta@sbx"
    twice = await abdm.api("POST", f"/api/v1/abdm/share-tokens/{token['id']}/register", json={})
    assert twice.status_code == 409

    # The same person shares again: token 2 lists the registered record as a candidate.
    await abdm.sim_call(
        "POST",
        "/sim/phr/share",
        json={"abhaAddress": "rohan.mehta@sbx", "hipId": abdm.facility.hip_id},
    )
    [second] = (await abdm.api("GET", "/api/v1/abdm/share-tokens")).json()["items"]
    assert second["token_number"] == 2
    assert second["candidates"][0]["patient"]["id"] == patient["id"]
    assert "same ABHA number" in second["candidates"][0]["reasons"]
    matched = await abdm.api(
        "POST",
        f"/api/v1/abdm/share-tokens/{second['id']}/match",
        json={"patient_id": patient["id"]},
    )
    assert matched.json()["status"] == "matched"


async def test_link_an_existing_abha_by_otp_links_past_reports(
    abdm: AbdmWorld, settings: Settings, committing_session: Any
) -> None:
    patient = await _sunita(abdm, committing_session, mobile="9000000001")
    await _report_for(abdm, committing_session, patient.id)
    started = await abdm.api(
        "POST",
        "/api/v1/abdm/abha-links",
        json={"patient_id": str(patient.id), "abha_number": "91-1111-2222-3333"},
    )
    assert started.status_code == 201, started.text
    # The login API wants the ABHA number with its dashes (the simulator refuses bare digits).
    assert started.json()["status"] == "otp_sent"
    done = await abdm.api(
        "POST", f"/api/v1/abdm/abha-links/{started.json()['id']}/otp", json={"otp": abdm.sim.otp}
    )
    assert done.json()["status"] == "completed", done.text
    assert done.json()["abha_address"] == "sunita.sharma@sbx"
    contexts = await settle(
        settings,
        lambda: _rows(settings, AbdmCareContext, patient_id=patient.id),
        lambda rows: bool(rows) and rows[0].status == "linked",
    )
    assert contexts[0].status == "linked"

    other = await _sunita(abdm, committing_session, mobile="9000000002")
    clash = await abdm.api(
        "POST",
        "/api/v1/abdm/abha-links",
        json={"patient_id": str(other.id), "abha_number": "91-1111-2222-3333"},
    )
    refused = await abdm.api(
        "POST", f"/api/v1/abdm/abha-links/{clash.json()['id']}/otp", json={"otp": abdm.sim.otp}
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "abha_already_linked"


async def test_callbacks_need_the_gateway_token_and_repeats_are_kept_once(
    abdm: AbdmWorld, settings: Settings
) -> None:
    body = {"notification": {"status": "GRANTED", "consentId": str(uuid.uuid4())}}
    headers = {
        "REQUEST-ID": str(uuid.uuid4()),
        "TIMESTAMP": wire_timestamp(),
        "X-HIP-ID": abdm.facility.hip_id,
        "X-CM-ID": "sbx",
    }
    path = "/api/v3/consent/request/hip/notify"
    forged = await abdm.http.post(
        abdm.hip_url + path, json=body, headers={**headers, "Authorization": "Bearer forged"}
    )
    assert forged.status_code == 401
    signed = {**headers, "Authorization": f"Bearer {abdm.sim._jwt()}"}
    first = await abdm.http.post(abdm.hip_url + path, json=body, headers=signed)
    repeat = await abdm.http.post(abdm.hip_url + path, json=body, headers=signed)
    assert (first.status_code, repeat.status_code) == (202, 202)
    garbage = await abdm.http.post(
        abdm.hip_url + path,
        content=b"{not json",
        headers={**signed, "REQUEST-ID": str(uuid.uuid4())},
    )
    assert garbage.status_code == 400
    unknown_hip = await abdm.http.post(
        abdm.hip_url + path,
        json=body,
        headers={**signed, "REQUEST-ID": str(uuid.uuid4()), "X-HIP-ID": "IN-NOBODY"},
    )
    assert unknown_hip.status_code == 404
    async with session_scope(settings) as session:
        kept = list(
            await session.scalars(
                select(AbdmMessage).where(
                    AbdmMessage.direction == "in", AbdmMessage.request_id == headers["REQUEST-ID"]
                )
            )
        )
        statuses = sorted(m.status for m in kept)
    # The forged copy is kept as rejected; the real one once, its repeat as a duplicate (the
    # real one is received, processed, or rejected by its job: it has no consent detail).
    assert statuses[0] == "duplicate"
    assert statuses[-1] == "rejected"
    assert statuses[1] in ("received", "processed", "rejected")
    assert len(statuses) == 3


async def test_gateway_session_is_reused_and_renewed_after_refusal(abdm: AbdmWorld) -> None:
    from nidaan.abdm import clients

    calls = abdm.sim.session_calls
    gateway = clients.gateway()
    await gateway.register_bridge(abdm.hip_url, [(abdm.facility.hip_id, "x")])
    await gateway.register_bridge(abdm.hip_url, [(abdm.facility.hip_id, "x")])
    assert abdm.sim.session_calls - calls <= 1  # one session for many calls
    abdm.sim.sessions.clear()  # the gateway forgets every token (expiry, restart)
    await gateway.register_bridge(abdm.hip_url, [(abdm.facility.hip_id, "x")])
    assert abdm.sim.session_calls - calls >= 1


async def test_production_refuses_simulator_urls() -> None:
    from nidaan.config import Settings, abdm_url_problems

    production = Settings(
        mode="production",
        abdm_gateway_url="http://127.0.0.1:8090/api/hiecm",
        abdm_abha_url="https://abhasbx.abdm.gov.in/abha/api",
    )
    problems = abdm_url_problems(production)
    assert len(problems) == 1
    assert "NIDAAN_ABDM_GATEWAY_URL" in problems[0]
    allowed = production.model_copy(update={"abdm_allow_simulator": True})
    assert abdm_url_problems(allowed) == []
    real = production.model_copy(update={"abdm_gateway_url": "https://dev.abdm.gov.in/api/hiecm"})
    assert abdm_url_problems(real) == []
