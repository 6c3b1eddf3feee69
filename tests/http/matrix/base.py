from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nidaan.auth.enums import Role

ALL = frozenset(Role)


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # with {placeholders} filled from the module's context()
    allowed: frozenset[str]
    body: Any = None  # JSON body; strings may use {n} for a per-test unique suffix
    # Expected status for allowed roles when not simply < 400 (e.g. a PDF not yet rendered).
    ok_statuses: tuple[int, ...] = ()
