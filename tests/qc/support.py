"""A QC bench for tests: a lab with a chemistry analyzer measuring glucose, two control levels
with manufacturer targets, and helpers that land patient results from the analyzer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.catalog.models import CatalogTest
from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.models import Instrument
from nidaan.integration.schemas import InstrumentCreate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.kit.ids import new_id
from nidaan.kit.time import utcnow
from nidaan.qc.enums import TargetSource
from nidaan.qc.models import QcLot
from nidaan.qc.schemas import LotCreate, MaterialCreate
from nidaan.qc.service import Recorded, qc_service
from nidaan.results.models import Result
from nidaan.tenancy.models import Organisation
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.results import Lab, make_lab, place_order, principal_of


@dataclass
class Bench:
    lab: Lab
    glucose: CatalogTest
    analyzer: Instrument
    level1: QcLot  # mean 100, SD 4
    level2: QcLot  # mean 300, SD 10

    @property
    def org(self) -> uuid.UUID:
        return self.lab.organisation.id

    def who(self, key: str) -> Any:
        return principal_of(self.lab.users[key])


async def make_bench(
    session: AsyncSession, organisation: Organisation, *, settings: dict[str, Any] | None = None
) -> Bench:
    lab = await make_lab(session, organisation)
    glucose = await create_catalog_test(
        session,
        organisation,
        code=f"GLU{new_id().hex[-4:].upper()}",
        name="Glucose",
        unit="mg/dL",
        decimals=0,
        ranges=[{"low": Decimal("70"), "high": Decimal("140")}],
    )
    admin = principal_of(lab.users["admin"])
    analyzer, _ = await integration_service.create_instrument(
        session,
        admin,
        InstrumentCreate(
            name=f"c311-{new_id().hex[-6:]}",
            driver="generic-astm",
            transport="tcp-server",
            port=5100,
            branch_id=lab.branch.id,
            settings=settings or {},
            test_map=[MapEntryIn(instrument_code="GLU", test_code=glucose.code)],
        ),
    )
    path = principal_of(lab.users["path"])
    lots = []
    for level, mean, sd in (("1", "100", "4"), ("2", "300", "10")):
        material = await qc_service.create_material(
            session,
            path,
            MaterialCreate(
                name=f"Chem control {new_id().hex[-4:]}", manufacturer="Bio-Rad", level=level
            ),
        )
        lots.append(
            await qc_service.create_lot(
                session,
                path,
                LotCreate(
                    material_id=material.id,
                    lot_number=f"L{level}-2601",
                    expires_on=date.today() + timedelta(days=180),
                    instrument_id=analyzer.id,
                    test_id=glucose.id,
                    control_id=f"QC{level}",
                    target_source=TargetSource.MANUFACTURER,
                    mean=Decimal(mean),
                    sd=Decimal(sd),
                ),
            )
        )
    return Bench(lab, glucose, analyzer, lots[0], lots[1])


async def qc_run(
    session: AsyncSession, bench: Bench, z1: float, z2: float, who: str = "tech"
) -> Recorded:
    """One run of both levels entered by hand at the given z-scores: the second result, the
    run, and the violations of both."""
    caller = bench.who(who)
    first = await qc_service.record_manual(
        session, caller, bench.level1.id, Decimal("100") + Decimal(str(z1)) * 4, None
    )
    second = await qc_service.record_manual(
        session, caller, bench.level2.id, Decimal("300") + Decimal(str(z2)) * 10, None
    )
    assert first.run.id == second.run.id
    return Recorded(second.result, second.run, first.violations + second.violations)


async def patient_result(session: AsyncSession, bench: Bench, value: str = "95") -> Result:
    """A glucose result landed from the analyzer (as integration lands it) for a new order."""
    patient = await create_patient(session, bench.lab.organisation)
    placed = await place_order(session, bench.lab, patient, [bench.glucose])
    report = await integration_service.ingest_results(
        session,
        bench.org,
        bench.analyzer,
        InstrumentMessage(
            dedupe_key=f"test-{new_id().hex}",
            message_type="ASTM-R",
            results=[
                InstrumentResult(
                    accession=placed.sample.accession,
                    instrument_code="GLU",
                    value=value,
                    unit="mg/dL",
                    status="F",
                    completed_at=utcnow().replace(tzinfo=None),
                )
            ],
            raw="H|\\^&\rL|1|N",
        ),
    )
    assert report.exceptions == [], [e.detail for e in report.exceptions]
    [result] = report.results
    return result
