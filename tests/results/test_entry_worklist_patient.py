"""The entry worklist names whom each test is for (the web app's grid shows it and picks the
reference band by sex and age while a value is typed)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.results.conftest import Lab, adult_woman, numeric_test, place_order


async def test_pending_entry_carries_the_patient(
    client: httpx.AsyncClient, session: AsyncSession, lab: Lab
) -> None:
    glu = await numeric_test(session, lab, "GLU", department="Biochemistry")
    woman = await adult_woman(session, lab)
    await place_order(session, lab, woman, [glu])

    items = (
        await client.get("/api/v1/worklists/pending-entry", headers=lab.headers("tech"))
    ).json()["items"]

    assert len(items) == 1
    assert items[0]["patient_id"] == str(woman.id)
    assert items[0]["patient_name"] == woman.full_name
    assert items[0]["patient_sex"] == "female"
    assert items[0]["patient_date_of_birth"] == woman.date_of_birth.isoformat()
