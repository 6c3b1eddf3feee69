"""The patient booking link: no login; a one-time code sent to the mobile number through the
lab's notification channels proves the number, and buys a short-lived booking token (only
hashes of both are stored). The link books, reschedules and cancels visits of the patients
registered with that number, through the same service as the front desk."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.appointments.enums import BookedVia
from nidaan.appointments.errors import (
    AppointmentNotFound,
    BookingTokenInvalid,
    SlotNotFound,
    TooManyCodes,
)
from nidaan.appointments.models import Appointment, OneTimeCode
from nidaan.appointments.schemas import BookingCreate, PublicBooking
from nidaan.appointments.service import appointments_service
from nidaan.auth.enums import Role
from nidaan.auth.principal import Principal
from nidaan.kit.blind_index import blind_index
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.ids import new_id
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.kit.time import utcnow
from nidaan.notifications.enums import Channel
from nidaan.notifications.service import notifications_service
from nidaan.patients.models import Patient
from nidaan.patients.service import patients_service
from nidaan.tenancy.models import Branch, Organisation

OTP_MINUTES = 10
OTP_ATTEMPTS = 5
#: Codes one mobile number may ask for in OTP_WINDOW (SMS costs money; codes can be guessed).
OTP_PER_WINDOW = 3
OTP_WINDOW = timedelta(minutes=15)
TOKEN_MINUTES = 30
#: The patients module's blind-index context: a verified number finds its patients directly.
MOBILE_CONTEXT = "patients.mobile"


def link_caller(organisation_id: uuid.UUID) -> Principal:
    """The caller of the patient booking link: books as the front desk would, audited as
    the link (the verified mobile number is the patient's credential)."""
    return Principal(
        kind="system",
        id=uuid.UUID(int=0),
        organisation_id=organisation_id,
        roles=frozenset({Role.FRONT_DESK}),
        label="patient booking link",
    )


class BookingLinkService:
    async def link_branch(
        self, session: AsyncSession, organisation_slug: str, branch_code: str
    ) -> Branch:
        """The branch of a booking link; unknown or inactive ones are 404 alike."""
        branch = await session.scalar(
            select(Branch)
            .join(Organisation, Organisation.id == Branch.organisation_id)
            .where(
                Organisation.slug == organisation_slug,
                Organisation.is_active.is_(True),
                Branch.code == branch_code.upper(),
                Branch.is_active.is_(True),
            )
        )
        if branch is None:
            raise NotFound("No such booking page.")
        return branch

    async def request_code(
        self, session: AsyncSession, branch: Branch, raw_mobile: str, language: str
    ) -> OneTimeCode:
        """Send a 6-digit code to the mobile by the lab's channels (SMS first)."""
        mobile = _mobile(raw_mobile)
        index = blind_index(mobile, MOBILE_CONTEXT)
        recent = await session.scalar(
            select(func.count())
            .select_from(OneTimeCode)
            .where(
                OneTimeCode.organisation_id == branch.organisation_id,
                OneTimeCode.mobile_index == index,
                OneTimeCode.created_at > utcnow() - OTP_WINDOW,
            )
        )
        if (recent or 0) >= OTP_PER_WINDOW:
            raise TooManyCodes(
                f"Too many codes for this number; try again in {int(OTP_WINDOW.seconds / 60)} "
                "minutes."
            )
        code = f"{secrets.randbelow(10**6):06d}"
        now = utcnow()
        row = OneTimeCode(
            organisation_id=branch.organisation_id,
            branch_id=branch.id,
            mobile_index=index,
            created_at=now,
            expires_at=now + timedelta(minutes=OTP_MINUTES),
            code_hash="",
        )
        row.id = new_id()
        row.code_hash = blind_index(f"{row.id}:{code}", "appointments.otp_code")
        session.add(row)
        await session.flush()
        await notifications_service.send_one_time_code(
            session,
            branch.organisation_id,
            mobile=mobile,
            code=code,
            minutes_valid=OTP_MINUTES,
            language=language,
            challenge_id=row.id,
        )
        return row

    async def verify_code(
        self, session: AsyncSession, branch: Branch, raw_mobile: str, code: str
    ) -> tuple[str, OneTimeCode] | None:
        """A booking token for the latest live code of this mobile, or None (wrong code:
        the attempt is counted and must be committed; five wrong ones burn the code)."""
        mobile = _mobile(raw_mobile)
        index = blind_index(mobile, MOBILE_CONTEXT)
        row = await session.scalar(
            select(OneTimeCode)
            .where(
                OneTimeCode.organisation_id == branch.organisation_id,
                OneTimeCode.mobile_index == index,
                OneTimeCode.verified_at.is_(None),
                OneTimeCode.expires_at > utcnow(),
                OneTimeCode.attempts < OTP_ATTEMPTS,
            )
            .order_by(OneTimeCode.created_at.desc())
            .limit(1)
            .with_for_update()
        )
        if row is None:
            return None
        if not secrets.compare_digest(
            row.code_hash, blind_index(f"{row.id}:{code}", "appointments.otp_code")
        ):
            row.attempts += 1
            await session.flush()
            return None
        token = secrets.token_urlsafe(32)
        row.verified_at = utcnow()
        row.token_hash = blind_index(token, "appointments.booking_token")
        row.token_expires_at = row.verified_at + timedelta(minutes=TOKEN_MINUTES)
        await session.flush()
        return token, row

    async def token_session(
        self, session: AsyncSession, branch: Branch, token: str | None
    ) -> OneTimeCode:
        if not token:
            raise BookingTokenInvalid("Verify your mobile number first.")
        row = await session.scalar(
            select(OneTimeCode).where(
                OneTimeCode.token_hash == blind_index(token, "appointments.booking_token"),
                OneTimeCode.organisation_id == branch.organisation_id,
                OneTimeCode.token_expires_at > utcnow(),
            )
        )
        if row is None:
            raise BookingTokenInvalid("Your booking session expired; verify your number again.")
        return row

    async def patients_of_token(self, session: AsyncSession, otp: OneTimeCode) -> list[Patient]:
        """Patients registered with the verified mobile."""
        return list(
            await session.scalars(
                select(Patient)
                .where(
                    Patient.organisation_id == otp.organisation_id,
                    Patient.mobile_index == otp.mobile_index,
                    Patient.merged_into_id.is_(None),
                    Patient.is_active.is_(True),
                )
                .order_by(Patient.full_name)
            )
        )

    async def public_book(
        self,
        session: AsyncSession,
        branch: Branch,
        otp: OneTimeCode,
        mobile: str,
        data: PublicBooking,
    ) -> Appointment:
        """Book through the patient link: for a patient of the verified mobile, or a new
        one registered with it; reminders as the patient chose."""
        caller = link_caller(branch.organisation_id)
        number = _mobile(mobile)
        if blind_index(number, MOBILE_CONTEXT) != otp.mobile_index:
            raise BookingTokenInvalid("This is not the number you verified.")
        slot = await appointments_service.get_slot(session, branch.organisation_id, data.slot_id)
        if slot.branch_id != branch.id:
            raise SlotNotFound("No such slot at this branch.", field="slot_id")
        if data.patient_id is not None:
            mine = {p.id for p in await self.patients_of_token(session, otp)}
            if data.patient_id not in mine:
                raise InvalidInput("Not a patient of this mobile number.", field="patient_id")
            patient_id = data.patient_id
        else:
            assert data.new_patient is not None
            registration = await patients_service.register(
                session,
                caller,
                data.new_patient.model_copy(
                    update={"mobile": number, "registered_at_branch_id": branch.id}
                ),
            )
            patient_id = registration.patient.id
        if data.reminders:
            for channel in (Channel.SMS, Channel.WHATSAPP):
                await notifications_service.set_consent(
                    session, caller, patient_id, channel, opted_in=True, source="booking_link"
                )
        row, _ = await appointments_service.book(
            session,
            caller,
            BookingCreate(
                slot_id=data.slot_id,
                patient_id=patient_id,
                items=data.items,
                address=data.address,
                landmark=data.landmark,
                pincode=data.pincode,
                latitude=data.latitude,
                longitude=data.longitude,
            ),
            via=BookedVia.PATIENT_LINK,
        )
        return row

    async def public_appointment(
        self, session: AsyncSession, otp: OneTimeCode, appointment_id: uuid.UUID
    ) -> Appointment:
        """A visit of one of the verified mobile's patients (else 404)."""
        patients = {p.id for p in await self.patients_of_token(session, otp)}
        row = await session.scalar(
            select(Appointment)
            .where(
                Appointment.id == appointment_id,
                Appointment.organisation_id == otp.organisation_id,
            )
            .with_for_update()
        )
        if row is None or row.patient_id not in patients:
            raise AppointmentNotFound("No such appointment.")
        return row


def _mobile(raw: str) -> str:
    try:
        return normalize_mobile(raw)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc), field="mobile") from None


booking_link_service = BookingLinkService()
