"""Reports: gather an order's verified results, render the signed PDF, store and list versions.

Rendering runs in the ``ResultsVerified`` job (``handlers.py``), never in a request. Each
rendering is a new ``Report`` row (version n + 1) that supersedes the current one; PDFs are
never overwritten or deleted, so every version an amended report replaces stays retrievable.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.auth.enums import ALL_ROLES
from nidaan.auth.principal import Principal
from nidaan.config import Settings, get_settings
from nidaan.events.service import publish
from nidaan.files.enums import FilePurpose
from nidaan.files.errors import FileDeleted, FileMissingFromStore, FileNotFound
from nidaan.files.service import files_service
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.sequences import next_value
from nidaan.kit.storage import ObjectNotFoundError, ObjectStore, get_object_store
from nidaan.kit.storage import public_base_url as installation_base_url
from nidaan.kit.time import IST, utcnow
from nidaan.orders.enums import OrderTestStatus
from nidaan.orders.service import orders_service
from nidaan.patients.domain import mask_abha_number
from nidaan.patients.service import patients_service
from nidaan.reports.domain import (
    Amendment,
    Change,
    LabInfo,
    OrderInfo,
    PatientInfo,
    PrintedResult,
    ReportDocument,
    ReportStatus,
    ResultLine,
    SampleInfo,
    Signatory,
    SourceLine,
    age_text,
    changes_since,
    flag_is_abnormal,
    flag_is_critical,
    group_sections,
    initials,
    normalise_language,
    signatories_of,
    source_fingerprint,
    typographic_unit,
    version_status,
)
from nidaan.reports.errors import (
    NothingPending,
    ReportIntegrityError,
    ReportNotFound,
    ReportNotReady,
    ReportPdfDeleted,
)
from nidaan.reports.events import ProvisionalReportRequested, ReportFinalized, ReportReleased
from nidaan.reports.models import Report
from nidaan.reports.release import report_release
from nidaan.reports.render import render_pdf_async
from nidaan.results.domain import ReportLine
from nidaan.results.domain import Signatory as ResultSignatory
from nidaan.results.service import results_service
from nidaan.samples.enums import SampleStatus
from nidaan.samples.service import samples_service
from nidaan.tenancy.service import tenancy_service

logger = logging.getLogger(__name__)

PDF = "application/pdf"
#: Reason printed when a new version is issued without a correction (tests added later).
ADDED_RESULTS_REASON = "Further results verified after the previous version was issued."
#: Reason printed on the final version that replaces a provisional one.
COMPLETED_REASON = "All tests of the order are now reported."
#: Signature images embedded in reports, by file extension.
_IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}


@dataclass(frozen=True)
class BuiltDocument:
    """A report document plus what it was made from."""

    document: ReportDocument
    fingerprint: str
    patient_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ReportPdf:
    report: Report
    data: bytes


def _system_caller(organisation_id: uuid.UUID) -> Principal:
    """The caller a job uses to read other modules' services inside one organisation."""
    return Principal(
        kind="system",
        id=uuid.UUID(int=0),
        organisation_id=organisation_id,
        roles=ALL_ROLES,
        label="system",
    )


def _order_lock_key(order_id: uuid.UUID) -> int:
    """A signed 64-bit advisory-lock key for one order's report numbering."""
    return int.from_bytes(
        hashlib.sha256(b"reports:" + order_id.bytes).digest()[:8], "big", signed=True
    )


#: Characters of the source fingerprint kept in the object key (128 bits).
FINGERPRINT_CHARS = 32


def _fingerprint_of(report: Report) -> str | None:
    """The source fingerprint of the results the report prints (older reports carried it in
    their object key, ``.../<report id>--<fp>.pdf``)."""
    if report.source_fingerprint:
        return report.source_fingerprint
    stem = report.storage_key.rsplit("/", 1)[-1].removesuffix(".pdf")
    _, marker, fingerprint = stem.partition("--")
    return fingerprint if marker and fingerprint else None


