"""The lab's verified history as panels for training the second opinion."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.autoverify.second_opinion import DEFAULT_ANALYTES, PanelCase
from nidaan.catalog.models import CatalogTest
from nidaan.patients.models import Patient
from nidaan.results.enums import ResultStatus
from nidaan.results.models import Result


async def verified_panels(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    analytes: Sequence[str] = DEFAULT_ANALYTES,
    *,
    minimum_analytes: int | None = None,
) -> list[PanelCase]:
    """One case per sample with at least half the panel verified (current versions): its
    values, the same patient's previous sample's values, age and sex at the time."""
    wanted = minimum_analytes or (len(analytes) + 1) // 2
    rows = (
        await session.execute(
            select(
                Result.sample_id,
                Result.patient_id,
                Result.verified_at,
                Result.value_numeric,
                CatalogTest.code,
            )
            .join(CatalogTest, CatalogTest.id == Result.test_id)
            .where(
                Result.organisation_id == organisation_id,
                Result.is_current.is_(True),
                Result.status == ResultStatus.VERIFIED,
                Result.value_numeric.is_not(None),
                CatalogTest.code.in_(list(analytes)),
            )
            .order_by(Result.verified_at)
        )
    ).all()
    samples: dict[uuid.UUID, dict[str, float]] = {}
    owner: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
    for sample_id, patient_id, verified_at, value, code in rows:
        if sample_id is None:
            continue
        samples.setdefault(sample_id, {})[code] = float(value)
        owner.setdefault(sample_id, (patient_id, verified_at))
    patients = {
        p.id: p
        for p in await session.scalars(
            select(Patient).where(
                Patient.organisation_id == organisation_id,
                Patient.id.in_({patient for patient, _ in owner.values()}),
            )
        )
    }
    cases: list[PanelCase] = []
    last: dict[uuid.UUID, dict[str, float]] = {}
    for sample_id in sorted(samples, key=lambda s: owner[s][1]):
        patient_id, at = owner[sample_id]
        values = samples[sample_id]
        if len(values) >= wanted:
            patient = patients.get(patient_id)
            age = None
            if patient is not None and patient.date_of_birth is not None:
                age = (at.date() - patient.date_of_birth).days / 365.25
            cases.append(
                PanelCase(
                    values, dict(last.get(patient_id, {})), age, patient.sex if patient else None
                )
            )
        last[patient_id] = {**last.get(patient_id, {}), **values}
    return cases
