"""Turning a patient row into its API shape (REST and sync pulls show the same thing).

The shapes are built with ``model_construct``: every value comes from a typed column of a row
the database returned, so validating it again would only cost time (a page of 20 patients
was ~500 field validations per request). Tests compare the output with the schema.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from nidaan.kit.phone import mask_mobile
from nidaan.kit.time import utcnow
from nidaan.patients.domain import age_years, local_date, mask_abha_number
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientBrief, PatientOut

#: Columns of ``patients`` that the list endpoint reads, in ``patient_out_from_row``'s order.
LIST_COLUMN_NAMES = (
    "id",
    "organisation_id",
    "mrn",
    "full_name",
    "sex",
    "date_of_birth",
    "dob_estimated",
    "mobile_encrypted",
    "email",
    "address",
    "city",
    "state",
    "pincode",
    "preferred_language",
    "abha_number_encrypted",
    "abha_address",
    "referring_doctor",
    "pregnant",
    "weight_kg",
    "merged_into_id",
    "is_active",
    "registered_at_branch_id",
    "version",
    "created_at",
    "updated_at",
)


def patient_out(patient: Patient) -> PatientOut:
    return PatientOut.model_construct(
        id=patient.id,
        organisation_id=patient.organisation_id,
        mrn=patient.mrn,
        full_name=patient.full_name,
        sex=patient.sex,
        date_of_birth=patient.date_of_birth,
        dob_estimated=patient.dob_estimated,
        age_years=age_years(patient.date_of_birth, local_date(utcnow())),
        mobile_masked=mask_mobile(patient.mobile) if patient.mobile else None,
        email=patient.email,
        address=patient.address,
        city=patient.city,
        state=patient.state,
        pincode=patient.pincode,
        preferred_language=patient.preferred_language,
        abha_number_masked=mask_abha_number(patient.abha_number) if patient.abha_number else None,
        abha_address=patient.abha_address,
        referring_doctor=patient.referring_doctor,
        pregnant=patient.pregnant,
        weight_kg=patient.weight_kg,
        merged_into_id=patient.merged_into_id,
        is_active=patient.is_active,
        registered_at_branch_id=patient.registered_at_branch_id,
        version=patient.version,
        created_at=patient.created_at,
        updated_at=patient.updated_at,
    )


def patient_out_from_row(row: Any, today: date) -> PatientOut:
    """``patient_out`` of a row of ``LIST_COLUMN_NAMES`` (the encrypted columns decrypted)."""
    (
        id_,
        organisation_id,
        mrn,
        full_name,
        sex,
        date_of_birth,
        dob_estimated,
        mobile,
        email,
        address,
        city,
        state,
        pincode,
        preferred_language,
        abha_number,
        abha_address,
        referring_doctor,
        pregnant,
        weight_kg,
        merged_into_id,
        is_active,
        registered_at_branch_id,
        version,
        created_at,
        updated_at,
    ) = row[: len(LIST_COLUMN_NAMES)]
    return PatientOut.model_construct(
        id=id_,
        organisation_id=organisation_id,
        mrn=mrn,
        full_name=full_name,
        sex=sex,
        date_of_birth=date_of_birth,
        dob_estimated=dob_estimated,
        age_years=age_years(date_of_birth, today),
        mobile_masked=mask_mobile(mobile) if mobile else None,
        email=email,
        address=address,
        city=city,
        state=state,
        pincode=pincode,
        preferred_language=preferred_language,
        abha_number_masked=mask_abha_number(abha_number) if abha_number else None,
        abha_address=abha_address,
        referring_doctor=referring_doctor,
        pregnant=pregnant,
        weight_kg=weight_kg,
        merged_into_id=merged_into_id,
        is_active=is_active,
        registered_at_branch_id=registered_at_branch_id,
        version=version,
        created_at=created_at,
        updated_at=updated_at,
    )


def patient_brief(patient: Patient) -> PatientBrief:
    return PatientBrief.model_construct(
        id=patient.id,
        mrn=patient.mrn,
        full_name=patient.full_name,
        sex=patient.sex,
        date_of_birth=patient.date_of_birth,
        dob_estimated=patient.dob_estimated,
        mobile_masked=mask_mobile(patient.mobile) if patient.mobile else None,
        is_active=patient.is_active,
    )
