"""What the patient's booking page offers: every active panel and test of the lab (not only
those with preparation), panels first, each with the fasting and instructions it asks for;
a panel carries its tests' preparation; nothing that could not be ordered is offered."""

from __future__ import annotations

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments import domain
from nidaan.appointments.service import appointments_service
from nidaan.tenancy.models import Organisation
from tests.appointments.support import build_home_lab
from tests.fixtures.lab import create_catalog_test, create_panel
from tests.fixtures.objects import create_organisation
from tests.fixtures.orders import system_principal


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=24), st.none() | st.sampled_from("abc")),
        max_size=6,
    )
)
@settings(max_examples=200)
def test_a_panel_asks_for_its_longest_fast_and_each_instruction_once(
    preparations: list[tuple[int, str | None]],
) -> None:
    hours, text = domain.combined_preparation(preparations)
    assert hours == max([0, *(h for h, _ in preparations)])
    given_texts = [t for _, t in preparations if t]
    if not given_texts:
        assert text is None
    else:
        assert text is not None
        assert text.split(" ") == list(dict.fromkeys(given_texts))


async def test_the_link_lists_every_orderable_panel_and_test_with_its_preparation(
    client: httpx.AsyncClient, session: AsyncSession, organisation: Organisation
) -> None:
    lab = await build_home_lab(session, organisation, people=False)
    admin = system_principal(organisation)
    tg = await create_catalog_test(
        session, organisation, code="TG", name="Triglycerides", department="Biochemistry"
    )
    hdl = await create_catalog_test(session, organisation, code="HDL", name="HDL cholesterol")
    await create_catalog_test(
        session, organisation, code="LDL", name="LDL (calculated)", result_type="calculated"
    )
    await create_catalog_test(session, organisation, code="OLD", name="Withdrawn", is_active=False)
    hb = await create_catalog_test(
        session, organisation, code="HB", name="Haemoglobin", department="Haematology"
    )
    gone = await create_catalog_test(
        session, organisation, code="BT", name="Bleeding time", is_active=False
    )
    await create_panel(session, organisation, [hdl, tg], code="LIPID", name="Lipid profile")
    await create_panel(session, organisation, [hb, gone], code="COAG", name="Coagulation")
    await create_panel(
        session, organisation, [hb], code="ANAEM", name="Anaemia screen", is_active=False
    )
    await appointments_service.set_preparation(
        session, admin, "TG", 12, "Water is allowed. Take usual medicines."
    )
    # Another lab's catalogue never shows.
    other = await create_organisation(session)
    await create_catalog_test(session, other, code="SECRET", name="Not ours")
    await session.commit()

    base = f"/api/v1/public/book/{organisation.slug}/{lab.branch.code}"
    answer = await client.get(base + "/tests", params={"limit": 100})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [(i["kind"], i["code"]) for i in items] == [
        ("panel", "LIPID"),
        ("test", "CBC"),
        ("test", "GLU-F"),
        ("test", "HDL"),
        ("test", "LFT"),
        ("test", "TG"),
        ("test", "HB"),
    ]
    by_code = {i["code"]: i for i in items}
    assert by_code["LIPID"]["fasting_hours"] == 12
    assert by_code["LIPID"]["instructions"] == "Water is allowed. Take usual medicines."
    assert by_code["LIPID"]["department"] is None
    assert (by_code["HB"]["fasting_hours"], by_code["HB"]["instructions"]) == (0, None)
    assert by_code["HB"]["department"] == "Haematology"
    assert by_code["GLU-F"]["fasting_hours"] == 10

    # Everything offered can be booked: the orderables resolve.
    needs = await appointments_service.needs(session, organisation.id, list(by_code))
    assert {t.code for t in needs[0]} >= {"HDL", "TG", "HB", "CBC", "GLU-F", "LFT"}

    # Paged like every list.
    first = (await client.get(base + "/tests", params={"limit": 3})).json()
    second = (await client.get(base + "/tests", params={"limit": 3, "page": 3})).json()
    assert first["pagination"]["total_count"] == len(items)
    assert [i["code"] for i in first["items"] + second["items"]] == ["LIPID", "CBC", "GLU-F", "HB"]
