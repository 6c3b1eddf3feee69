from nidaan.kit.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    VersionConflict,  # noqa: F401  (one shared class, re-exported)
)


class InvalidAbhaNumber(InvalidInput):
    code = "invalid_abha_number"
    title = "Invalid ABHA number"


class InvalidAbhaAddress(InvalidInput):
    code = "invalid_abha_address"
    title = "Invalid ABHA address"


class PatientIdConflict(Conflict):
    code = "patient_id_conflict"
    title = "A different patient already has this id"


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "Not allowed in the current state"


class BranchNotAllowed(Forbidden):
    code = "branch_not_allowed"
    title = "Branch not allowed"
