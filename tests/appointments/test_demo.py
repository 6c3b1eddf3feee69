"""`make run`'s demo lab has a home-collection day: tomorrow's windows, three bookings with
fasting instructions, two visits on the phlebotomist's run; seeding again adds nothing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.demo import seed_home_collection
from nidaan.appointments.models import Appointment
from nidaan.auth.models import User
from nidaan.demo.seed import seed_demo
from nidaan.tenancy.models import Organisation
from tests.appointments.support import tomorrow


async def test_demo_lab_has_a_home_collection_day(session: AsyncSession) -> None:
    result = await seed_demo(session)
    assert any(line.startswith("run of Sunita Jadhav") for line in result.created)
    demo = await session.scalar(select(Organisation).where(Organisation.slug == "demo-diagnostics"))
    assert demo is not None
    visits = list(
        await session.scalars(
            select(Appointment).where(
                Appointment.organisation_id == demo.id, Appointment.day == tomorrow()
            )
        )
    )
    assert len(visits) == 3
    rider = await session.scalar(select(User).where(User.email == "phlebotomist@demo.example.com"))
    assert rider is not None
    assert sorted((v.status, v.phlebotomist_id == rider.id) for v in visits) == [
        ("assigned", True),
        ("assigned", True),
        ("booked", False),
    ]
    assert await seed_home_collection(session, demo) == []
