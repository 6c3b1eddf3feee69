"""Pure order rules: test status changes, the derived order status, grouping, numbers."""

from __future__ import annotations

from datetime import date

import pytest

from nidaan.orders.domain import (
    derived_status,
    group_by,
    may_change_status,
    order_number,
    order_scope,
)
from nidaan.orders.enums import OrderStatus
from nidaan.orders.enums import OrderTestStatus as T


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([T.ACTIVE, T.VERIFIED], OrderStatus.OPEN),
        ([T.RESULTED, T.VERIFIED], OrderStatus.OPEN),
        ([T.VERIFIED, T.VERIFIED], OrderStatus.COMPLETED),
        ([T.VERIFIED, T.CANCELLED], OrderStatus.COMPLETED),
        ([T.CANCELLED, T.CANCELLED], OrderStatus.CANCELLED),
        ([], OrderStatus.CANCELLED),
    ],
)
def test_derived_status(statuses: list[T], expected: OrderStatus) -> None:
    assert derived_status(statuses) == expected


def test_status_changes_results_may_make() -> None:
    assert may_change_status(T.ACTIVE, T.RESULTED)
    assert may_change_status(T.RESULTED, T.VERIFIED)
    assert may_change_status(T.VERIFIED, T.RESULTED)  # a correction
    assert not may_change_status(T.RESULTED, T.ACTIVE)
    assert not may_change_status(T.CANCELLED, T.VERIFIED)
    assert not may_change_status(T.ACTIVE, T.CANCELLED)  # cancel_test does that


def test_group_by_keeps_first_appearance_order() -> None:
    items = [("HB", "edta"), ("GLU", "fluoride"), ("WBC", "edta"), ("ALT", "sst")]
    assert group_by(items, lambda i: i[1]) == {
        "edta": [("HB", "edta"), ("WBC", "edta")],
        "fluoride": [("GLU", "fluoride")],
        "sst": [("ALT", "sst")],
    }
    assert list(group_by(items, lambda i: i[1])) == ["edta", "fluoride", "sst"]


def test_order_number() -> None:
    assert order_number(date(2025, 3, 15), 42) == "ORD-20250315-0042"
    assert order_scope(date(2025, 3, 15)) == "order:20250315"
