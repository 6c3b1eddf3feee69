"""Give the demo lab an analyzer history to validate autoverification on (CLSI AUTO15).

Lands ``--patients`` kidney-function/electrolyte panels (some patients twice, for delta
checks) from the demo analyzer, each through the real services: the front desk registers and
orders, the sample is collected and received, the analyzer's message lands (as the interface
runtime lands it), and the pathologist verifies everything by hand — the lab before
go-live. About one result in twenty-five is found wrong afterwards and amended with the
reason (a haemolysed sample, a short sample, a clot; the amended value waits for a second
pathologist): the ones autoverification must not release. Then:

    .venv/bin/nidaan autoverify simulate --organisation demo-diagnostics --since 2026-01-01

Run: NIDAAN_MODE=demo [NIDAAN_DATABASE_URL=...] .venv/bin/python scripts/demo_autoverify_history.py
[--patients 120] [--seed 7]   (after `make run` or `nidaan demo seed`; adds to what is there)
"""

from __future__ import annotations

import argparse
import asyncio
import random
from datetime import UTC, datetime

from sqlalchemy import any_, literal, select

from nidaan.auth.models import User
from nidaan.auth.principal import Principal
from nidaan.catalog.service import catalog_service
from nidaan.config import get_settings
from nidaan.demo.lab_day import DEMO_ANALYZER_MAP, DEMO_ANALYZER_NAME
from nidaan.integration.domain import InstrumentMessage, InstrumentResult
from nidaan.integration.models import Instrument
from nidaan.integration.service import integration_service
from nidaan.kit.db import session_scope
from nidaan.kit.ids import new_id
from nidaan.orders.schemas import OrderCreate
from nidaan.orders.service import orders_service
from nidaan.patients.schemas import PatientCreate
from nidaan.patients.service import patients_service
from nidaan.results.service import results_service
from nidaan.samples.models import Sample
from nidaan.samples.service import samples_service
from nidaan.tenancy.models import Branch, Organisation

#: Test code -> (mean, SD, decimals) of a population that is mostly well, some not.
VALUES = {
    "GLUF": (105.0, 30.0, 0),
    "UREA": (32.0, 14.0, 0),
    "CREA": (1.0, 0.35, 2),
    "NA": (139.0, 3.5, 0),
    "K": (4.4, 0.5, 1),
    "CL": (102.0, 3.5, 0),
}
REASONS = [
    "Haemolysed sample: recollected, K re-run",
    "Short sample: re-run after recollection",
    "Clot in the sample probe: re-run",
]


async def _principals(session, organisation: Organisation) -> dict[str, Principal]:  # type: ignore[no-untyped-def]
    found = {}
    for role in ("front_desk", "technician", "pathologist"):
        user = await session.scalar(
            select(User).where(
                User.organisation_id == organisation.id, literal(role) == any_(User.roles)
            )
        )
        found[role] = Principal(
            kind="user",
            id=user.id,
            organisation_id=user.organisation_id,
            roles=frozenset(user.roles),
            label=user.email,
        )
    return found


def _value(code: str, rng: random.Random, previous: str | None) -> str:
    mean, sd, decimals = VALUES[code]
    if previous is not None and rng.random() < 0.9:  # the same person again: close to before
        value = float(previous) * rng.gauss(1.0, 0.05)
    else:
        value = rng.gauss(mean, sd)
    return f"{max(value, 0.1):.{decimals}f}"


async def main(patients: int, seed: int) -> None:
    settings = get_settings()
    rng = random.Random(seed)  # noqa: S311 - demo data
    codes = {test: code for code, test in DEMO_ANALYZER_MAP if test in VALUES}
    landed = corrected = 0
    for number in range(patients):
        visits = 2 if rng.random() < 0.4 else 1
        previous: dict[str, str] = {}
        patient_id = None
        for _ in range(visits):
            async with session_scope(settings) as session:
                organisation = await session.scalar(
                    select(Organisation).where(Organisation.slug == "demo-diagnostics")
                )
                assert organisation is not None, "seed the demo first (make run / nidaan demo seed)"
                staff = await _principals(session, organisation)
                lab = await session.scalar(
                    select(Branch).where(
                        Branch.organisation_id == organisation.id, Branch.code == "CL"
                    )
                )
                analyzer = await session.scalar(
                    select(Instrument).where(
                        Instrument.organisation_id == organisation.id,
                        Instrument.name == DEMO_ANALYZER_NAME,
                    )
                )
                assert lab is not None
                assert analyzer is not None
                if patient_id is None:
                    registered = await patients_service.register(
                        session,
                        staff["front_desk"],
                        PatientCreate(
                            full_name=f"History Patient {number + 1:03d} {new_id().hex[-4:]}",
                            sex=rng.choice(["female", "male"]),
                            age_years=rng.randint(18, 85),
                            registered_at_branch_id=lab.id,
                        ),
                    )
                    patient_id = registered.patient.id
                order = await orders_service.create(
                    session,
                    staff["front_desk"],
                    OrderCreate(patient_id=patient_id, branch_id=lab.id, items=list(VALUES)),
                )
                samples = list(
                    await session.scalars(select(Sample).where(Sample.order_id == order.id))
                )
                order_tests = await orders_service.tests_of(session, staff["technician"], order.id)
                catalogue = await catalog_service.tests_by_ids(
                    session, organisation.id, {t.test_id for t in order_tests}
                )
                code_of = {test_id: test.code for test_id, test in catalogue.items()}
                values: dict[str, str] = {}
                for sample in samples:
                    await samples_service.collect(session, staff["front_desk"], sample.id)
                    await samples_service.receive(
                        session, staff["technician"], sample.id, branch_id=lab.id
                    )
                    items = []
                    for order_test in order_tests:
                        test_code = code_of[order_test.test_id]
                        if order_test.sample_id != sample.id or test_code not in VALUES:
                            continue
                        values[test_code] = _value(test_code, rng, previous.get(test_code))
                        items.append(
                            InstrumentResult(
                                accession=sample.accession,
                                instrument_code=codes[test_code],
                                value=values[test_code],
                                unit=None,
                                flags=("H",) if rng.random() < 0.01 else (),
                                status="F",
                                completed_at=datetime.now(UTC).replace(tzinfo=None),
                            )
                        )
                    if not items:
                        continue
                    report = await integration_service.ingest_results(
                        session,
                        organisation.id,
                        analyzer,
                        InstrumentMessage(
                            dedupe_key=f"history-{new_id().hex}",
                            message_type="ASTM-R",
                            results=items,
                            raw="H|\\^&|||c311^1|||||host|RSUPL^REAL|P|1\rL|1|N",
                        ),
                    )
                    landed += len(report.results)
                    for result in report.results:
                        if result.status == "held":  # a delta hold: the pathologist looked
                            await results_service.release_hold(
                                session, staff["pathologist"], result.id, "Reviewed: plausible"
                            )
                        await results_service.verify(session, staff["pathologist"], result.id)
                        if rng.random() < 0.04:  # found wrong later: amended, with the reason
                            await results_service.correct(
                                session,
                                staff["pathologist"],
                                result.id,
                                _value(code_of[result.test_id], rng, None),
                                None,
                                rng.choice(REASONS),
                            )
                            corrected += 1
                previous = values
    print(
        f"Landed {landed} analyzer results, all verified by the pathologist; "
        f"{corrected} amended afterwards."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.patients, args.seed))
