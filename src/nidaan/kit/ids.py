"""Identifiers: UUIDv7 primary keys (time-sortable, safe to create offline)."""

import uuid

from uuid6 import uuid7


def new_id() -> uuid.UUID:
    """Return a new UUIDv7 as a standard-library UUID."""
    return uuid.UUID(bytes=uuid7().bytes)
