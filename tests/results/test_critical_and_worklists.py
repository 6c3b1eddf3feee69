"""Critical alerts (event, acknowledgement) and the results worklists; tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.events.models import OutboxEvent
from nidaan.kit.time import utcnow
from nidaan.orders.enums import Priority
from nidaan.results.models import CriticalAlert
from nidaan.samples.enums import SampleStatus
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_reference_range
from tests.results.conftest import (
    Lab,
    adult_woman,
    enter,
    make_lab,
    numeric_test,
    place_order,
    verify,
)


async def test_critical_value_opens_an_alert_acknowledged_once(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    k = await numeric_test(session, lab, "K", unit="mmol/L", decimals=1)
    await create_reference_range(
        session, k, low="3.5", high="5.1", critical_low="2.5", critical_high="6.5"
    )
    woman = await adult_woman(session, lab)
    order = await place_order(session, lab, woman, [k])

    result = await enter(client, lab, order["K"], "7.2")

    assert result["flag"] == "HH"
    alert = await session.scalar(
        select(CriticalAlert).where(CriticalAlert.result_id == result["id"])
    )
    assert alert is not None
    assert (alert.value, alert.flag, alert.status, alert.patient_id, alert.order_id) == (
        "7.2",
        "HH",
        "open",
        woman.id,
        order.order.id,
    )
    event = await session.scalar(
        select(OutboxEvent).where(
            OutboxEvent.organisation_id == lab.organisation.id,
            OutboxEvent.name == "results.critical_value_detected",
        )
    )
    assert event is not None
    assert event.payload == {
        "organisation_id": str(lab.organisation.id),
        "alert_id": str(alert.id),
        "result_id": result["id"],
        "patient_id": str(woman.id),
        "test_id": str(k.id),
        "value": "7.2",
        "flag": "HH",
    }
    # Re-entering the same critical value does not open a second alert.
    await enter(client, lab, order["K"], "7.2", expect=200)
    worklist = await client.get("/api/v1/worklists/critical-alerts", headers=lab.headers("tech"))
    assert [a["id"] for a in worklist.json()["items"]] == [str(alert.id)]

    told_at = utcnow() - timedelta(minutes=3)
    ack = await client.post(
        f"/api/v1/critical-alerts/{alert.id}/acknowledge",
        json={
            "notified_person": "Dr. Sharma (ward 4 resident)",
            "notified_at": told_at.isoformat(),
            "read_back": True,
            "notes": "Repeat sample requested",
        },
        headers=lab.headers("tech"),
    )
    assert ack.status_code == 200, ack.text
    body = ack.json()
    assert body["status"] == "acknowledged"
    assert body["acknowledged_by_id"] == str(lab.users["tech"].id)
    assert body["notified_person"] == "Dr. Sharma (ward 4 resident)"
    assert body["read_back"] is True
    assert body["notes"] == "Repeat sample requested"
    assert body["notified_at"].startswith(told_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert body["acknowledged_at"] is not None

    second = await client.post(
        f"/api/v1/critical-alerts/{alert.id}/acknowledge",
        json={"notified_person": "Someone", "notified_at": told_at.isoformat(), "read_back": False},
        headers=lab.headers("path"),
    )
    assert second.status_code == 409
    assert second.json()["code"] == "already_acknowledged"

    assert (
        await client.get("/api/v1/worklists/critical-alerts", headers=lab.headers("tech"))
    ).json()["items"] == []
    listed = await client.get(
        "/api/v1/critical-alerts", params={"status": "acknowledged"}, headers=lab.headers("admin")
    )
    assert [a["id"] for a in listed.json()["items"]] == [str(alert.id)]
    actions = (
        await session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == str(alert.id)).order_by(AuditLog.id)
        )
    ).all()
    assert actions == ["critical_alert.created", "critical_alert.acknowledged"]


async def test_acknowledgement_needs_a_plausible_time(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    k = await numeric_test(session, lab, "K")
    await create_reference_range(session, k, critical_low="2.5")
    order = await place_order(session, lab, await adult_woman(session, lab), [k])
    result = await enter(client, lab, order["K"], "2")
    # This result's alert (other tests' committed alerts may share the database).
    alert = await session.scalar(
        select(CriticalAlert).where(CriticalAlert.result_id == result["id"])
    )
    assert alert is not None
    future = await client.post(
        f"/api/v1/critical-alerts/{alert.id}/acknowledge",
        json={
            "notified_person": "Dr. X",
            "notified_at": (utcnow() + timedelta(hours=1)).isoformat(),
            "read_back": True,
        },
        headers=lab.headers("path"),
    )
    assert future.status_code == 422
    naive = await client.post(
        f"/api/v1/critical-alerts/{alert.id}/acknowledge",
        json={"notified_person": "Dr. X", "notified_at": "2026-01-01T10:00:00", "read_back": True},
        headers=lab.headers("path"),
    )
    assert naive.status_code == 422


async def test_worklists(client: httpx.AsyncClient, session: AsyncSession, lab: Lab) -> None:
    hb = await numeric_test(session, lab, "HB", department="Haematology", tat_minutes=120)
    glu = await numeric_test(session, lab, "GLU", department="Biochemistry", tat_minutes=240)
    ldl = await numeric_test(
        session,
        lab,
        "LDLC",
        department="Biochemistry",
        result_type="calculated",
        formula="GLU * 2",
    )
    woman = await adult_woman(session, lab)
    now = utcnow()
    routine = await place_order(
        session, lab, woman, [hb, glu, ldl], received_at=now - timedelta(minutes=180)
    )
    stat = await place_order(
        session, lab, woman, [glu], priority=Priority.STAT, received_at=now - timedelta(minutes=10)
    )
    waiting = await place_order(session, lab, woman, [glu], sample_status=SampleStatus.COLLECTED)

    pending = (
        await client.get("/api/v1/worklists/pending-entry", headers=lab.headers("tech"))
    ).json()
    # STAT first; then by arrival; calculated tests are never typed in.
    assert [(i["order_number"], i["test_code"]) for i in pending["items"]] == [
        (stat.order.order_number, "GLU"),
        (routine.order.order_number, "GLU"),
        (routine.order.order_number, "HB"),
    ]
    assert waiting.order.order_number not in {i["order_number"] for i in pending["items"]}
    biochemistry = (
        await client.get(
            "/api/v1/worklists/pending-entry",
            params={"department": "Biochemistry"},
            headers=lab.headers("tech"),
        )
    ).json()
    assert [(i["order_number"], i["test_code"]) for i in biochemistry["items"]] == [
        (stat.order.order_number, "GLU"),
        (routine.order.order_number, "GLU"),
    ]

    # HB (2 h TAT) received 3 h ago is late; GLU (4 h) is not; STAT GLU is not.
    breaches = (
        await client.get("/api/v1/worklists/tat-breaches", headers=lab.headers("admin"))
    ).json()
    assert [(i["order_number"], i["test_code"]) for i in breaches["items"]] == [
        (routine.order.order_number, "HB")
    ]
    assert 59 <= breaches["items"][0]["minutes_overdue"] <= 61

    entered = await enter(client, lab, routine["HB"], "13")
    stat_result = await enter(client, lab, stat["GLU"], "90")
    verification = (
        await client.get("/api/v1/worklists/pending-verification", headers=lab.headers("path"))
    ).json()
    assert [(i["result_id"], i["priority"]) for i in verification["items"]] == [
        (stat_result["id"], "stat"),
        (entered["id"], "routine"),
    ]
    assert verification["items"][0]["verifications_required"] == 1
    assert verification["items"][0]["verifications_done"] == 0
    pending_after = (
        await client.get("/api/v1/worklists/pending-entry", headers=lab.headers("tech"))
    ).json()
    assert [(i["order_number"], i["test_code"]) for i in pending_after["items"]] == [
        (routine.order.order_number, "GLU")
    ]
    # Entered but not verified: still a TAT breach until verified.
    assert (
        len(
            (
                await client.get("/api/v1/worklists/tat-breaches", headers=lab.headers("tech"))
            ).json()["items"]
        )
        == 1
    )
    await verify(client, lab, entered["id"])
    assert (await client.get("/api/v1/worklists/tat-breaches", headers=lab.headers("tech"))).json()[
        "items"
    ] == []
    verification = (
        await client.get("/api/v1/worklists/pending-verification", headers=lab.headers("path"))
    ).json()
    assert [i["result_id"] for i in verification["items"]] == [stat_result["id"]]
    forbidden = await client.get(
        "/api/v1/worklists/pending-verification", headers=lab.headers("tech")
    )
    assert forbidden.status_code == 403


async def test_other_organisations_results_are_not_found(
    client: httpx.AsyncClient,
    session: AsyncSession,
    lab: Lab,
    other_organisation: Organisation,
) -> None:
    theirs = await make_lab(session, other_organisation)
    k = await numeric_test(session, theirs, "K")
    await create_reference_range(session, k, critical_high="6")
    order = await place_order(session, theirs, await adult_woman(session, theirs), [k])
    result = await enter(client, theirs, order["K"], "7")
    alert = await session.scalar(
        select(CriticalAlert).where(CriticalAlert.result_id == result["id"])
    )
    assert alert is not None

    for method, path, body, who in (
        ("GET", f"/api/v1/results?order_id={order.order.id}", None, "tech"),
        ("POST", "/api/v1/results", {"order_test_id": str(order["K"].id), "value": "5"}, "tech"),
        ("POST", f"/api/v1/results/{result['id']}/verify", None, "path"),
        ("POST", f"/api/v1/results/{result['id']}/correct", {"value": "5", "reason": "x"}, "path"),
        ("POST", f"/api/v1/results/{result['id']}/release", {"note": "x"}, "path"),
        (
            "POST",
            f"/api/v1/critical-alerts/{alert.id}/acknowledge",
            {"notified_person": "X", "notified_at": utcnow().isoformat(), "read_back": True},
            "tech",
        ),
    ):
        response = await client.request(method, path, json=body, headers=lab.headers(who))
        assert response.status_code == 404, (path, response.text)
    for path in (
        "/api/v1/critical-alerts",
        "/api/v1/worklists/critical-alerts",
        "/api/v1/worklists/pending-entry",
    ):
        response = await client.get(path, headers=lab.headers("tech"))
        assert response.json()["items"] == [], path
    assert (
        await client.get("/api/v1/worklists/pending-verification", headers=lab.headers("path"))
    ).json()["items"] == []
