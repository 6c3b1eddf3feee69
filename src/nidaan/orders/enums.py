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
    ACTIVE = "active"
    CANCELLED = "cancelled"
