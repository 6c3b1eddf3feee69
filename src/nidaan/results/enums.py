import enum


class ResultStatus(enum.StrEnum):
    ENTERED = "entered"  # awaiting verification
    HELD = "held"  # failed a delta check (or another rule): needs review before verification
    VERIFIED = "verified"  # released; immutable
    SUPERSEDED = "superseded"  # replaced by a correction (a newer version)


class Flag(enum.StrEnum):
    NORMAL = "N"
    LOW = "L"
    HIGH = "H"
    CRITICAL_LOW = "LL"
    CRITICAL_HIGH = "HH"
    ABNORMAL = "A"


class ResultSource(enum.StrEnum):
    MANUAL = "manual"
    INSTRUMENT = "instrument"
    CALCULATED = "calculated"


class CriticalAlertStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
