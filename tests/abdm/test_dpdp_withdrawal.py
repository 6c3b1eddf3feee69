"""DPDP: a patient who withdrew ABDM sharing gets no care context linked for new reports
(the same report of a patient who did not is linked, see test_user_flows)."""

from __future__ import annotations

from typing import Any

import pytest

from nidaan.abdm.models import AbdmCareContext
from nidaan.compliance.enums import ConsentSource, Purpose
from nidaan.compliance.service import compliance_service
from nidaan.config import Settings
from nidaan.patients.models import Patient
from tests.abdm.conftest import AbdmWorld, settle
from tests.abdm.test_round_trip import _rows
from tests.abdm.test_user_flows import _sunita
from tests.fixtures.lab import create_catalog_test
from tests.fixtures.results import enter_and_verify, place_order

pytestmark = pytest.mark.usefixtures("job_app_open")


async def test_withdrawn_abdm_sharing_links_no_new_report(
    abdm: AbdmWorld, settings: Settings, committing_session: Any
) -> None:
    withdrawn = await _sunita(abdm, committing_session)
    agreed = await _sunita(abdm, committing_session, full_name="Sunita D Sharma")
    async with committing_session() as session:
        for patient, granted in ((withdrawn, False), (agreed, True)):
            await compliance_service.set_consent(
                session,
                patient,
                Purpose.ABDM_SHARING,
                granted=granted,
                source=ConsentSource.PATIENT_LINK,
                caller=None,
            )
    async with committing_session() as session:
        hb = await create_catalog_test(
            session,
            abdm.organisation,
            code="HBW",
            name="Haemoglobin",
            loinc="718-7",
            department="Haematology",
            unit="g/dL",
            specimen_type="whole_blood",
            ranges=[{"low": 12, "high": 15}],
        )
        for patient in (withdrawn, agreed):
            placed = await place_order(
                session, abdm.lab, await session.get(Patient, patient.id), [hb]
            )
            await enter_and_verify(session, abdm.lab, placed["HBW"], "10.8")
    linked = await settle(
        settings,
        lambda: _rows(settings, AbdmCareContext, patient_id=agreed.id),
        lambda rows: bool(rows),
        within=90.0,
    )
    assert linked, "the patient who agreed gets a care context"
    assert await _rows(settings, AbdmCareContext, patient_id=withdrawn.id) == []
