"""Verification, corrections and the ResultsVerified events reports waits for."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.events.models import OutboxEvent
from nidaan.orders.models import Order, OrderTest
from nidaan.results.models import Result, ResultVerification
from nidaan.results.service import results_service
from nidaan.samples.models import Sample
from tests.fixtures.lab import create_reference_range
from tests.results.conftest import Lab, adult_woman, enter, numeric_test, place_order, verify


async def _verified_events(session: AsyncSession, lab: Lab) -> list[dict]:
    rows = await session.scalars(
        select(OutboxEvent)
        .where(
            OutboxEvent.organisation_id == lab.organisation.id,
            OutboxEvent.name == "results.verified",
        )
        .order_by(OutboxEvent.occurred_at, OutboxEvent.id)
    )
    return [row.payload for row in rows]


async def test_self_verification_is_refused_unless_the_organisation_allows_it(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await numeric_test(session, lab, "HB")
    woman = await adult_woman(session, lab)
    order = await place_order(session, lab, woman, [hb])
    mine = await enter(client, lab, order["HB"], "12", who="path")

    refused = await verify(client, lab, mine["id"], expect=403)
    assert refused["code"] == "self_verification_not_allowed"

    lab.organisation.allow_self_verification = True
    await session.flush()
    verified = await verify(client, lab, mine["id"])
    assert verified["status"] == "verified"
    assert verified["verified_by_id"] == str(lab.users["path"].id)


async def test_technician_cannot_verify(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await numeric_test(session, lab, "HB")
    order = await place_order(session, lab, await adult_woman(session, lab), [hb])
    result = await enter(client, lab, order["HB"], "12")
    refused = await verify(client, lab, result["id"], who="tech", expect=403)
    assert refused["code"] == "role_required"


async def test_two_verifications_need_two_pathologists(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hiv = await numeric_test(session, lab, "HB2", required_verifications=2)
    order = await place_order(session, lab, await adult_woman(session, lab), [hiv])
    result = await enter(client, lab, order["HB2"], "12")

    first = await verify(client, lab, result["id"], who="path")
    assert first["status"] == "entered"
    assert [v["level"] for v in first["verifications"]] == [1]
    again = await verify(client, lab, result["id"], who="path", expect=409)
    assert again["code"] == "second_verifier_required"
    second = await verify(client, lab, result["id"], who="path2")
    assert second["status"] == "verified"
    assert second["verified_by_id"] == str(lab.users["path2"].id)
    assert [(v["user_id"], v["level"]) for v in second["verifications"]] == [
        (str(lab.users["path"].id), 1),
        (str(lab.users["path2"].id), 2),
    ]
    actions = (
        await session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == result["id"]).order_by(AuditLog.id)
        )
    ).all()
    assert actions == ["result.entered", "result.signed", "result.verified"]


async def test_verified_results_are_immutable(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await numeric_test(session, lab, "HB")
    order = await place_order(session, lab, await adult_woman(session, lab), [hb])
    result = await enter(client, lab, order["HB"], "12")
    await verify(client, lab, result["id"])

    reentered = await enter(client, lab, order["HB"], "13", expect=409)
    assert reentered["code"] == "result_verified"
    assert (await verify(client, lab, result["id"], expect=409))["code"] == "illegal_transition"
    release = await client.post(
        f"/api/v1/results/{result['id']}/release", json={"note": "x"}, headers=lab.headers("path")
    )
    assert release.status_code == 409
    row = await session.get(Result, result["id"])
    assert row is not None
    assert (row.value_text, row.status) == ("12.0", "verified")


async def test_order_completes_and_events_are_published_per_department_and_order(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await numeric_test(session, lab, "HB", department="Haematology")
    glu = await numeric_test(session, lab, "GLU", department="Biochemistry")
    urea = await numeric_test(session, lab, "UREA", department="Biochemistry")
    order = await place_order(session, lab, await adult_woman(session, lab), [hb, glu, urea])
    ids = {code: (await enter(client, lab, order[code], "5"))["id"] for code in order.tests}

    await verify(client, lab, ids["GLU"])
    assert await _verified_events(session, lab) == []
    await verify(client, lab, ids["UREA"])
    events = await _verified_events(session, lab)
    assert events == [
        {
            "organisation_id": str(lab.organisation.id),
            "order_id": str(order.order.id),
            "department": "Biochemistry",
            "amended": False,
            "reason": None,
        }
    ]
    assert (await session.get(Order, order.order.id)).status == "open"  # type: ignore[union-attr]

    await verify(client, lab, ids["HB"])
    events = await _verified_events(session, lab)
    assert [(e["department"], e["amended"]) for e in events] == [
        ("Biochemistry", False),
        ("Haematology", False),
        (None, False),
    ]
    saved = await session.scalar(
        select(Order).where(Order.id == order.order.id).execution_options(populate_existing=True)
    )
    assert saved is not None
    assert saved.status == "completed"
    sample = await session.scalar(
        select(Sample).where(Sample.id == order.sample.id).execution_options(populate_existing=True)
    )
    assert sample is not None
    assert sample.status == "completed"
    statuses = (
        await session.scalars(select(OrderTest.status).where(OrderTest.order_id == order.order.id))
    ).all()
    assert set(statuses) == {"verified"}


async def test_correction_creates_version_two_and_an_amended_event(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await numeric_test(session, lab, "HB", department="Haematology", decimals=1)
    await create_reference_range(session, hb, low="12", high="15")
    order = await place_order(session, lab, await adult_woman(session, lab), [hb])
    original = await enter(client, lab, order["HB"], "11")
    await verify(client, lab, original["id"])

    no_reason = await client.post(
        f"/api/v1/results/{original['id']}/correct",
        json={"value": "13", "reason": ""},
        headers=lab.headers("path"),
    )
    assert no_reason.status_code == 422
    by_tech = await client.post(
        f"/api/v1/results/{original['id']}/correct",
        json={"value": "13", "reason": "Transcription error"},
        headers=lab.headers("tech"),
    )
    assert by_tech.status_code == 403
    corrected = await client.post(
        f"/api/v1/results/{original['id']}/correct",
        json={"value": "13", "reason": "Transcription error"},
        headers=lab.headers("path"),
    )
    assert corrected.status_code == 201, corrected.text
    new = corrected.json()
    assert (new["result_version"], new["status"], new["supersedes_id"], new["flag"]) == (
        2,
        "entered",
        original["id"],
        "N",
    )
    assert new["correction_reason"] == "Transcription error"
    old = await session.get(Result, original["id"])
    assert old is not None
    await session.refresh(old)
    assert (old.status, old.is_current, old.value_text) == ("superseded", False, "11.0")
    assert (
        await session.scalar(select(OrderTest.status).where(OrderTest.id == order["HB"].id))
        == "resulted"
    )
    twice = await client.post(
        f"/api/v1/results/{original['id']}/correct",
        json={"value": "14", "reason": "again"},
        headers=lab.headers("path"),
    )
    assert twice.status_code == 409

    history = await client.get(
        "/api/v1/results",
        params={"order_id": str(order.order.id), "include_history": "true"},
        headers=lab.headers("tech"),
    )
    assert [(r["result_version"], r["status"]) for r in history.json()["items"]] == [
        (1, "superseded"),
        (2, "entered"),
    ]

    # The corrector may verify the new version: someone else entered the original.
    await verify(client, lab, new["id"], who="path2")
    events = await _verified_events(session, lab)
    assert [(e["department"], e["amended"], e["reason"]) for e in events] == [
        ("Haematology", False, None),
        (None, False, None),
        ("Haematology", True, "Transcription error"),
        (None, True, "Transcription error"),
    ]
    lines = await results_service.report_lines(session, lab.organisation.id, order.order.id)
    assert [(line.value, line.result_version, line.corrected) for line in lines] == [
        ("13.0", 2, True)
    ]
    actions = (
        await session.scalars(
            select(AuditLog.action)
            .where(AuditLog.entity_id.in_([original["id"], new["id"]]))
            .order_by(AuditLog.id)
        )
    ).all()
    assert actions == [
        "result.entered",
        "result.verified",
        "result.superseded",
        "result.corrected",
        "result.verified",
    ]


async def test_correction_by_the_enterer_needs_another_verifier(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await numeric_test(session, lab, "HB")
    order = await place_order(session, lab, await adult_woman(session, lab), [hb])
    original = await enter(client, lab, order["HB"], "11")
    await verify(client, lab, original["id"])
    corrected = await client.post(
        f"/api/v1/results/{original['id']}/correct",
        json={"value": "13", "reason": "Wrong sample run"},
        headers=lab.headers("path"),
    )
    new = corrected.json()
    assert (await verify(client, lab, new["id"], who="path", expect=403))["code"] == (
        "self_verification_not_allowed"
    )
    count = len(
        (
            await session.scalars(
                select(ResultVerification).where(ResultVerification.result_id == new["id"])
            )
        ).all()
    )
    assert count == 0


async def test_report_lines_carry_what_a_report_prints(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    glu = await numeric_test(
        session,
        lab,
        "GLU",
        name="Glucose, fasting",
        loinc="1558-6",
        department="Biochemistry",
        method="Hexokinase",
        decimals=0,
        sort_order=2,
    )
    await create_reference_range(session, glu, low="70", high="100")
    chol = await numeric_test(
        session,
        lab,
        "CHOL",
        name="Cholesterol",
        department="Biochemistry",
        decimals=0,
        sort_order=1,
    )
    await create_reference_range(session, chol, text="< 200 desirable")
    hb = await numeric_test(
        session, lab, "HB", name="Haemoglobin", department="Haematology", unit="g/dL"
    )
    await create_reference_range(session, hb, low=None, high="15")
    esr = await numeric_test(session, lab, "ESR", department="Haematology", sort_order=9)
    order = await place_order(session, lab, await adult_woman(session, lab), [glu, chol, hb, esr])
    for code, value in (("GLU", "105.5"), ("CHOL", "180"), ("HB", "13.25"), ("ESR", "10")):
        result = await enter(client, lab, order[code], value, comment=f"{code} ok")
        if code != "ESR":
            await verify(client, lab, result["id"])

    lines = await results_service.report_lines(session, lab.organisation.id, order.order.id)

    assert [(ln.department, ln.test_code) for ln in lines] == [
        ("Biochemistry", "CHOL"),
        ("Biochemistry", "GLU"),
        ("Haematology", "HB"),
    ]
    glucose = lines[1]
    assert (glucose.test_name, glucose.loinc, glucose.method) == (
        "Glucose, fasting",
        "1558-6",
        "Hexokinase",
    )
    assert (glucose.value, glucose.unit, glucose.reference_text, glucose.flag) == (
        "106",
        "mg/dL",
        "70 - 100",
        "H",
    )
    assert glucose.comment == "GLU ok"
    assert glucose.entered_by is not None
    assert (glucose.entered_by.full_name, glucose.entered_by.qualification) == (
        "Ravi Kumar",
        "DMLT",
    )
    assert glucose.verified_by is not None
    assert (glucose.verified_by.full_name, glucose.verified_by.qualification) == (
        "Dr. Meera Iyer",
        "MD (Pathology)",
    )
    assert glucose.verified_at is not None
    assert [s.full_name for s in glucose.verifiers] == ["Dr. Meera Iyer"]
    assert (glucose.result_version, glucose.corrected) == (1, False)
    assert lines[0].reference_text == "< 200 desirable"
    assert (lines[2].value, lines[2].reference_text) == ("13.3", "< 15.0")
