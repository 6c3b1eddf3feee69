from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nidaan.auth.enums import Role

ALL = frozenset(Role)


def fill_body(value: Any, **params: str) -> Any:
    """A case's body with {placeholders} filled in every string, nested ones too."""
    if isinstance(value, str):
        return value.format(**params)
    if isinstance(value, dict):
        return {k: fill_body(v, **params) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_body(v, **params) for v in value]
    return value


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # with {placeholders} filled from the module's context()
    allowed: frozenset[str]
    body: Any = None  # JSON body; strings may use {n} for a per-test unique suffix
    # Expected status for allowed roles when not simply < 400 (e.g. a PDF not yet rendered).
    ok_statuses: tuple[int, ...] = ()
