"""ABHA at the desk: create one by Aadhaar OTP, or verify an existing one by OTP, and link it
to the patient.

The Aadhaar number exists only inside :meth:`start_creation`: validated (Verhoeff), sealed
with ABDM's public key and sent. It is never stored, logged or audited; the enrolment keeps
its last four digits, which is all the desk may see.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.abdm import clients
from nidaan.abdm.domain import (
    SEXES,
    InvalidAadhaar,
    dashed_abha_number,
    normalize_aadhaar,
)
from nidaan.abdm.enums import EnrolmentKind, EnrolmentStatus
from nidaan.abdm.errors import (
    AbdmUnavailable,
    AbhaAlreadyLinked,
    EnrolmentStateError,
    InvalidAadhaarNumber,
    OtpRejected,
)
from nidaan.abdm.exchanges import outbound_recorder
from nidaan.abdm.gateway import GatewayError, HttpAbha
from nidaan.abdm.models import AbdmEnrolment
from nidaan.abdm.sealing import load_public_key, seal
from nidaan.audit.service import audit_service
from nidaan.auth.principal import Principal
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.pagination import PageParams
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.kit.time import utcnow
from nidaan.patients.domain import InvalidAbha, normalize_abha_address, normalize_abha_number
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientUpdate
from nidaan.patients.service import patients_service

logger = logging.getLogger(__name__)

_OTP_CODES = {"ABDM-1204", "ABDM-1205"}


def _ten_digits(mobile: str) -> str:
    try:
        return normalize_mobile(mobile)[-10:]
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc), field="mobile") from exc


def _otp(value: str) -> str:
    digits = value.strip()
    if not digits.isdigit() or not 4 <= len(digits) <= 8:
        raise InvalidInput("An OTP is 4 to 8 digits.", field="otp")
    return digits


def _refusal(exc: GatewayError, *, otp_step: bool = False) -> Exception:
    if otp_step and (exc.code in _OTP_CODES or (exc.status == 400 and "otp" in str(exc).lower())):
        return OtpRejected(f"ABDM refused the OTP: {exc}", abdm_code=exc.code)
    if exc.status == 400:
        return InvalidInput(f"ABDM refused the request: {exc}", abdm_code=exc.code)
    return AbdmUnavailable(f"ABDM did not answer as expected: {exc}", abdm_code=exc.code)


class EnrolmentService:
    def _client(self, session: AsyncSession, caller: Principal) -> HttpAbha:
        return clients.abha(outbound_recorder(session, caller.organisation_id))

    async def _sealer(self, abha: HttpAbha) -> Any:
        try:
            return load_public_key(await abha.public_key())
        except GatewayError as exc:
            raise _refusal(exc) from exc

    async def get(
        self, session: AsyncSession, caller: Principal, enrolment_id: uuid.UUID
    ) -> AbdmEnrolment:
        row = await session.scalar(
            select(AbdmEnrolment).where(
                AbdmEnrolment.id == enrolment_id,
                AbdmEnrolment.organisation_id == caller.organisation_id,
            )
        )
        if row is None:
            raise NotFound("No such ABHA enrolment in your organisation.", entity="enrolment")
        return row

    async def _audit(
        self,
        session: AsyncSession,
        caller: Principal,
        row: AbdmEnrolment,
        action: str,
        before: dict[str, Any] | None = None,
    ) -> None:
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action=action,
            entity_type="abdm_enrolment",
            entity_id=row.id,
            before=before,
            after={
                "patient_id": row.patient_id,
                "kind": row.kind,
                "status": row.status,
                "aadhaar_last4": row.aadhaar_last4,
                "abha_address": row.abha_address,
            },
        )

    # ---- a new ABHA by Aadhaar OTP ----------------------------------------------------------

    async def start_creation(
        self, session: AsyncSession, caller: Principal, patient_id: uuid.UUID, aadhaar: str
    ) -> AbdmEnrolment:
        patient = await patients_service.get(session, caller, patient_id)
        try:
            digits = normalize_aadhaar(aadhaar)
        except InvalidAadhaar as exc:
            raise InvalidAadhaarNumber(str(exc), field="aadhaar_number") from None
        abha = self._client(session, caller)
        key = await self._sealer(abha)
        try:
            answer = await abha.request_otp(
                scope=["abha-enrol"],
                login_hint="aadhaar",
                login_id=seal(key, digits),
                otp_system="aadhaar",
            )
        except GatewayError as exc:
            raise _refusal(exc) from exc
        last4 = digits[-4:]
        del digits, aadhaar  # nothing below may keep the number
        row = AbdmEnrolment(
            organisation_id=caller.organisation_id,
            patient_id=patient.id,
            kind=EnrolmentKind.CREATE.value,
            status=EnrolmentStatus.OTP_SENT.value,
            transaction_id=str(answer.get("txnId") or ""),
            aadhaar_last4=last4,
            profile={"message": str(answer.get("message", ""))[:300]},
            created_by_id=caller.id if caller.kind == "user" else None,
        )
        session.add(row)
        await session.flush()
        await self._audit(session, caller, row, "abdm_enrolment.started")
        return row

    async def verify_aadhaar_otp(
        self,
        session: AsyncSession,
        caller: Principal,
        enrolment_id: uuid.UUID,
        otp: str,
        mobile: str,
    ) -> AbdmEnrolment:
        row = await self._step(session, caller, enrolment_id, EnrolmentStatus.OTP_SENT)
        mobile10 = _ten_digits(mobile)
        abha = self._client(session, caller)
        key = await self._sealer(abha)
        try:
            answer = await abha.enrol_by_aadhaar(
                txn_id=row.transaction_id or "", otp=seal(key, _otp(otp)), mobile=mobile10
            )
        except GatewayError as exc:
            raise _refusal(exc, otp_step=True) from exc
        profile = answer.get("ABHAProfile") or {}
        before = {"status": row.status}
        row.transaction_id = str(answer.get("txnId") or row.transaction_id)
        row.abha_number = normalize_abha_number(str(profile.get("ABHANumber", "")))
        row.mobile = "+91" + mobile10
        row.profile = _profile_summary(profile, is_new=bool(answer.get("isNew")))
        addresses = [a for a in profile.get("phrAddress") or [] if isinstance(a, str)]
        if addresses:
            row.abha_address = addresses[0].lower()
        if str(profile.get("mobile") or "") != mobile10:
            # Not the Aadhaar-linked mobile: ABDM wants it verified by its own OTP.
            try:
                await abha.request_otp(
                    scope=["abha-enrol", "mobile-verify"],
                    login_hint="mobile",
                    login_id=seal(key, mobile10),
                    otp_system="abdm",
                    txn_id=row.transaction_id,
                )
            except GatewayError as exc:
                raise _refusal(exc) from exc
            row.status = EnrolmentStatus.MOBILE_OTP_SENT.value
        else:
            await self._after_verification(session, caller, row, abha)
        await session.flush()
        await self._audit(session, caller, row, "abdm_enrolment.aadhaar_verified", before)
        return row

    async def verify_mobile_otp(
        self, session: AsyncSession, caller: Principal, enrolment_id: uuid.UUID, otp: str
    ) -> AbdmEnrolment:
        row = await self._step(session, caller, enrolment_id, EnrolmentStatus.MOBILE_OTP_SENT)
        abha = self._client(session, caller)
        key = await self._sealer(abha)
        try:
            await abha.verify_mobile(txn_id=row.transaction_id or "", otp=seal(key, _otp(otp)))
        except GatewayError as exc:
            raise _refusal(exc, otp_step=True) from exc
        before = {"status": row.status}
        await self._after_verification(session, caller, row, abha)
        await session.flush()
        await self._audit(session, caller, row, "abdm_enrolment.mobile_verified", before)
        return row

    async def _after_verification(
        self, session: AsyncSession, caller: Principal, row: AbdmEnrolment, abha: HttpAbha
    ) -> None:
        """An existing ABHA (with an address) is linked now; a new one chooses an address."""
        if row.abha_address:
            await self._complete(session, caller, row)
            return
        try:
            row.address_suggestions = await abha.address_suggestions(row.transaction_id or "")
        except GatewayError as exc:
            logger.warning("ABHA address suggestions failed: %s", exc)
            row.address_suggestions = []
        row.status = EnrolmentStatus.ADDRESS_PENDING.value

    async def choose_address(
        self, session: AsyncSession, caller: Principal, enrolment_id: uuid.UUID, address: str
    ) -> AbdmEnrolment:
        row = await self._step(session, caller, enrolment_id, EnrolmentStatus.ADDRESS_PENDING)
        handle = address.strip().lower().split("@", 1)[0]
        abha = self._client(session, caller)
        try:
            answer = await abha.set_address(txn_id=row.transaction_id or "", address=handle)
        except GatewayError as exc:
            raise _refusal(exc) from exc
        try:
            row.abha_address = normalize_abha_address(str(answer.get("preferredAbhaAddress")))
        except InvalidAbha as exc:
            raise AbdmUnavailable(f"ABDM returned an unusable ABHA address: {exc}") from exc
        before = {"status": row.status}
        await self._complete(session, caller, row)
        await session.flush()
        await self._audit(session, caller, row, "abdm_enrolment.address_chosen", before)
        return row

    # ---- an existing ABHA, verified by OTP ---------------------------------------------------

    async def start_link(
        self,
        session: AsyncSession,
        caller: Principal,
        patient_id: uuid.UUID,
        *,
        abha_number: str | None,
        abha_address: str | None,
        otp_via: str,
    ) -> AbdmEnrolment:
        patient = await patients_service.get(session, caller, patient_id)
        if bool(abha_number) == bool(abha_address):
            raise InvalidInput("Give the ABHA number or the ABHA address (one of them).")
        try:
            number = normalize_abha_number(abha_number) if abha_number else None
            address = normalize_abha_address(abha_address) if abha_address else None
        except InvalidAbha as exc:
            raise InvalidInput(
                str(exc), field="abha_number" if abha_number else "abha_address"
            ) from exc
        abha = self._client(session, caller)
        key = await self._sealer(abha)
        via_aadhaar = otp_via == "aadhaar"
        if address:
            scope = ["abha-address-login", "mobile-verify"]
            login_id, system = seal(key, address), "abdm"
        else:
            assert number is not None
            scope = ["abha-login", "aadhaar-verify" if via_aadhaar else "mobile-verify"]
            # The login APIs refuse bare digits: the dashes stay.
            login_id, system = (
                seal(key, dashed_abha_number(number)),
                ("aadhaar" if via_aadhaar else "abdm"),
            )
        try:
            answer = await abha.login_request_otp(
                by_address=address is not None, scope=scope, login_id=login_id, otp_system=system
            )
        except GatewayError as exc:
            raise _refusal(exc) from exc
        row = AbdmEnrolment(
            organisation_id=caller.organisation_id,
            patient_id=patient.id,
            kind=EnrolmentKind.LINK.value,
            status=EnrolmentStatus.OTP_SENT.value,
            transaction_id=str(answer.get("txnId") or ""),
            abha_number=number,
            abha_address=address,
            profile={"message": str(answer.get("message", ""))[:300], "scope": scope},
            created_by_id=caller.id if caller.kind == "user" else None,
        )
        session.add(row)
        await session.flush()
        await self._audit(session, caller, row, "abdm_abha_link.started")
        return row

    async def verify_link_otp(
        self, session: AsyncSession, caller: Principal, enrolment_id: uuid.UUID, otp: str
    ) -> AbdmEnrolment:
        row = await self._step(session, caller, enrolment_id, EnrolmentStatus.OTP_SENT)
        if row.kind != EnrolmentKind.LINK:
            raise EnrolmentStateError("This is an ABHA creation; verify its OTP there.")
        abha = self._client(session, caller)
        key = await self._sealer(abha)
        try:
            answer = await abha.login_verify(
                by_address=row.abha_number is None,
                scope=list(row.profile.get("scope") or []),
                txn_id=row.transaction_id or "",
                otp=seal(key, _otp(otp)),
            )
        except GatewayError as exc:
            raise _refusal(exc, otp_step=True) from exc
        accounts = [a for a in answer.get("accounts") or [] if isinstance(a, dict)]
        chosen = _matching_account(accounts, row.abha_number, row.abha_address)
        if chosen is None:
            raise AbdmUnavailable("ABDM verified the OTP but returned no matching ABHA account.")
        before = {"status": row.status}
        row.abha_number = normalize_abha_number(str(chosen.get("ABHANumber", "")))
        preferred = chosen.get("preferredAbhaAddress")
        if preferred:
            row.abha_address = normalize_abha_address(str(preferred))
        row.profile = {**row.profile, **_profile_summary(chosen, is_new=False)}
        await self._complete(session, caller, row)
        await session.flush()
        await self._audit(session, caller, row, "abdm_abha_link.verified", before)
        return row

    # ---- shared -------------------------------------------------------------------------

    async def _step(
        self,
        session: AsyncSession,
        caller: Principal,
        enrolment_id: uuid.UUID,
        expected: EnrolmentStatus,
    ) -> AbdmEnrolment:
        row = await self.get(session, caller, enrolment_id)
        if row.status != expected:
            raise EnrolmentStateError(
                f"This enrolment is at '{row.status}', not '{expected.value}'.",
                current_status=row.status,
            )
        return row

    async def _complete(self, session: AsyncSession, caller: Principal, row: AbdmEnrolment) -> None:
        await link_abha_to_patient(
            session,
            caller,
            row.patient_id,
            abha_number=row.abha_number,
            abha_address=row.abha_address,
        )
        row.status = EnrolmentStatus.COMPLETED.value
        row.completed_at = utcnow()


def _profile_summary(profile: dict[str, Any], *, is_new: bool) -> dict[str, Any]:
    """What the desk checks against the patient: name, gender, year of birth (no photo)."""
    name = profile.get("name") or " ".join(
        str(profile.get(k) or "") for k in ("firstName", "middleName", "lastName")
    )
    year = profile.get("yearOfBirth") or str(profile.get("dob") or "")[-4:] or None
    return {
        "name": " ".join(str(name).split()),
        "gender": profile.get("gender"),
        "year_of_birth": int(year) if year and str(year).isdigit() else None,
        "is_new": is_new,
    }


def _matching_account(
    accounts: list[dict[str, Any]], number: str | None, address: str | None
) -> dict[str, Any] | None:
    for account in accounts:
        digits = "".join(ch for ch in str(account.get("ABHANumber", "")) if ch.isdigit())
        preferred = str(account.get("preferredAbhaAddress") or "").lower()
        if (number and digits == number) or (address and preferred == address):
            return account
    return accounts[0] if len(accounts) == 1 and not number and not address else None


async def link_abha_to_patient(
    session: AsyncSession,
    caller: Principal,
    patient_id: uuid.UUID,
    *,
    abha_number: str | None,
    abha_address: str | None,
) -> Patient:
    """Put a verified ABHA on the patient (refused if another patient already has it)."""
    patient = await patients_service.get(session, caller, patient_id)
    if abha_number:
        holders, _ = await patients_service.search(
            session, caller, _ONE_PAGE, abha_number=abha_number, include_merged=False
        )
        if any(h.id != patient.id for h in holders):
            raise AbhaAlreadyLinked(
                "Another patient record already has this ABHA number; merge the two records "
                "first if they are the same person.",
                patient_ids=[str(h.id) for h in holders if h.id != patient.id],
            )
    changes: dict[str, Any] = {}
    if abha_number and patient.abha_number != abha_number:
        changes["abha_number"] = abha_number
    if abha_address and patient.abha_address != abha_address:
        changes["abha_address"] = abha_address
    if changes:
        patient = await patients_service.update(
            session, caller, patient.id, PatientUpdate(version=patient.version, **changes)
        )
        from nidaan.abdm.linking import linking_service

        await linking_service.patient_abha_linked(session, caller.organisation_id, patient.id)
    return patient


_ONE_PAGE = PageParams(page=1, limit=5)


def year_of_birth(patient: Patient) -> int | None:
    return patient.date_of_birth.year if isinstance(patient.date_of_birth, date) else None


def sex_of(gender: str | None) -> str:
    return SEXES.get(str(gender or "O"), "other")


enrolment_service = EnrolmentService()
