"""No personal identifier in clear in what sync keeps (issue 18 item 3).

A lab day through sync — registrations with mobile, e-mail and ABHA number, concurrent edits of
those fields (field history), clinical and identity conflicts resolved and superseded, refused
ops, a change the database refuses — and then every row of every table in the database (what a
``pg_dump`` holds), and every log line, is searched for each seeded value in clear.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, text

from nidaan.kit.ids import new_id
from nidaan.sync.models import SyncFieldHistory
from nidaan.sync.sealing import history_value
from tests.sync.conftest import Device, SyncLab, gql
from tests.sync.test_merge_classes import patient_data
from tests.sync.test_orders_sync import placed_order

RESOLVE = """
mutation R($id: ID!, $resolution: Resolution!) {
  resolveConflict(conflictId: $id, resolution: $resolution, reason: "reviewed") { status }
}
"""


@dataclass
class Seeded:
    mobiles: list[str]
    emails: list[str]
    abha_numbers: list[str]

    def clear_forms(self) -> dict[str, list[str]]:
        """Each value in the forms it could be written in clear."""
        abha = [f"{a[:2]}-{a[2:6]}-{a[6:10]}-{a[10:]}" for a in self.abha_numbers]
        return {
            "mobile": self.mobiles,
            "email": self.emails,
            "abha": self.abha_numbers + abha,
        }


def _seeded(rng: random.Random, count: int) -> Seeded:
    tag = new_id().hex[-8:]
    return Seeded(
        mobiles=[f"9{rng.randrange(10**9):09d}" for _ in range(count)],
        emails=[f"p{i}.{tag}@example.org" for i in range(count)],
        abha_numbers=[f"91{rng.randrange(10**12):012d}" for _ in range(count)],
    )


async def test_no_identifier_in_clear_after_a_lab_day_with_conflicts(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rng = random.Random(18)
    seeded = _seeded(rng, 24)
    m, e = iter(seeded.mobiles), iter(seeded.emails)
    a = Device(live_client, sync_lab.desk1)
    b = Device(live_client, sync_lab.desk2, sync_lab.cc1.id)
    patients: list[str] = []
    for abha in seeded.abha_numbers[:4]:
        patient_id = str(new_id())
        data = patient_data(
            sync_lab,
            mobile=next(m),
            email=next(e),
            abha_number=abha,
            abha_address=f"p{rng.randrange(10**6)}@abdm",
            pregnant=False,
        )
        # Registered and edited in one push (the own-write path), then edited again.
        answer = await a.sync(
            a.op("patient", patient_id, "create", data),
            a.op("patient", patient_id, "update", {"mobile": next(m), "email": next(e)}),
        )
        assert [r["status"] for r in answer["results"]] == ["APPLIED", "APPLIED"], answer
        patients.append(patient_id)
    await b.sync()
    lost_mobiles: list[str] = []
    for patient_id in patients:
        base = b.row("patient", patient_id)["seq"]
        # Concurrent edits: a's is older (lost), then b's newer one overwrites a value.
        early = a.op("patient", patient_id, "update", {"mobile": next(m), "email": next(e)})
        late = b.op(
            "patient",
            patient_id,
            "update",
            {"mobile": next(m), "full_name": "Asha V", "pregnant": True},
            baseVersion=base,
        )
        lost_mobiles.append(early["data"]["mobile"])
        assert (await b.sync(late))["results"][0]["status"] == "APPLIED"
        raced = await a.sync(
            early,
            a.op("patient", patient_id, "update", {"full_name": "Asha Verma K"}, baseVersion=base),
            a.op("patient", patient_id, "update", {"pregnant": None}, baseVersion=base),
        )
        assert [r["status"] for r in raced["results"]] == ["APPLIED", "CONFLICT", "CONFLICT"]
    # Refused ops carrying identifiers: an invalid mobile, another branch's patient.
    refused = await b.sync(
        b.op("patient", patients[0], "update", {"mobile": seeded.mobiles[0][:7]}),
        b.op("patient", str(new_id()), "update", {"mobile": seeded.mobiles[1]}),
    )
    assert [r["status"] for r in refused["results"]] == ["REJECTED", "REJECTED"]
    # A payment whose free-text reference quotes an e-mail and is too long for the column: the
    # database refuses it (its message quotes the value); the op must be refused, not retried,
    # and the message must go nowhere.
    _, order_id = await placed_order(a, sync_lab, committing_session)
    quoted = f"paid by {seeded.emails[-1]} " + "x" * 100
    paid = await a.sync(
        a.op(
            "payment",
            str(new_id()),
            "append",
            {"order_id": order_id, "amount": "100", "method": "upi", "reference": quoted},
        )
    )
    assert paid["results"][0]["status"] == "REJECTED", paid
    assert seeded.emails[-1] not in (paid["results"][0]["reason"] or "")
    # Decisions: some conflicts resolved, the rest superseded by a later edit.
    conflicts = (await gql(live_client, sync_lab.admin, "query { conflicts { id kind } }"))["data"][
        "conflicts"
    ]
    assert len(conflicts) == 2 * len(patients)
    for conflict in conflicts[: len(conflicts) // 2]:
        headers = sync_lab.pathologist if conflict["kind"] == "CLINICAL_MANUAL" else sync_lab.admin
        decided = await gql(
            live_client, headers, RESOLVE, id=conflict["id"], resolution="TAKE_CLIENT"
        )
        assert decided["data"]["resolveConflict"]["status"] == "RESOLVED", decided
    await a.sync()
    for patient_id in patients:
        await a.sync(
            a.op(
                "patient",
                patient_id,
                "update",
                {"pregnant": False, "full_name": "Asha Verma", "mobile": next(m)},
                baseVersion=a.row("patient", patient_id)["seq"],
            )
        )

    # The losing mobile numbers are kept — sealed, and still readable by the server.
    async with committing_session() as session:
        kept = await session.scalars(
            select(SyncFieldHistory).where(
                SyncFieldHistory.organisation_id == sync_lab.organisation.id,
                SyncFieldHistory.field == "mobile",
                SyncFieldHistory.outcome == "lost",
            )
        )
        recovered = {str(history_value(row))[-10:] for row in kept}
    assert set(lost_mobiles) <= recovered

    found = await _in_clear(committing_session, seeded)
    assert found == [], f"identifiers stored in clear: {found[:10]}"
    logged = "\n".join(
        f"{record.getMessage()} {record.msg!r} {record.exc_text or ''}" for record in caplog.records
    )
    assert caplog.records, "nothing was logged: the log check would prove nothing"
    leaks = [v for values in seeded.clear_forms().values() for v in values if v in logged]
    assert leaks == [], f"identifiers in the logs: {leaks}"


async def _in_clear(committing_session: Any, seeded: Seeded) -> list[tuple[str, str, str]]:
    """(table, kind, value) for every seeded value found in clear in any row of any table.

    Each whole row is read as text (every column, as a dump would write it). The one place an
    e-mail address may stand in clear is ``patients.email``, the record itself (it is not an
    encrypted field); mobile and ABHA numbers may be nowhere.
    """
    found: list[tuple[str, str, str]] = []
    async with committing_session() as session:
        tables = (
            await session.execute(
                text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_type = 'BASE TABLE' "
                    "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            )
        ).all()
        assert any(name == "sync_field_history" for _, name in tables)
        for schema, name in tables:
            for kind, values in seeded.clear_forms().items():
                row = "to_jsonb(t)"
                if (name, kind) == ("patients", "email"):
                    row = "to_jsonb(t) - 'email'"
                hits = await session.execute(
                    text(
                        f'SELECT DISTINCT v FROM "{schema}"."{name}" t, '
                        "unnest(CAST(:values AS text[])) v "
                        f"WHERE strpos(({row})::text, v) > 0"
                    ),
                    {"values": values},
                )
                found.extend((f"{schema}.{name}", kind, hit) for (hit,) in hits)
    return found


async def test_a_change_the_database_refuses_is_rejected_not_retried_and_not_logged(  # type: ignore[no-untyped-def]
    live_client, sync_lab: SyncLab, committing_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A value no validation caught but the database refuses (a 101-character payment
    reference) is a permanent refusal: REJECTED, the ops after it still apply, and the
    database's message — which quotes the values — reaches neither the answer nor the logs."""
    caplog.set_level(logging.DEBUG)
    desk = Device(live_client, sync_lab.desk1)
    _, order_id = await placed_order(desk, sync_lab, committing_session)
    email = f"payer.{new_id().hex[-8:]}@example.org"
    too_long = f"from {email} " + "x" * 100
    payment = {"order_id": order_id, "amount": "250", "method": "upi"}
    answer = await desk.sync(
        desk.op("payment", str(new_id()), "append", {**payment, "reference": too_long}),
        desk.op("payment", str(new_id()), "append", {**payment, "reference": "UPI-1"}),
    )
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["REJECTED", "APPLIED"], answer["results"]
    assert "cannot store" in answer["results"][0]["reason"]
    assert email not in answer["results"][0]["reason"]
    async with committing_session() as session:
        stored = await session.scalar(
            text("SELECT count(*) FROM counter_payments WHERE order_id = CAST(:o AS uuid)"),
            {"o": order_id},
        )
    assert stored == 1
    assert any("sync_op_refused_by_database" in str(r.msg) for r in caplog.records)
    assert all(email not in f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
