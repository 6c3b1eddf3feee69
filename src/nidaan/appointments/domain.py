"""Pure rules of home collection: the visit state machine, the windows of a day, tubes per
visit (the orders module's grouping: one tube per specimen type and container), the
suggested assignment of visits to phlebotomists, and when reminders go out. No I/O."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from nidaan.appointments.enums import VisitStatus
from nidaan.kit.time import IST

S = VisitStatus

#: Allowed status changes of a visit. ``not_available`` is also allowed before leaving (the
#: patient phoned to say they are away), ``booked`` -> ``on_the_way`` is not: assign first.
TRANSITIONS: Mapping[VisitStatus, frozenset[VisitStatus]] = {
    S.BOOKED: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.ASSIGNED, S.ON_THE_WAY, S.NOT_AVAILABLE, S.CANCELLED, S.BOOKED}),
    S.ON_THE_WAY: frozenset({S.ARRIVED, S.NOT_AVAILABLE, S.REFUSED}),
    S.ARRIVED: frozenset({S.COLLECTED, S.NOT_AVAILABLE, S.REFUSED}),
    S.COLLECTED: frozenset(),
    S.NOT_AVAILABLE: frozenset(),
    S.REFUSED: frozenset(),
    S.CANCELLED: frozenset(),
}


def may_move(current: VisitStatus | str, target: VisitStatus | str) -> bool:
    return VisitStatus(target) in TRANSITIONS[VisitStatus(current)]


def windows_of(day: date, starts: Sequence[tuple[time, time]]) -> list[tuple[datetime, datetime]]:
    """The day's windows (local times) as aware UTC-comparable datetimes in IST."""
    return [
        (datetime.combine(day, start, tzinfo=IST), datetime.combine(day, end, tzinfo=IST))
        for start, end in starts
    ]


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class Tube:
    specimen_type: str
    container: str
    tests: tuple[str, ...]


def tubes_for(tests: Iterable[tuple[str, str, str]]) -> list[Tube]:
    """(code, specimen_type, container) per test -> one tube per (specimen, container), in
    first-seen order, as orders groups its samples."""
    groups: dict[tuple[str, str], list[str]] = {}
    for code, specimen_type, container in tests:
        groups.setdefault((specimen_type, container), []).append(code)
    return [Tube(s, c, tuple(codes)) for (s, c), codes in groups.items()]


@dataclass(frozen=True)
class Bookable:
    """A test or panel a patient may book from the link, with the preparation it asks for
    (none for most: they are listed all the same)."""

    kind: Literal["panel", "test"]
    code: str
    name: str
    department: str | None
    fasting_hours: int
    instructions: str | None


def combined_preparation(
    preparations: Iterable[tuple[int, str | None]],
) -> tuple[int, str | None]:
    """A panel's preparation from its tests': the longest fast, and each distinct
    instruction once, in the panel's order."""
    hours, texts = 0, []
    for fasting, text in preparations:
        hours = max(hours, fasting)
        if text and text not in texts:
            texts.append(text)
    return hours, " ".join(texts) or None


@dataclass(frozen=True)
class VisitToPlace:
    id: uuid.UUID
    window: datetime  # the slot's start
    pincode: str
    phlebotomist_id: uuid.UUID | None = None  # already assigned (kept as it is)


@dataclass
class _Load:
    per_window: dict[datetime, int] = field(default_factory=lambda: defaultdict(int))
    pincodes: set[str] = field(default_factory=set)
    total: int = 0


def suggest_assignment(
    visits: Sequence[VisitToPlace],
    phlebotomists: Sequence[uuid.UUID],
    visits_per_window: int,
) -> dict[uuid.UUID, uuid.UUID | None]:
    """visit id -> suggested phlebotomist (None: nobody has room in that window).

    Visits already assigned stay where they are and count towards that person's load.
    Others are placed window by window, pincode by pincode: first with a phlebotomist who
    already goes to that pincode that day, else with the one with the fewest visits; never
    more than ``visits_per_window`` for one person in one window. Deterministic.
    """
    loads = {p: _Load() for p in phlebotomists}
    result: dict[uuid.UUID, uuid.UUID | None] = {}
    for visit in visits:
        if visit.phlebotomist_id is not None and visit.phlebotomist_id in loads:
            load = loads[visit.phlebotomist_id]
            load.per_window[visit.window] += 1
            load.pincodes.add(visit.pincode)
            load.total += 1
            result[visit.id] = visit.phlebotomist_id
    pending = sorted(
        (v for v in visits if v.id not in result), key=lambda v: (v.window, v.pincode, v.id)
    )
    order = {p: i for i, p in enumerate(phlebotomists)}
    for visit in pending:
        free = [p for p in phlebotomists if loads[p].per_window[visit.window] < visits_per_window]
        if not free:
            result[visit.id] = None
            continue
        chosen = min(
            free,
            key=lambda p: (
                visit.pincode not in loads[p].pincodes,
                loads[p].total,
                order[p],
            ),
        )
        load = loads[chosen]
        load.per_window[visit.window] += 1
        load.pincodes.add(visit.pincode)
        load.total += 1
        result[visit.id] = chosen
    return result


#: The evening reminder goes at 18:00 the day before (the notifications default); the
#: morning one 90 minutes before the window, but not before 06:00 on the day.
MORNING_LEAD = timedelta(minutes=90)
EARLIEST_MORNING = time(6, 0)


def morning_reminder_at(starts_at: datetime) -> datetime:
    local = starts_at.astimezone(IST)
    earliest = datetime.combine(local.date(), EARLIEST_MORNING, tzinfo=IST)
    return min(max(local - MORNING_LEAD, earliest), local)


def window_text(starts_at: datetime, ends_at: datetime) -> str:
    start, end = starts_at.astimezone(IST), ends_at.astimezone(IST)
    return f"{start:%H:%M}-{end:%H:%M}"


def secret_hash(secret: str, key: str) -> str:
    """A keyed hash of a one-time code or token, so the database never holds either."""
    return hmac.new(key.encode(), secret.encode(), hashlib.sha256).hexdigest()


def is_late(arrived_at: datetime, window_end: datetime) -> bool:
    return arrived_at > window_end
