"""Schema base for every request/response model, and the list envelope."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.fields import FieldInfo

from nidaan.kit.text import MultilineMarker, check_text, strings_in

if TYPE_CHECKING:
    from nidaan.kit.pagination import PageParams

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

    @classmethod
    def construct_page(cls, items: list[T], total: int, page: int, limit: int) -> ListResource[T]:
        """``build`` without validation, for items that are response models already."""
        return cls.model_construct(
            items=items,
            pagination=Pagination.model_construct(
                total_count=total, page=page, limit=limit, max_page=max(1, -(-total // limit))
            ),
        )

    @classmethod
    def page_of(cls, rows: Sequence[T], params: PageParams) -> ListResource[T]:
        """One page of a short list a service returns whole (an invoice's payments, the
        rule types), in the same envelope as every other list."""
        start = (params.page - 1) * params.limit
        return cls.build(
            list(rows[start : start + params.limit]), len(rows), params.page, params.limit
        )


class InputSchema(Schema):
    """Base of request bodies: every string in every field (nested lists and mappings too)
    is refused when it holds a control character; fields typed ``MultilineText`` may hold
    line breaks and tabs (see ``nidaan.kit.text``)."""

    # "before": a control character is named as such, ahead of length or pattern errors.
    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _is_multiline(field):
            return value  # MultilineText checks its own value
        for text in strings_in(value):
            check_text(text)
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _numbers_in_range(cls, value: Any) -> Any:
        """Whole numbers fit a 32-bit column (counts, versions, days) and decimals are
        finite and below 10^15, so no number overflows a column (a 422, not a 500)."""
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT32_MIN <= value <= INT32_MAX:
                raise ValueError(f"must be between {INT32_MIN} and {INT32_MAX}")
        elif isinstance(value, Decimal) and (not value.is_finite() or abs(value) >= DECIMAL_LIMIT):
            raise ValueError("must be a finite number below 10^15")
        return value


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
DECIMAL_LIMIT = Decimal(10) ** 15


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
