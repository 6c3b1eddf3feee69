from nidaan.kit.errors import Forbidden, InvalidInput, NidaanError, Unauthorized


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Invalid credentials"


class TooManyLoginAttempts(NidaanError):
    status_code = 429
    code = "too_many_login_attempts"
    title = "Too many failed logins"


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    title = "Invalid refresh token"


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"
    title = "Not authenticated"


class RoleRequired(Forbidden):
    code = "role_required"
    title = "Role required"


class EmailTaken(NidaanError):
    status_code = 409
    code = "email_taken"
    title = "E-mail already registered"


class SignatureImageInvalid(InvalidInput):
    code = "signature_image_invalid"
    title = "Signature image not accepted"


class CsrfCheckFailed(Forbidden):
    code = "csrf_failed"
    title = "Cross-site request refused"


class OutsideYourBranches(Forbidden):
    """The record belongs to branches the caller is not limited to."""

    code = "branch_not_allowed"
    title = "Branch not allowed"
