"""Audit actor value and the response schemas of the audit API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from nidaan.kit.schemas import Schema

ActorKind = Literal["user", "api_key", "system"]


@dataclass(frozen=True)
class AuditActor:
    """Who did it: a user, an API key or the system itself (jobs, migrations, seeding)."""

    kind: str  # "user" | "api_key" | "system"
    id: uuid.UUID | None
    label: str


SYSTEM_ACTOR = AuditActor("system", None, "system")


class AuditEntryOut(Schema):
    id: uuid.UUID = Field(description="Entry id")
    organisation_id: uuid.UUID = Field(description="Organisation the entry belongs to")
    seq: int | None = Field(
        description="Position in the organisation's chain, from 1; empty for the moment "
        "between the change's commit and its chaining",
        examples=[42],
    )
    occurred_at: datetime = Field(description="When the change was recorded (UTC)")
    actor_kind: str = Field(description="user, api_key or system", examples=["user"])
    actor_id: uuid.UUID | None = Field(description="Id of the user or API key; null for system")
    actor_label: str = Field(description="Readable actor name at the time", examples=["Dr A. Rao"])
    action: str = Field(description="What happened", examples=["user.created"])
    entity_type: str = Field(description="Kind of record changed", examples=["user"])
    entity_id: str = Field(description="Id of the record changed")
    changes: dict[str, Any] = Field(
        description='Changed fields only: {"before": {...}, "after": {...}}; secrets redacted',
        examples=[{"before": {"is_active": True}, "after": {"is_active": False}}],
    )
    request_id: str | None = Field(description="Id of the HTTP request or job that did it")
    prev_hash: str | None = Field(description="Hash of the previous entry (64 zeros for the first)")
    hash: str | None = Field(description="SHA-256 over this entry's content and prev_hash")


class AuditBrokenLinkOut(Schema):
    organisation_id: uuid.UUID = Field(description="Organisation whose chain is broken")
    seq: int = Field(description="Sequence number where the break was found")
    entry_id: uuid.UUID | None = Field(
        description="Entry at that point; null when entries are missing at the end"
    )
    reason: str = Field(
        description="Why the link is broken", examples=["hash mismatch: content changed"]
    )


class AuditCheckpointOut(Schema):
    organisation_id: uuid.UUID = Field(description="Organisation whose checkpoints were read")
    checkpoints_checked: int = Field(description="Signed checkpoints compared with the chain")
    entries_checked: int = Field(description="Entries whose hash was compared with them")
    latest_seq: int | None = Field(description="Last entry the newest checkpoint covers")
    latest_head_hash: str | None = Field(description="Hash of that entry, as signed")
    latest_created_at: datetime | None = Field(description="When the newest was signed")
    key_id: str | None = Field(description="Id of the Ed25519 key that signed it")


class AuditVerifyOut(Schema):
    ok: bool = Field(description="True when every chain checked is intact")
    organisations_checked: int = Field(description="Organisations whose chain was walked")
    entries_checked: int = Field(description="Entries whose hash was recomputed")
    first_broken: AuditBrokenLinkOut | None = Field(
        description="First entry that differs (from its chain or from a signed checkpoint)"
    )
    checkpoints: list[AuditCheckpointOut] = Field(
        description="The chain compared with its signed checkpoints kept outside the database"
    )
