"""A demo lab day: patients and orders in every state, made through the real services.

Run once per organisation (skipped when it already has orders): each step is done by the
demo user whose role does it (front desk registers and orders, the phlebotomist collects,
the technician receives and enters, the pathologist verifies), so the audit trail, events
and jobs look exactly like a real day's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.models import User
from nidaan.auth.principal import Principal
from nidaan.catalog.domain import select_range
from nidaan.catalog.enums import ResultType
from nidaan.catalog.models import CatalogTest
from nidaan.catalog.service import catalog_service
from nidaan.config import get_settings
from nidaan.integration.models import Instrument
from nidaan.integration.schemas import InstrumentCreate, InstrumentUpdate, MapEntryIn
from nidaan.integration.service import integration_service
from nidaan.orders.models import Order
from nidaan.orders.schemas import OrderCreate
from nidaan.orders.service import orders_service
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientCreate
from nidaan.patients.service import patients_service
from nidaan.results.service import results_service
from nidaan.samples.models import Sample
from nidaan.samples.schemas import ManifestCreate
from nidaan.samples.service import samples_service
from nidaan.tenancy.models import Branch, Organisation


@dataclass(frozen=True)
class Staff:
    front_desk: Principal
    phlebotomist: Principal
    technician: Principal
    pathologist: Principal


@dataclass(frozen=True)
class DemoPatient:
    key: str
    data: PatientCreate


PATIENTS = [
    DemoPatient(
        "sunita",
        PatientCreate(
            full_name="Sunita Devi Sharma",
            sex="female",
            date_of_birth=date(1968, 3, 14),
            mobile="9876543210",
            email="sunita.sharma@example.com",
            preferred_language="hi",
            city="Pune",
            state="Maharashtra",
            pincode="411038",
            referring_doctor="Dr. Anil Kulkarni",
        ),
    ),
    DemoPatient(
        "rohan",
        PatientCreate(
            full_name="Rohan Mehta",
            sex="male",
            age_years=52,
            mobile="9822012345",
            city="Pune",
            state="Maharashtra",
            referring_doctor="Dr. Priya Nair",
        ),
    ),
    DemoPatient(
        "fatima",
        PatientCreate(
            full_name="Fatima Shaikh",
            sex="female",
            date_of_birth=date(1990, 11, 2),
            mobile="9890011122",
            city="Pune",
            state="Maharashtra",
            pregnant=True,
        ),
    ),
    DemoPatient(
        "arjun",
        PatientCreate(
            full_name="Arjun Patil",
            sex="male",
            age_years=7,
            mobile="9765432109",
            preferred_language="hi",
            city="Pune",
            state="Maharashtra",
            referring_doctor="Dr. S. Deshpande (Paediatrics)",
        ),
    ),
    DemoPatient(
        "lakshmi",
        PatientCreate(
            full_name="Lakshmi Iyer",
            sex="female",
            date_of_birth=date(1955, 6, 30),
            mobile="9845098450",
            referring_doctor="Dr. Priya Nair",
            city="Pune",
            state="Maharashtra",
        ),
    ),
    DemoPatient(
        "vikas",
        PatientCreate(
            full_name="Vikas Joshi",
            sex="male",
            date_of_birth=date(1979, 1, 21),
            mobile="9923456780",
            city="Pune",
            state="Maharashtra",
        ),
    ),
    # Registered twice at two centres with the same mobile: the second is flagged, not merged.
    DemoPatient(
        "meena",
        PatientCreate(
            full_name="Meena Kulkarni",
            sex="female",
            date_of_birth=date(1984, 9, 9),
            mobile="9850123456",
            city="Pune",
            state="Maharashtra",
        ),
    ),
    DemoPatient(
        "meena-again",
        PatientCreate(
            full_name="Meena Kulkarni",
            sex="female",
            date_of_birth=date(1984, 9, 9),
            mobile="+91 98501 23456",
            city="Pune",
            state="Maharashtra",
        ),
    ),
]

# The demo analyzer: Roche-style application codes for the chemistry tests it runs. It
# listens on NIDAAN_DEMO_ANALYZER_PORT (default 5100).
DEMO_ANALYZER_NAME = "cobas c311 (demo)"
DEMO_ANALYZER_MAP = [
    ("685", "GLUF"),
    ("690", "CREA"),
    ("418", "UREA"),
    ("989", "NA"),
    ("990", "K"),
    ("991", "CL"),
    ("687", "CHOL"),
    ("781", "TG"),
    ("798", "HDL"),
]

# Values that make the demo interesting; everything else gets a value inside its range.
SPECIAL_VALUES = {
    ("rohan", "HBA1C"): "7.9",
    ("rohan", "GLUF"): "142",
    ("lakshmi", "K"): "6.8",  # critical: an alert waits for someone to phone it through
    ("sunita", "HB"): "10.9",
    ("sunita", "CHOL"): "236",
}


def _principal(user: User) -> Principal:
    return Principal(
        kind="user",
        id=user.id,
        organisation_id=user.organisation_id,
        roles=frozenset(user.roles),
        label=user.email,
    )


async def _staff(session: AsyncSession, organisation: Organisation) -> Staff | None:
    users = {
        u.roles[0]: u
        for u in await session.scalars(select(User).where(User.organisation_id == organisation.id))
    }
    needed = ("front_desk", "phlebotomist", "technician", "pathologist")
    if any(role not in users for role in needed):
        return None
    return Staff(*(_principal(users[role]) for role in needed))


def _normal_value(test: CatalogTest, ranges: list, facts) -> str | None:  # type: ignore[no-untyped-def]
    """A plausible in-range value for ``test`` (None for calculated tests)."""
    if test.result_type == ResultType.CALCULATED:
        return None
    if test.result_type == ResultType.CODED:
        normal = [c for c in test.choices if not c.get("abnormal")]
        return str((normal or test.choices)[0]["code"])
    if test.result_type == ResultType.TEXT:
        return "Nil"
    chosen = select_range(ranges, sex=facts.sex, age_days=facts.age_days, pregnant=facts.pregnant)
    if chosen is not None and chosen.low is not None and chosen.high is not None:
        middle = (chosen.low + chosen.high) / 2
    elif chosen is not None and chosen.high is not None:
        middle = chosen.high * Decimal("0.7")
    elif chosen is not None and chosen.low is not None:
        middle = chosen.low * Decimal("1.3")
    else:
        middle = Decimal(1)
    return str(round(middle, test.decimals))


async def _enter_all(
    session: AsyncSession, staff: Staff, order: Order, patient_key: str, *, verify: bool
) -> None:
    tests = await orders_service.tests_of(session, staff.technician, order.id)
    catalogue = await catalog_service.tests_by_ids(
        session, order.organisation_id, [t.test_id for t in tests]
    )
    ranges = await catalog_service.ranges_for_tests(session, list(catalogue))
    patient = await patients_service.get(session, staff.technician, order.patient_id)
    facts = patients_service.facts(patient, order.created_at)
    entered = []
    for order_test in tests:
        test = catalogue[order_test.test_id]
        value = SPECIAL_VALUES.get((patient_key, test.code)) or _normal_value(
            test, ranges[test.id], facts
        )
        if value is None:
            continue
        entered.append(
            await results_service.enter(session, staff.technician, order_test.id, value, None)
        )
    if verify:
        for result in await results_service.list_for_order(session, staff.pathologist, order.id):
            if result.status == "entered":
                await results_service.verify(session, staff.pathologist, result.id)


async def _samples(session: AsyncSession, order: Order) -> list[Sample]:
    return list(await session.scalars(select(Sample).where(Sample.order_id == order.id)))


async def seed_lab_day(session: AsyncSession, organisation: Organisation) -> list[str]:
    """Create the demo day once; returns what it created."""
    has_orders = await session.scalar(
        select(func.count()).select_from(Order).where(Order.organisation_id == organisation.id)
    )
    staff = await _staff(session, organisation)
    if has_orders or staff is None:
        return []
    branches = {
        b.code: b
        for b in await session.scalars(
            select(Branch).where(Branch.organisation_id == organisation.id)
        )
    }
    lab, cc1, cc2 = branches["CL"], branches["CC1"], branches["CC2"]
    created: list[str] = []
    patients: dict[str, Patient] = {}
    for demo in PATIENTS:
        data = demo.data.model_copy(update={"registered_at_branch_id": cc1.id})
        registration = await patients_service.register(session, staff.front_desk, data)
        patients[demo.key] = registration.patient
        created.append(f"patient {registration.patient.full_name}")

    async def order(key: str, items: list[str], branch: Branch, **extra: object) -> Order:
        placed = await orders_service.create(
            session,
            staff.front_desk,
            OrderCreate(patient_id=patients[key].id, branch_id=branch.id, items=items, **extra),
        )
        created.append(f"order {placed.order_number} for {patients[key].full_name}")
        return placed

    async def collect_and_send(placed: Order, *, via_manifest_from: Branch | None) -> list[Sample]:
        """Collect the order's tubes and, from a centre, dispatch them on a manifest."""
        samples = await _samples(session, placed)
        for sample in samples:
            # The phlebotomist works at CC1 only; elsewhere the front desk collects.
            collector = staff.phlebotomist if via_manifest_from is cc1 else staff.front_desk
            await samples_service.collect(session, collector, sample.id)
        if via_manifest_from is not None:
            manifest, _ = await samples_service.create_manifest(
                session,
                staff.front_desk,
                ManifestCreate(
                    from_branch_id=via_manifest_from.id,
                    to_branch_id=lab.id,
                    courier="Demo courier",
                    accessions=[s.accession for s in samples],
                ),
            )
            await samples_service.dispatch_manifest(session, staff.front_desk, manifest.id)
        return samples

    async def collect_and_receive(placed: Order, *, via_manifest_from: Branch | None) -> None:
        for sample in await collect_and_send(placed, via_manifest_from=via_manifest_from):
            await samples_service.receive(session, staff.technician, sample.id, branch_id=lab.id)

    # 1. Verified and reported (Hindi report): the worker renders the PDF.
    sunita = await order("sunita", ["CBC", "KFT", "LIPID"], cc1)
    await collect_and_receive(sunita, via_manifest_from=cc1)
    await _enter_all(session, staff, sunita, "sunita", verify=True)
    # 2. Entered, waiting for the pathologist (high HbA1c).
    rohan = await order("rohan", ["DIABETES", "THYROID"], cc1, priority="urgent")
    await collect_and_receive(rohan, via_manifest_from=cc1)
    await _enter_all(session, staff, rohan, "rohan", verify=False)
    # 3. A critical potassium: open critical alert.
    lakshmi = await order("lakshmi", ["ELECTROLYTES", "CREA"], lab, priority="stat")
    await collect_and_receive(lakshmi, via_manifest_from=None)
    await _enter_all(session, staff, lakshmi, "lakshmi", verify=False)
    # 4. Received at the lab, waiting for result entry.
    await collect_and_receive(await order("arjun", ["CBC"], cc1), via_manifest_from=cc1)
    # 5. Collected at CC2 and on its way in a dispatched manifest.
    await collect_and_send(await order("vikas", ["LFT"], cc2), via_manifest_from=cc2)
    # 6. Ordered, waiting for collection at CC1.
    await order("fatima", ["CBC", "THYROID"], cc1)
    # 7. A chemistry analyzer at the lab, listening for the analyzer simulator.
    admin = await _admin(session, organisation)
    if admin is not None:
        await integration_service.create_instrument(
            session,
            admin,
            InstrumentCreate(
                name=DEMO_ANALYZER_NAME,
                driver="roche-cobas",
                transport="tcp-server",
                host="127.0.0.1",
                port=get_settings().demo_analyzer_port,
                branch_id=lab.id,
                test_map=[
                    MapEntryIn(instrument_code=code, test_code=test)
                    for code, test in DEMO_ANALYZER_MAP
                ],
            ),
        )
        created.append(
            f"instrument {DEMO_ANALYZER_NAME} on port {get_settings().demo_analyzer_port}"
        )
    return created


