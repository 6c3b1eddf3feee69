"""Page/limit parameters and a helper that counts and slices a select."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

MAX_LIMIT = 100
#: Deepest page served: (page - 1) * limit stays far inside the database's row offsets.
#: Nobody reads a million pages; filters find old rows.
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class PageParams:
    page: int = 1
    limit: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.page <= MAX_PAGE:
            raise ValueError(f"page must be between 1 and {MAX_PAGE}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")


async def paginate(
    session: AsyncSession, statement: Select[Any], params: PageParams
) -> tuple[list[Any], int]:
    """Return (rows of the requested page, total count)."""
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    rows = await session.scalars(
        statement.limit(params.limit).offset((params.page - 1) * params.limit)
    )
    return list(rows), int(total or 0)
