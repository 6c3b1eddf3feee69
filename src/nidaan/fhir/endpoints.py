"""The read-only FHIR R4 API at ``/fhir``: JSON, bearer token (or API key), one organisation.

FHIR clients expect FHIR's own error shape, so every refusal here is an OperationOutcome
(the protocol's refusal, as HL7 gets an ACK) rather than a problem document.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan import __version__
from nidaan.auth.dependencies import require_roles
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.deps import get_session
from nidaan.fhir.service import fhir_service
from nidaan.fhir.terminology import PROFILE
from nidaan.kit.errors import NidaanError, NotFound
from nidaan.kit.time import utcnow

FHIR_JSON = "application/fhir+json"
READERS = require_roles(
    Role.ADMIN, Role.FRONT_DESK, Role.TECHNICIAN, Role.PATHOLOGIST, Role.AUDITOR
)
_ISSUE_CODES = {401: "login", 403: "forbidden", 404: "not-found", 422: "invalid", 409: "conflict"}


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        import json

        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def operation_outcome(status: int, code: str, detail: str) -> FhirResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": _ISSUE_CODES.get(status, "processing"),
                "details": {"coding": [{"system": "https://nidaan.dev/problems", "code": code}]},
                "diagnostics": detail,
            }
        ],
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return FhirResponse(body, status_code=status, headers=headers)


class FhirRoute(APIRoute):
    """Render our errors (auth included) as OperationOutcome."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NidaanError as exc:
                return operation_outcome(exc.status_code, exc.code, exc.detail)
            except RequestValidationError as exc:
                fields = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                    for e in exc.errors()
                )
                return operation_outcome(400, "invalid_search", f"Invalid parameters: {fields}")

        return route


router = APIRouter()  # nothing under /api/v1
public_router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute)


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.rsplit("/", 1)[-1])
    except ValueError:
        raise NotFound(f"No such {what}.", entity=what) from None


def _searchset(request: Request, resources: list[dict[str, Any]]) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": utcnow().isoformat(timespec="milliseconds")},
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {
                "fullUrl": f"{base}/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


@public_router.get("/metadata", response_class=FhirResponse, operation_id="fhir:metadata")
async def capability_statement(request: Request) -> FhirResponse:
    """What this FHIR server offers (public, as FHIR servers do; no patient data)."""
    base = str(request.base_url).rstrip("/") + "/fhir"
    read = [{"code": "read"}]
    search = [{"code": "read"}, {"code": "search-type"}]
    return FhirResponse(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": utcnow().date().isoformat(),
            "kind": "instance",
            "software": {"name": "Nidaan LIS", "version": __version__},
            "implementation": {"description": "Nidaan FHIR R4 read API", "url": base},
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "service": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "restful-security-service",
                                        "code": "OAuth",
                                    }
                                ]
                            }
                        ],
                        "description": "Authorization: Bearer <access token or API key>",
                    },
                    "resource": [
                        {"type": "Patient", "profile": PROFILE["Patient"], "interaction": read},
                        {
                            "type": "DiagnosticReport",
                            "profile": PROFILE["DiagnosticReport"],
                            "interaction": search,
                            "searchParam": [{"name": "patient", "type": "reference"}],
                        },
                        {
                            "type": "Observation",
                            "profile": PROFILE["Observation"],
                            "interaction": [{"code": "search-type"}],
                            "searchParam": [
                                {"name": "patient", "type": "reference"},
                                {"name": "code", "type": "token"},
                            ],
                        },
                    ],
                }
            ],
        }
    )


@public_router.get(
    "/Patient/{patient_id}", response_class=FhirResponse, operation_id="fhir:patient"
)
async def read_patient(
    patient_id: str,
    principal: Principal = Depends(READERS),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FhirResponse:
    return FhirResponse(
        await fhir_service.patient(session, principal, _uuid(patient_id, "Patient"))
    )


@public_router.get(
    "/DiagnosticReport/{report_id}", response_class=FhirResponse, operation_id="fhir:report"
)
async def read_diagnostic_report(
    report_id: str,
    principal: Principal = Depends(READERS),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FhirResponse:
    """A report version as a DiagnosticReport (DiagnosticReportLab profile)."""
    return FhirResponse(
        await fhir_service.diagnostic_report(
            session, principal, _uuid(report_id, "DiagnosticReport")
        )
    )


@public_router.get("/DiagnosticReport", response_class=FhirResponse, operation_id="fhir:reports")
async def search_diagnostic_reports(
    request: Request,
    patient: str = Query(..., description="Patient id (or Patient/<id>)"),
    principal: Principal = Depends(READERS),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FhirResponse:
    found = await fhir_service.diagnostic_reports(session, principal, _uuid(patient, "Patient"))
    return FhirResponse(_searchset(request, found))


def _codes(raw: str | None) -> list[tuple[str | None, str]]:
    codes: list[tuple[str | None, str]] = []
    for token in (raw or "").split(","):
        token = token.strip()
        if not token:
            continue
        system, bar, code = token.rpartition("|")
        codes.append((system or None, code) if bar else (None, token))
    return codes


@public_router.get("/Observation", response_class=FhirResponse, operation_id="fhir:observations")
async def search_observations(
    request: Request,
    patient: str = Query(..., description="Patient id (or Patient/<id>)"),
    code: str | None = Query(None, description="LOINC code(s): 718-7 or http://loinc.org|718-7"),
    principal: Principal = Depends(READERS),
    session: AsyncSession = Depends(get_session, scope="function"),
) -> FhirResponse:
    found = await fhir_service.observations(
        session, principal, _uuid(patient, "Patient"), codes=_codes(code)
    )
    return FhirResponse(_searchset(request, found))
