"""Event dataclasses round-trip through their JSON payload, and names map back to classes."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from nidaan.events.base import DomainEvent, UnknownEventError, event_from_payload, event_type


class Priority(enum.StrEnum):
    ROUTINE = "routine"
    STAT = "stat"


@dataclasses.dataclass(frozen=True)
class SpecimenLogged(DomainEvent):
    name = "tests.specimen_logged"

    specimen_id: uuid.UUID
    logged_at: datetime
    collected_on: date
    amount: Decimal
    priority: Priority
    tags: tuple[str, ...]
    courier_id: uuid.UUID | None = None


def make_event(**overrides: object) -> SpecimenLogged:
    values: dict[str, object] = {
        "organisation_id": uuid.uuid4(),
        "specimen_id": uuid.uuid4(),
        "logged_at": datetime(2026, 11, 26, 7, 30, 15, 123456, tzinfo=UTC),
        "collected_on": date(2026, 11, 25),
        "amount": Decimal("1234.50"),
        "priority": Priority.STAT,
        "tags": ("fasting", "home"),
    }
    return SpecimenLogged(**(values | overrides))  # type: ignore[arg-type]


def test_payload_is_json_and_round_trips_exact_types() -> None:
    event = make_event(courier_id=uuid.uuid4())

    payload = json.loads(json.dumps(event.to_payload()))
    restored = event_from_payload("tests.specimen_logged", payload)

    assert restored == event
    assert isinstance(restored, SpecimenLogged)
    assert isinstance(restored.amount, Decimal)
    assert str(restored.amount) == "1234.50"
    assert restored.logged_at.tzinfo is not None
    assert payload["amount"] == "1234.50"


def test_optional_field_left_empty_round_trips_as_none() -> None:
    event = make_event()
    assert event_from_payload(event.name, event.to_payload()) == event


def test_names_map_to_their_classes() -> None:
    assert event_type("tests.specimen_logged") is SpecimenLogged
    with pytest.raises(UnknownEventError, match=r"tests\.never_declared"):
        event_type("tests.never_declared")


def test_an_event_must_have_a_unique_name() -> None:
    with pytest.raises(TypeError, match="must set a class attribute name"):

        class Nameless(DomainEvent):
            pass

    with pytest.raises(TypeError, match="already used"):

        class Impostor(DomainEvent):
            name = "tests.specimen_logged"
