import enum


class Priority(enum.StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"


class OrderStatus(enum.StrEnum):
    OPEN = "open"  # tests still pending
    COMPLETED = "completed"  # every active test has a verified result
    CANCELLED = "cancelled"


class OrderTestStatus(enum.StrEnum):
    ACTIVE = "active"  # waiting for a result
    RESULTED = "resulted"  # a result exists (entered, held or being corrected)
    VERIFIED = "verified"  # its current result is verified
    CANCELLED = "cancelled"
