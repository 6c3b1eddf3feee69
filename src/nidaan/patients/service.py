"""Patients: registration with duplicate flags, search, updates, merge and history.

Mobile and ABHA numbers are stored encrypted with a blind index for exact search; they
never appear in logs or audit entries (redacted) and responses show them masked.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from nidaan.audit.domain import DEFAULT_SENSITIVE_KEYS
from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.kit.blind_index import blind_index
from nidaan.kit.db import get_in_organisation
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.ids import new_id
from nidaan.kit.number_blocks import next_from_block
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.phone import InvalidPhoneNumber, normalize_mobile
from nidaan.kit.time import utcnow
from nidaan.patients.domain import (
    DuplicateScore,
    InvalidAbha,
    PatientFacts,
    PersonKeys,
    age_days,
    age_years,
    clean_display_name,
    estimated_date_of_birth,
    format_mrn,
    local_date,
    normalize_abha_address,
    normalize_abha_number,
    normalize_name,
    score_duplicate,
)
from nidaan.patients.enums import DuplicateFlagStatus
from nidaan.patients.errors import (
    BranchNotAllowed,
    IllegalTransition,
    InvalidAbhaAddress,
    InvalidAbhaNumber,
    PatientIdConflict,
    VersionConflict,
)
from nidaan.patients.models import Patient, PatientDuplicateFlag
from nidaan.patients.presenters import LIST_COLUMN_NAMES, patient_out_from_row
from nidaan.patients.schemas import PatientCreate, PatientOut, PatientUpdate
from nidaan.tenancy.service import tenancy_service

MOBILE_CONTEXT = "patients.mobile"
ABHA_CONTEXT = "patients.abha_number"
MRN_SCOPE = "mrn"
# Contact details are personal: audit entries show that they changed, not their values.
SENSITIVE = DEFAULT_SENSITIVE_KEYS | {"email", "address", "abha_address"}
MAX_CANDIDATES = 50

_SNAPSHOT_FIELDS = (
    "mrn",
    "full_name",
    "sex",
    "date_of_birth",
    "dob_estimated",
    "mobile",
    "email",
    "address",
    "city",
    "state",
    "pincode",
    "preferred_language",
    "abha_number",
    "abha_address",
    "referring_doctor",
    "pregnant",
    "weight_kg",
    "merged_into_id",
    "is_active",
    "registered_at_branch_id",
)
# What must match for a repeated client id to count as the same registration.
_CONTENT_FIELDS = (
    "full_name",
    "sex",
    "mobile",
    "email",
    "address",
    "city",
    "state",
    "pincode",
    "preferred_language",
    "abha_number",
    "abha_address",
    "referring_doctor",
    "pregnant",
    "weight_kg",
    "registered_at_branch_id",
)


class Caller(Protocol):
    """What patients needs to know about the caller (auth's Principal satisfies it)."""

    @property
    def kind(self) -> str: ...

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def organisation_id(self) -> uuid.UUID: ...

    @property
    def actor(self) -> AuditActor: ...

    def may_use_branch(self, branch_id: uuid.UUID) -> bool: ...


@dataclass(frozen=True)
class DuplicateCandidate:
    flag: PatientDuplicateFlag
    candidate: Patient

    @property
    def reasons(self) -> list[str]:
        return split_reasons(self.flag.reasons)


@dataclass(frozen=True)
class RegistrationResult:
    patient: Patient
    possible_duplicates: list[DuplicateCandidate]
    created: bool = True


def split_reasons(text: str) -> list[str]:
    return [r for r in text.split("; ") if r]


def snapshot(patient: Patient) -> dict[str, Any]:
    return {f: getattr(patient, f) for f in _SNAPSHOT_FIELDS}


def _mobile(raw: str | None) -> tuple[str | None, str | None]:
    if raw is None or not raw.strip():
        return None, None
    try:
        number = normalize_mobile(raw)
    except InvalidPhoneNumber as exc:
        raise InvalidInput(str(exc), field="mobile") from exc
    return number, blind_index(number, MOBILE_CONTEXT)


def _abha_number(raw: str | None) -> tuple[str | None, str | None]:
    if raw is None or not raw.strip():
        return None, None
    try:
        digits = normalize_abha_number(raw)
    except InvalidAbha as exc:
        raise InvalidAbhaNumber(str(exc), field="abha_number") from exc
    return digits, blind_index(digits, ABHA_CONTEXT)


def _abha_address(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return normalize_abha_address(raw)
    except InvalidAbha as exc:
        raise InvalidAbhaAddress(str(exc), field="abha_address") from exc


def _birth(
    date_of_birth: date | None,
    years: int | None,
    months: int | None,
    days: int | None,
    today: date,
) -> tuple[date, bool]:
    if date_of_birth is not None:
        if date_of_birth > today:
            raise InvalidInput("The date of birth is in the future.", field="date_of_birth")
        return date_of_birth, False
    return estimated_date_of_birth(today, years, months, days), True


# Branches seen to belong to an organisation. A branch never moves to another organisation,
# so a registration at a known branch (every sync op of a collection centre) skips the query.
_BRANCH_OWNERS: dict[uuid.UUID, uuid.UUID] = {}


async def _check_branch(
    session: AsyncSession, organisation_id: uuid.UUID, branch_id: uuid.UUID
) -> None:
    if _BRANCH_OWNERS.get(branch_id) == organisation_id:
        return
    await tenancy_service.check_branches_belong(session, organisation_id, [branch_id])
    _BRANCH_OWNERS[branch_id] = organisation_id


@dataclass(frozen=True)
class _SearchFilters:
    """A search's filters: which are given (the statement's shape) and their values."""

    organisation_id: uuid.UUID
    name_like: str | None
    q_mrn: str | None
    mobile_index: str | None
    mrn: str | None
    abha_index: str | None
    include_merged: bool

    @classmethod
    def of(
        cls,
        caller: Caller,
        q: str | None,
        mobile: str | None,
        mrn: str | None,
        abha_number: str | None,
        include_merged: bool,
    ) -> _SearchFilters:
        name_like = q_mrn = None
        if q and q.strip():
            text = normalize_name(q)
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            name_like, q_mrn = f"%{escaped}%", q.strip().upper()
        return cls(
            caller.organisation_id,
            name_like,
            q_mrn,
            _mobile(mobile)[1] if mobile else None,
            mrn.strip().upper() if mrn else None,
            _abha_number(abha_number)[1] if abha_number else None,
            include_merged,
        )

    @property
    def shape(self) -> tuple[bool, bool, bool, bool, bool]:
        return (
            self.name_like is not None,
            self.mobile_index is not None,
            self.mrn is not None,
            self.abha_index is not None,
            self.include_merged,
        )

    def params(self, page: PageParams) -> dict[str, Any]:
        return {
            "organisation_id": self.organisation_id,
            "name_like": self.name_like,
            "q_mrn": self.q_mrn,
            "mobile_index": self.mobile_index,
            "mrn": self.mrn,
            "abha_index": self.abha_index,
            "limit": page.limit,
            "offset": (page.page - 1) * page.limit,
        }


_patients = Patient.__table__
#: What the list endpoint shows of a row (``patient_out_from_row`` reads them in this order).
_LIST_COLUMNS = tuple(_patients.c[name] for name in LIST_COLUMN_NAMES)
_COUNT = (func.count(),)


@functools.cache
def _search_statement(what: Any, shape: tuple[bool, bool, bool, bool, bool]) -> Select[Any]:
    """The search statement for one combination of filters, built once: the values are bound
    parameters, so every search of that shape reuses its compiled form. ``what`` is the
    Patient entity (ORM rows), a tuple of columns, or ``_COUNT`` (the number of matches); a
    page of rows carries the total on each row."""
    by_name, by_mobile, by_mrn, by_abha, include_merged = shape
    columns = [Patient] if what is Patient else list(what)
    conditions: list[Any] = [_patients.c.organisation_id == bindparam("organisation_id")]
    if not include_merged:
        conditions.append(_patients.c.merged_into_id.is_(None))
    if by_name:
        conditions.append(
            or_(
                _patients.c.name_normalized.like(bindparam("name_like"), escape="\\"),
                _patients.c.mrn == bindparam("q_mrn"),
            )
        )
    if by_mobile:
        conditions.append(_patients.c.mobile_index == bindparam("mobile_index"))
    if by_mrn:
        conditions.append(_patients.c.mrn == bindparam("mrn"))
    if by_abha:
        conditions.append(_patients.c.abha_number_index == bindparam("abha_index"))
    if what is _COUNT:
        return select(func.count()).where(*conditions)
    # The total as an uncorrelated subquery (computed once, counting rows without carrying
    # them), not ``count(*) OVER ()``: the window kept every match, whole, in a tuple store
    # and made the ordered index scan read all of them instead of stopping after the page.
    total = select(func.count()).where(*conditions).scalar_subquery()
    return (
        select(*columns, total)
        .where(*conditions)
        .order_by(_patients.c.name_normalized, _patients.c.mrn)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


@functools.cache
def _duplicates_statement(by_mobile: bool, by_abha: bool) -> Select[Any]:
    """Earlier records that may be the same person as ``:patient_id`` (same name and date of
    birth, or the same mobile or ABHA number); built once per combination."""
    conditions = [
        and_(
            _patients.c.name_normalized == bindparam("name"),
            _patients.c.date_of_birth == bindparam("date_of_birth"),
        )
    ]
    if by_mobile:
        conditions.append(_patients.c.mobile_index == bindparam("mobile_index"))
    if by_abha:
        conditions.append(_patients.c.abha_number_index == bindparam("abha_index"))
    return (
        select(Patient)
        .where(
            _patients.c.organisation_id == bindparam("organisation_id"),
            _patients.c.id != bindparam("patient_id"),
            _patients.c.merged_into_id.is_(None),
            or_(*conditions),
        )
        .order_by(_patients.c.created_at.desc())
        .limit(MAX_CANDIDATES)
    )


async def _count(session: AsyncSession, filters: _SearchFilters, page: PageParams) -> int:
    """The total of a page past the end (it has no row to carry the total)."""
    statement = _search_statement(_COUNT, filters.shape)
    return int((await session.execute(statement, filters.params(page))).scalar_one())


def _keys(patient: Patient) -> PersonKeys:
    return PersonKeys(
        name=patient.full_name,
        sex=patient.sex,
        date_of_birth=patient.date_of_birth,
        dob_estimated=patient.dob_estimated,
        mobile_index=patient.mobile_index,
        abha_number_index=patient.abha_number_index,
    )


class PatientsService:
    # ---- reads ------------------------------------------------------------------------------

    async def get(self, session: AsyncSession, caller: Caller, patient_id: uuid.UUID) -> Patient:
        return await self.get_in(session, caller.organisation_id, patient_id)

    async def get_in(
        self, session: AsyncSession, organisation_id: uuid.UUID, patient_id: uuid.UUID
    ) -> Patient:
        """Load by id inside ``organisation_id`` (jobs and other services without a caller)."""
        patient = await get_in_organisation(session, Patient, patient_id, organisation_id)
        if patient is None:
            raise NotFound("No such patient in your organisation.", entity="patient")
        return patient

    def facts(self, patient: Patient, at: datetime) -> PatientFacts:
        """What ranges and formulas need: sex, age at ``at`` (India's calendar day), etc."""
        day = local_date(at)
        return PatientFacts(
            sex=patient.sex,
            age_days=age_days(patient.date_of_birth, day),
            age_years=age_years(patient.date_of_birth, day),
            pregnant=patient.pregnant,
            weight_kg=patient.weight_kg,
            preferred_language=patient.preferred_language,
        )

    async def history_ids(
        self, session: AsyncSession, caller: Caller, patient_id: uuid.UUID
    ) -> list[uuid.UUID]:
        """The patient plus every record merged into it, directly or through others."""
        patient = await self.get(session, caller, patient_id)
        found = [patient.id]
        frontier = [patient.id]
        while frontier:
            rows = list(
                await session.scalars(
                    select(Patient.id).where(
                        Patient.organisation_id == caller.organisation_id,
                        Patient.merged_into_id.in_(frontier),
                    )
                )
            )
            frontier = [r for r in rows if r not in found]
            found.extend(frontier)
        return found

    async def search(
        self,
        session: AsyncSession,
        caller: Caller,
        page: PageParams,
        *,
        q: str | None = None,
        mobile: str | None = None,
        mrn: str | None = None,
        abha_number: str | None = None,
        include_merged: bool = False,
    ) -> tuple[list[Patient], int]:
        """Filters combine with AND: ``q`` is part of the name (or an exact MRN)."""
        filters = _SearchFilters.of(caller, q, mobile, mrn, abha_number, include_merged)
        statement = _search_statement(Patient, filters.shape)
        found = (await session.execute(statement, filters.params(page))).all()
        if not found and page.page > 1:
            return [], await _count(session, filters, page)
        return [row[0] for row in found], int(found[0][1]) if found else 0

    async def search_page(
        self,
        session: AsyncSession,
        caller: Caller,
        page: PageParams,
        *,
        q: str | None = None,
        mobile: str | None = None,
        mrn: str | None = None,
        abha_number: str | None = None,
        include_merged: bool = False,
    ) -> tuple[list[PatientOut], int]:
        """``search`` for the list endpoint: the page as response rows, read as columns (no
        ORM objects, no identity map) with the total in the same statement."""
        filters = _SearchFilters.of(caller, q, mobile, mrn, abha_number, include_merged)
        statement = _search_statement(_LIST_COLUMNS, filters.shape)
        found = (await session.execute(statement, filters.params(page))).all()
        if not found and page.page > 1:
            return [], await _count(session, filters, page)
        today = local_date(utcnow())
        return [patient_out_from_row(row, today) for row in found], (
            int(found[0][-1]) if found else 0
        )

    # ---- registration -----------------------------------------------------------------------

    async def register(
        self,
        session: AsyncSession,
        caller: Caller,
        data: PatientCreate,
        *,
        id_is_new: bool = False,
    ) -> RegistrationResult:
        """Create a patient with the next MRN; flag (never merge) likely duplicates.

        A repeat of the same client ``id`` with the same content returns the existing
        record (``created`` False); different content is a 409. ``id_is_new``: the caller
        has just seen that no row has this id (a sync push asks once for all its ops).
        """
        organisation_id = caller.organisation_id
        today = local_date(utcnow())
        mobile, mobile_index = _mobile(data.mobile)
        abha, abha_index = _abha_number(data.abha_number)
        birth, estimated = _birth(
            data.date_of_birth, data.age_years, data.age_months, data.age_days, today
        )
        values: dict[str, Any] = {
            "full_name": clean_display_name(data.full_name),
            "name_normalized": normalize_name(data.full_name),
            "sex": data.sex.value,
            "date_of_birth": birth,
            "dob_estimated": estimated,
            "mobile": mobile,
            "mobile_index": mobile_index,
            "email": str(data.email).lower() if data.email else None,
            "address": data.address,
            "city": data.city,
            "state": data.state,
            "pincode": data.pincode,
            "preferred_language": data.preferred_language,
            "abha_number": abha,
            "abha_number_index": abha_index,
            "abha_address": _abha_address(data.abha_address),
            "referring_doctor": data.referring_doctor,
            "pregnant": data.pregnant,
            "weight_kg": data.weight_kg,
            "registered_at_branch_id": data.registered_at_branch_id,
        }
        if data.id is not None and not id_is_new:
            existing = await session.get(Patient, data.id)
            if existing is not None:
                if existing.organisation_id == organisation_id and self._same_registration(
                    existing, values, explicit_dob=data.date_of_birth is not None
                ):
                    return RegistrationResult(
                        existing, await self._open_flags_of(session, existing), created=False
                    )
                raise PatientIdConflict(
                    "A different patient already has this id.", field="id", id=str(data.id)
                )
        if data.registered_at_branch_id is not None:
            await _check_branch(session, organisation_id, data.registered_at_branch_id)
            if not caller.may_use_branch(data.registered_at_branch_id):
                raise BranchNotAllowed(
                    "You may not register patients at this branch.",
                    branch_id=str(data.registered_at_branch_id),
                )

        patient = Patient(
            id=data.id or new_id(),
            organisation_id=organisation_id,
            mrn=format_mrn(await next_from_block(session, organisation_id, MRN_SCOPE)),
            is_active=True,
            created_by_id=caller.id if caller.kind == "user" else None,
            **values,
        )
        # Looked up before the row is added (it cannot match itself), so that the row and its
        # audit entry go to the database in one flush.
        likely = await self._likely_duplicates(session, patient)
        session.add(patient)
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=caller.actor,
            action="patient.registered",
            entity_type="patient",
            entity_id=patient.id,
            after={
                **snapshot(patient),
                "possible_duplicates": [str(candidate.id) for candidate, _ in likely],
            },
            sensitive=SENSITIVE,
        )
        await session.flush()
        return RegistrationResult(patient, await self._flag_duplicates(session, patient, likely))

    @staticmethod
    def _same_registration(existing: Patient, values: dict[str, Any], explicit_dob: bool) -> bool:
        if any(getattr(existing, f) != values[f] for f in _CONTENT_FIELDS):
            return False
        if explicit_dob or not existing.dob_estimated:
            # A stated age gives a different estimate on another day; compare only real dates.
            return (existing.date_of_birth, existing.dob_estimated) == (
                values["date_of_birth"],
                values["dob_estimated"],
            )
        return True

    async def _likely_duplicates(
        self, session: AsyncSession, patient: Patient
    ) -> list[tuple[Patient, DuplicateScore]]:
        """Existing records that are likely the same person, most likely first."""
        candidates = await session.scalars(
            _duplicates_statement(
                patient.mobile_index is not None, patient.abha_number_index is not None
            ),
            {
                "organisation_id": patient.organisation_id,
                "patient_id": patient.id,
                "name": patient.name_normalized,
                "date_of_birth": patient.date_of_birth,
                "mobile_index": patient.mobile_index,
                "abha_index": patient.abha_number_index,
            },
        )
        new_keys = _keys(patient)
        scored = [
            (candidate, score_duplicate(new_keys, _keys(candidate))) for candidate in candidates
        ]
        likely = [(candidate, score) for candidate, score in scored if score.is_likely]
        likely.sort(key=lambda found: -found[1].score)
        return likely

    async def _flag_duplicates(
        self,
        session: AsyncSession,
        patient: Patient,
        likely: list[tuple[Patient, DuplicateScore]],
    ) -> list[DuplicateCandidate]:
        """Flag each likely duplicate of ``patient`` (already written) for review."""
        if not likely:  # most registrations: no flush, which would still walk the session
            return []
        now = utcnow()
        found: list[DuplicateCandidate] = []
        for candidate, score in likely:
            flag = PatientDuplicateFlag(
                organisation_id=patient.organisation_id,
                patient_id=patient.id,
                candidate_id=candidate.id,
                score=score.score,
                reasons="; ".join(score.reasons),
                status=DuplicateFlagStatus.OPEN.value,
                created_at=now,
            )
            session.add(flag)
            found.append(DuplicateCandidate(flag, candidate))
        await session.flush()
        return found

    async def _open_flags_of(
        self, session: AsyncSession, patient: Patient
    ) -> list[DuplicateCandidate]:
        rows = await session.execute(
            select(PatientDuplicateFlag, Patient)
            .join(Patient, Patient.id == PatientDuplicateFlag.candidate_id)
            .where(
                PatientDuplicateFlag.patient_id == patient.id,
                PatientDuplicateFlag.status == DuplicateFlagStatus.OPEN.value,
            )
            .order_by(PatientDuplicateFlag.score.desc())
        )
        return [DuplicateCandidate(flag, candidate) for flag, candidate in rows]

    # ---- changes ----------------------------------------------------------------------------

    async def update(
        self, session: AsyncSession, caller: Caller, patient_id: uuid.UUID, data: PatientUpdate
    ) -> Patient:
        patient = await self.get(session, caller, patient_id)
        if patient.version != data.version:
            raise VersionConflict(
                f"This patient was changed since you loaded it (version {data.version}, now "
                f"{patient.version}); reload and apply your change again.",
                current_version=patient.version,
            )
        before = snapshot(patient)
        changes = data.model_dump(exclude_unset=True, exclude={"version"})
        if changes.get("full_name"):
            patient.full_name = clean_display_name(changes["full_name"])
            patient.name_normalized = normalize_name(changes["full_name"])
        if changes.get("sex"):
            patient.sex = data.sex.value  # type: ignore[union-attr]
        stated = [changes.get(k) for k in ("age_years", "age_months", "age_days")]
        if changes.get("date_of_birth") is not None or any(v is not None for v in stated):
            patient.date_of_birth, patient.dob_estimated = _birth(
                changes.get("date_of_birth"), *stated, today=local_date(utcnow())
            )
        if "mobile" in changes:
            patient.mobile, patient.mobile_index = _mobile(data.mobile)
        if "abha_number" in changes:
            patient.abha_number, patient.abha_number_index = _abha_number(data.abha_number)
        if "abha_address" in changes:
            patient.abha_address = _abha_address(data.abha_address)
        if "email" in changes:
            patient.email = str(data.email).lower() if data.email else None
        if changes.get("preferred_language"):
            patient.preferred_language = changes["preferred_language"]
        for field in ("address", "city", "state", "pincode", "referring_doctor", "pregnant"):
            if field in changes:
                setattr(patient, field, changes[field])
        if "weight_kg" in changes:
            patient.weight_kg = data.weight_kg
        # The UPDATE returns what the database set (updated_at): no reload (eager_defaults).
        await self._flush_versioned(session)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="patient.updated",
            entity_type="patient",
            entity_id=patient.id,
            before=before,
            after=snapshot(patient),
            sensitive=SENSITIVE,
        )
        return patient

    async def merge(
        self,
        session: AsyncSession,
        caller: Caller,
        keep_id: uuid.UUID,
        duplicate_id: uuid.UUID,
    ) -> tuple[Patient, Patient]:
        """Fold ``duplicate_id`` into ``keep_id``: it points at the kept record and becomes
        inactive; both keep their own orders and results (see ``history_ids``)."""
        if keep_id == duplicate_id:
            raise InvalidInput("A patient cannot be merged into itself.", field="duplicate_id")
        keep = await self.get(session, caller, keep_id)
        duplicate = await self.get(session, caller, duplicate_id)
        if keep.merged_into_id is not None:
            raise IllegalTransition(
                f"{keep.mrn} was itself merged into another record; merge into that one.",
                from_state="merged",
                to_state="merged",
            )
        if duplicate.merged_into_id is not None:
            raise IllegalTransition(
                f"{duplicate.mrn} is already merged.", from_state="merged", to_state="merged"
            )
        before = {"merged_into_id": None, "is_active": duplicate.is_active}
        duplicate.merged_into_id = keep.id
        duplicate.is_active = False
        now = utcnow()
        flags = await session.scalars(
            select(PatientDuplicateFlag).where(
                PatientDuplicateFlag.organisation_id == caller.organisation_id,
                PatientDuplicateFlag.status == DuplicateFlagStatus.OPEN.value,
                or_(
                    and_(
                        PatientDuplicateFlag.patient_id == keep.id,
                        PatientDuplicateFlag.candidate_id == duplicate.id,
                    ),
                    and_(
                        PatientDuplicateFlag.patient_id == duplicate.id,
                        PatientDuplicateFlag.candidate_id == keep.id,
                    ),
                ),
            )
        )
        for flag in flags:
            flag.status = DuplicateFlagStatus.MERGED.value
            flag.resolved_at = now
            flag.resolved_by_id = caller.id if caller.kind == "user" else None
        await self._flush_versioned(session)
        await session.refresh(duplicate)
        await session.refresh(keep)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="patient.merged",
            entity_type="patient",
            entity_id=duplicate.id,
            before=before,
            after={
                "merged_into_id": keep.id,
                "is_active": False,
                "kept_mrn": keep.mrn,
                "merged_mrn": duplicate.mrn,
            },
        )
        return keep, duplicate

    async def list_duplicates(
        self,
        session: AsyncSession,
        caller: Caller,
        page: PageParams,
        *,
        status: DuplicateFlagStatus | None = DuplicateFlagStatus.OPEN,
    ) -> tuple[list[tuple[PatientDuplicateFlag, Patient, Patient]], int]:
        """Flags with (flag, newly registered patient, existing candidate), newest first."""
        statement: Select[Any] = select(PatientDuplicateFlag).where(
            PatientDuplicateFlag.organisation_id == caller.organisation_id
        )
        if status is not None:
            statement = statement.where(PatientDuplicateFlag.status == status.value)
        flags, total = await paginate(
            session,
            statement.order_by(PatientDuplicateFlag.created_at.desc(), PatientDuplicateFlag.id),
            page,
        )
        ids = {f.patient_id for f in flags} | {f.candidate_id for f in flags}
        patients = {
            p.id: p for p in await session.scalars(select(Patient).where(Patient.id.in_(ids)))
        }
        return [(f, patients[f.patient_id], patients[f.candidate_id]) for f in flags], total

    async def dismiss_duplicate(
        self, session: AsyncSession, caller: Caller, flag_id: uuid.UUID
    ) -> PatientDuplicateFlag:
        """Record that a person checked and the two records are different people."""
        flag = await session.scalar(
            select(PatientDuplicateFlag)
            .where(
                PatientDuplicateFlag.id == flag_id,
                PatientDuplicateFlag.organisation_id == caller.organisation_id,
            )
            .with_for_update()
        )
        if flag is None:
            raise NotFound("No such duplicate flag in your organisation.", entity="duplicate_flag")
        if flag.status != DuplicateFlagStatus.OPEN.value:
            raise IllegalTransition(
                f"This flag is already {flag.status}; only open flags can be dismissed.",
                from_state=flag.status,
                to_state=DuplicateFlagStatus.DISMISSED.value,
            )
        flag.status = DuplicateFlagStatus.DISMISSED.value
        flag.resolved_at = utcnow()
        flag.resolved_by_id = caller.id if caller.kind == "user" else None
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="patient_duplicate_flag.dismissed",
            entity_type="patient_duplicate_flag",
            entity_id=flag.id,
            before={"status": DuplicateFlagStatus.OPEN.value},
            after={
                "status": flag.status,
                "patient_id": flag.patient_id,
                "candidate_id": flag.candidate_id,
            },
        )
        return flag

    @staticmethod
    async def _flush_versioned(session: AsyncSession) -> None:
        try:
            await session.flush()
        except StaleDataError:
            raise VersionConflict(
                "This patient was changed by someone else at the same time; reload and retry."
            ) from None


patients_service = PatientsService()
