"""Demo quality control: two control levels on the demo analyzer for each analyte it
autoverifies (manufacturer targets), this morning's passing run for all of them and three
weeks of runs for glucose and potassium (the Levey-Jennings charts), and the analyzer set up
to send its controls as ``QC1``/``QC2`` from 127.0.0.1 only.

The demo path (docs/qc.md): the analyzer simulator sends a failing control run, the patient
results of that analyte are blocked, a technician answers with a corrective action, a passing
run lifts the block and autoverification decides about the results it held back."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import any_, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.models import User
from nidaan.auth.principal import Principal
from nidaan.catalog.models import CatalogTest
from nidaan.integration.models import Instrument
from nidaan.integration.schemas import InstrumentUpdate
from nidaan.integration.service import integration_service
from nidaan.kit.time import utcnow
from nidaan.qc.enums import TargetSource
from nidaan.qc.models import QcMaterial
from nidaan.qc.schemas import LotCreate, MaterialCreate
from nidaan.qc.service import qc_service
from nidaan.tenancy.models import Organisation

#: (test code, level, control id, target mean, target SD) of the demo lots.
DEMO_LOTS = [
    ("GLUF", "1", "QC1", Decimal("95"), Decimal("3")),
    ("GLUF", "2", "QC2", Decimal("250"), Decimal("7")),
    ("UREA", "1", "QC1", Decimal("35"), Decimal("1.5")),
    ("UREA", "2", "QC2", Decimal("110"), Decimal("4")),
    ("CREA", "1", "QC1", Decimal("1.00"), Decimal("0.04")),
    ("CREA", "2", "QC2", Decimal("5.00"), Decimal("0.15")),
    ("NA", "1", "QC1", Decimal("130"), Decimal("1.5")),
    ("NA", "2", "QC2", Decimal("155"), Decimal("1.8")),
    ("K", "1", "QC1", Decimal("4.0"), Decimal("0.1")),
    ("K", "2", "QC2", Decimal("6.5"), Decimal("0.15")),
    ("CL", "1", "QC1", Decimal("90"), Decimal("1.5")),
    ("CL", "2", "QC2", Decimal("115"), Decimal("1.8")),
]
#: Mornings of runs before today's for the charted analytes (today's run is seeded for every
#: analyte: the qc rule wants a passing run within 24 h).
HISTORY_DAYS = 20
CHARTED = {"GLUF", "K"}


async def _user(session: AsyncSession, organisation: Organisation, role: str) -> Principal | None:
    user = await session.scalar(
        select(User).where(
            User.organisation_id == organisation.id, literal(role) == any_(User.roles)
        )
    )
    if user is None:
        return None
    return Principal(
        kind="user",
        id=user.id,
        organisation_id=user.organisation_id,
        roles=frozenset(user.roles),
        label=user.email,
    )


async def seed_qc(
    session: AsyncSession, organisation: Organisation, analyzer_name: str
) -> list[str]:
    """Create the demo QC once (nothing when the organisation has control materials)."""
    if await session.scalar(
        select(QcMaterial.id).where(QcMaterial.organisation_id == organisation.id).limit(1)
    ):
        return []
    analyzer = await session.scalar(
        select(Instrument).where(
            Instrument.organisation_id == organisation.id, Instrument.name == analyzer_name
        )
    )
    admin = await _user(session, organisation, "admin")
    path = await _user(session, organisation, "pathologist")
    tech = await _user(session, organisation, "technician")
    if analyzer is None or admin is None or path is None or tech is None:
        return []
    await integration_service.update_instrument(
        session,
        admin,
        analyzer.id,
        InstrumentUpdate(
            version=analyzer.version,
            settings={
                **(analyzer.settings or {}),
                "control_ids": ["QC*"],
                "allowed_peers": ["127.0.0.1"],
            },
        ),
    )
    tests = {
        t.code: t
        for t in await session.scalars(
            select(CatalogTest).where(
                CatalogTest.organisation_id == organisation.id,
                CatalogTest.code.in_({code for code, *_ in DEMO_LOTS}),
            )
        )
    }
    materials = {}
    for level in ("1", "2"):
        materials[level] = await qc_service.create_material(
            session,
            path,
            MaterialCreate(
                name="Lyphochek Assayed Chemistry Control",
                manufacturer="Bio-Rad",
                level=level,
            ),
        )
    lots = []
    for code, level, control_id, mean, sd in DEMO_LOTS:
        if code not in tests:
            continue
        lot = await qc_service.create_lot(
            session,
            path,
            LotCreate(
                material_id=materials[level].id,
                lot_number=f"2604{level}",
                expires_on=date.today() + timedelta(days=300),
                instrument_id=analyzer.id,
                test_id=tests[code].id,
                control_id=control_id,
                target_source=TargetSource.MANUFACTURER,
                mean=mean,
                sd=sd,
            ),
        )
        lots.append((lot, mean, sd, tests[code].decimals, code in CHARTED))
    # Three weeks of morning runs for glucose and potassium (today's run for the rest), in
    # control: |z| < 1.5, and the two levels, and each level from one day to the next, on
    # alternate sides of the mean, so no Westgard rule fires (4-1s and 10x look across runs
    # and levels).
    rng = random.Random(2604)  # noqa: S311 - demo data
    now = utcnow()
    start = now.replace(hour=2, minute=30, second=0, microsecond=0)  # 08:00 IST
    for days_ago in range(HISTORY_DAYS, -1, -1):
        when = min(start - timedelta(days=days_ago), now - timedelta(minutes=90))
        for n, (lot, mean, sd, decimals, charted) in enumerate(lots):
            if days_ago and not charted:
                continue
            side = 1 if (days_ago + n) % 2 == 0 else -1
            z = Decimal(str(round(side * rng.uniform(0.05, 1.4), 2)))
            value = (mean + z * sd).quantize(Decimal(1).scaleb(-(decimals or 0)))
            await qc_service.record_manual(
                session, tech, lot.id, value, when + timedelta(minutes=n)
            )
    return [f"QC: {len(lots)} control lots on {analyzer_name}, {HISTORY_DAYS + 1} days of runs"]
