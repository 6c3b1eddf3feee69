"""Home visits over sync: the phlebotomist's phone pulls its run, works offline (on the way,
arrived, collected with the order, samples and payment made under the phone's ids), pushes
when back online; replays change nothing; a visit the desk cancelled meanwhile is refused
(REJECTED, shown to the phone) and the samples are received at the lab."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from nidaan.appointments.service import appointments_service
from nidaan.billing.models import CounterPayment
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow
from nidaan.samples.models import Sample
from nidaan.samples.schemas import ManifestCreate
from nidaan.samples.service import samples_service
from nidaan.tenancy.enums import BranchKind
from tests.appointments.support import HomeLab, booking, build_home_lab
from tests.fixtures.lab import create_patient
from tests.fixtures.objects import bearer_for, create_branch, create_organisation, create_user
from tests.fixtures.orders import system_principal
from tests.sync.conftest import Device


async def assigned_visits(committing_session: Any, count: int = 1) -> tuple[HomeLab, list, Any]:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await build_home_lab(session, organisation)
        caller = system_principal(organisation)
        rider = lab.phlebotomists[0]
        visits = []
        for index in range(count):
            patient = lab.patient if index == 0 else await create_patient(session, organisation)
            row, _ = await appointments_service.book(
                session, caller, booking(lab, lab.slots[0], patient.id)
            )
            visits.append(row)
        await appointments_service.assign(
            session, caller, [(v.id, rider.id, n) for n, v in enumerate(visits, start=1)]
        )
        technician = await create_user(session, organisation, roles=("technician",))
        central = await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB)
    lab.central = central  # type: ignore[attr-defined]
    return lab, visits, technician


async def test_offline_collection_syncs_as_order_samples_and_payment(  # type: ignore[no-untyped-def]
    live_client, committing_session
) -> None:
    lab, (visit,), technician = await assigned_visits(committing_session)
    phone = Device(live_client, bearer_for(lab.phlebotomists[0]), lab.branch.id)
    await phone.sync()  # morning, online: the run comes down
    pulled = phone.row("appointment", visit.id)["data"]
    assert pulled["status"] == "assigned"
    assert {t["container"] for t in pulled["tubes"]} == {"fluoride_grey", "edta_purple"}
    assert pulled["fasting_hours"] == 10

    # On the road, offline: three steps queued, pushed together later.
    order_id, payment_id = new_id(), new_id()
    drawn = utcnow() - timedelta(minutes=30)
    ops = [
        phone.op(
            "appointment",
            visit.id,
            "transition",
            {"to": "on_the_way", "at": (drawn - timedelta(minutes=20)).isoformat()},
        ),
        phone.op(
            "appointment",
            visit.id,
            "transition",
            {"to": "arrived", "at": (drawn - timedelta(minutes=5)).isoformat()},
        ),
        phone.op(
            "appointment",
            visit.id,
            "transition",
            {
                "to": "collected",
                "order_id": str(order_id),
                "collected_at": drawn.isoformat(),
                "payment": {
                    "id": str(payment_id),
                    "amount": "300.00",
                    "method": "upi",
                    "reference": "412345678901",
                },
            },
        ),
    ]
    result = await phone.sync(*ops)
    assert [r["status"] for r in result["results"]] == ["APPLIED"] * 3, result
    visit_now = phone.row("appointment", visit.id)["data"]
    assert visit_now["status"] == "collected"
    assert visit_now["order_id"] == str(order_id)
    assert visit_now["status_times"]["arrived"].startswith(
        (drawn - timedelta(minutes=5)).isoformat()[:16]
    )
    samples = [c for (e, _), c in phone.rows.items() if e == "sample"]
    assert {s["data"]["status"] for s in samples} == {"collected"}
    assert {s["data"]["order_id"] for s in samples} == {str(order_id)}
    payment = phone.row("payment", payment_id)["data"]
    assert (payment["amount"], payment["method"]) == ("300.00", "upi")

    # The phone did not hear the answer and pushes again: the stored results come back.
    replay = await phone.sync(*ops)
    assert [r["status"] for r in replay["results"]] == ["APPLIED"] * 3
    async with committing_session() as session:
        assert (
            await session.scalar(
                select(func.count())
                .select_from(CounterPayment)
                .where(CounterPayment.order_id == order_id)
            )
        ) == 1
        tubes = list(await session.scalars(select(Sample).where(Sample.order_id == order_id)))
        # Back at the branch the run's tubes go to the central lab on a manifest.
        caller = system_principal(lab.organisation)
        manifest, _ = await samples_service.create_manifest(
            session,
            caller,
            ManifestCreate(
                from_branch_id=lab.branch.id,
                to_branch_id=lab.central.id,  # type: ignore[attr-defined]
                accessions=[t.accession for t in tubes],
            ),
        )
        await samples_service.dispatch_manifest(session, caller, manifest.id, courier="Run 1")
    accessions = [t.id for t in tubes]
    # At the lab the tubes are received as any others.
    bench = Device(live_client, bearer_for(technician))
    received = await bench.sync(
        *[
            bench.op("sample", sample_id, "transition", {"to": "received"})
            for sample_id in accessions
        ]
    )
    assert [r["status"] for r in received["results"]] == ["APPLIED"] * len(accessions), received


async def test_a_visit_cancelled_at_the_desk_is_refused_from_the_road(  # type: ignore[no-untyped-def]
    live_client, committing_session
) -> None:
    lab, (visit,), _ = await assigned_visits(committing_session)
    phone = Device(live_client, bearer_for(lab.phlebotomists[0]), lab.branch.id)
    await phone.sync()
    desk = await live_client.post(
        f"/api/v1/appointments/{visit.id}/cancel",
        json={"reason": "Patient travelling"},
        headers=bearer_for(lab.desk),
    )
    assert desk.status_code == 200, desk.text
    late = await phone.sync(
        phone.op("appointment", visit.id, "transition", {"to": "on_the_way"}),
        phone.op(
            "appointment",
            visit.id,
            "transition",
            {"to": "collected", "order_id": str(new_id())},
        ),
    )
    assert [r["status"] for r in late["results"]] == ["REJECTED", "REJECTED"]
    assert "cancelled" in late["results"][0]["reason"]
    assert phone.row("appointment", visit.id)["data"]["status"] == "cancelled"
    # Every phlebotomist of the branch pulls its visits: a colleague may take over a run.
    stranger = Device(live_client, bearer_for(lab.phlebotomists[1]), lab.branch.id)
    await stranger.sync()
    assert ("appointment", str(visit.id)) in stranger.rows


def collect_op(phone: Device, visit_id: Any, order_id: Any) -> dict[str, Any]:
    return phone.op(
        "appointment",
        visit_id,
        "transition",
        {
            "to": "collected",
            "order_id": str(order_id),
            "payment": {"id": str(new_id()), "amount": "300.00", "method": "cash"},
        },
    )


async def test_appointments_scan_to_bind_a_preprinted_label_offline(  # type: ignore[no-untyped-def]
    live_client, committing_session
) -> None:
    lab, (first, second), _ = await assigned_visits(committing_session, count=2)
    phone = Device(live_client, bearer_for(lab.phlebotomists[0]), lab.branch.id)
    await phone.sync()
    orders = (new_id(), new_id())
    collected = await phone.sync(
        collect_op(phone, first.id, orders[0]), collect_op(phone, second.id, orders[1])
    )
    assert [r["status"] for r in collected["results"]] == ["APPLIED"] * 2, collected
    async with committing_session() as session:
        tubes = {
            order: list(
                await session.scalars(
                    select(Sample).where(Sample.order_id == order).order_by(Sample.accession)
                )
            )
            for order in orders
        }
    mine, theirs = tubes[orders[0]][0], tubes[orders[1]][0]

    # Offline at the door: scan a roll label onto each tube (by id, or by accession).
    ops = [
        phone.op(
            "appointment", first.id, "bind_label", {"sample": str(mine.id), "label": "pl-000123"}
        ),
        phone.op(
            "appointment",
            first.id,
            "bind_label",
            {"sample": tubes[orders[0]][1].accession, "label": "PL-000124"},
        ),
    ]
    bound = await phone.sync(*ops)
    assert [r["status"] for r in bound["results"]] == ["APPLIED"] * 2, bound
    # Replayed, and scanned again as a new op: nothing changes.
    assert [r["status"] for r in (await phone.sync(*ops))["results"]] == ["APPLIED"] * 2
    again = phone.op(
        "appointment", first.id, "bind_label", {"sample": str(mine.id), "label": "PL-000123"}
    )
    assert (await phone.sync(again))["results"][0]["status"] == "APPLIED"

    refused_ops = [
        # The same label on another visit's tube: bound already in the organisation.
        phone.op(
            "appointment", second.id, "bind_label", {"sample": str(theirs.id), "label": "PL-000123"}
        ),
        # An accession as a label, a second label on a tube, a tube of another visit, junk.
        phone.op(
            "appointment",
            second.id,
            "bind_label",
            {"sample": str(theirs.id), "label": mine.accession},
        ),
        phone.op(
            "appointment", first.id, "bind_label", {"sample": str(mine.id), "label": "PL-000999"}
        ),
        phone.op(
            "appointment", first.id, "bind_label", {"sample": str(theirs.id), "label": "PL-000555"}
        ),
        phone.op(
            "appointment", second.id, "bind_label", {"sample": str(theirs.id), "label": "x\n1"}
        ),
        phone.op("appointment", second.id, "bind_label", {"sample": str(theirs.id)}),
    ]
    answer = await phone.sync(*refused_ops)
    assert [r["status"] for r in answer["results"]] == ["REJECTED"] * len(refused_ops), answer
    async with committing_session() as session:
        labels = {
            s.id: s.label_alias
            for s in await session.scalars(select(Sample).where(Sample.order_id.in_(orders)))
        }
    assert labels[mine.id] == "PL-000123"
    assert labels[tubes[orders[0]][1].id] == "PL-000124"
    assert labels[theirs.id] is None
    # At the lab the label scans like the accession.
    async with committing_session() as session:
        caller = system_principal(lab.organisation)
        found = await samples_service.get_by_accession(session, caller, "pl-000123")
        assert found.id == mine.id
        assert (
            await samples_service.get_by_accession(session, caller, mine.accession)
        ).id == mine.id

    # Another organisation may use the same roll number.
    other_lab, (other,), _ = await assigned_visits(committing_session)
    other_phone = Device(live_client, bearer_for(other_lab.phlebotomists[0]), other_lab.branch.id)
    await other_phone.sync()
    other_order = new_id()
    await other_phone.sync(collect_op(other_phone, other.id, other_order))
    async with committing_session() as session:
        other_tube = await session.scalar(select(Sample).where(Sample.order_id == other_order))
    assert other_tube is not None
    ok = await other_phone.sync(
        other_phone.op(
            "appointment",
            other.id,
            "bind_label",
            {"sample": str(other_tube.id), "label": "PL-000123"},
        )
    )
    assert ok["results"][0]["status"] == "APPLIED", ok


async def test_appointments_bind_by_tube_before_the_phone_knows_the_accessions(  # type: ignore[no-untyped-def]
    live_client, committing_session
) -> None:
    """Offline, the phone has the visit's tubes (container, specimen) but not yet the
    accessions the server will number: it names the tube, in the same push as ``collected``."""
    lab, (first, second), _ = await assigned_visits(committing_session, count=2)
    phone = Device(live_client, bearer_for(lab.phlebotomists[0]), lab.branch.id)
    await phone.sync()
    tubes = phone.row("appointment", first.id)["data"]["tubes"]
    assert {(t["specimen_type"], t["container"]) for t in tubes} == {
        ("plasma", "fluoride_grey"),
        ("whole_blood", "edta_purple"),
    }
    order_id = new_id()
    pushed = await phone.sync(
        collect_op(phone, first.id, order_id),
        phone.op(
            "appointment",
            first.id,
            "bind_label",
            {"container": "fluoride_grey", "specimen_type": "plasma", "label": "RL-0001"},
        ),
        phone.op(
            "appointment", first.id, "bind_label", {"container": "edta_purple", "label": "rl-0002"}
        ),
    )
    assert [r["status"] for r in pushed["results"]] == ["APPLIED"] * 3, pushed
    # The labels come back down on the phone's copy of the samples.
    await phone.sync()
    pulled = {
        row["data"]["container"]: row["data"]["label_alias"]
        for (entity, _), row in phone.rows.items()
        if entity == "sample" and row["data"]["order_id"] == str(order_id)
    }
    assert pulled == {"fluoride_grey": "RL-0001", "edta_purple": "RL-0002"}

    refused_ops = [
        # A tube this visit does not have; a container of the right kind, wrong specimen.
        phone.op(
            "appointment", first.id, "bind_label", {"container": "urine_cup", "label": "RL-0003"}
        ),
        phone.op(
            "appointment",
            first.id,
            "bind_label",
            {"container": "edta_purple", "specimen_type": "serum", "label": "RL-0004"},
        ),
        # A visit not collected yet has no tubes to bind.
        phone.op(
            "appointment", second.id, "bind_label", {"container": "edta_purple", "label": "RL-0005"}
        ),
        # Neither sample nor tube, or not text.
        phone.op("appointment", first.id, "bind_label", {"label": "RL-0006"}),
        phone.op("appointment", first.id, "bind_label", {"container": 7, "label": "RL-0007"}),
    ]
    answer = await phone.sync(*refused_ops)
    assert [r["status"] for r in answer["results"]] == ["REJECTED"] * len(refused_ops), answer
    assert "not one of this visit's tubes" in answer["results"][0]["reason"]
    async with committing_session() as session:
        bound = set(
            await session.scalars(select(Sample.label_alias).where(Sample.label_alias.like("RL-%")))
        )
    assert bound == {"RL-0001", "RL-0002"}
