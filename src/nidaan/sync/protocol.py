"""Protocol and schema versions, cursors, and upcasting ops queued under older schemas."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
SCHEMA_MIN = 1
SCHEMA_MAX = 2
PULL_LIMIT_DEFAULT = 500
PULL_LIMIT_MAX = 1000
PUSH_LIMIT = 100


@dataclass(frozen=True)
class Cursor:
    """Where a client is in its organisation's change sequence. Opaque to clients."""

    epoch: int
    seq: int
    scope: str

    def encode(self) -> str:
        return f"c1.{self.epoch}.{self.seq}.{self.scope}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        parts = text.split(".")
        if len(parts) != 4 or parts[0] != "c1" or not parts[1].isdigit() or not parts[2].isdigit():
            raise ValueError("not a cursor this server issued; send null to start over")
        return cls(int(parts[1]), int(parts[2]), parts[3])


def scope_tag(branch_ids: Iterable[uuid.UUID] | None) -> str:
    """A short fingerprint of a scope, so a changed scope is noticed and forces a reset."""
    text = "all" if branch_ids is None else ",".join(sorted(str(b) for b in branch_ids))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _v1_to_v2(entity: str, operation: str, data: dict[str, Any]) -> dict[str, Any]:
    # Schema 1 clients called a patient's name "name" and the mobile "phone".
    if entity == "patient":
        renamed = {"name": "full_name", "phone": "mobile"}
        return {renamed.get(key, key): value for key, value in data.items()}
    return data


UPCASTERS: dict[int, Callable[[str, str, dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def upcast(
    schema_version: int, entity: str, operation: str, data: dict[str, Any]
) -> dict[str, Any]:
    """Bring op data from ``schema_version`` up to the current schema, step by step."""
    for version in range(schema_version, SCHEMA_MAX):
        data = UPCASTERS[version](entity, operation, data)
    return data
