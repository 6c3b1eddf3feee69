import enum


class ConsentStatus(enum.StrEnum):
    REQUESTED = "REQUESTED"
    GRANTED = "GRANTED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


class FrequencyUnit(enum.StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


class RequestStatus(enum.StrEnum):
    """An outbound call whose answer comes back later as a callback."""

    PENDING = "pending"  # recorded, not yet accepted by the gateway
    SENT = "sent"  # the gateway answered 202; waiting for the callback
    ANSWERED = "answered"  # the callback arrived and was applied
    FAILED = "failed"  # refused by the gateway, or the callback carried an error
    TIMED_OUT = "timed_out"  # no callback within the timeout


class RequestKind(enum.StrEnum):
    GENERATE_LINK_TOKEN = "generate_link_token"
    LINK_CARE_CONTEXTS = "link_care_contexts"
    CONTEXT_NOTIFY = "context_notify"


class CareContextStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for a link token / the gateway
    LINKED = "linked"
    FAILED = "failed"


class TransferStatus(enum.StrEnum):
    REQUESTED = "requested"  # the HI request arrived
    REFUSED = "refused"  # the consent does not allow it (answered with an error)
    ACKNOWLEDGED = "acknowledged"  # on-request sent; the push follows
    TRANSFERRED = "transferred"  # pushed and notified
    FAILED = "failed"  # the push failed after every retry (notified FAILED)


class EnrolmentStatus(enum.StrEnum):
    OTP_SENT = "otp_sent"
    MOBILE_OTP_SENT = "mobile_otp_sent"
    ADDRESS_PENDING = "address_pending"
    COMPLETED = "completed"
    FAILED = "failed"


class EnrolmentKind(enum.StrEnum):
    CREATE = "create"  # a new ABHA by Aadhaar OTP
    LINK = "link"  # an existing ABHA, verified by OTP


class ShareStatus(enum.StrEnum):
    WAITING = "waiting"
    REGISTERED = "registered"
    MATCHED = "matched"
    DISMISSED = "dismissed"


class MessageDirection(enum.StrEnum):
    IN = "in"
    OUT = "out"


class MessageStatus(enum.StrEnum):
    RECEIVED = "received"  # stored and acknowledged; a job processes it
    PROCESSED = "processed"
    DUPLICATE = "duplicate"  # a repeat of a request id already received
    REJECTED = "rejected"  # unparseable or for an unknown HIP (stored with the error)
    FAILED = "failed"  # processing raised; the job retries
    SENT = "sent"  # outbound, accepted by the peer
    ERROR = "error"  # outbound, refused or unreachable
