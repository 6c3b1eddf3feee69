"""Turning a patient row into its API shape (REST and sync pulls show the same thing)."""

from __future__ import annotations

from nidaan.kit.phone import mask_mobile
from nidaan.kit.time import utcnow
from nidaan.patients.domain import age_years, local_date, mask_abha_number
from nidaan.patients.models import Patient
from nidaan.patients.schemas import PatientOut


def patient_out(patient: Patient) -> PatientOut:
    return PatientOut(
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