def _signatory(signatory: ResultSignatory | None, signatures: dict[str, str]) -> Signatory | None:
    if signatory is None or signatory.signed_at is None:
        return None
    return Signatory(
        signatory.full_name,
        signatory.qualification,
        signatory.signed_at,
        registration_number=signatory.registration_number,
        signature_uri=signatures.get(signatory.signature_key or ""),
    )


def _source_line(line: ReportLine, signatures: dict[str, str]) -> SourceLine:
    signers = tuple(s for s in (_signatory(v, signatures) for v in line.verifiers) if s is not None)
    final = _signatory(line.verified_by, signatures)
    return SourceLine(
        result_id=line.result_id,
        department=line.department,
        sort_key=(line.sort_order, line.test_code),
        verifier=final,
        extra_verifiers=signers,
        line=ResultLine(
            test_name=line.test_name,
            value=line.value,
            unit=typographic_unit(line.unit),
            reference=line.reference_text,
            flag=line.flag,
            method=line.method,
            comment=line.comment,
            abnormal=flag_is_abnormal(line.flag),
            critical=flag_is_critical(line.flag),
            accredited=line.accredited,
            referral_lab=line.referral_lab,
        ),
    )


def _printed(lines: list[ReportLine]) -> list[PrintedResult]:
    return [
        PrintedResult(line.result_id, line.test_name, line.corrected, line.correction_reason)
        for line in lines
    ]


def _condition_text(condition: list[str] | None) -> tuple[str, ...]:
    return tuple(str(item) for item in condition or ())


def _snapshot(report: Report) -> dict[str, Any]:
    return {
        "order_id": report.order_id,
        "report_number": report.report_number,
        "report_version": report.report_version,
        "is_current": report.is_current,
        "amended": report.amended,
        "status": report.status,
        "changes": report.changes,
        "amendment_reason": report.amendment_reason,
        "supersedes_id": report.supersedes_id,
        "language": report.language,
        "sha256": report.sha256,
        "page_count": report.page_count,
        "size_bytes": report.size_bytes,
    }


