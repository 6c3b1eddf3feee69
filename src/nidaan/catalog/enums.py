import enum


class ResultType(enum.StrEnum):
    NUMERIC = "numeric"
    TEXT = "text"
    CODED = "coded"  # one choice from the test's list
    CALCULATED = "calculated"  # formula over other tests' numeric results


class Sex(enum.StrEnum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"
