"""Organisations and branches, always seen from inside one organisation."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.kit.db import get_in_organisation
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams, paginate
from nidaan.tenancy.errors import BranchCodeTaken, OrganisationSlugTaken
from nidaan.tenancy.models import Branch, Organisation
from nidaan.tenancy.schemas import BranchCreate, BranchUpdate, OrganisationUpdate

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,78}[a-z0-9]")


class Caller(Protocol):
    """What tenancy needs to know about the caller (auth's Principal satisfies it)."""

    @property
    def organisation_id(self) -> uuid.UUID: ...

    @property
    def actor(self) -> AuditActor: ...

    def require_reach(self, branch_ids: Iterable[uuid.UUID | None], entity: str) -> None: ...


def _branch_snapshot(branch: Branch) -> dict[str, Any]:
    return {
        "code": branch.code,
        "name": branch.name,
        "kind": branch.kind,
        "address": branch.address,
        "state": branch.state,
        "is_active": branch.is_active,
    }


class TenancyService:
    async def get_organisation_unscoped(
        self, session: AsyncSession, organisation_id: uuid.UUID
    ) -> Organisation:
        """Load by id without a caller (login, jobs); never expose the result across tenants."""
        organisation = await session.get(Organisation, organisation_id)
        if organisation is None:
            raise NotFound("No such organisation.", entity="organisation")
        return organisation

    async def find_organisation(
        self, session: AsyncSession, id_or_slug: str
    ) -> Organisation | None:
        """Look up by id or slug (CLI and seed; never from a tenant's request)."""
        try:
            return await session.get(Organisation, uuid.UUID(id_or_slug))
        except ValueError:
            return await session.scalar(select(Organisation).where(Organisation.slug == id_or_slug))

    async def create_organisation(
        self,
        session: AsyncSession,
        *,
        name: str,
        slug: str,
        actor: AuditActor,
        is_demo: bool = False,
    ) -> Organisation:
        """Create a tenant (installation-level operation: CLI or demo seed)."""
        if not SLUG.fullmatch(slug):
            raise InvalidInput(
                "The slug must be lower-case letters, digits and dashes, 2 to 80 long."
            )
        if await session.scalar(select(Organisation.id).where(Organisation.slug == slug)):
            raise OrganisationSlugTaken(f"An organisation with slug {slug!r} already exists.")
        organisation = Organisation(name=name.strip(), slug=slug, is_demo=is_demo)
        session.add(organisation)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=organisation.id,
            actor=actor,
            action="organisation.created",
            entity_type="organisation",
            entity_id=organisation.id,
            after={"name": organisation.name, "slug": slug, "is_demo": is_demo},
        )
        return organisation

    async def set_organisation_active(
        self, session: AsyncSession, organisation: Organisation, *, active: bool, actor: AuditActor
    ) -> bool:
        """Disable or re-enable a tenant (installation-level: CLI). A disabled organisation's
        tokens, refresh tokens and API keys stop working at the next request. Returns whether
        anything changed."""
        if organisation.is_active == active:
            return False
        organisation.is_active = active
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=organisation.id,
            actor=actor,
            action="organisation.enabled" if active else "organisation.disabled",
            entity_type="organisation",
            entity_id=organisation.id,
            before={"is_active": not active},
            after={"is_active": active},
        )
        return True

    async def get_own_organisation(self, session: AsyncSession, caller: Caller) -> Organisation:
        return await self.get_organisation_unscoped(session, caller.organisation_id)

    async def list_branches(
        self, session: AsyncSession, caller: Caller, page: PageParams
    ) -> tuple[list[Branch], int]:
        statement = (
            select(Branch)
            .where(Branch.organisation_id == caller.organisation_id)
            .order_by(Branch.code)
        )
        return await paginate(session, statement, page)

    async def get_branch(
        self, session: AsyncSession, caller: Caller, branch_id: uuid.UUID
    ) -> Branch:
        # The identity map first: a request that read the branch already pays no query.
        branch = await get_in_organisation(session, Branch, branch_id, caller.organisation_id)
        if branch is None:
            raise NotFound("No such branch in your organisation.", entity="branch")
        return branch

    async def create_branch(
        self, session: AsyncSession, caller: Caller, data: BranchCreate
    ) -> Branch:
        return await self.create_branch_in(
            session, caller.organisation_id, data, actor=caller.actor
        )

    async def create_branch_in(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        data: BranchCreate,
        *,
        actor: AuditActor,
    ) -> Branch:
        taken = await session.scalar(
            select(Branch.id).where(
                Branch.organisation_id == organisation_id, Branch.code == data.code
            )
        )
        if taken:
            raise BranchCodeTaken(f"Branch code {data.code} is already used in this organisation.")
        branch = Branch(organisation_id=organisation_id, **data.model_dump())
        session.add(branch)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor,
            action="branch.created",
            entity_type="branch",
            entity_id=branch.id,
            after=_branch_snapshot(branch),
        )
        return branch

    async def update_own_organisation(
        self, session: AsyncSession, caller: Caller, data: OrganisationUpdate
    ) -> Organisation:
        organisation = await self.get_own_organisation(session, caller)
        fields = ("name", "address", "phone", "email", "accreditation")
        before = {field: getattr(organisation, field) for field in fields}
        for field, value in data.model_dump(exclude_unset=True).items():
            if value is None and field == "name":
                continue
            setattr(organisation, field, value.strip() or None if isinstance(value, str) else value)
        if not organisation.name:
            organisation.name = before["name"]
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="organisation.updated",
            entity_type="organisation",
            entity_id=organisation.id,
            before=before,
            after={field: getattr(organisation, field) for field in fields},
        )
        return organisation

    async def update_branch(
        self, session: AsyncSession, caller: Caller, branch_id: uuid.UUID, data: BranchUpdate
    ) -> Branch:
        branch = await self.get_branch(session, caller, branch_id)
        caller.require_reach([branch.id], "branch")
        before = _branch_snapshot(branch)
        for field, value in data.model_dump(exclude_unset=True).items():
            if value is None and field in {"name", "is_active"}:
                continue
            setattr(branch, field, value)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="branch.updated",
            entity_type="branch",
            entity_id=branch.id,
            before=before,
            after=_branch_snapshot(branch),
        )
        return branch

    async def check_branches_belong(
        self, session: AsyncSession, organisation_id: uuid.UUID, branch_ids: Sequence[uuid.UUID]
    ) -> None:
        if not branch_ids:
            return
        found = set(
            await session.scalars(
                select(Branch.id).where(
                    Branch.organisation_id == organisation_id, Branch.id.in_(branch_ids)
                )
            )
        )
        missing = [str(b) for b in branch_ids if b not in found]
        if missing:
            raise InvalidInput(
                "Unknown branch ids for this organisation.", field="branch_ids", unknown=missing
            )


tenancy_service = TenancyService()
