from nidaan.kit.errors import Conflict, InvalidInput


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"


class IdempotencyRequestInProgress(Conflict):
    code = "idempotency_request_in_progress"
    title = "A request with this idempotency key is still running"


class InvalidIdempotencyKey(InvalidInput):
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key header"
