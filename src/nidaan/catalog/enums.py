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


class SpecimenType(enum.StrEnum):
    """The specimen vocabulary of the seeded catalogue (tests may use other strings)."""

    WHOLE_BLOOD = "whole_blood"
    SERUM = "serum"
    PLASMA = "plasma"
    URINE = "urine"
    STOOL = "stool"
    SPUTUM = "sputum"
    SWAB = "swab"


class Container(enum.StrEnum):
    """Tube or container colours as printed on labels; samples group tests by these."""

    EDTA_LAVENDER = "edta_lavender"
    SST_YELLOW = "sst_yellow"  # serum separator (gold/yellow); plain red behaves the same
    PLAIN_RED = "plain_red"
    FLUORIDE_GREY = "fluoride_grey"
    CITRATE_BLUE = "citrate_blue"
    HEPARIN_GREEN = "heparin_green"
    URINE_CONTAINER = "urine_container"
    STERILE_CONTAINER = "sterile_container"
    STOOL_CONTAINER = "stool_container"


class Flag(enum.StrEnum):
    """Result flags: normal, low, high, critical low/high, abnormal (coded)."""

    NORMAL = "N"
    LOW = "L"
    HIGH = "H"
    CRITICAL_LOW = "LL"
    CRITICAL_HIGH = "HH"
    ABNORMAL = "A"
