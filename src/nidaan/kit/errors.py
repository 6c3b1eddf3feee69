"""The error base every module's ``errors.py`` extends.

Each error carries an HTTP status and a stable snake-case code; the API renders it as an
RFC 9457 problem document (see ``nidaan.errors``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class NidaanError(Exception):
    """An expected failure with a status code, a stable code and a human message."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **data: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.data = data


class NotFound(NidaanError):
    status_code = 404
    code = "not_found"
    title = "Not found"


class Conflict(NidaanError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class Forbidden(NidaanError):
    status_code = 403
    code = "forbidden"
    title = "Forbidden"


class Unauthorized(NidaanError):
    status_code = 401
    code = "unauthorized"
    title = "Unauthorized"


class InvalidInput(NidaanError):
    status_code = 422
    code = "invalid_input"
    title = "Invalid input"


class VersionConflict(Conflict):
    """The client edited an older version of the row (offline edits, two people at once)."""

    code = "version_conflict"
    title = "The record was changed by someone else"


def check_version(current: int, given: int | None, entity: str) -> None:
    """Refuse an edit made against another version than the stored one (None: no check)."""
    if given is not None and given != current:
        raise VersionConflict(
            f"The {entity} was changed since you loaded it (version {given}, now {current}); "
            "reload it and apply your change again.",
            current_version=current,
        )
