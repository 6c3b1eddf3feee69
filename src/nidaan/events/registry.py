"""Subscriber registry: which handlers react to which event class.

Handlers live in the consuming module's ``handlers.py``; that module is listed in
``HANDLER_MODULES`` so that the API (which fans events out to subscribers when it
publishes) and the worker (which runs them) both know every subscriber.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.events.base import DomainEvent

#: Modules whose ``@subscriber`` handlers must be registered in every process.
#: A module that gets a ``handlers.py`` adds its dotted path here.
HANDLER_MODULES: list[str] = [
    "nidaan.reports.handlers",
    "nidaan.integration.handlers",
    "nidaan.notifications.handlers",
    "nidaan.abdm.handlers",
    "nidaan.payments.handlers",
    "nidaan.qc.handlers",
    "nidaan.autoverify.handlers",
]

Handler = Callable[[AsyncSession, Any], Awaitable[None]]
H = TypeVar("H", bound=Handler)


class UnknownSubscriberError(LookupError):
    """A delivery job names a subscriber that this process has not registered."""


@dataclass(frozen=True)
class Subscription:
    name: str
    event_type: type[DomainEvent]
    handler: Handler


_subscriptions: dict[str, Subscription] = {}
_loaded_modules: set[str] = set()


def subscriber(event_type: type[DomainEvent], name: str | None = None) -> Callable[[H], H]:
    """Register ``async def handler(session, event)`` for ``event_type`` (and its subclasses).

    ``name`` identifies the subscription in jobs and delivery rows, so keep it stable
    across releases; it defaults to the handler's dotted path.
    """

    def decorator(handler: H) -> H:
        key = name or f"{handler.__module__}.{handler.__qualname__}"
        known = _subscriptions.get(key)
        if known is not None and (
            known.event_type is not event_type or _path(known.handler) != _path(handler)
        ):
            raise ValueError(f"Subscriber name {key!r} is already registered")
        _subscriptions[key] = Subscription(name=key, event_type=event_type, handler=handler)
        return handler

    return decorator


def unregister(name: str) -> None:
    """Forget a subscription (tests register throwaway subscribers)."""
    _subscriptions.pop(name, None)


def subscriptions_for(event_type: type[DomainEvent]) -> list[Subscription]:
    """Subscriptions to ``event_type`` or any of its base classes, in a stable order."""
    load_handler_modules()
    bases = set(event_type.__mro__)
    return sorted(
        (sub for sub in _subscriptions.values() if sub.event_type in bases),
        key=lambda sub: sub.name,
    )


def get_subscription(name: str) -> Subscription:
    """The subscription called ``name``, or ``UnknownSubscriberError``."""
    load_handler_modules()
    try:
        return _subscriptions[name]
    except KeyError:
        raise UnknownSubscriberError(
            f"No subscriber is registered as {name!r}; is its handlers module in "
            "nidaan.events.registry.HANDLER_MODULES?"
        ) from None


def load_handler_modules() -> None:
    """Import every module in ``HANDLER_MODULES`` once.

    A missing module raises: publishing without one of its subscribers would drop
    that subscriber's deliveries silently.
    """
    for path in HANDLER_MODULES:
        if path not in _loaded_modules:
            importlib.import_module(path)
            _loaded_modules.add(path)


def _path(handler: Handler) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"
