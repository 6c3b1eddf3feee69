"""Readable per-scope counters (MRN, accession, report numbers) without gaps from races.

``next_value`` is one atomic upsert: concurrent callers serialise on the counter row until
their transactions end, so two requests never get the same number. A rolled-back
transaction gives its number back.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base


class Sequence(Base):
    __tablename__ = "sequences"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(120), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger)


async def next_value(session: AsyncSession, organisation_id: uuid.UUID, scope: str) -> int:
    """The next number in ``scope`` for this organisation (1, 2, 3, ...)."""
    statement = (
        insert(Sequence)
        .values(organisation_id=organisation_id, scope=scope, last_value=1)
        .on_conflict_do_update(
            index_elements=["organisation_id", "scope"],
            set_={"last_value": Sequence.last_value + 1},
        )
        .returning(Sequence.last_value)
    )
    return int((await session.execute(statement)).scalar_one())
