"""Schema base for every request/response model, and the list envelope."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.fields import FieldInfo

from nidaan.kit.text import MultilineMarker, check_text, strings_in

T = TypeVar("T")


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class Pagination(Schema):
    total_count: int = Field(description="Rows matching the filters")
    page: int = Field(description="1-based page number")
    limit: int = Field(description="Rows per page")
    max_page: int = Field(description="Last page number")


class ListResource(Schema, Generic[T]):
    items: list[T]
    pagination: Pagination

    @classmethod
    def build(cls, items: list[T], total: int, page: int, limit: int) -> ListResource[T]:
        max_page = max(1, -(-total // limit))
        return cls(
            items=items,
            pagination=Pagination(total_count=total, page=page, limit=limit, max_page=max_page),
        )


class InputSchema(Schema):
    """Base of request bodies: every string in every field (nested lists and mappings too)
    is refused when it holds a control character; fields typed ``MultilineText`` may hold
    line breaks and tabs (see ``nidaan.kit.text``)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _is_multiline(field):
            return value  # MultilineText checks its own value
        for text in strings_in(value):
            check_text(text)
        return value


def _is_multiline(field: FieldInfo) -> bool:
    """Whether the field is typed ``MultilineText`` (also inside ``| None``)."""
    pending: list[Any] = [field.annotation, *field.metadata]
    while pending:
        item = pending.pop()
        if isinstance(item, MultilineMarker):
            return True
        pending.extend(getattr(item, "__metadata__", ()))
        pending.extend(get_args(item))
    return False
