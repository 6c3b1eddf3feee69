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
from sqlalchemy.exc import DBAPIError
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


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """What the database refused because of the request's data, not a fault of ours.

    Schemas bound what they can (lengths, ranges, characters); this is the net under them:
    a value out of a column's range or a clash with a unique key is answered as bad input
    (422) or a conflict (409), never a 500, and says nothing about other tenants' rows.
    """
    assert isinstance(exc, DBAPIError)
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    if sqlstate.startswith("22"):  # data exception: out of range, too long, malformed
        log.warning("database_refused_value", path=request.url.path, sqlstate=sqlstate)
        return problem(
            422,
            "value_out_of_range",
            "Invalid value",
            "A value does not fit its field (too large, too long or malformed).",
            request,
        )
    if sqlstate == "23505":  # unique violation
        log.warning("database_refused_duplicate", path=request.url.path)
        return problem(
            409,
            "conflict",
            "Conflict",
            "This conflicts with an existing record (an id or a unique value is taken).",
            request,
        )
    if sqlstate == "23503":  # foreign key violation
        return problem(
            422,
            "unknown_reference",
            "Unknown reference",
            "The request refers to a record that does not exist.",
            request,
        )
    return await _unexpected_error(request, exc)


async def _overflow_error(request: Request, exc: Exception) -> JSONResponse:
    """Date or number arithmetic pushed past its range by a request's value."""
    log.warning("request_value_overflow", path=request.url.path)
    return problem(
        422,
        "value_out_of_range",
        "Invalid value",
        "A value is out of range (a date or number too far out).",
        request,
    )


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
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(OverflowError, _overflow_error)
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
