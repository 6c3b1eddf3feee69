"""The ``DomainEvent`` base class and the event name -> class registry."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Self

_event_types: dict[str, type[DomainEvent]] = {}


class UnknownEventError(LookupError):
    """An outbox row names an event class that this process has not imported."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Something that happened in one organisation; subclasses set ``name = "module.past_tense"``.

    Fields must be JSON-friendly values or ``UUID``, ``datetime``, ``date``, ``Decimal``,
    enums, or ``tuple``/``list``/``X | None`` of those, so the payload round-trips.
    """

    name: ClassVar[str]
    organisation_id: uuid.UUID

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__} must set a class attribute name = 'module.event'")
        known = _event_types.get(name)
        # The same class may be created twice (dataclass(slots=True) rebuilds it); a
        # different class reusing a name would make payloads ambiguous.
        if known is not None and _qualified(known) != _qualified(cls):
            raise TypeError(f"Event name {name!r} is already used by {_qualified(known)}")
        _event_types[name] = cls

    def to_payload(self) -> dict[str, Any]:
        """The event's fields as JSON values (what the outbox stores)."""
        return {
            field.name: _encode(getattr(self, field.name)) for field in dataclasses.fields(self)
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        """Rebuild the event from ``to_payload()`` output, restoring field types."""
        hints = typing.get_type_hints(cls)
        values = {
            field.name: _decode(hints[field.name], payload[field.name])
            for field in dataclasses.fields(cls)
            if field.name in payload
        }
        return cls(**values)


def event_type(name: str) -> type[DomainEvent]:
    """The event class registered under ``name``."""
    try:
        return _event_types[name]
    except KeyError:
        raise UnknownEventError(
            f"No DomainEvent subclass is named {name!r}; is its events.py imported?"
        ) from None


def event_from_payload(name: str, payload: dict[str, Any]) -> DomainEvent:
    """Turn a stored (name, payload) back into its event dataclass."""
    return event_type(name).from_payload(payload)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return _encode(value.value)
    if isinstance(value, uuid.UUID | Decimal):
        # Decimal as a string: a JSON number would pass through float and lose paise.
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _encode(item) for key, item in value.items()}
    return value


def _decode(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        return _decode(options[0], value) if len(options) == 1 else value
    if origin is tuple and args and args[-1] is not Ellipsis:
        return tuple(_decode(arg, item) for arg, item in zip(args, value, strict=True))
    if origin in (list, tuple, set, frozenset):
        item_type = args[0] if args else Any
        items = [_decode(item_type, item) for item in value]
        return origin(items)
    if origin is dict:
        item_type = args[1] if len(args) == 2 else Any
        return {key: _decode(item_type, item) for key, item in value.items()}
    if annotation is uuid.UUID:
        return uuid.UUID(value)
    if annotation is Decimal:
        return Decimal(value)
    if annotation is datetime:
        return datetime.fromisoformat(value)
    if annotation is date:
        return date.fromisoformat(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    return value
