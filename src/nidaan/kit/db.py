"""Engine and sessions: one request or job is one transaction, and only the edge commits.

Services receive an ``AsyncSession`` and ``flush()``; the API dependency and the job
runner commit or roll back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from nidaan.config import Settings
from nidaan.kit.embedded import embedded_database_url, to_psycopg_url

_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None
_url: str | None = None


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL in use: the configured one, or the embedded server's."""
    global _url
    if _url is None:
        if settings.database_url:
            _url = to_psycopg_url(settings.database_url)
        else:
            _url = embedded_database_url(settings.data_dir / "pgdata")
    return _url


def configure(url: str) -> None:
    """Point this process at ``url`` (tests and CLI use it before anything connects)."""
    global _url, _engine, _sessionmaker
    _url = url
    _engine = None
    _sessionmaker = None


def get_engine(settings: Settings) -> AsyncEngine:
    global _engine
    if _engine is None:
        _engine = create_async_engine(database_url(settings), pool_pre_ping=True, pool_size=10)
    return _engine


def sync_engine(settings: Settings) -> Engine:
    """A synchronous engine, for Alembic and one-off CLI work."""
    return create_engine(database_url(settings))


def get_sessionmaker(settings: Settings) -> async_sessionmaker[AsyncSession]:
    global _sessionmaker
    if _sessionmaker is None:
        _sessionmaker = async_sessionmaker(get_engine(settings), expire_on_commit=False)
    return _sessionmaker


@asynccontextmanager
async def session_scope(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block succeeds, roll back when it raises."""
    async with get_sessionmaker(settings)() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def dispose() -> None:
    global _engine, _sessionmaker
    if _engine is not None:
        await _engine.dispose()
    _engine = None
    _sessionmaker = None


def libpq_conninfo(url: str) -> str:
    """Turn a SQLAlchemy psycopg URL back into a libpq URL (for procrastinate's pool)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


async def raw_connection(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under ``session``'s transaction (for transactional enqueue)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver
