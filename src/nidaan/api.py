"""Every module's router, mounted under /api/v1 (and public routes at the root)."""

from __future__ import annotations

import importlib
import importlib.util

from fastapi import APIRouter

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

api_router = APIRouter(prefix="/api/v1")
public_router = APIRouter()

for _name in MODULES:
    _path = f"nidaan.{_name}.endpoints"
    # A module still being built has no endpoints yet; an import error inside one is raised.
    if importlib.util.find_spec(_path) is None:
        continue
    _module = importlib.import_module(_path)
    api_router.include_router(_module.router)
    if hasattr(_module, "public_router"):
        public_router.include_router(_module.public_router)
