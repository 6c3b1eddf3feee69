"""The sample (tube) state machine as a pure table, and the accession number format.

```
ordered -collect-> collected -dispatch-> in_transit -receive-> received
                   collected -receive-> received            (collected at the lab itself)
received -start_processing-> in_process -complete-> completed
ordered | collected | in_transit | received | in_process -reject-> rejected
```

``completed`` and ``rejected`` are terminal.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from nidaan.kit.errors import Conflict
from nidaan.kit.time import IST
from nidaan.samples.enums import SampleStatus


class SampleEvent(enum.StrEnum):
    COLLECT = "collect"
    DISPATCH = "dispatch"
    RECEIVE = "receive"
    START_PROCESSING = "start_processing"
    COMPLETE = "complete"
    REJECT = "reject"


#: The state each event leads to (the "to" named when the event is illegal).
TARGET: dict[SampleEvent, SampleStatus] = {
    SampleEvent.COLLECT: SampleStatus.COLLECTED,
    SampleEvent.DISPATCH: SampleStatus.IN_TRANSIT,
    SampleEvent.RECEIVE: SampleStatus.RECEIVED,
    SampleEvent.START_PROCESSING: SampleStatus.IN_PROCESS,
    SampleEvent.COMPLETE: SampleStatus.COMPLETED,
    SampleEvent.REJECT: SampleStatus.REJECTED,
}

#: The states each event may be applied in.
ALLOWED_FROM: dict[SampleEvent, frozenset[SampleStatus]] = {
    SampleEvent.COLLECT: frozenset({SampleStatus.ORDERED}),
    SampleEvent.DISPATCH: frozenset({SampleStatus.COLLECTED}),
    SampleEvent.RECEIVE: frozenset({SampleStatus.COLLECTED, SampleStatus.IN_TRANSIT}),
    SampleEvent.START_PROCESSING: frozenset({SampleStatus.RECEIVED}),
    SampleEvent.COMPLETE: frozenset({SampleStatus.IN_PROCESS}),
    SampleEvent.REJECT: frozenset(
        {
            SampleStatus.ORDERED,
            SampleStatus.COLLECTED,
            SampleStatus.IN_TRANSIT,
            SampleStatus.RECEIVED,
            SampleStatus.IN_PROCESS,
        }
    ),
}

TRANSITIONS: dict[tuple[SampleStatus, SampleEvent], SampleStatus] = {
    (state, event): TARGET[event] for event, states in ALLOWED_FROM.items() for state in states
}

TERMINAL: frozenset[SampleStatus] = frozenset({SampleStatus.COMPLETED, SampleStatus.REJECTED})


class IllegalTransition(Conflict):
    """An event that the sample's current state does not allow (409, names from and to)."""

    code = "illegal_transition"
    title = "Illegal state transition"

    def __init__(self, current: str, event: str) -> None:
        current = SampleStatus(current)
        event = SampleEvent(event)
        target = TARGET[event]
        super().__init__(
            f"A {current} sample cannot be moved to {target} ({event}).",
            **{"from": str(current), "to": str(target), "event": str(event)},
        )
        self.current = current
        self.event = event
        self.target = target


def transition(current: SampleStatus | str, event: SampleEvent | str) -> SampleStatus:
    """The state after ``event``; raises ``IllegalTransition`` when it is not allowed."""
    new = TRANSITIONS.get((SampleStatus(current), SampleEvent(event)))
    if new is None:
        raise IllegalTransition(current, event)
    return new


def allowed_events(current: SampleStatus | str) -> list[SampleEvent]:
    """Events that may be applied to a sample in ``current`` state."""
    return [e for e in SampleEvent if (SampleStatus(current), e) in TRANSITIONS]


def ist_day(at: datetime) -> date:
    """The calendar day in India of an aware timestamp (accession and manifest numbers)."""
    return at.astimezone(IST).date()


def accession_number(branch_code: str, day: date, number: int) -> str:
    """``<BRANCH>-YYYYMMDD-NNNN``, e.g. ``CC1-20250314-0007``."""
    return f"{branch_code}-{day:%Y%m%d}-{number:04d}"


def accession_scope(branch_code: str, day: date) -> str:
    """The sequence scope: accessions are counted per branch and IST day."""
    return f"accession:{branch_code}:{day:%Y%m%d}"


def manifest_number(branch_code: str, day: date, number: int) -> str:
    """``MF-<FROM BRANCH>-YYYYMMDD-NN``."""
    return f"MF-{branch_code}-{day:%Y%m%d}-{number:02d}"


def manifest_scope(branch_code: str, day: date) -> str:
    return f"manifest:{branch_code}:{day:%Y%m%d}"
