import enum


class SampleStatus(enum.StrEnum):
    ORDERED = "ordered"
    COLLECTED = "collected"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    IN_PROCESS = "in_process"
    COMPLETED = "completed"
    REJECTED = "rejected"


class RejectionReason(enum.StrEnum):
    HAEMOLYSED = "haemolysed"
    CLOTTED = "clotted"
    INSUFFICIENT = "insufficient"
    UNLABELLED = "unlabelled"
    MISLABELLED = "mislabelled"
    WRONG_CONTAINER = "wrong_container"
    LIPAEMIC = "lipaemic"
    LEAKED = "leaked"
    DELAYED = "delayed_in_transit"
    OTHER = "other"


class ManifestStatus(enum.StrEnum):
    OPEN = "open"
    DISPATCHED = "dispatched"
    RECEIVED = "received"


class SampleCondition(enum.StrEnum):
    """What the lab saw when the sample arrived (accepted, but printed on the report)."""

    HAEMOLYSED = "haemolysed"
    LIPAEMIC = "lipaemic"
    ICTERIC = "icteric"
    CLOTTED = "clotted"
