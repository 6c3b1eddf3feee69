"""The organisation the harness runs against: a central lab, two collection centres, a test in
the catalogue, and one user per simulated device (each device is its own person and branch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nidaan.tenancy.enums import BranchKind
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.objects import bearer_for, create_branch, create_organisation, create_user


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    role: str
    branch: str | None  # "cc1", "cc2" or None (lab-wide)
    user_branches: tuple[str, ...]
    skew_ms: int = 0
    schema: int = 2


DAY_MS = 86_400_000

# At least 8 devices (issue 5): desks at both centres, a phlebotomist, lab technicians, an admin,
# a pathologist, and a "sleeper" that stays offline past the tombstone horizon.
DEVICES = (
    DeviceSpec("desk1a", "front_desk", "cc1", ("cc1",), schema=1),
    DeviceSpec("desk1b", "front_desk", "cc1", ("cc1",), skew_ms=DAY_MS),  # far future: clamped
    DeviceSpec("desk2a", "front_desk", "cc2", ("cc1", "cc2"), skew_ms=-DAY_MS),
    DeviceSpec("desk2b", "front_desk", "cc2", ("cc2",), schema=1),
    DeviceSpec("phleb1", "phlebotomist", "cc1", ("cc1",)),
    DeviceSpec("tech_a", "technician", None, ()),
    DeviceSpec("tech_b", "technician", None, (), skew_ms=-DAY_MS),
    DeviceSpec("admin", "admin", None, ()),
    DeviceSpec("path", "pathologist", None, ()),
    DeviceSpec("sleeper", "front_desk", "cc1", ("cc1",)),
)


@dataclass
class World:
    organisation_id: str
    branches: dict[str, str]  # "lab" | "cc1" | "cc2" -> id
    test_code: str
    emails: dict[str, str]  # device name -> e-mail
    pathologist_headers: dict[str, str]
    admin_headers: dict[str, str]

    def branch(self, key: str | None) -> str | None:
        return None if key is None else self.branches[key]


async def build_world(committing_session: Any) -> World:
    async with committing_session() as session:
        organisation = await create_organisation(session)
        lab = await create_branch(session, organisation, kind=BranchKind.CENTRAL_LAB)
        cc1 = await create_branch(session, organisation)
        cc2 = await create_branch(session, organisation)
        by_key = {"lab": lab, "cc1": cc1, "cc2": cc2}
        test = await create_catalog_test(session, organisation)
        emails: dict[str, str] = {}
        headers: dict[str, dict[str, str]] = {}
        for spec in DEVICES:
            user = await create_user(
                session,
                organisation,
                roles=(spec.role,),
                branches=[by_key[b] for b in spec.user_branches],
            )
            emails[spec.name] = user.email
            headers[spec.name] = bearer_for(user)
        return World(
            organisation_id=str(organisation.id),
            branches={k: str(v.id) for k, v in by_key.items()},
            test_code=test.code,
            emails=emails,
            pathologist_headers=headers["path"],
            admin_headers=headers["admin"],
        )
