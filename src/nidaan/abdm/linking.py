"""Care contexts: each reported order, offered to the patient's ABHA.

- HIP-initiated: when a report is finalised (or an ABHA is put on the patient), we ask the
  gateway for a link token for the patient's ABHA address and link the unlinked care
  contexts with it. Both calls are answered by callbacks; the requests are tracked.
- User-initiated: the patient's PHR app discovers us (we match the patient and list unlinked
  care contexts), asks to link some (we send an OTP to the patient's mobile) and confirms
  with the OTP.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.domain import abdm_gender, bare_abha_number, dashed_abha_number, wire_timestamp
from nidaan.abdm.enums import CareContextStatus, RequestKind
from nidaan.abdm.exchanges import facility_by_hip
from nidaan.abdm.models import AbdmCareContext, AbdmFacility, AbdmLinkSession, AbdmLinkToken
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.kit.blind_index import blind_index
from nidaan.kit.jobs import enqueue
from nidaan.kit.pagination import PageParams
from nidaan.kit.phone import InvalidPhoneNumber, mask_mobile, normalize_mobile
from nidaan.kit.time import IST, utcnow
from nidaan.patients.domain import (
    InvalidAbha,
    names_similar,
    normalize_abha_address,
    normalize_abha_number,
)
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientUpdate
from nidaan.patients.service import patients_service
from nidaan.reports.models import Report
from nidaan.reports.service import reports_service

logger = logging.getLogger(__name__)

HI_TYPE = "DiagnosticReport"
#: How long we reuse a link token (CARE caches 30 minutes; NHA's wrapper says 6 months).
LINK_TOKEN_LIFETIME = timedelta(minutes=30)
LINK_OTP_LIFETIME = timedelta(minutes=10)
LINK_OTP_ATTEMPTS = 5
_PAGE = PageParams(page=1, limit=100)


def _caller(organisation_id: uuid.UUID) -> Any:
    from nidaan.fhir.service import system_caller

    return system_caller(organisation_id)


def _display(order_number: str, report: Report) -> str:
    return f"Lab report {order_number} ({report.created_at.astimezone(IST):%d %b %Y})"


def _otp_hash(link_reference: str, otp: str) -> str:
    return hmac.new(link_reference.encode(), otp.encode(), hashlib.sha256).hexdigest()


class LinkingService:
    # ---- care contexts ----------------------------------------------------------------------

    async def note_report(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        order_id: uuid.UUID,
        report_id: uuid.UUID,
    ) -> AbdmCareContext | None:
        """A report was issued: make (or refresh) the order's care context and link it."""
        facility = await _facility_of(session, organisation_id)
        if facility is None:
            return None
        report = await session.get(Report, report_id)
        if report is None or report.organisation_id != organisation_id:
            return None
        from nidaan.orders.service import orders_service

        order = await orders_service.get(session, _caller(organisation_id), order_id)
        from nidaan.compliance.enums import Purpose
        from nidaan.compliance.service import compliance_service

        if await compliance_service.withdrawn(
            session, organisation_id, order.patient_id, Purpose.ABDM_SHARING
        ):
            return None  # DPDP: the patient withdrew ABDM sharing; nothing more is linked
        context = await self._upsert(
            session, facility, order.patient_id, order.order_number, order.id, report
        )
        if context.status == CareContextStatus.LINKED:
            await self.queue_context_notify(session, context)
        else:
            await self.queue_linking(session, organisation_id, order.patient_id)
        return context

    async def _upsert(
        self,
        session: AsyncSession,
        facility: AbdmFacility,
        patient_id: uuid.UUID,
        order_number: str,
        order_id: uuid.UUID,
        report: Report,
    ) -> AbdmCareContext:
        context = await session.scalar(
            select(AbdmCareContext)
            .where(
                AbdmCareContext.organisation_id == facility.organisation_id,
                AbdmCareContext.order_id == order_id,
            )
            .with_for_update()
        )
        if context is None:
            context = AbdmCareContext(
                organisation_id=facility.organisation_id,
                patient_id=patient_id,
                order_id=order_id,
                reference=order_number,
                hip_id=facility.hip_id,
                status=CareContextStatus.PENDING.value,
                display=_display(order_number, report),
                report_id=report.id,
                record_date=report.created_at,
            )
            session.add(context)
        else:
            context.report_id = report.id
            context.record_date = report.created_at
            context.display = _display(order_number, report)
        await session.flush()
        return context

    async def ensure_care_contexts(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID
    ) -> list[AbdmCareContext]:
        """Care contexts for every reported order of the patient (reports issued before
        the facility was registered, or before ABDM was switched on, included)."""
        facility = await _facility_of(session, organisation_id)
        if facility is None:
            return []
        from nidaan.orders.service import orders_service

        caller = _caller(organisation_id)
        orders, page = [], _PAGE
        while True:
            rows, total = await orders_service.list(session, caller, page, patient_id=patient_id)
            orders += rows
            if page.page * page.limit >= total:
                break
            page = PageParams(page=page.page + 1, limit=page.limit)
        by_id = {o.id: o for o in orders}
        contexts = []
        for report in await reports_service.current_reports(session, organisation_id, list(by_id)):
            order = by_id[report.order_id]
            contexts.append(
                await self._upsert(
                    session, facility, patient_id, order.order_number, order.id, report
                )
            )
        return contexts

    async def patient_abha_linked(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID
    ) -> None:
        """An ABHA was put on the patient: offer every reported order to it."""
        if await self.ensure_care_contexts(session, organisation_id, patient_id):
            await self.queue_linking(session, organisation_id, patient_id)

    async def queue_linking(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID
    ) -> None:
        from nidaan.abdm.tasks import link_care_contexts

        await enqueue(
            session,
            link_care_contexts,
            organisation_id=str(organisation_id),
            patient_id=str(patient_id),
        )

    async def queue_context_notify(self, session: AsyncSession, context: AbdmCareContext) -> None:
        from nidaan.abdm.tasks import notify_care_context

        await enqueue(
            session,
            notify_care_context,
            organisation_id=str(context.organisation_id),
            care_context_id=str(context.id),
        )

    async def list_care_contexts(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID | None
    ) -> list[AbdmCareContext]:
        statement = select(AbdmCareContext).where(
            AbdmCareContext.organisation_id == organisation_id
        )
        if patient_id is not None:
            statement = statement.where(AbdmCareContext.patient_id == patient_id)
        return list(
            await session.scalars(statement.order_by(AbdmCareContext.created_at.desc()).limit(500))
        )

    # ---- HIP-initiated linking: what to send ------------------------------------------------

    async def linking_plan(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID
    ) -> dict[str, Any] | None:
        """What the linking job must do next for a patient, or None (nothing to link)."""
        facility = await _facility_of(session, organisation_id)
        patient = await patients_service.get_in(session, organisation_id, patient_id)
        if facility is None or not (patient.abha_address or patient.abha_number):
            return None
        contexts = list(
            await session.scalars(
                select(AbdmCareContext).where(
                    AbdmCareContext.organisation_id == organisation_id,
                    AbdmCareContext.patient_id == patient_id,
                    AbdmCareContext.status != CareContextStatus.LINKED.value,
                )
            )
        )
        if not contexts:
            return None
        token = None
        if patient.abha_address:
            token = await session.scalar(
                select(AbdmLinkToken).where(
                    AbdmLinkToken.hip_id == facility.hip_id,
                    AbdmLinkToken.abha_address == patient.abha_address,
                    AbdmLinkToken.expires_at > utcnow() + timedelta(seconds=30),
                )
            )
        plan: dict[str, Any] = {
            "hip_id": facility.hip_id,
            "patient_id": patient.id,
            "abha_address": patient.abha_address,
            "care_context_ids": [str(c.id) for c in contexts],
        }
        if token is None:
            plan["kind"] = RequestKind.GENERATE_LINK_TOKEN.value
            plan["body"] = {
                "abhaNumber": bare_abha_number(patient.abha_number),
                "abhaAddress": patient.abha_address,
                "name": patient.full_name,
                "gender": abdm_gender(patient.sex),
                "yearOfBirth": patient.date_of_birth.year if patient.date_of_birth else None,
            }
        else:
            plan["kind"] = RequestKind.LINK_CARE_CONTEXTS.value
            plan["link_token"] = token.token
            plan["body"] = {
                "abhaNumber": bare_abha_number(patient.abha_number),
                "abhaAddress": patient.abha_address,
                "patient": [
                    {
                        "referenceNumber": patient.mrn,
                        "display": patient.full_name,
                        "careContexts": [
                            {"referenceNumber": c.reference, "display": c.display} for c in contexts
                        ],
                        "hiType": HI_TYPE,
                        "count": len(contexts),
                    }
                ],
            }
        return plan

    # ---- HIP-initiated linking: the callbacks ---------------------------------------------

    async def on_generate_token(
        self, session: AsyncSession, request: Any, body: dict[str, Any]
    ) -> None:
        """Keep the link token, then link the waiting care contexts with it."""
        token = body.get("linkToken")
        address = str(body.get("abhaAddress") or request.subject.get("abha_address") or "").lower()
        if not token or not address:
            return
        existing = await session.scalar(
            select(AbdmLinkToken).where(
                AbdmLinkToken.hip_id == request.hip_id, AbdmLinkToken.abha_address == address
            )
        )
        if existing is None:
            existing = AbdmLinkToken(
                organisation_id=request.organisation_id,
                hip_id=request.hip_id,
                abha_address=address,
                token=str(token),
                expires_at=utcnow() + LINK_TOKEN_LIFETIME,
            )
            session.add(existing)
        else:
            existing.token, existing.expires_at = str(token), utcnow() + LINK_TOKEN_LIFETIME
        if request.patient_id:
            patient = await patients_service.get_in(
                session, request.organisation_id, request.patient_id
            )
            if not patient.abha_address:
                # The gateway told us the patient's ABHA address (we only knew the number).
                await patients_service.update(
                    session,
                    _caller(request.organisation_id),
                    patient.id,
                    PatientUpdate(version=patient.version, abha_address=address),
                )
            await self.queue_linking(session, request.organisation_id, request.patient_id)
        await session.flush()

    async def on_link_answer(
        self, session: AsyncSession, request: Any, body: dict[str, Any], error: str | None
    ) -> None:
        ids = [uuid.UUID(i) for i in request.subject.get("care_context_ids", [])]
        contexts = list(
            await session.scalars(
                select(AbdmCareContext).where(
                    AbdmCareContext.organisation_id == request.organisation_id,
                    AbdmCareContext.id.in_(ids),
                )
            )
        )
        for context in contexts:
            before = {"status": context.status}
            if error:
                context.status, context.error = CareContextStatus.FAILED.value, error[:1000]
            else:
                context.status = CareContextStatus.LINKED.value
                context.linked_via, context.linked_at, context.error = "hip", utcnow(), None
                context.abha_address = (
                    str(body.get("abhaAddress") or request.subject.get("abha_address") or "")
                    or None
                )
            await self._audit_context(session, context, before)
        if error and "link token" in error.lower():
            # The token was refused: forget it so the next run asks for a fresh one.
            token = await session.scalar(
                select(AbdmLinkToken).where(
                    AbdmLinkToken.hip_id == request.hip_id,
                    AbdmLinkToken.abha_address == request.subject.get("abha_address"),
                )
            )
            if token is not None:
                await session.delete(token)
        await session.flush()

    async def _audit_context(
        self, session: AsyncSession, context: AbdmCareContext, before: dict[str, Any]
    ) -> None:
        await audit_service.record(
            session,
            organisation_id=context.organisation_id,
            actor=SYSTEM_ACTOR,
            action=f"abdm_care_context.{context.status}",
            entity_type="abdm_care_context",
            entity_id=context.id,
            before=before,
            after={
                "status": context.status,
                "reference": context.reference,
                "abha_address": context.abha_address,
                "linked_via": context.linked_via,
                "error": context.error,
            },
        )

    def context_notify_body(self, context: AbdmCareContext, patient: Patient) -> dict[str, Any]:
        return {
            "notification": {
                "patient": {"id": context.abha_address},
                "careContext": {
                    "patientReference": patient.mrn,
                    "careContextReference": context.reference,
                },
                "hiTypes": [HI_TYPE],
                "date": wire_timestamp(context.record_date),
                "hip": {"id": context.hip_id},
            }
        }

    # ---- user-initiated: discover, init, confirm ------------------------------------------

    async def discover(
        self, session: AsyncSession, facility: AbdmFacility, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The on-discover answer (without ``response``): matched patient and unlinked contexts."""
        person = body.get("patient") or {}
        reply: dict[str, Any] = {"transactionId": body.get("transactionId")}
        patient, matched_by = await self._match(session, facility.organisation_id, person)
        if patient is None:
            reply["error"] = {"code": "ABDM-1010", "message": "Patient not found"}
            return reply
        await self.ensure_care_contexts(session, facility.organisation_id, patient.id)
        address = str(person.get("id") or "").lower()
        contexts = [
            c
            for c in await self.list_care_contexts(session, facility.organisation_id, patient.id)
            if not (c.status == CareContextStatus.LINKED and c.abha_address == address)
        ]
        reply["patient"] = [
            {
                "referenceNumber": patient.mrn,
                "display": patient.full_name,
                "careContexts": [
                    {"referenceNumber": c.reference, "display": c.display} for c in contexts
                ],
                "hiType": HI_TYPE,
                "count": len(contexts),
            }
        ]
        reply["matchedBy"] = matched_by
        return reply

    async def _match(
        self, session: AsyncSession, organisation_id: uuid.UUID, person: dict[str, Any]
    ) -> tuple[Patient | None, list[str]]:
        caller = _caller(organisation_id)
        identifiers = {
            str(i.get("type")): str(i.get("value"))
            for i in (person.get("verifiedIdentifiers") or [])
            if isinstance(i, dict)
        }
        unverified = {
            str(i.get("type")): str(i.get("value"))
            for i in (person.get("unverifiedIdentifiers") or [])
            if isinstance(i, dict)
        }
        name = str(person.get("name") or "")
        gender = str(person.get("gender") or "")
        year = person.get("yearOfBirth")

        def demographics(p: Patient) -> bool:
            same_year = (
                year is None
                or p.date_of_birth is None
                or abs(p.date_of_birth.year - int(year)) <= (1 if p.dob_estimated else 0)
            )
            return names_similar(name, p.full_name) and abdm_gender(p.sex) == gender and same_year

        if identifiers.get("ABHA_NUMBER"):
            try:
                digits = normalize_abha_number(identifiers["ABHA_NUMBER"])
                found, _ = await patients_service.search(session, caller, _PAGE, abha_number=digits)
            except Exception:
                found = []
            if len(found) == 1:
                return found[0], ["ABHA_NUMBER"]
        if identifiers.get("MOBILE"):
            try:
                mobile = normalize_mobile(identifiers["MOBILE"])
            except InvalidPhoneNumber:
                mobile = None
            if mobile:
                found, _ = await patients_service.search(session, caller, _PAGE, mobile=mobile)
                matches = [p for p in found if demographics(p)]
                if len(matches) == 1:
                    return matches[0], ["MOBILE"]
        mrn = unverified.get("MR") or identifiers.get("MR")
        if mrn:
            found, _ = await patients_service.search(session, caller, _PAGE, mrn=mrn)
            matches = [p for p in found if demographics(p)]
            if len(matches) == 1:
                return matches[0], ["MR"]
        return None, []

    async def link_init(
        self, session: AsyncSession, facility: AbdmFacility, body: dict[str, Any]
    ) -> tuple[dict[str, Any], tuple[str, str] | None]:
        """The on-init answer and the (mobile, OTP message) to send, or an error answer."""
        reply: dict[str, Any] = {"transactionId": body.get("transactionId")}
        address = str(body.get("abhaAddress") or "").lower()
        requested = [p for p in body.get("patient") or [] if isinstance(p, dict)]
        caller = _caller(facility.organisation_id)
        patient: Patient | None = None
        contexts: list[AbdmCareContext] = []
        for item in requested:
            found, _ = await patients_service.search(
                session, caller, _PAGE, mrn=str(item.get("referenceNumber", ""))
            )
            if len(found) != 1 or (patient is not None and found[0].id != patient.id):
                patient = None
                break
            patient = found[0]
            refs = [str(c.get("referenceNumber")) for c in item.get("careContexts") or []]
            rows = list(
                await session.scalars(
                    select(AbdmCareContext).where(
                        AbdmCareContext.organisation_id == facility.organisation_id,
                        AbdmCareContext.patient_id == patient.id,
                        AbdmCareContext.reference.in_(refs),
                    )
                )
            )
            if len(rows) != len(set(refs)):
                patient = None
                break
            contexts += rows
        if patient is None or not contexts or not address:
            reply["error"] = {
                "code": "ABDM-1010",
                "message": "Care contexts not found for this patient",
            }
            return reply, None
        if not patient.mobile:
            reply["error"] = {
                "code": "ABDM-1012",
                "message": "No mobile on record to send the OTP to",
            }
            return reply, None
        otp = f"{secrets.randbelow(10**6):06d}"
        reference = secrets.token_hex(12)
        expires = utcnow() + LINK_OTP_LIFETIME
        session.add(
            AbdmLinkSession(
                organisation_id=facility.organisation_id,
                transaction_id=str(body.get("transactionId") or ""),
                link_reference=reference,
                hip_id=facility.hip_id,
                abha_address=address,
                patient_id=patient.id,
                care_context_ids=[c.id for c in contexts],
                otp_hash=_otp_hash(reference, otp),
                status="pending",
                expires_at=expires,
            )
        )
        await session.flush()
        reply["link"] = {
            "referenceNumber": reference,
            "authenticationType": "DIRECT",
            "meta": {
                "communicationMedium": "MOBILE",
                "communicationHint": mask_mobile(patient.mobile),
                "communicationExpiry": wire_timestamp(expires),
            },
        }
        message = (
            f"{otp} is your OTP to link your lab reports from {facility.name} to your ABHA "
            f"{address}. It is valid for 10 minutes. Do not share it with anyone."
        )
        return reply, (patient.mobile, message)

    async def link_confirm(
        self, session: AsyncSession, facility: AbdmFacility, body: dict[str, Any]
    ) -> dict[str, Any]:
        confirmation = body.get("confirmation") or {}
        reference = str(confirmation.get("linkRefNumber") or "")
        otp = str(confirmation.get("token") or "")
        link = await session.scalar(
            select(AbdmLinkSession)
            .where(
                AbdmLinkSession.link_reference == reference,
                AbdmLinkSession.organisation_id == facility.organisation_id,
            )
            .with_for_update()
        )
        if link is None or link.status != "pending":
            return {"error": {"code": "ABDM-1036", "message": "Unknown or used link reference"}}
        if link.expires_at < utcnow():
            link.status = "expired"
            return {"error": {"code": "ABDM-1037", "message": "The OTP has expired"}}
        if link.attempts >= LINK_OTP_ATTEMPTS:
            link.status = "failed"
            return {"error": {"code": "ABDM-1038", "message": "Too many wrong OTPs"}}
        if not hmac.compare_digest(link.otp_hash, _otp_hash(reference, otp)):
            link.attempts += 1
            return {"error": {"code": "ABDM-1035", "message": "Incorrect OTP"}}
        link.status = "confirmed"
        contexts = list(
            await session.scalars(
                select(AbdmCareContext).where(AbdmCareContext.id.in_(link.care_context_ids))
            )
        )
        for context in contexts:
            before = {"status": context.status}
            context.status = CareContextStatus.LINKED.value
            context.abha_address, context.linked_via, context.linked_at = (
                link.abha_address,
                "user",
                utcnow(),
            )
            context.error = None
            await self._audit_context(session, context, before)
        patient = await patients_service.get_in(session, facility.organisation_id, link.patient_id)
        if not patient.abha_address:
            try:
                address = normalize_abha_address(link.abha_address)
                await patients_service.update(
                    session,
                    _caller(facility.organisation_id),
                    patient.id,
                    PatientUpdate(version=patient.version, abha_address=address),
                )
            except InvalidAbha:
                logger.info("ABHA address from a link confirmation is not in our form; not stored")
        await session.flush()
        return {
            "patient": [
                {
                    "referenceNumber": patient.mrn,
                    "display": patient.full_name,
                    "careContexts": [
                        {"referenceNumber": c.reference, "display": c.display} for c in contexts
                    ],
                    "hiType": HI_TYPE,
                    "count": len(contexts),
                }
            ]
        }


async def _facility_of(session: AsyncSession, organisation_id: uuid.UUID) -> AbdmFacility | None:
    return await session.scalar(
        select(AbdmFacility)
        .where(AbdmFacility.organisation_id == organisation_id, AbdmFacility.is_active)
        .order_by(AbdmFacility.created_at)
        .limit(1)
    )


def mobile_index(mobile: str) -> str:
    return blind_index(normalize_mobile(mobile), "patients.mobile")


__all__ = ["LinkingService", "dashed_abha_number", "facility_by_hip", "linking_service"]

linking_service = LinkingService()
