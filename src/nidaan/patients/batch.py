"""Registrations and edits prepared in memory, for callers that write many at once.

``service.register`` and ``service.update`` flush one patient each. A sync push carrying
dozens of registrations and edits prepares each one here exactly as those paths do (same
validation, normalisation, errors and audit snapshots) and writes them together: one INSERT
for the new patients, one duplicate lookup for all of them, one UPDATE per set of edited
columns (``nidaan.sync.batch``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import any_, bindparam, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.kit.number_blocks import next_from_block
from nidaan.kit.time import utcnow
from nidaan.patients.domain import (
    PersonKeys,
    clean_display_name,
    format_mrn,
    local_date,
    normalize_name,
    score_duplicate,
)
from nidaan.patients.enums import DuplicateFlagStatus
from nidaan.patients.errors import BranchNotAllowed
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientCreate, PatientUpdate
from nidaan.patients.service import (
    MAX_CANDIDATES,
    MRN_SCOPE,
    Caller,
    _abha_address,
    _abha_number,
    _birth,
    _check_branch,
    _keys,
    _mobile,
)

#: Columns duplicate detection compares: an edit of one of them must be written before a
#: later registration looks for duplicates.
DUPLICATE_KEYS = frozenset(
    {"name_normalized", "full_name", "sex", "date_of_birth", "dob_estimated", "mobile_index"}
    | {"abha_number_index", "merged_into_id"}
)


async def new_patient(session: AsyncSession, caller: Caller, data: PatientCreate) -> Patient:
    """The patient ``service.register`` would insert for ``data`` (an unused ``data.id``),
    not added to the session; raises the errors ``register`` raises, before any write."""
    organisation_id = caller.organisation_id
    mobile, mobile_index = _mobile(data.mobile)
    abha, abha_index = _abha_number(data.abha_number)
    birth, estimated = _birth(
        data.date_of_birth, data.age_years, data.age_months, data.age_days, local_date(utcnow())
    )
    abha_address = _abha_address(data.abha_address)
    if data.registered_at_branch_id is not None:
        await _check_branch(session, organisation_id, data.registered_at_branch_id)
        if not caller.may_use_branch(data.registered_at_branch_id):
            raise BranchNotAllowed(
                "You may not register patients at this branch.",
                branch_id=str(data.registered_at_branch_id),
            )
    return Patient(
        id=data.id,
        organisation_id=organisation_id,
        mrn=format_mrn(await next_from_block(session, organisation_id, MRN_SCOPE)),
        is_active=True,
        created_by_id=caller.id if caller.kind == "user" else None,
        full_name=clean_display_name(data.full_name),
        name_normalized=normalize_name(data.full_name),
        sex=data.sex.value,
        date_of_birth=birth,
        dob_estimated=estimated,
        mobile=mobile,
        mobile_index=mobile_index,
        email=str(data.email).lower() if data.email else None,
        address=data.address,
        city=data.city,
        state=data.state,
        pincode=data.pincode,
        preferred_language=data.preferred_language,
        abha_number=abha,
        abha_number_index=abha_index,
        abha_address=abha_address,
        referring_doctor=data.referring_doctor,
        pregnant=data.pregnant,
        weight_kg=data.weight_kg,
        registered_at_branch_id=data.registered_at_branch_id,
        merged_into_id=None,
        version=1,
    )


def edited_values(patient: Patient, data: PatientUpdate) -> dict[str, Any]:
    """The attributes ``service.update`` would change on ``patient`` for ``data`` (only
    those whose value differs), with its normalisation and errors."""
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    values: dict[str, Any] = {}
    if changes.get("full_name"):
        values["full_name"] = clean_display_name(changes["full_name"])
        values["name_normalized"] = normalize_name(changes["full_name"])
    if changes.get("sex"):
        values["sex"] = data.sex.value  # type: ignore[union-attr]
    stated = [changes.get(k) for k in ("age_years", "age_months", "age_days")]
    if changes.get("date_of_birth") is not None or any(v is not None for v in stated):
        values["date_of_birth"], values["dob_estimated"] = _birth(
            changes.get("date_of_birth"), *stated, today=local_date(utcnow())
        )
    if "mobile" in changes:
        values["mobile"], values["mobile_index"] = _mobile(data.mobile)
    if "abha_number" in changes:
        values["abha_number"], values["abha_number_index"] = _abha_number(data.abha_number)
    if "abha_address" in changes:
        values["abha_address"] = _abha_address(data.abha_address)
    if "email" in changes:
        values["email"] = str(data.email).lower() if data.email else None
    if changes.get("preferred_language"):
        values["preferred_language"] = changes["preferred_language"]
    for name in ("address", "city", "state", "pincode", "referring_doctor", "pregnant"):
        if name in changes:
            values[name] = changes[name]
    if "weight_kg" in changes:
        values["weight_kg"] = data.weight_kg
    # The ORM writes (and change capture sees) only what really changed.
    return {k: v for k, v in values.items() if getattr(patient, k) != v}


def keys_of(patient: Patient) -> PersonKeys:
    return _keys(patient)


@dataclass(frozen=True)
class Probe:
    """A new patient's duplicate-detection values when it was registered (a later edit of it
    in the same batch must not change what it was compared with)."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    name_normalized: str
    date_of_birth: Any
    mobile_index: str | None
    abha_number_index: str | None
    keys: PersonKeys


