"""Verification gates: the seam through which other modules stop results from being verified.

Results never import quality control (core modules do not import edge modules). Instead a
module that must keep results of one instrument and test from release places a named gate
(``verification_gates.block``) and lifts it later (``verification_gates.lift``). While a
gate stands, results of that instrument and test entered at or after the gate's ``since``
cannot be verified: a person gets a 409 naming the gate's reason, and the system never
autoverifies them. Lifting publishes ``results.verification_gate_lifted`` so that whoever
decides about unverified results (autoverification) can look at them again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.events.service import publish
from nidaan.kit.db import any_of
from nidaan.kit.time import utcnow
from nidaan.results.events import VerificationGateLifted
from nidaan.results.models import Result, VerificationGate

__all__ = ["Gate", "verification_gates"]


@dataclass(frozen=True)
class Gate:
    instrument_id: uuid.UUID
    test_id: uuid.UUID
    holder: str
    reason: str
    since: datetime
    details: dict[str, Any]
    created_at: datetime

    def blocks(self, result: Result) -> bool:
        return (
            result.instrument_id == self.instrument_id
            and result.test_id == self.test_id
            and result.entered_at >= self.since
        )


def _gate(row: VerificationGate) -> Gate:
    return Gate(
        row.instrument_id,
        row.test_id,
        row.holder,
        row.reason,
        row.since,
        dict(row.details or {}),
        row.created_at,
    )


class VerificationGates:
    async def block(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test_id: uuid.UUID,
        *,
        holder: str,
        reason: str,
        since: datetime,
        details: dict[str, Any] | None = None,
        actor: AuditActor,
    ) -> bool:
        """Place ``holder``'s gate (a standing gate keeps its ``since``, takes the new reason);
        True if newly placed."""
        values = {
            "organisation_id": organisation_id,
            "instrument_id": instrument_id,
            "test_id": test_id,
            "holder": holder,
            "reason": reason[:300],
            "since": since,
            "details": details or {},
            "created_at": utcnow(),
        }
        statement = insert(VerificationGate).values(**values)
        placed = await session.scalar(
            statement.on_conflict_do_update(
                index_elements=["instrument_id", "test_id", "holder"],
                set_={"reason": statement.excluded.reason, "details": statement.excluded.details},
            ).returning(VerificationGate.created_at == values["created_at"])
        )
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor,
            action="result.verification_blocked" if placed else "result.verification_block_renewed",
            entity_type="instrument",
            entity_id=instrument_id,
            after={"test_id": test_id, "holder": holder, "reason": reason, "since": since},
        )
        return bool(placed)

    async def lift(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        instrument_id: uuid.UUID,
        test_id: uuid.UUID,
        *,
        holder: str,
        actor: AuditActor,
    ) -> Gate | None:
        """Lift ``holder``'s gate; the gate that stood, or None if there was none."""
        row = await session.scalar(
            delete(VerificationGate)
            .where(
                VerificationGate.organisation_id == organisation_id,
                VerificationGate.instrument_id == instrument_id,
                VerificationGate.test_id == test_id,
                VerificationGate.holder == holder,
            )
            .returning(VerificationGate)
        )
        if row is None:
            return None
        gate = _gate(row)
        now = utcnow()
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor,
            action="result.verification_unblocked",
            entity_type="instrument",
            entity_id=instrument_id,
            before={"test_id": test_id, "holder": holder, "reason": gate.reason},
        )
        await publish(
            session,
            VerificationGateLifted(
                organisation_id=organisation_id,
                instrument_id=instrument_id,
                test_id=test_id,
                holder=holder,
                since=gate.since,
                lifted_at=now,
            ),
        )
        return gate

    async def gates(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        *,
        instrument_id: uuid.UUID | None = None,
        test_ids: Iterable[uuid.UUID] | None = None,
    ) -> list[Gate]:
        """Standing gates of the organisation (of one instrument, of some tests)."""
        statement = select(VerificationGate).where(
            VerificationGate.organisation_id == organisation_id
        )
        if instrument_id is not None:
            statement = statement.where(VerificationGate.instrument_id == instrument_id)
        if test_ids is not None:
            statement = statement.where(any_of(VerificationGate.test_id, set(test_ids)))
        rows = await session.scalars(statement.order_by(VerificationGate.created_at))
        return [_gate(row) for row in rows]

    async def blocking(self, session: AsyncSession, result: Result) -> Gate | None:
        """The first standing gate that keeps ``result`` from being verified, if any."""
        if result.instrument_id is None:
            return None
        for gate in await self.gates(
            session,
            result.organisation_id,
            instrument_id=result.instrument_id,
            test_ids=[result.test_id],
        ):
            if gate.blocks(result):
                return gate
        return None


verification_gates = VerificationGates()