class ReportsService:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    def store(self) -> ObjectStore:
        return get_object_store(self.settings)

    def verification_url(self, code: str) -> str:
        return f"{installation_base_url(self.settings)}/verify/{code}"

    # ---------------------------------------------------------------- building

    async def build_document(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        order_id: uuid.UUID,
        *,
        report_number: str = "—",
        version: int = 1,
        issued_at: datetime | None = None,
        verification_code: str = "preview",
        amendment: Amendment | None = None,
        lines: list[ReportLine] | None = None,
        status: ReportStatus = ReportStatus.FINAL,
        pending_tests: tuple[str, ...] = (),
    ) -> BuiltDocument:
        """Everything the report prints, from the other modules' services.

        Raises ``ReportNotReady`` when the order has no verified result yet.
        """
        caller = _system_caller(organisation_id)
        organisation = await tenancy_service.get_organisation_unscoped(session, organisation_id)
        order = await orders_service.get(session, caller, order_id)
        patient = await patients_service.get_in(session, organisation_id, order.patient_id)
        if lines is None:
            lines = await self._lines(session, organisation_id, order_id)
        samples = await samples_for_order(session, organisation_id, order_id, lines)
        issued = issued_at or utcnow()
        language = normalise_language(patient.preferred_language)
        collected = [s.collected_at for s in samples if s.collected_at is not None]
        signatures = await self._signature_uris(lines)
        source = [_source_line(line, signatures) for line in lines]
        branches = await self._branch_names(
            session,
            caller,
            {s.collected_at_branch_id for s in samples}
            | {s.received_at_branch_id for s in samples},
        )
        lab = LabInfo(
            name=organisation.name,
            address=organisation.address,
            phone=organisation.phone,
            email=organisation.email,
            accreditation=organisation.accreditation,
        )
        document = ReportDocument(
            lab=lab,
            patient=PatientInfo(
                name=patient.full_name,
                age_text=age_text(
                    patient.date_of_birth, min(collected) if collected else issued, language
                ),
                sex=str(patient.sex),
                mrn=patient.mrn,
                referring_doctor=order.referring_doctor or patient.referring_doctor,
                abha=abha_text(patient.abha_address, patient.abha_number),
            ),
            order=OrderInfo(
                number=order.order_number,
                priority=str(order.priority),
                registered_at=order.created_at,
            ),
            samples=tuple(
                SampleInfo(
                    accession=s.accession,
                    specimen_type=s.specimen_type.replace("_", " ").capitalize(),
                    collected_at=s.collected_at,
                    received_at=s.received_at,
                    collected_at_centre=branches.get(s.collected_at_branch_id),
                    tested_at=branches.get(s.received_at_branch_id),
                    condition=_condition_text(s.receipt_condition),
                    remarks=s.receipt_remarks,
                )
                for s in samples
            ),
            sections=group_sections(source, accredited_lab=lab.accredited),
            signatories=signatories_of(source),
            report_number=report_number,
            version=version,
            issued_at=issued,
            verification_url=self.verification_url(verification_code),
            language=language,
            amendment=amendment,
            status=status,
            pending_tests=pending_tests,
        )
        return BuiltDocument(
            document, source_fingerprint(line.result_id for line in lines), patient.id
        )

    async def _signature_uris(self, lines: list[ReportLine]) -> dict[str, str]:
        """The verifiers' stored signature images as data: URIs (a missing file prints none)."""
        keys = {
            signer.signature_key
            for line in lines
            for signer in (line.verified_by, *line.verifiers)
            if signer is not None and signer.signature_key
        }
        uris: dict[str, str] = {}
        for key in keys:
            media = _IMAGE_TYPES.get(key.rsplit(".", 1)[-1].lower())
            try:
                data = await self.store().get(key)
            except ObjectNotFoundError:
                logger.warning("Signature image %s is missing from storage", key)
                continue
            if media is not None:
                uris[key] = f"data:{media};base64,{base64.b64encode(data).decode()}"
        return uris

    async def _branch_names(
        self, session: AsyncSession, caller: Principal, branch_ids: set[uuid.UUID | None]
    ) -> dict[uuid.UUID | None, str]:
        names: dict[uuid.UUID | None, str] = {}
        for branch_id in branch_ids - {None}:
            assert branch_id is not None
            branch = await tenancy_service.get_branch(session, caller, branch_id)
            names[branch_id] = branch.name
        return names

    async def _pending_tests(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> tuple[str, ...]:
        """Names of the order's tests still without a verified result (cancelled ones aside)."""
        detail = await orders_service.detail(session, _system_caller(organisation_id), order_id)
        waiting = {OrderTestStatus.ACTIVE, OrderTestStatus.RESULTED}
        return tuple(
            dict.fromkeys(
                test.name for order_test, test in detail.tests if order_test.status in waiting
            )
        )

    # ---------------------------------------------------------------- issuing

    async def on_results_verified(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        order_id: uuid.UUID,
        *,
        department: str | None,
        amended: bool,
        reason: str | None,
    ) -> Report | None:
        """React to ``ResultsVerified``: the whole order verified -> report; a verified
        correction of an order that already has a report -> amended version.

        A department-only event is ignored (one report per order, issued when it is
        complete); a correction before the first report waits for the order event.
        """
        if department is not None and not amended:
            return None
        current = await self._current(session, organisation_id, order_id)
        if amended and current is None and department is not None:
            return None
        try:
            return await self.render_and_store(
                session, organisation_id, order_id, amended=amended, reason=reason
            )
        except ReportNotReady:
            logger.info("Order %s has no verified results; no report issued", order_id)
            return None

    async def request_provisional(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> tuple[str, ...]:
        """Ask for a provisional report now (the job renders it); returns the pending tests.

        ``ReportNotReady`` without a verified result, ``NothingPending`` when every test is
        verified (the final report is then issued on its own).
        """
        order = await orders_service.get(session, caller, order_id)
        await self._lines(session, caller.organisation_id, order.id)
        pending = await self._pending_tests(session, caller.organisation_id, order.id)
        if not pending:
            raise NothingPending(
                "Every test of this order is verified; the final report is issued on its own.",
                order_id=str(order.id),
            )
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="report.provisional_requested",
            entity_type="order",
            entity_id=order.id,
            after={"pending_tests": list(pending)},
        )
        await publish(
            session,
            ProvisionalReportRequested(organisation_id=caller.organisation_id, order_id=order.id),
        )
        return pending

    async def render_and_store(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        order_id: uuid.UUID,
        *,
        amended: bool = False,
        reason: str | None = None,
    ) -> Report:
        """Issue the next version of the order's report (or return the current one if it
        already prints exactly the same verified results with the same status).

        The version's status follows ``version_status``: provisional while tests are
        pending, final for the first complete version, then corrected or amended. ``amended``
        (the event said so) is kept for the caller; the status decides what is printed.
        """
        del amended  # the status is decided from what changed (see version_status)
        # Serialise report issuing per order: version numbers stay gapless and two jobs
        # for one order never both decide they are version n + 1.
        await session.execute(select(func.pg_advisory_xact_lock(_order_lock_key(order_id))))
        previous = await self._current(session, organisation_id, order_id)
        lines = await self._lines(session, organisation_id, order_id)
        pending = await self._pending_tests(session, organisation_id, order_id)
        fingerprint = source_fingerprint(line.result_id for line in lines)
        fingerprint = fingerprint[:FINGERPRINT_CHARS]
        still_provisional = previous is not None and previous.status == ReportStatus.PROVISIONAL
        if (
            previous is not None
            and _fingerprint_of(previous) == fingerprint
            and not (still_provisional and not pending)
        ):
            logger.info(
                "Report %s already prints the verified results of order %s; not re-issued",
                previous.report_number,
                order_id,
            )
            return previous

        last_version = await session.scalar(
            select(func.max(Report.report_version)).where(
                Report.organisation_id == organisation_id, Report.order_id == order_id
            )
        )
        version = int(last_version or 0) + 1
        changes: tuple[Change, ...] = ()
        if previous is not None:
            changes = changes_since(previous.result_ids, _printed(lines))
        status = version_status(
            previous=ReportStatus(previous.status) if previous is not None else None,
            pending=bool(pending),
            changes=changes,
        )
        amendment = None
        if previous is not None:
            if status is ReportStatus.CORRECTED:
                corrections = [line.correction_reason for line in lines if line.correction_reason]
                reason = reason or "; ".join(dict.fromkeys(corrections)) or None
            reason = reason or (
                COMPLETED_REASON if status is ReportStatus.FINAL else ADDED_RESULTS_REASON
            )
            amendment = Amendment(
                reason=reason,
                supersedes_number=previous.report_number,
                supersedes_version=previous.report_version,
                supersedes_issued_at=previous.created_at,
                changes=changes,
            )
        else:
            reason = None
        amended = status in {ReportStatus.AMENDED, ReportStatus.CORRECTED}
        issued_at = utcnow()
        number = await next_value(session, organisation_id, "report")
        report_number = f"RPT-{issued_at.astimezone(IST):%Y}-{number:06d}"
        code = secrets.token_urlsafe(16)
        built = await self.build_document(
            session,
            organisation_id,
            order_id,
            report_number=report_number,
            version=version,
            issued_at=issued_at,
            verification_code=code,
            amendment=amendment,
            lines=lines,
            status=status,
            pending_tests=pending,
        )
        rendered = await render_pdf_async(built.document)
        report_id = new_id()
        # Every version of an order's report is a version of one document, keyed by the order.
        pdf = await files_service.store_generated(
            session,
            organisation_id,
            FilePurpose.REPORT,
            rendered.data,
            filename=f"{report_number}.pdf",
            document_id=order_id,
            subject=("report", report_id),
            patient_id=built.patient_id,
            order_id=order_id,
        )
        report = Report(
            id=report_id,
            organisation_id=organisation_id,
            order_id=order_id,
            report_number=report_number,
            report_version=version,
            is_current=True,
            supersedes_id=previous.id if previous else None,
            amended=amended,
            amendment_reason=reason,
            status=str(status),
            changes="; ".join(f"{c.test_name}: {c.kind}" for c in changes) or None,
            result_ids=[line.result_id for line in lines],
            language=built.document.language,
            storage_key=pdf.storage_key,
            file_id=pdf.id,
            source_fingerprint=fingerprint,
            sha256=pdf.sha256,
            page_count=rendered.page_count,
            size_bytes=len(rendered.data),
            verification_code=code,
            created_at=issued_at,
        )
        if previous is not None:
            before = _snapshot(previous)
            previous.is_current = False
            await audit_service.record(
                session,
                organisation_id=organisation_id,
                actor=SYSTEM_ACTOR,
                action="report.superseded",
                entity_type="report",
                entity_id=previous.id,
                before={"is_current": before["is_current"]},
                after={"is_current": False},
            )
        session.add(report)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=SYSTEM_ACTOR,
            action="report.issued",
            entity_type="report",
            entity_id=report.id,
            after=_snapshot(report),
        )
        released = not await report_release.is_held(session, organisation_id, order_id)
        await publish(
            session,
            ReportFinalized(
                organisation_id=organisation_id,
                order_id=order_id,
                report_id=report.id,
                report_version=version,
                amended=amended,
                released=released,
            ),
        )
        if released:
            await publish(
                session,
                ReportReleased(
                    organisation_id=organisation_id,
                    order_id=order_id,
                    report_id=report.id,
                    report_version=version,
                ),
            )
        logger.info(
            "Issued %s report %s v%d for order %s: %d pages in %.2fs",
            status,
            report_number,
            version,
            order_id,
            rendered.page_count,
            rendered.seconds,
        )
        return report

    # ---------------------------------------------------------------- reading

    async def _lines(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> list[ReportLine]:
        lines = await results_service.report_lines(session, organisation_id, order_id)
        if not lines:
            raise ReportNotReady("No verified results on this order yet.", order_id=str(order_id))
        return lines

    async def _current(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> Report | None:
        return await session.scalar(
            select(Report).where(
                Report.organisation_id == organisation_id,
                Report.order_id == order_id,
                Report.is_current.is_(True),
            )
        )

    async def current_reports(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_ids: list[uuid.UUID]
    ) -> list[Report]:
        """The current report version of each of ``order_ids`` that has one (newest first)."""
        if not order_ids:
            return []
        return list(
            await session.scalars(
                select(Report)
                .where(
                    Report.organisation_id == organisation_id,
                    Report.order_id.in_(order_ids),
                    Report.is_current.is_(True),
                )
                .order_by(Report.created_at.desc())
            )
        )

    async def list_for_order(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID, page: PageParams
    ) -> tuple[list[Report], int]:
        """Every version of the order's report, newest first (404 for another tenant's order)."""
        await orders_service.get(session, caller, order_id)
        statement = (
            select(Report)
            .where(Report.organisation_id == caller.organisation_id, Report.order_id == order_id)
            .order_by(Report.report_version.desc())
        )
        return await paginate(session, statement, page)

    async def current_pdf(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> ReportPdf:
        order = await orders_service.get(session, caller, order_id)
        report = await self._current(session, caller.organisation_id, order_id)
        if report is None:
            raise ReportNotReady(
                "This order has no report yet; it is issued when every result is verified.",
                order_id=str(order_id),
            )
        data = await self._read(session, report)
        await self._log_read(session, caller, report, order.patient_id)
        return ReportPdf(report, data)

    async def get(self, session: AsyncSession, caller: Principal, report_id: uuid.UUID) -> Report:
        report = await session.scalar(
            select(Report).where(
                Report.id == report_id, Report.organisation_id == caller.organisation_id
            )
        )
        if report is None:
            raise ReportNotFound("No such report in your organisation.", entity="report")
        if caller.branch_ids is not None:
            await orders_service.get(session, caller, report.order_id)  # branch limits
        return report

    async def pdf(
        self, session: AsyncSession, caller: Principal, report_id: uuid.UUID
    ) -> ReportPdf:
        report = await self.get(session, caller, report_id)
        data = await self._read(session, report)
        order = await orders_service.get(session, caller, report.order_id)
        await self._log_read(session, caller, report, order.patient_id)
        return ReportPdf(report, data)

    async def _log_read(
        self, session: AsyncSession, caller: Principal, report: Report, patient_id: uuid.UUID
    ) -> None:
        """The read-access log (DPDP): a person opened this patient's report."""
        await audit_service.record_access(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            patient_id=patient_id,
            entity_type="report",
            entity_id=report.id,
            action="download",
        )

    async def _read(self, session: AsyncSession, report: Report) -> bytes:
        try:
            if report.file_id is not None:
                _, data = await files_service.read_bytes(
                    session, report.organisation_id, report.file_id
                )
            else:
                data = await self.store().get(report.storage_key)
        except FileDeleted as exc:
            raise ReportPdfDeleted(
                f"The PDF of report {report.report_number} was deleted.", **exc.data
            ) from exc
        except (ObjectNotFoundError, FileMissingFromStore, FileNotFound) as exc:
            raise ReportIntegrityError(
                f"The PDF of report {report.report_number} is missing from storage."
            ) from exc
        if hashlib.sha256(data).hexdigest() != report.sha256:
            logger.error("Report %s does not match its SHA-256", report.id)
            raise ReportIntegrityError(
                f"The stored PDF of report {report.report_number} does not match its checksum."
            )
        return data

    async def verify(self, session: AsyncSession, code: str) -> dict[str, Any]:
        """What the public verification page shows for a QR code (``ReportNotFound`` else).

        Installation-wide lookup by the random code; reveals only the lab, the report's
        identity and checksum, and the patient's initials.
        """
        if not code or len(code) > 64:
            raise ReportNotFound("No report has this verification code.")
        report = await session.scalar(select(Report).where(Report.verification_code == code))
        if report is None:
            raise ReportNotFound("No report has this verification code.")
        caller = _system_caller(report.organisation_id)
        organisation = await tenancy_service.get_organisation_unscoped(
            session, report.organisation_id
        )
        order = await orders_service.get(session, caller, report.order_id)
        patient = await patients_service.get_in(session, report.organisation_id, order.patient_id)
        superseded_by = None
        if not report.is_current:
            current = await self._current(session, report.organisation_id, report.order_id)
            superseded_by = current.report_number if current else None
        return {
            "lab_name": organisation.name,
            "report_number": report.report_number,
            "report_version": report.report_version,
            "issued_at": report.created_at,
            "patient_initials": initials(patient.full_name),
            "sha256": report.sha256,
            "status": "current" if report.is_current else "superseded",
            "is_current": report.is_current,
            "amended": report.amended,
            "superseded_by": superseded_by,
        }


def abha_text(address: str | None, number: str | None) -> str | None:
    """What the report prints for the patient's ABHA (never the full number)."""
    parts = [p for p in (address, mask_abha_number(number) if number else None) if p]
    return " · ".join(parts) or None


async def samples_for_order(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    order_id: uuid.UUID,
    lines: list[ReportLine],
) -> list[Any]:
    """The samples whose results the report prints (all non-rejected ones if unknown)."""
    samples = await samples_service.for_orders(session, organisation_id, [order_id])
    used = {line.sample_id for line in lines if line.sample_id is not None}
    if used:
        return [s for s in samples if s.id in used]
    return [s for s in samples if s.status != SampleStatus.REJECTED]


reports_service = ReportsService()