async def follow_demo_analyzer_port(session: AsyncSession, organisation: Organisation) -> list[str]:
    """Move the demo analyzer to ``NIDAAN_DEMO_ANALYZER_PORT`` when the setting changed since
    the demo was seeded (the running interfaces pick the change up)."""
    port = get_settings().demo_analyzer_port
    instrument = await session.scalar(
        select(Instrument).where(
            Instrument.organisation_id == organisation.id, Instrument.name == DEMO_ANALYZER_NAME
        )
    )
    admin = await _admin(session, organisation)
    if instrument is None or admin is None or instrument.port == port:
        return []
    await integration_service.update_instrument(
        session, admin, instrument.id, InstrumentUpdate(version=instrument.version, port=port)
    )
    return [f"instrument {DEMO_ANALYZER_NAME} moved to port {port}"]


def demo_analyzer_banner(port: int) -> str:
    """What `make run` prints about the demo analyzer."""
    return (
        f"Demo analyzer ({DEMO_ANALYZER_NAME}, ASTM) listens on 127.0.0.1:{port} "
        "(NIDAAN_DEMO_ANALYZER_PORT). Play it with:\n"
        f"  .venv/bin/nidaan analyzer-sim --driver roche-cobas --port {port} "
        "--upload <accession> --codes 690,418"
    )


async def _admin(session: AsyncSession, organisation: Organisation) -> Principal | None:
    user = await session.scalar(
        select(User).where(User.organisation_id == organisation.id, User.roles.any("admin"))
    )
    return _principal(user) if user is not None else None
