"""Events the auth module publishes (notifications tells the lab's admins)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from nidaan.events.base import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoginLockedOut(DomainEvent):
    """Logins were locked out after repeated failures: one client address (password
    spraying across accounts) or one account (password guessing)."""

    name = "auth.login_locked_out"

    kind: str  # "client_address" or "account"
    client_address: str | None
    user_id: uuid.UUID | None
    failures: int
    window_minutes: int
    locked_until: datetime
