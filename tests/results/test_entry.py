"""Result entry through the API: flags from the patient's range, units, formulas, holds."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.kit.time import utcnow
from nidaan.orders.models import OrderTest
from nidaan.results.models import Result
from nidaan.samples.enums import SampleStatus
from tests.fixtures.lab import create_patient, create_reference_range
from tests.results.conftest import Lab, adult_woman, enter, numeric_test, place_order, verify

ADULT = 18 * 365 + 5  # days


async def _haemoglobin(session: AsyncSession, lab: Lab):  # type: ignore[no-untyped-def]
    hb = await numeric_test(session, lab, "HB", unit="g/dL", decimals=1)
    await create_reference_range(
        session, hb, age_max_days=ADULT, low="11", high="14", critical_low="7", critical_high="20"
    )
    await create_reference_range(
        session,
        hb,
        sex="female",
        age_min_days=ADULT,
        low="12",
        high="15",
        critical_low="7",
        critical_high="20",
    )
    await create_reference_range(
        session,
        hb,
        sex="male",
        age_min_days=ADULT,
        low="13",
        high="17",
        critical_low="7",
        critical_high="20",
    )
    return hb


async def test_flags_follow_sex_and_age_specific_ranges(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await _haemoglobin(session, lab)
    woman = await adult_woman(session, lab)
    man = await create_patient(session, lab.organisation, sex="male")
    child = await create_patient(
        session, lab.organisation, sex="male", date_of_birth=utcnow().date() - timedelta(days=3000)
    )
    orders = {
        who: await place_order(session, lab, patient, [hb])
        for who, patient in (("woman", woman), ("man", man), ("child", child))
    }
    expected = {
        # value: (woman, man, child)
        "12.5": ("N", "L", "N"),
        "11.5": ("L", "L", "N"),
        "14.5": ("N", "N", "H"),
        "16": ("H", "N", "H"),
        "6.95": ("L", "L", "L"),  # rounds to 7.0: not below the critical limit
        "6.9": ("LL", "LL", "LL"),
        "20.1": ("HH", "HH", "HH"),
        "20": ("H", "H", "H"),
    }
    seen = {}
    for value, flags in expected.items():
        for who, flag in zip(("woman", "man", "child"), flags, strict=True):
            body = await enter(
                client, lab, orders[who]["HB"], value, expect=None
            )  # first 201, then 200 (replaced)
            assert body["flag"] == flag, (value, who, body)
            seen[who] = body
    assert seen["woman"]["reference_text"] == "12.0 - 15.0"
    assert seen["man"]["reference_text"] == "13.0 - 17.0"
    assert seen["child"]["reference_text"] == "11.0 - 14.0"
    assert seen["man"]["reference_low"] == "13"
    assert seen["woman"]["value_text"] == "20.0"
    # Re-entry replaced the one row each time.
    rows = (
        await session.scalars(
            select(Result).where(Result.order_test_id == orders["woman"]["HB"].id)
        )
    ).all()
    assert len(rows) == 1
    assert rows[0].result_version == 1


async def test_reentry_is_200_and_audited_before_after(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await _haemoglobin(session, lab)
    order = await place_order(session, lab, await adult_woman(session, lab), [hb])

    first = await enter(client, lab, order["HB"], "12.5", expect=201)
    second = await enter(client, lab, order["HB"], "13,25", expect=200, comment="rerun")

    assert second["id"] == first["id"]
    assert (second["value_text"], second["value_numeric"], second["entered_value"]) == (
        "13.3",
        "13.3",
        "13,25",
    )
    entries = (
        await session.scalars(
            select(AuditLog).where(AuditLog.entity_id == first["id"]).order_by(AuditLog.id)
        )
    ).all()
    assert [e.action for e in entries] == ["result.entered", "result.reentered"]
    assert entries[1].changes["before"]["value_text"] == "12.5"
    assert entries[1].changes["after"]["value_text"] == "13.3"
    assert entries[1].actor_id == lab.users["tech"].id


async def test_censored_and_coded_and_text_values(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    trop = await numeric_test(session, lab, "TROP", unit="ng/mL", decimals=2)
    await create_reference_range(session, trop, low=None, high="0.04")
    hiv = await numeric_test(
        session,
        lab,
        "HIV",
        unit=None,
        result_type="coded",
        department="Serology",
        choices=[
            {"code": "NR", "text": "Non-reactive", "abnormal": False},
            {"code": "R", "text": "Reactive", "abnormal": True},
        ],
    )
    note = await numeric_test(session, lab, "SMEAR", unit=None, result_type="text")
    order = await place_order(session, lab, await adult_woman(session, lab), [trop, hiv, note])

    censored = await enter(client, lab, order["TROP"], "< 0.01")
    assert (censored["value_text"], censored["value_numeric"], censored["flag"]) == (
        "<0.01",
        None,
        "N",
    )
    assert censored["reference_text"] == "< 0.04"
    coded = await enter(client, lab, order["HIV"], "reactive")
    assert (coded["value_code"], coded["value_text"], coded["flag"]) == ("R", "Reactive", "A")
    wrong = await enter(client, lab, order["HIV"], "maybe", expect=422)
    assert wrong["code"] == "invalid_result_value"
    assert wrong["detail"] == (
        "'maybe' is not one of this test's choices: NR (Non-reactive), R (Reactive)."
    )
    assert wrong["choices"] == ["NR", "R"]
    text = await enter(client, lab, order["SMEAR"], "  Normocytic normochromic ")
    assert (text["value_text"], text["flag"]) == ("Normocytic normochromic", None)
    junk = await enter(client, lab, order["TROP"], "high", expect=422)
    assert junk["detail"] == "'high' is not a number."


async def test_glucose_in_mmol_per_litre_is_converted_to_mg_per_dl(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    glu = await numeric_test(
        session, lab, "GLU", unit="mg/dL", decimals=0, unit_conversions={"mmol/L": "18.016"}
    )
    await create_reference_range(session, glu, low="70", high="100")
    order = await place_order(session, lab, await adult_woman(session, lab), [glu])

    body = await enter(client, lab, order["GLU"], "5,5", unit="mmol/L")

    # 5.5 x 18.016 = 99.088 -> 99 mg/dL.
    assert (body["value_numeric"], body["value_text"], body["unit"], body["flag"]) == (
        "99",
        "99",
        "mg/dL",
        "N",
    )
    assert (body["entered_value"], body["entered_unit"]) == ("5,5", "mmol/L")
    high = await enter(client, lab, order["GLU"], "7.0", unit="mmol/l", expect=200)
    assert (high["value_text"], high["flag"]) == ("126", "H")
    bad = await enter(client, lab, order["GLU"], "5.5", unit="g/L", expect=422)
    assert bad["accepted_units"] == ["mg/dL", "mmol/L"]


async def test_calculated_ldl_follows_its_inputs(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    chol = await numeric_test(session, lab, "CHOL", decimals=0, sort_order=1)
    hdl = await numeric_test(session, lab, "HDL", decimals=0, sort_order=2)
    tg = await numeric_test(session, lab, "TG", decimals=0, sort_order=3)
    ldl = await numeric_test(
        session,
        lab,
        "LDL",
        decimals=0,
        sort_order=4,
        result_type="calculated",
        formula="CHOL - HDL - TG/5",
    )
    await create_reference_range(session, ldl, low=None, high="100")
    order = await place_order(session, lab, await adult_woman(session, lab), [chol, hdl, tg, ldl])

    await enter(client, lab, order["CHOL"], "200")
    await enter(client, lab, order["HDL"], "50")
    listed = await client.get(
        "/api/v1/results", params={"order_id": str(order.order.id)}, headers=lab.headers("tech")
    )
    assert [r["test_id"] for r in listed.json()["items"]] == [str(chol.id), str(hdl.id)]
    assert [(r["test_code"], r["test_name"]) for r in listed.json()["items"]] == [
        ("CHOL", "CHOL"),
        ("HDL", "HDL"),
    ]
    assert listed.json()["pagination"] == {"total_count": 2, "page": 1, "limit": 20, "max_page": 1}
    one = await client.get(
        "/api/v1/results",
        params={"order_id": str(order.order.id), "limit": 1, "page": 2},
        headers=lab.headers("tech"),
    )
    assert [r["test_code"] for r in one.json()["items"]] == ["HDL"]

    await enter(client, lab, order["TG"], "150")
    results = (
        await client.get(
            "/api/v1/results",
            params={"order_id": str(order.order.id)},
            headers=lab.headers("tech"),
        )
    ).json()["items"]
    calculated = results[-1]
    assert calculated["test_id"] == str(ldl.id)
    assert (calculated["value_text"], calculated["source"], calculated["flag"]) == (
        "120",
        "calculated",
        "H",
    )
    assert calculated["entered_by_id"] == str(lab.users["tech"].id)

    await enter(client, lab, order["TG"], "100", expect=200)
    again = (
        await client.get(
            "/api/v1/results",
            params={"order_id": str(order.order.id)},
            headers=lab.headers("tech"),
        )
    ).json()["items"][-1]
    assert again["id"] == calculated["id"]
    assert again["value_text"] == "130"

    manual = await enter(client, lab, order["LDL"], "100", expect=409)
    assert manual["code"] == "calculated_result"
    ldl_status = await session.scalar(
        select(OrderTest.status).where(OrderTest.id == order["LDL"].id)
    )
    assert ldl_status == "resulted"


async def test_entry_needs_a_received_sample_and_moves_it_in_process(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await _haemoglobin(session, lab)
    woman = await adult_woman(session, lab)
    collected = await place_order(session, lab, woman, [hb], sample_status=SampleStatus.COLLECTED)
    refused = await enter(client, lab, collected["HB"], "12", expect=409)
    assert refused["code"] == "sample_not_ready"
    assert refused["detail"] == (
        f"Sample {collected.sample.accession} is collected; results can be entered only once "
        "the lab has received it."
    )

    received = await place_order(session, lab, woman, [hb])
    await enter(client, lab, received["HB"], "12")
    await session.refresh(received.sample)
    assert received.sample.status == "in_process"
    assert (
        await session.scalar(select(OrderTest.status).where(OrderTest.id == received["HB"].id))
        == "resulted"
    )


async def test_delta_check_holds_until_released(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    crea = await numeric_test(
        session, lab, "CREA", decimals=2, delta_percent=Decimal("50"), delta_window_days=30
    )
    await create_reference_range(session, crea, low="0.6", high="1.1")
    woman = await adult_woman(session, lab)
    first = await place_order(session, lab, woman, [crea])
    earlier = await enter(client, lab, first["CREA"], "1.0")
    await verify(client, lab, earlier["id"])

    second = await place_order(session, lab, woman, [crea])
    held = await enter(client, lab, second["CREA"], "2.1")

    assert held["status"] == "held"
    assert held["delta_failed"] is True
    assert held["delta_previous_value"] == "1"
    assert held["hold_reason"].startswith("Delta check: 1 -> 2.1 since ")
    assert held["hold_reason"].endswith("changed by +110% (limit 50%)")
    refused = await verify(client, lab, held["id"], expect=409)
    assert refused["code"] == "result_held"

    not_tech = await client.post(
        f"/api/v1/results/{held['id']}/release",
        json={"note": "checked"},
        headers=lab.headers("tech"),
    )
    assert not_tech.status_code == 403
    released = await client.post(
        f"/api/v1/results/{held['id']}/release",
        json={"note": "Known CKD, clinician informed"},
        headers=lab.headers("path"),
    )
    assert released.status_code == 200, released.text
    assert released.json()["status"] == "entered"
    again = await client.post(
        f"/api/v1/results/{held['id']}/release", json={"note": "x"}, headers=lab.headers("path")
    )
    assert again.status_code == 409
    assert again.json()["code"] == "illegal_transition"
    assert (await verify(client, lab, held["id"]))["status"] == "verified"
    audit = await session.scalar(
        select(AuditLog).where(
            AuditLog.entity_id == held["id"], AuditLog.action == "result.released"
        )
    )
    assert audit is not None
    assert audit.changes["after"]["release_note"] == "Known CKD, clinician informed"

    # A small change passes; a result outside the window is not compared.
    third = await place_order(session, lab, woman, [crea])
    assert (await enter(client, lab, third["CREA"], "2.5"))["status"] == "entered"


async def test_delta_check_ignores_old_results(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    crea = await numeric_test(
        session, lab, "CREA", decimals=2, delta_absolute=Decimal("0.3"), delta_window_days=30
    )
    woman = await adult_woman(session, lab)
    first = await place_order(session, lab, woman, [crea])
    earlier = await enter(client, lab, first["CREA"], "1.0")
    await verify(client, lab, earlier["id"])
    row = await session.get(Result, earlier["id"])
    assert row is not None
    row.entered_at = utcnow() - timedelta(days=31)
    await session.flush()

    second = await place_order(session, lab, woman, [crea])
    assert (await enter(client, lab, second["CREA"], "3.0"))["status"] == "entered"


async def test_unknown_or_cancelled_order_tests(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    hb = await _haemoglobin(session, lab)
    order = await place_order(session, lab, await adult_woman(session, lab), [hb])
    order["HB"].status = "cancelled"
    await session.flush()
    cancelled = await enter(client, lab, order["HB"], "12", expect=409)
    assert cancelled["code"] == "order_test_not_active"
    response = await client.post(
        "/api/v1/results",
        json={"order_test_id": "01900000-0000-7000-8000-000000000000", "value": "1"},
        headers=lab.headers("tech"),
    )
    assert response.status_code == 404


async def test_client_id_replay(client: httpx.AsyncClient, session: AsyncSession, lab: Lab) -> None:
    hb = await _haemoglobin(session, lab)
    order = await place_order(session, lab, await adult_woman(session, lab), [hb])
    client_id = "01900000-0000-7000-8000-00000000abcd"
    first = await enter(client, lab, order["HB"], "12.5", id=client_id)
    assert first["id"] == client_id
    replay = await enter(client, lab, order["HB"], "12.5", id=client_id, expect=200)
    assert replay["id"] == client_id
    clash = await enter(client, lab, order["HB"], "13", id=client_id, expect=409)
    assert clash["code"] == "id_conflict"


async def _lipids(session: AsyncSession, lab: Lab):  # type: ignore[no-untyped-def]
    tests = [
        await numeric_test(session, lab, code, decimals=0, sort_order=n)
        for n, code in enumerate(("CHOL", "HDL", "TG"))
    ]
    ldl = await numeric_test(
        session,
        lab,
        "LDL",
        decimals=0,
        sort_order=4,
        result_type="calculated",
        formula="CHOL - HDL - TG/5",
    )
    return [*tests, ldl]


async def _current_ldl(client: httpx.AsyncClient, lab: Lab, order_id: object) -> dict:
    results = (
        await client.get(
            "/api/v1/results", params={"order_id": str(order_id)}, headers=lab.headers("tech")
        )
    ).json()["items"]
    return results[-1]


async def test_stale_calculation_is_held_when_an_input_stops_being_numeric(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    order = await place_order(
        session, lab, await adult_woman(session, lab), await _lipids(session, lab)
    )
    for code, value in (("CHOL", "200"), ("HDL", "50"), ("TG", "150")):
        await enter(client, lab, order[code], value)
    await enter(client, lab, order["TG"], ">1000", expect=200)

    ldl = await _current_ldl(client, lab, order.order.id)
    assert (ldl["value_text"], ldl["status"]) == ("120", "held")
    assert ldl["hold_reason"] == "Cannot recalculate LDL: no numeric result for TG"

    await enter(client, lab, order["TG"], "100", expect=200)
    ldl = await _current_ldl(client, lab, order.order.id)
    assert (ldl["value_text"], ldl["status"], ldl["hold_reason"]) == ("130", "entered", None)


async def test_correcting_an_input_corrects_the_verified_calculation(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    order = await place_order(
        session, lab, await adult_woman(session, lab), await _lipids(session, lab)
    )
    ids = {}
    for code, value in (("CHOL", "200"), ("HDL", "50"), ("TG", "150")):
        ids[code] = (await enter(client, lab, order[code], value))["id"]
    ldl = await _current_ldl(client, lab, order.order.id)
    for result_id in (*ids.values(), ldl["id"]):
        await verify(client, lab, result_id)

    corrected = await client.post(
        f"/api/v1/results/{ids['TG']}/correct",
        json={"value": "100", "reason": "Lipaemic sample rerun"},
        headers=lab.headers("path"),
    )
    assert corrected.status_code == 201, corrected.text

    new_ldl = await _current_ldl(client, lab, order.order.id)
    assert (new_ldl["value_text"], new_ldl["result_version"], new_ldl["status"]) == (
        "130",
        2,
        "entered",
    )
    assert new_ldl["correction_reason"] == "Recalculated after TG was corrected"
    assert new_ldl["supersedes_id"] == ldl["id"]
    refused = await client.post(
        f"/api/v1/results/{new_ldl['id']}/correct",
        json={"value": "1", "reason": "x"},
        headers=lab.headers("path"),
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "calculated_result"


async def test_delta_check_looks_at_merged_records(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    crea = await numeric_test(
        session, lab, "CREA", decimals=2, delta_percent=Decimal("50"), delta_window_days=30
    )
    survivor = await adult_woman(session, lab)
    duplicate = await adult_woman(session, lab)
    earlier = await place_order(session, lab, duplicate, [crea])
    first = await enter(client, lab, earlier["CREA"], "1.0")
    await verify(client, lab, first["id"])
    duplicate.merged_into_id = survivor.id
    duplicate.is_active = False
    await session.flush()

    later = await place_order(session, lab, survivor, [crea])
    held = await enter(client, lab, later["CREA"], "3.0")
    assert (held["status"], held["delta_previous_value"]) == ("held", "1")
