"""Seed the demo organisations, branches and one user per role. Running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.demo import seed_abdm
from nidaan.appointments.demo import seed_home_collection
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.auth.enums import Role
from nidaan.auth.models import User
from nidaan.auth.schemas import UserCreate
from nidaan.auth.service import auth_service
from nidaan.autoverify.demo import seed_autoverify
from nidaan.catalog.seed import seed_catalog
from nidaan.demo.billing import seed_billing
from nidaan.demo.einvoice import seed_einvoice
from nidaan.demo.lab_day import DEMO_ANALYZER_NAME, follow_demo_analyzer_port, seed_lab_day
from nidaan.notifications.demo import seed_demo_notifications
from nidaan.qc.demo import seed_qc
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Branch, Organisation
from nidaan.tenancy.schemas import BranchCreate
from nidaan.tenancy.service import tenancy_service

DEMO_PASSWORD = "nidaan-demo"
DEMO_ORGANISATION = ("Demo Diagnostics", "demo-diagnostics")
DEMO_PROFILE = {
    "address": "12 FC Road, Shivajinagar, Pune 411005, Maharashtra",
    "phone": "+91 20 2553 0000",
    "email": "reports@demo.example.com",
    "accreditation": "NABL accredited as per ISO 15189:2022 - Certificate MC-0000 (demo)",
}
OTHER_ORGANISATION = ("Other Lab", "other-lab")

DEMO_BRANCHES = [
    BranchCreate(
        code="CL",
        name="Central Laboratory, Pune",
        kind=BranchKind.CENTRAL_LAB,
        address="12 FC Road, Shivajinagar, Pune 411005",
        state="Maharashtra",
    ),
    BranchCreate(
        code="CC1",
        name="Collection Centre, Kothrud",
        kind=BranchKind.COLLECTION_CENTRE,
        address="45 Karve Road, Kothrud, Pune 411038",
        state="Maharashtra",
    ),
    BranchCreate(
        code="CC2",
        name="Collection Centre, Hadapsar",
        kind=BranchKind.COLLECTION_CENTRE,
        address="8 Solapur Road, Hadapsar, Pune 411028",
        state="Maharashtra",
    ),
]
OTHER_BRANCHES = [
    BranchCreate(
        code="CL", name="Other Lab, Chennai", kind=BranchKind.CENTRAL_LAB, state="Tamil Nadu"
    ),
]

DEMO_NAMES = {
    Role.ADMIN: ("Anita Deshmukh", None),
    Role.FRONT_DESK: ("Rahul Patil", None),
    Role.PHLEBOTOMIST: ("Sunita Jadhav", None),
    Role.TECHNICIAN: ("Vikram Kulkarni", "DMLT"),
    Role.PATHOLOGIST: ("Dr. Meera Joshi", "MD (Pathology)"),
    Role.BILLING: ("Farhan Shaikh", None),
    Role.AUDITOR: ("Kavita Rao", "CA"),
}
# Staff who work at one collection centre only, to show branch limits.
BRANCH_LIMITED = {Role.PHLEBOTOMIST: "CC1"}


@dataclass
class SeedResult:
    created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)


def demo_logins() -> list[tuple[str, str]]:
    """(login, password) pairs that the demo prints."""
    logins = [(f"{role}@demo.example.com", DEMO_PASSWORD) for role in Role]
    logins.append(("admin@other.example.com", DEMO_PASSWORD))
    return logins


async def _organisation(
    session: AsyncSession, name: str, slug: str, result: SeedResult
) -> Organisation:
    existing = await session.scalar(select(Organisation).where(Organisation.slug == slug))
    if existing is not None:
        return existing
    result.created.append(f"organisation {name}")
    return await tenancy_service.create_organisation(
        session, name=name, slug=slug, actor=SYSTEM_ACTOR, is_demo=True
    )


async def _branches(
    session: AsyncSession,
    organisation: Organisation,
    wanted: list[BranchCreate],
    result: SeedResult,
) -> dict[str, Branch]:
    rows = await session.scalars(select(Branch).where(Branch.organisation_id == organisation.id))
    by_code = {b.code: b for b in rows}
    for spec in wanted:
        if spec.code not in by_code:
            by_code[spec.code] = await tenancy_service.create_branch_in(
                session, organisation.id, spec, actor=SYSTEM_ACTOR
            )
            result.created.append(f"branch {organisation.slug}/{spec.code}")
    return by_code


async def _user(
    session: AsyncSession, organisation: Organisation, data: UserCreate, result: SeedResult
) -> None:
    if await session.scalar(select(User.id).where(User.email == data.email)):
        return
    await auth_service.create_user_in(session, organisation.id, data)
    result.created.append(f"user {data.email}")


async def seed_demo(session: AsyncSession) -> SeedResult:
    """Create whatever part of the demo data is missing."""
    result = SeedResult()
    demo = await _organisation(session, *DEMO_ORGANISATION, result)
    branches = await _branches(session, demo, DEMO_BRANCHES, result)
    for role in Role:
        name, qualification = DEMO_NAMES[role]
        limited_to = BRANCH_LIMITED.get(role)
        await _user(
            session,
            demo,
            UserCreate(
                email=f"{role}@demo.example.com",
                full_name=name,
                password=DEMO_PASSWORD,
                roles=[role],
                qualification=qualification,
                # Printed under the signatory's name on reports (NABL 112).
                registration_number="MMC 2009/04/1234 (demo)" if role == Role.PATHOLOGIST else None,
                branch_ids=[branches[limited_to].id] if limited_to else [],
            ),
            result,
        )
    for key, value in DEMO_PROFILE.items():
        if getattr(demo, key) is None:
            setattr(demo, key, value)
    if added := await seed_catalog(session, demo.id, SYSTEM_ACTOR):
        result.created.append(f"{added} catalogue tests for {demo.name}")
    result.created += await seed_abdm(session, demo)
    result.created += await seed_lab_day(session, demo)
    result.created += await follow_demo_analyzer_port(session, demo)
    result.created += await seed_demo_notifications(session, demo)
    result.created += await seed_billing(session, demo)
    result.created += await seed_einvoice(session, demo)
    result.created += await seed_qc(session, demo, DEMO_ANALYZER_NAME)
    result.created += await seed_autoverify(session, demo)
    result.created += await seed_home_collection(session, demo)
    other = await _organisation(session, *OTHER_ORGANISATION, result)
    await _branches(session, other, OTHER_BRANCHES, result)
    await _user(
        session,
        other,
        UserCreate(
            email="admin@other.example.com",
            full_name="Other Admin",
            password=DEMO_PASSWORD,
            roles=[Role.ADMIN],
        ),
        result,
    )
    if added := await seed_catalog(session, other.id, SYSTEM_ACTOR):
        result.created.append(f"{added} catalogue tests for {other.name}")
    return result


async def demo_data_present(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(Organisation.id).where(Organisation.is_demo).limit(1)))
