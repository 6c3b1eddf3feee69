"""Patients: registration appends, demographics last-writer-wins, identity under review,
pregnancy guarded (it changes reference ranges), delete deactivates (a tombstone)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from nidaan.audit.service import audit_service
from nidaan.auth.enums import Role
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.patients.models import Patient
from nidaan.patients.presenters import patient_out
from nidaan.patients.schemas import PatientCreate, PatientUpdate
from nidaan.patients.service import SENSITIVE, patients_service, snapshot
from nidaan.sync import batch, prefetch
from nidaan.sync.context import OpContext
from nidaan.sync.entities.common import dumped, refused, validate
from nidaan.sync.registry import EntityHandler, MergeClass, OpStatus, Outcome, Rejected, register

L, ID, G = MergeClass.LWW, MergeClass.LWW_IDENTITY, MergeClass.GUARDED
REGISTRARS = frozenset({Role.ADMIN, Role.FRONT_DESK, Role.PHLEBOTOMIST})


class PatientHandler(EntityHandler):
    name = "patient"
    model = Patient
    fields = {
        "full_name": ID,
        "sex": ID,
        "date_of_birth": ID,
        "mobile": L,
        "email": L,
        "address": L,
        "city": L,
        "state": L,
        "pincode": L,
        "preferred_language": L,
        "referring_doctor": L,
        "weight_kg": L,
        "abha_address": L,
        "pregnant": G,
    }
    # The patients module's personal fields (mobile, email, address, ABHA address).
    sensitive = frozenset(SENSITIVE) & frozenset(fields)
    operations = {
        "create": REGISTRARS,
        "update": REGISTRARS,
        "delete": frozenset({Role.ADMIN}),
    }

    def scope(self, session: Session, row: Any) -> list[uuid.UUID]:
        return [row.registered_at_branch_id] if row.registered_at_branch_id else []

    def is_deleted(self, row: Any) -> bool:
        return not row.is_active or row.merged_into_id is not None

    async def serialize_many(self, session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
        return [patient_out(row).model_dump(mode="json") for row in rows]

    def read_field(self, row: Any, name: str) -> Any:
        if name == "mobile":
            return row.mobile
        return super().read_field(row, name)

    def normalize_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        if "version" in data:
            raise Rejected("send the edited version as baseVersion, not in data")
        model = validate(PatientUpdate, {**data, "version": 0})
        values = dumped(model, set(data))
        if values.get("mobile"):
            # Compare mobiles the way the service keeps them.
            try:
                values["mobile"] = normalize_mobile(values["mobile"])
            except InvalidPhoneNumber as error:
                raise Rejected(f"mobile: {error}") from None
        return values

    async def apply_fields(self, ctx: OpContext, row: Any, values: dict[str, Any]) -> None:
        update = validate(PatientUpdate, {**values, "version": row.version})
        if batch.active(ctx.session) is not None:
            # Inside a push's run: prepared now, written with the run's other patients.
            await refused(lambda: batch.edit(ctx, row, update))
            return
        await refused(lambda: patients_service.update(ctx.session, ctx.principal, row.id, update))

    async def create(self, ctx: OpContext) -> Outcome:
        data = validate(PatientCreate, {**ctx.data, "id": str(ctx.op.entity_id)})
        if data.registered_at_branch_id is not None and not ctx.principal.may_use_branch(
            data.registered_at_branch_id
        ):
            raise Rejected("you do not work at that branch")
        new = prefetch.take_new_id(ctx.session, self.name, ctx.op.entity_id)
        if batch.active(ctx.session) is not None:
            if new:
                await refused(lambda: batch.register(ctx, data))
                return Outcome.applied()
            await batch.write(ctx.session)  # the id is taken, maybe by a pending registration
        result = await refused(
            lambda: patients_service.register(ctx.session, ctx.principal, data, id_is_new=new)
        )
        return Outcome.applied() if result.created else Outcome(OpStatus.DUPLICATE)

    async def delete(self, ctx: OpContext, row: Any) -> Outcome:
        if not row.is_active:
            return Outcome(OpStatus.DUPLICATE)
        before = snapshot(row)
        row.is_active = False
        await ctx.session.flush()
        await audit_service.record(
            ctx.session,
            organisation_id=ctx.principal.organisation_id,
            actor=ctx.principal.actor,
            action="patient.deactivated",
            entity_type="patient",
            entity_id=row.id,
            before=before,
            after=snapshot(row),
            sensitive=SENSITIVE,
        )
        return Outcome.applied()


handler = register(PatientHandler())
