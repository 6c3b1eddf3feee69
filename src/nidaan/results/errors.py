from nidaan.kit.errors import Conflict, Forbidden, InvalidInput


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "Illegal state transition"


class ResultVerified(Conflict):
    code = "result_verified"
    title = "Verified results cannot change"


class ResultHeld(Conflict):
    code = "result_held"
    title = "Result is on hold"


class SampleNotReady(Conflict):
    code = "sample_not_ready"
    title = "Sample not received"


class OrderTestNotActive(Conflict):
    code = "order_test_not_active"
    title = "Ordered test does not accept results"


class CalculatedResult(Conflict):
    code = "calculated_result"
    title = "Result is calculated"


class SelfVerificationNotAllowed(Forbidden):
    code = "self_verification_not_allowed"
    title = "Self-verification not allowed"


class SecondVerifierRequired(Conflict):
    code = "second_verifier_required"
    title = "A different verifier is required"


class AlreadyAcknowledged(Conflict):
    code = "already_acknowledged"
    title = "Critical alert already acknowledged"


class InvalidResultValue(InvalidInput):
    code = "invalid_result_value"
    title = "Invalid result value"


class ClientIdConflict(Conflict):
    code = "id_conflict"
    title = "Id already used with other content"


class VerificationBlocked(Conflict):
    code = "verification_blocked"
    title = "Verification blocked"


class NotAutoverified(Conflict):
    code = "not_autoverified"
    title = "Result was not autoverified"
