"""Who is calling: a user or an API key, always inside one organisation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from nidaan.audit.schemas import AuditActor


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
