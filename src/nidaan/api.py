"""Every module's router, mounted under /api/v1."""

from fastapi import APIRouter

from nidaan.audit.endpoints import router as audit_router
from nidaan.auth.endpoints import router as auth_router
from nidaan.tenancy.endpoints import router as tenancy_router

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth_router)
api_router.include_router(tenancy_router)
api_router.include_router(audit_router)
