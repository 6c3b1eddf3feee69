"""FHIR views of our records, always inside one organisation.

Reads other modules through their services, turns what it finds into mapper facts and
returns resources already validated by ``fhir.resources`` (as JSON dicts).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.service import audit_service
from nidaan.auth.enums import ALL_ROLES
from nidaan.auth.principal import Principal
from nidaan.fhir import mappers
from nidaan.fhir.mappers import (
    LabFacts,
    PatientFacts,
    PractitionerFacts,
    ReportFacts,
    ReportRecord,
    ResultFacts,
    SpecimenFacts,
)
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.time import utcnow
from nidaan.orders.models import Order
from nidaan.orders.service import orders_service
from nidaan.patients.models import Patient
from nidaan.patients.service import patients_service
from nidaan.reports.errors import ReportNotFound
from nidaan.reports.models import Report
from nidaan.reports.service import reports_service, samples_for_order
from nidaan.results.domain import ReportLine
from nidaan.results.service import results_service
from nidaan.tenancy.service import tenancy_service

Json = dict[str, Any]
#: Orders read per page when walking a patient's history.
_PAGE = PageParams(page=1, limit=100)


class SupersededReport(NotFound):
    code = "report_superseded"
    title = "Report version superseded"


def system_caller(organisation_id: uuid.UUID) -> Principal:
    """The caller jobs use to read other modules inside one organisation."""
    return Principal(
        kind="system",
        id=uuid.UUID(int=0),
        organisation_id=organisation_id,
        roles=ALL_ROLES,
        label="system",
    )


def _json(resource: Json) -> Json:
    """Validate with ``fhir.resources`` and return its canonical JSON (no nulls)."""
    return dict(json.loads(mappers.validated(resource).model_dump_json(exclude_none=True)))


def patient_facts(patient: Patient) -> PatientFacts:
    return PatientFacts(
        id=patient.id,
        mrn=patient.mrn,
        name=patient.full_name,
        sex=patient.sex,
        date_of_birth=patient.date_of_birth,
        mobile=patient.mobile,
        abha_number=patient.abha_number,
        abha_address=patient.abha_address,
        address=patient.address,
        city=patient.city,
        state=patient.state,
        pincode=patient.pincode,
        updated_at=patient.updated_at,
    )


def _result_facts(line: ReportLine) -> ResultFacts:
    signers = [s.user_id for s in line.verifiers] or (
        [line.verified_by.user_id] if line.verified_by else []
    )
    return ResultFacts(
        id=line.result_id,
        test_code=line.test_code,
        test_name=line.test_name,
        loinc=line.loinc,
        department=line.department,
        result_type=line.result_type,
        value=line.value,
        value_numeric=line.value_numeric,
        value_code=line.value_code,
        unit=line.unit,
        reference_low=line.reference_low,
        reference_high=line.reference_high,
        reference_text=line.reference_text,
        flag=line.flag,
        comment=line.comment,
        method=line.method,
        specimen_id=line.sample_id,
        verified_at=line.verified_at,
        verifier_ids=tuple(dict.fromkeys(signers)),
        corrected=line.corrected,
    )


def _practitioners(lines: Sequence[ReportLine]) -> list[PractitionerFacts]:
    found: dict[uuid.UUID, PractitionerFacts] = {}
    for line in lines:
        for signer in (*line.verifiers, *([line.verified_by] if line.verified_by else [])):
            found.setdefault(
                signer.user_id,
                PractitionerFacts(signer.user_id, signer.full_name, signer.qualification),
            )
    return list(found.values())


class FhirService:
    async def lab_facts(
        self, session: AsyncSession, organisation_id: uuid.UUID, facility_id: str | None = None
    ) -> LabFacts:
        organisation = await tenancy_service.get_organisation_unscoped(session, organisation_id)
        return LabFacts(
            id=organisation.id,
            name=organisation.name,
            phone=organisation.phone,
            email=organisation.email,
            address=organisation.address,
            facility_id=facility_id,
        )

    async def report_record(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        report: Report,
        *,
        with_pdf: bool,
        facility_id: str | None = None,
    ) -> ReportRecord:
        """Everything the report's document is made of (its current verified results)."""
        caller = system_caller(organisation_id)
        order = await orders_service.get(session, caller, report.order_id)
        patient = await patients_service.get_in(session, organisation_id, order.patient_id)
        lines = await results_service.report_lines(session, organisation_id, order.id)
        samples = await samples_for_order(session, organisation_id, order.id, lines)
        pdf = (await reports_service.pdf(session, caller, report.id)).data if with_pdf else None
        return ReportRecord(
            lab=await self.lab_facts(session, organisation_id, facility_id),
            patient=patient_facts(patient),
            report=ReportFacts(
                id=report.id,
                order_id=order.id,
                report_number=report.report_number,
                version=report.report_version,
                issued_at=report.created_at,
                amended=report.amended,
                is_current=report.is_current,
                language=report.language,
                pdf=pdf,
                pdf_sha256=report.sha256,
            ),
            order_number=order.order_number,
            results=[_result_facts(line) for line in lines],
            specimens=[
                SpecimenFacts(s.id, s.accession, s.specimen_type, s.collected_at, s.received_at)
                for s in samples
            ],
            practitioners=_practitioners(lines),
        )

    # ---- the read API ---------------------------------------------------------------------

    async def patient(
        self, session: AsyncSession, caller: Principal, patient_id: uuid.UUID
    ) -> Json:
        patient = await patients_service.get(session, caller, patient_id)
        await audit_service.record_access(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            patient_id=patient.id,
            entity_type="fhir_patient",
            entity_id=patient.id,
        )
        return _json(mappers.patient_resource(patient_facts(patient)))

    async def _current_report(
        self, session: AsyncSession, caller: Principal, report_id: uuid.UUID
    ) -> Report:
        try:
            report = await reports_service.get(session, caller, report_id)
        except ReportNotFound:
            raise NotFound("No such DiagnosticReport.", entity="DiagnosticReport") from None
        if not report.is_current:
            raise SupersededReport(
                f"Report {report.report_number} version {report.report_version} was replaced by "
                "a newer version; read the order's current report.",
                entity="DiagnosticReport",
            )
        return report

    async def diagnostic_report(
        self, session: AsyncSession, caller: Principal, report_id: uuid.UUID
    ) -> Json:
        report = await self._current_report(session, caller, report_id)
        record = await self.report_record(session, caller.organisation_id, report, with_pdf=False)
        return _json(mappers.diagnostic_report_resource(record, mappers.rest_ref))

    async def _patient_orders(
        self, session: AsyncSession, caller: Principal, patient_id: uuid.UUID
    ) -> list[Order]:
        orders: list[Order] = []
        for pid in await patients_service.history_ids(session, caller, patient_id):
            page = _PAGE
            while True:
                rows, total = await orders_service.list(session, caller, page, patient_id=pid)
                orders += rows
                if page.page * page.limit >= total:
                    break
                page = PageParams(page=page.page + 1, limit=page.limit)
        return orders

    async def diagnostic_reports(
        self, session: AsyncSession, caller: Principal, patient_id: uuid.UUID
    ) -> list[Json]:
        """The current report of each of the patient's orders (merged records included)."""
        orders = await self._patient_orders(session, caller, patient_id)
        reports = await reports_service.current_reports(
            session, caller.organisation_id, [o.id for o in orders]
        )
        found = []
        for report in reports:
            record = await self.report_record(
                session, caller.organisation_id, report, with_pdf=False
            )
            found.append(_json(mappers.diagnostic_report_resource(record, mappers.rest_ref)))
        return found

    async def observations(
        self,
        session: AsyncSession,
        caller: Principal,
        patient_id: uuid.UUID,
        *,
        codes: Sequence[tuple[str | None, str]] = (),
    ) -> list[Json]:
        """Verified current results of the patient; ``codes`` filters on (system, code)."""
        for system, _ in codes:
            if system not in (None, "http://loinc.org"):
                raise InvalidInput(
                    "Only LOINC codes (http://loinc.org|code) can be searched.", field="code"
                )
        wanted = {code for _, code in codes}
        found = []
        for order in await self._patient_orders(session, caller, patient_id):
            lines = await results_service.report_lines(session, caller.organisation_id, order.id)
            samples = {
                s.id: s
                for s in await samples_for_order(session, caller.organisation_id, order.id, lines)
            }
            for line in lines:
                if wanted and line.loinc not in wanted:
                    continue
                sample = samples.get(line.sample_id) if line.sample_id else None
                found.append(
                    _json(
                        mappers.observation_resource(
                            _result_facts(line),
                            order.patient_id,
                            caller.organisation_id,
                            mappers.rest_ref,
                            effective_at=sample.collected_at if sample else None,
                        )
                    )
                )
        return found

    # ---- documents ------------------------------------------------------------------------

    async def report_bundle(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        report: Report,
        *,
        facility_id: str | None,
        timestamp: datetime | None = None,
    ) -> Json:
        """The DiagnosticReportRecord document Bundle of a report (with its PDF)."""
        record = await self.report_record(
            session, organisation_id, report, with_pdf=True, facility_id=facility_id
        )
        return _json(mappers.report_bundle(record, timestamp=timestamp or utcnow()))


fhir_service = FhirService()
