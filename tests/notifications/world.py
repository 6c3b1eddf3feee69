"""A committed lab, patient and verified order for the notification journeys."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from nidaan.notifications.enums import Channel
from nidaan.notifications.models import Notification
from nidaan.notifications.service import notifications_service
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import Lab, enter_and_verify, make_lab, place_order, principal_of


@dataclass
class World:
    organisation_id: uuid.UUID
    lab: Lab
    patient_id: uuid.UUID
    mobile: str
    order_id: uuid.UUID | None = None

    def headers(self, who: str = "admin") -> dict[str, str]:
        return self.lab.headers(who)


async def make_world(
    committing_session: Any,
    *,
    language: str = "en",
    consents: tuple[Channel, ...] = (Channel.WHATSAPP,),
    email: str | None = "patient@example.com",
    mobile: str | None = None,
    verify: bool = True,
) -> World:
    mobile = mobile or f"98{uuid.uuid4().int % 10**8:08d}"
    async with committing_session() as session:
        organisation = await create_organisation(session, name="Sanjeevani Diagnostics")
        lab = await make_lab(session, organisation)
        patient = await create_patient(
            session,
            organisation,
            full_name="Sunita Sharma",
            mobile=mobile,
            email=email,
            preferred_language=language,
            referring_doctor="Dr. Anil Kulkarni",
        )
        for channel in consents:
            await notifications_service.set_consent(
                session,
                principal_of(lab.users["front"]),
                patient.id,
                channel,
                opted_in=True,
                notice_version="2026-11",
            )
        world = World(organisation.id, lab, patient.id, patient.mobile or mobile)
        if verify:
            hb = await create_catalog_test(
                session,
                organisation,
                code="HB",
                name="Haemoglobin",
                ranges=[{"low": 12, "high": 15}],
            )
            glu = await create_catalog_test(
                session, organisation, code="GLU", name="Glucose, fasting"
            )
            placed = await place_order(session, lab, patient, [hb, glu])
            await enter_and_verify(session, lab, placed["HB"], "13.1")
            await enter_and_verify(session, lab, placed["GLU"], "92")
            world.order_id = placed.order.id
        return world


async def notifications_of(committing_session: Any, world: World) -> list[Notification]:
    async with committing_session() as session:
        return list(
            await session.scalars(
                select(Notification)
                .where(Notification.organisation_id == world.organisation_id)
                .order_by(Notification.created_at)
            )
        )


async def wait_for(check: Any, within: float = 60.0) -> Any:
    """Poll ``check()`` (async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)