def probe_of(patient: Patient) -> Probe:
    return Probe(
        patient.id,
        patient.organisation_id,
        patient.name_normalized,
        patient.date_of_birth,
        patient.mobile_index,
        patient.abha_number_index,
        _keys(patient),
    )


def may_match(new: Probe, candidate: Any) -> bool:
    """The duplicate lookup's condition (``service._flag_duplicates``), in Python."""
    return bool(
        (
            candidate.name_normalized == new.name_normalized
            and candidate.date_of_birth == new.date_of_birth
        )
        or (new.mobile_index and candidate.mobile_index == new.mobile_index)
        or (new.abha_number_index and candidate.abha_number_index == new.abha_number_index)
    )


async def stored_candidates(
    session: AsyncSession, organisation_id: uuid.UUID, patients: Sequence[Probe]
) -> list[Any]:
    """Stored patients any of ``patients`` may duplicate, newest first: one query for all
    (each registration then keeps those matching its own condition, ``may_match``).

    Plain rows, not entities: a patient this session edited in memory but has not written
    yet must be compared as stored, as the one-by-one lookup would."""
    pairs = [(p.name_normalized, p.date_of_birth) for p in patients]
    mobiles = sorted({p.mobile_index for p in patients if p.mobile_index})
    abhas = sorted({p.abha_number_index for p in patients if p.abha_number_index})
    conditions = [tuple_(Patient.name_normalized, Patient.date_of_birth).in_(pairs)]
    index_type = ARRAY(Patient.mobile_index.type)
    if mobiles:
        conditions.append(Patient.mobile_index == any_(bindparam("m", mobiles, type_=index_type)))
    if abhas:
        conditions.append(
            Patient.abha_number_index == any_(bindparam("a", abhas, type_=index_type))
        )
    rows = await session.execute(
        select(
            Patient.id,
            Patient.full_name,
            Patient.name_normalized,
            Patient.sex,
            Patient.date_of_birth,
            Patient.dob_estimated,
            Patient.mobile_index,
            Patient.abha_number_index,
        )
        .where(
            Patient.organisation_id == organisation_id,
            Patient.merged_into_id.is_(None),
            or_(*conditions),
        )
        .order_by(Patient.created_at.desc())
    )
    return list(rows)


def stored_keys(row: Any) -> PersonKeys:
    """The keys of a row ``stored_candidates`` returned."""
    return PersonKeys(
        name=row.full_name,
        sex=row.sex,
        date_of_birth=row.date_of_birth,
        dob_estimated=row.dob_estimated,
        mobile_index=row.mobile_index,
        abha_number_index=row.abha_number_index,
    )


def duplicate_flags(
    new: Probe, candidates: Sequence[tuple[uuid.UUID, PersonKeys]]
) -> list[dict[str, Any]]:
    """Flag rows for the likely duplicates among ``candidates`` (id and keys, already
    matching ``may_match``, newest first), highest score first, as ``_flag_duplicates``
    makes them."""
    new_keys = new.keys
    now = utcnow()
    flags: list[dict[str, Any]] = []
    for candidate_id, keys in candidates[:MAX_CANDIDATES]:
        score = score_duplicate(new_keys, keys)
        if not score.is_likely:
            continue
        flags.append(
            {
                "organisation_id": new.organisation_id,
                "patient_id": new.id,
                "candidate_id": candidate_id,
                "score": score.score,
                "reasons": "; ".join(score.reasons),
                "status": DuplicateFlagStatus.OPEN.value,
                "created_at": now,
            }
        )
    flags.sort(key=lambda f: -f["score"])
    return flags
