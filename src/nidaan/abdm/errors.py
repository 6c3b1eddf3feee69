from nidaan.kit.errors import Conflict, InvalidInput, NidaanError, NotFound


class AbdmUnavailable(NidaanError):
    """ABDM refused the call or could not be reached (operational: try again)."""

    status_code = 502
    code = "abdm_unavailable"
    title = "ABDM did not complete the request"


class AbdmNotEnabled(Conflict):
    """The installation is not set up for ABDM: a state of this lab, not an outage, so 409
    (like e-invoicing that is not set up), never a 5xx."""

    code = "abdm_not_enabled"
    title = "ABDM is not configured on this installation"


class InvalidAadhaarNumber(InvalidInput):
    code = "invalid_aadhaar"
    title = "Invalid Aadhaar number"


class OtpRejected(InvalidInput):
    code = "otp_rejected"
    title = "ABDM did not accept the OTP"


class EnrolmentStateError(Conflict):
    code = "enrolment_state"
    title = "Not possible at this step of the enrolment"


class AbhaAlreadyLinked(Conflict):
    code = "abha_already_linked"
    title = "Another patient already has this ABHA"


class FacilityNotFound(NotFound):
    code = "facility_not_found"
    title = "No such ABDM facility"


class HipIdTaken(Conflict):
    code = "hip_id_taken"
    title = "This HIP id is already registered"


class ShareTokenClosed(Conflict):
    code = "share_token_closed"
    title = "This token was already handled"


class NoFacility(Conflict):
    code = "abdm_no_facility"
    title = "Register an ABDM facility (HIP id) first"
