import enum


class VisitStatus(enum.StrEnum):
    """A home visit: booked -> assigned -> on_the_way -> arrived -> collected, or one of the
    ends ``not_available`` / ``refused`` (at the door) or ``cancelled`` (before)."""

    BOOKED = "booked"
    ASSIGNED = "assigned"
    ON_THE_WAY = "on_the_way"
    ARRIVED = "arrived"
    COLLECTED = "collected"
    NOT_AVAILABLE = "not_available"
    REFUSED = "refused"
    CANCELLED = "cancelled"


#: States that hold a place in a slot (and count for "one visit per patient per day").
ACTIVE_STATES = frozenset(
    {VisitStatus.BOOKED, VisitStatus.ASSIGNED, VisitStatus.ON_THE_WAY, VisitStatus.ARRIVED}
)
FINAL_STATES = frozenset(
    {
        VisitStatus.COLLECTED,
        VisitStatus.NOT_AVAILABLE,
        VisitStatus.REFUSED,
        VisitStatus.CANCELLED,
    }
)


class BookedVia(enum.StrEnum):
    DESK = "desk"
    PATIENT_LINK = "patient_link"
