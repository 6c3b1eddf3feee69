"""Every module's router, mounted under /api/v1 (and public routes at the root)."""

from __future__ import annotations

import importlib
import importlib.util

from fastapi import APIRouter
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

#: Modules with an ``endpoints.py`` exposing ``router`` (and optionally ``public_router``,
#: mounted outside /api/v1, e.g. the report verification page). Order is the docs' order.
MODULES = [
    "auth",
    "tenancy",
    "catalog",
    "patients",
    "orders",
    "samples",
    "results",
    "integration",
    "sync",
    "reports",
    "audit",
    "fhir",
    "abdm",
    "files",
    "notifications",
    "billing",
    "payments",
    "analytics",
    "qc",
    "autoverify",
    "einvoice",
    "appointments",
    "compliance",
]


def literal_leads(routes: list[BaseRoute]) -> frozenset[str] | None:
    """The literal start of each route's path (up to its first parameter), minimal ones only;
    None when some route starts with a parameter or is not a plain route (no gate then)."""
    leads: list[str] = []
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path.startswith("/") or hasattr(route, "routes"):
            return None
        lead = path.split("{", 1)[0]
        if lead in ("", "/"):
            return None
        leads.append(lead)
    kept: list[str] = []
    for lead in sorted(set(leads), key=len):
        if not any(shorter in lead for shorter in kept):
            kept.append(lead)
    return frozenset(kept)


class GatedRouter(APIRouter):
    """One module's router behind a cheap substring test.

    FastAPI tries every route of every included router in turn, twice per request (match,
    then handle), with per-candidate bookkeeping: with ~300 routes that was most of the cost
    of a request that does no work. A route can only match a path that contains its literal
    start, so a module none of whose starts occur in the path is answered "no match" at once.
    Matching inside a module, and everything else about its routes, is FastAPI's own.
    """

    def __init__(self, module_router: APIRouter) -> None:
        super().__init__()
        self.include_router(module_router)
        self._leads = literal_leads(list(module_router.routes))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self._leads is not None:
            path = scope["path"]
            if not any(lead in path for lead in self._leads):
                return Match.NONE, {}
        return super().matches(scope)


api_router = APIRouter(prefix="/api/v1")
public_router = APIRouter()

for _name in MODULES:
    _path = f"nidaan.{_name}.endpoints"
    # A module still being built has no endpoints yet; an import error inside one is raised.
    if importlib.util.find_spec(_path) is None:
        continue
    _module = importlib.import_module(_path)
    api_router.include_router(GatedRouter(_module.router))
    if hasattr(_module, "public_router"):
        public_router.include_router(GatedRouter(_module.public_router))
