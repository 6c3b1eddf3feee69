"""Helpers the entity handlers share."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nidaan.kit.errors import NidaanError
from nidaan.sync.registry import Rejected

M = TypeVar("M", bound=BaseModel)


def validate(schema: type[M], data: dict[str, Any]) -> M:
    """Build a request schema from op data; a validation error is a permanent rejection."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        raise Rejected(f"{where}: {first['msg']}") from None


def dumped(model: BaseModel, fields: set[str]) -> dict[str, Any]:
    """The given fields of a validated schema, as JSON values (for merge comparisons)."""
    data = model.model_dump(mode="json", include=fields)
    return {name: data.get(name) for name in fields}


async def refused(call: Callable[[], Any]) -> Any:
    """Run a service call, turning its expected errors into a rejection of the op."""
    try:
        return await call()
    except NidaanError as error:
        raise Rejected(error.detail) from None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def op_uuid(value: Any, name: str) -> uuid.UUID | None:
    """An id from op data (None when absent); anything else is a rejection."""
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Rejected(f"{name} is not a UUID") from None


def op_time(value: Any, name: str) -> datetime | None:
    """A time from op data (ISO 8601; None when absent)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise Rejected(f"{name} is not an ISO 8601 time") from None
