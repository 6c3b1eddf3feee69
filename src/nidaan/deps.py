"""FastAPI dependencies shared by every router: the request's transaction and paging.

Use the session as ``Depends(get_session, scope="function")``: the transaction then commits
before the response is sent, so a client never acts on a write that is not committed yet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Query
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import get_settings
from nidaan.kit.db import commit, get_sessionmaker
from nidaan.kit.pagination import MAX_PAGE, PageParams


async def get_session() -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back if it raises."""
    async with get_sessionmaker(get_settings())() as session:
        try:
            yield session
            await commit(session)
        except BaseException:
            await session.rollback()
            raise


async def page_params(  # async: a plain def would run in a worker thread per request
    page: int = Query(1, ge=1, le=MAX_PAGE, description="1-based page number"),
    limit: int = Query(20, ge=1, le=100, description="Rows per page"),
) -> PageParams:
    return PageParams(page=page, limit=limit)
