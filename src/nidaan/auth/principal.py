"""Who is calling: a user or an API key, always inside one organisation."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from nidaan.audit.schemas import AuditActor
from nidaan.auth.errors import OutsideYourBranches


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" or "api_key"
    id: uuid.UUID
    organisation_id: uuid.UUID
    roles: frozenset[str]
    label: str
    # None means "every branch of the organisation".
    branch_ids: frozenset[uuid.UUID] | None = None

    @property
    def actor(self) -> AuditActor:
        return AuditActor(kind=self.kind, id=self.id, label=self.label)

    @property
    def key(self) -> str:
        """Stable identity for per-caller records such as idempotency keys."""
        return f"{self.kind}:{self.id}"

    def has_any_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def may_use_branch(self, branch_id: uuid.UUID) -> bool:
        return self.branch_ids is None or branch_id in self.branch_ids

    def reaches(self, branch_ids: Iterable[uuid.UUID | None]) -> bool:
        """Whether a record kept at ``branch_ids`` (ordered, collected, sent or analysed
        there) is within the caller's branches."""
        if self.branch_ids is None:
            return True
        return any(b in self.branch_ids for b in branch_ids if b is not None)

    def require_reach(self, branch_ids: Iterable[uuid.UUID | None], entity: str) -> None:
        """Refuse (403 ``branch_not_allowed``) a record of branches the caller does not
        work at; every surface (REST, GraphQL, sync) applies the same rule."""
        if not self.reaches(branch_ids):
            raise OutsideYourBranches(
                f"This {entity} belongs to a branch you do not work at.", entity=entity
            )
