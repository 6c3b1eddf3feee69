import enum


class TargetSource(enum.StrEnum):
    MANUFACTURER = "manufacturer"  # the insert's mean and SD
    ESTABLISHED = "established"  # the lab's own first N runs


class LotState(enum.StrEnum):
    ESTABLISHING = "establishing"
    ACTIVE = "active"
    EXPIRED = "expired"


class ResultOutcome(enum.StrEnum):
    ESTABLISHING = "establishing"  # counted towards the lot's own target, not judged
    ACCEPTED = "accepted"
    WARNING = "warning"
    REJECTED = "rejected"


class RunOutcome(enum.StrEnum):
    PENDING = "pending"  # not every live level of the analyte measured yet
    PASSED = "passed"
    WARNING = "warning"  # every level measured, a warning rule only
    REJECTED = "rejected"


class ResultSource(enum.StrEnum):
    INSTRUMENT = "instrument"
    MANUAL = "manual"


class CorrectiveActionKind(enum.StrEnum):
    RECALIBRATION = "recalibration"
    NEW_REAGENT = "new_reagent"
    NEW_CONTROL = "new_control"
    REPEAT_CONTROL = "repeat_control"
    MAINTENANCE = "maintenance"
    OTHER = "other"


#: Actions after which the rules start afresh (the earlier points describe another system).
RESETTING_ACTIONS = frozenset(
    {
        CorrectiveActionKind.RECALIBRATION,
        CorrectiveActionKind.NEW_REAGENT,
        CorrectiveActionKind.NEW_CONTROL,
        CorrectiveActionKind.MAINTENANCE,
    }
)
