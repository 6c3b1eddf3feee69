"""RFC 9457 problem details for every error the API returns.

A ``NidaanError`` becomes ``{"type", "title", "status", "detail", "code", ...data}``; request
validation errors become a 422 problem listing each field at fault.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nidaan.kit.errors import NidaanError

PROBLEM_TYPE_BASE = "https://nidaan.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger("nidaan.errors")


def problem(
    status: int, code: str, title: str, detail: str, request: Request, **extra: Any
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
        **extra,
    }
    headers = {}
    if "retry_after_seconds" in extra:
        headers["Retry-After"] = str(extra["retry_after_seconds"])
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


async def _nidaan_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NidaanError)
    return problem(exc.status_code, exc.code, exc.title, exc.detail, request, **exc.data)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
            "message": err.get("msg", ""),
        }
        for err in exc.errors()
    ]
    return problem(
        422,
        "validation_error",
        "Invalid request",
        "The request has invalid fields.",
        request,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    return problem(exc.status_code, code, str(exc.detail), str(exc.detail), request)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return problem(
        500,
        "internal_error",
        "Internal error",
        "Something went wrong on our side; the request id in the logs identifies it.",
        request,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NidaanError, _nidaan_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def problem_responses(*errors: type[NidaanError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting the problems an endpoint can return."""
    out: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        out[error.status_code] = {
            "description": error.title,
            "content": {
                PROBLEM_MEDIA_TYPE: {"example": {"code": error.code, "status": error.status_code}}
            },
        }
    return out
