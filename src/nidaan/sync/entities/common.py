"""Helpers the entity handlers share."""

from __future__ import annotations

from collections.abc import Callable
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
