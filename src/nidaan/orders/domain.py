"""Pure order rules: which test-status changes are allowed, the order's derived status,
grouping tests into tubes, and the order number format."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import date
from typing import TypeVar

from nidaan.orders.enums import OrderStatus, OrderTestStatus

T = TypeVar("T")

#: Status changes results may make through ``set_test_status`` (a correction takes a
#: verified test back to resulted); cancelling has its own use case.
ALLOWED_STATUS_CHANGES: dict[OrderTestStatus, frozenset[OrderTestStatus]] = {
    OrderTestStatus.ACTIVE: frozenset({OrderTestStatus.RESULTED, OrderTestStatus.VERIFIED}),
    OrderTestStatus.RESULTED: frozenset({OrderTestStatus.RESULTED, OrderTestStatus.VERIFIED}),
    OrderTestStatus.VERIFIED: frozenset({OrderTestStatus.RESULTED, OrderTestStatus.VERIFIED}),
    OrderTestStatus.CANCELLED: frozenset(),
}

#: Only tests still waiting for a result may be cancelled.
CANCELLABLE = frozenset({OrderTestStatus.ACTIVE})


def may_change_status(current: OrderTestStatus | str, new: OrderTestStatus | str) -> bool:
    return OrderTestStatus(new) in ALLOWED_STATUS_CHANGES[OrderTestStatus(current)]


def derived_status(test_statuses: Iterable[OrderTestStatus | str]) -> OrderStatus:
    """Completed when every test not cancelled is verified; cancelled when all are cancelled."""
    active = [OrderTestStatus(s) for s in test_statuses if s != OrderTestStatus.CANCELLED]
    if not active:
        return OrderStatus.CANCELLED
    if all(s == OrderTestStatus.VERIFIED for s in active):
        return OrderStatus.COMPLETED
    return OrderStatus.OPEN


def group_by(items: Sequence[T], key: Callable[[T], Hashable]) -> dict[Hashable, list[T]]:
    """Items grouped by ``key``, groups in order of first appearance."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def order_number(day: date, number: int) -> str:
    """``ORD-YYYYMMDD-NNNN`` (IST day; counted per organisation and day)."""
    return f"ORD-{day:%Y%m%d}-{number:04d}"


def order_scope(day: date) -> str:
    return f"order:{day:%Y%m%d}"
