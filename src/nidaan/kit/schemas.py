"""Schema base for every request/response model, and the list envelope."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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
