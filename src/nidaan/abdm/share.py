"""Scan and share: a patient scans the desk's QR with their ABHA app; the profile arrives as a
callback and waits in the desk's token queue until someone registers it as a new patient or
matches it to an existing one (duplicate checks as for any registration)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm.domain import SEXES
from nidaan.abdm.enums import ShareStatus
from nidaan.abdm.errors import ShareTokenClosed
from nidaan.abdm.models import AbdmFacility, AbdmShareToken
from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.kit.blind_index import blind_index
from nidaan.kit.errors import NotFound
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.kit.time import IST, utcnow
from nidaan.patients.domain import (
    InvalidAbha,
    PersonKeys,
    normalize_abha_address,
    normalize_abha_number,
    score_duplicate,
)
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientCreate
from nidaan.patients.service import patients_service

#: How long a shared profile waits at the desk (sent to the app as the token's expiry).
TOKEN_LIFETIME = timedelta(minutes=30)
_PAGE = PageParams(page=1, limit=20)


@dataclass(frozen=True)
class Candidate:
    patient: Patient
    score: int
    reasons: tuple[str, ...]


def _date_of_birth(token: AbdmShareToken) -> date | None:
    try:
        if token.year_of_birth and token.month_of_birth and token.day_of_birth:
            return date(token.year_of_birth, token.month_of_birth, token.day_of_birth)
    except ValueError:
        return None
    return None


class ShareService:
    async def on_share(
        self, session: AsyncSession, facility: AbdmFacility, request_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Queue the profile (once per request id) and answer with its token number."""
        meta = body.get("metaData") or {}
        person = (body.get("profile") or {}).get("patient") or {}
        counter = str(meta.get("context") or facility.counter_code)[:50]
        token = await session.scalar(
            select(AbdmShareToken).where(AbdmShareToken.request_id == request_id)
        )
        if token is None:
            today = utcnow().astimezone(IST).date()
            # One queue per facility and day; the lock keeps token numbers gapless.
            await session.execute(
                select(
                    func.pg_advisory_xact_lock(
                        int.from_bytes(facility.id.bytes[:8], "big", signed=True)
                    )
                )
            )
            number = 1 + int(
                await session.scalar(
                    select(func.coalesce(func.max(AbdmShareToken.token_number), 0)).where(
                        AbdmShareToken.facility_id == facility.id,
                        AbdmShareToken.share_date == today,
                    )
                )
                or 0
            )
            token = AbdmShareToken(
                organisation_id=facility.organisation_id,
                facility_id=facility.id,
                counter_code=counter,
                share_date=today,
                token_number=number,
                request_id=request_id,
                status=ShareStatus.WAITING.value,
                name=" ".join(str(person.get("name") or "Unknown").split())[:200],
                gender=str(person.get("gender") or "")[:1] or None,
                year_of_birth=_int(person.get("yearOfBirth")),
                month_of_birth=_int(person.get("monthOfBirth")),
                day_of_birth=_int(person.get("dayOfBirth")),
                address={
                    k: v for k, v in (person.get("address") or {}).items() if isinstance(v, str)
                },
                expires_at=utcnow() + TOKEN_LIFETIME,
            )
            try:
                token.abha_number = normalize_abha_number(str(person.get("abhaNumber") or ""))
                token.abha_number_index = blind_index(token.abha_number, "patients.abha_number")
            except InvalidAbha:
                token.abha_number = None
            try:
                token.abha_address = normalize_abha_address(str(person.get("abhaAddress") or ""))
            except InvalidAbha:
                token.abha_address = None
            try:
                token.mobile = normalize_mobile(str(person.get("phoneNumber") or ""))
            except InvalidPhoneNumber:
                token.mobile = None
            session.add(token)
            await session.flush()
        return {
            "acknowledgement": {
                "abhaAddress": person.get("abhaAddress"),
                "status": "SUCCESS",
                "profile": {
                    "context": counter,
                    "tokenNumber": str(token.token_number),
                    "expiry": str(int(TOKEN_LIFETIME.total_seconds())),
                },
            }
        }

    async def list(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        status: ShareStatus | None,
    ) -> tuple[list[AbdmShareToken], int]:
        statement = select(AbdmShareToken).where(
            AbdmShareToken.organisation_id == caller.organisation_id
        )
        if status is not None:
            statement = statement.where(AbdmShareToken.status == status.value)
        return await paginate(
            session,
            statement.order_by(AbdmShareToken.share_date.desc(), AbdmShareToken.token_number),
            page,
        )

    async def get(
        self, session: AsyncSession, caller: Principal, token_id: uuid.UUID
    ) -> AbdmShareToken:
        token = await session.scalar(
            select(AbdmShareToken).where(
                AbdmShareToken.id == token_id,
                AbdmShareToken.organisation_id == caller.organisation_id,
            )
        )
        if token is None:
            raise NotFound("No such shared profile in your organisation.", entity="share_token")
        return token

    async def candidates(
        self, session: AsyncSession, caller: Principal, token: AbdmShareToken
    ) -> list[Candidate]:
        """Existing patients who may be this person (same ABHA, or mobile + demographics)."""
        found: dict[uuid.UUID, Patient] = {}
        if token.abha_number:
            rows, _ = await patients_service.search(
                session, caller, _PAGE, abha_number=token.abha_number
            )
            found.update({p.id: p for p in rows})
        if token.mobile:
            rows, _ = await patients_service.search(session, caller, _PAGE, mobile=token.mobile)
            found.update({p.id: p for p in rows})
        keys = PersonKeys(
            name=token.name,
            sex=SEXES.get(token.gender or "", "other"),
            date_of_birth=_date_of_birth(token),
            dob_estimated=_date_of_birth(token) is None,
            mobile_index=blind_index(token.mobile, "patients.mobile") if token.mobile else None,
            abha_number_index=token.abha_number_index,
        )
        scored = []
        for patient in found.values():
            score = score_duplicate(
                keys,
                PersonKeys(
                    name=patient.full_name,
                    sex=patient.sex,
                    date_of_birth=patient.date_of_birth,
                    dob_estimated=patient.dob_estimated,
                    mobile_index=patient.mobile_index,
                    abha_number_index=patient.abha_number_index,
                ),
            )
            if score.score > 0:
                scored.append(Candidate(patient, score.score, score.reasons))
        return sorted(scored, key=lambda c: -c.score)

    def _open(self, token: AbdmShareToken) -> None:
        if token.status != ShareStatus.WAITING:
            raise ShareTokenClosed(f"Token {token.token_number} is already {token.status}.")

    async def register(
        self,
        session: AsyncSession,
        caller: Principal,
        token_id: uuid.UUID,
        branch_id: uuid.UUID | None,
    ) -> tuple[AbdmShareToken, Any]:
        """Register the shared profile as a new patient (flags likely duplicates)."""
        token = await self.get(session, caller, token_id)
        self._open(token)
        born = _date_of_birth(token)
        data = PatientCreate(
            full_name=token.name,
            sex=SEXES.get(token.gender or "", "other"),
            date_of_birth=born,
            age_years=None
            if born
            else max(0, utcnow().year - (token.year_of_birth or utcnow().year)),
            mobile=token.mobile,
            abha_number=token.abha_number,
            abha_address=token.abha_address,
            address=token.address.get("line"),
            city=token.address.get("district"),
            state=token.address.get("state"),
            pincode=token.address.get("pincode")
            if str(token.address.get("pincode", "")).isdigit()
            else None,
            registered_at_branch_id=branch_id,
        )
        registration = await patients_service.register(session, caller, data)
        await self._close(session, caller, token, ShareStatus.REGISTERED, registration.patient.id)
        return token, registration

    async def match(
        self, session: AsyncSession, caller: Principal, token_id: uuid.UUID, patient_id: uuid.UUID
    ) -> AbdmShareToken:
        """The shared profile is this existing patient: put the ABHA on their record."""
        from nidaan.abdm.enrolment import link_abha_to_patient

        token = await self.get(session, caller, token_id)
        self._open(token)
        await link_abha_to_patient(
            session,
            caller,
            patient_id,
            abha_number=token.abha_number,
            abha_address=token.abha_address,
        )
        await self._close(session, caller, token, ShareStatus.MATCHED, patient_id)
        return token

    async def dismiss(
        self, session: AsyncSession, caller: Principal, token_id: uuid.UUID
    ) -> AbdmShareToken:
        token = await self.get(session, caller, token_id)
        self._open(token)
        await self._close(session, caller, token, ShareStatus.DISMISSED, None)
        return token

    async def _close(
        self,
        session: AsyncSession,
        caller: Principal,
        token: AbdmShareToken,
        status: ShareStatus,
        patient_id: uuid.UUID | None,
    ) -> None:
        token.status, token.patient_id = status.value, patient_id
        token.resolved_at = utcnow()
        token.resolved_by_id = caller.id if caller.kind == "user" else None
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action=f"abdm_share_token.{status.value}",
            entity_type="abdm_share_token",
            entity_id=token.id,
            before={"status": ShareStatus.WAITING.value},
            after={
                "status": status.value,
                "patient_id": patient_id,
                "token_number": token.token_number,
            },
        )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


share_service = ShareService()
