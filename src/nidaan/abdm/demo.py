"""Demo data of the ABDM module: the demo lab's central laboratory registered as a HIP."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.exchanges import create_facility
from nidaan.abdm.models import AbdmFacility
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.tenancy.models import Branch, Organisation

DEMO_HIP_ID = "IN2710000001"


async def seed_abdm(session: AsyncSession, organisation: Organisation) -> list[str]:
    """Register the demo lab's central laboratory with ABDM (the simulator), once."""
    if await session.scalar(select(AbdmFacility.id).where(AbdmFacility.hip_id == DEMO_HIP_ID)):
        return []
    lab = await session.scalar(
        select(Branch).where(Branch.organisation_id == organisation.id, Branch.code == "CL")
    )
    await create_facility(
        session,
        organisation.id,
        hip_id=DEMO_HIP_ID,
        name=f"{organisation.name}, Central Laboratory",
        branch_id=lab.id if lab else None,
        counter_code="REG-1",
        actor=SYSTEM_ACTOR,
    )
    return [f"ABDM facility {DEMO_HIP_ID} (HIP) for {organisation.name}"]
