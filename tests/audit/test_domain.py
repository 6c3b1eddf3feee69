"""Pure rules: canonical JSON, hashing and diffs with redaction."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nidaan.audit.domain import (
    GENESIS_HASH,
    REDACTED,
    canonical_json,
    diff,
    entry_content,
    entry_hash,
    format_timestamp,
    is_sensitive,
    jsonable,
)

ORG = uuid.UUID("01890000-0000-7000-8000-000000000001")
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclass
class Point:
    x: int
    y: Decimal


def test_canonical_json_sorts_keys_and_is_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": None, "c": "x"}]}) == (
        b'{"a":[1,{"c":"x","d":null}],"b":1}'
    )


def test_canonical_json_same_for_equal_dicts_in_any_order() -> None:
    first = {"x": 1, "y": {"p": 2, "q": 3}}
    second = {"y": {"q": 3, "p": 2}, "x": 1}
    assert canonical_json(first) == canonical_json(second)


def test_canonical_json_keeps_unicode_as_utf8() -> None:
    assert canonical_json({"name": "रक्त"}) == '{"name":"रक्त"}'.encode()


def test_canonical_json_hashes_integral_floats_like_jsonb_returns_them() -> None:
    # JSONB gives 1e16 back as the integer 10000000000000000.
    assert canonical_json({"v": 1e16}) == canonical_json({"v": 10_000_000_000_000_000})
    assert canonical_json({"v": 0.1}) == b'{"v":0.1}'


def test_jsonable_converts_rich_types() -> None:
    uid = uuid.uuid4()
    value = {
        "id": uid,
        "at": datetime(2026, 1, 2, 8, 34, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        "day": date(2026, 1, 2),
        "amount": Decimal("5.10"),
        "colour": Colour.RED,
        "level": Level.HIGH,
        "tags": {"b", "a"},
        "pair": (1, 2),
        "point": Point(1, Decimal("2.5")),
        "nan": float("nan"),
        7: "int key",
    }
    assert jsonable(value) == {
        "id": str(uid),
        "at": "2026-01-02T03:04:05.000000Z",
        "day": "2026-01-02",
        "amount": "5.10",
        "colour": "red",
        "level": 3,
        "tags": ["a", "b"],
        "pair": [1, 2],
        "point": {"x": 1, "y": "2.5"},
        "nan": "nan",
        "7": "int key",
    }
    assert type(jsonable(Colour.RED)) is str


def test_jsonable_rejects_unknown_types() -> None:
    with pytest.raises(TypeError):
        jsonable(object())


def test_format_timestamp_is_utc_with_microseconds_and_refuses_naive() -> None:
    assert format_timestamp(WHEN) == "2026-01-02T03:04:05.678901Z"
    assert format_timestamp(WHEN.replace(microsecond=0)) == "2026-01-02T03:04:05.000000Z"
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 1, 1))


def test_diff_keeps_only_changed_keys() -> None:
    before = {"name": "CBC", "price": Decimal("300.00"), "active": True}
    after = {"name": "CBC", "price": Decimal("350.00"), "active": False}
    assert diff(before, after) == {
        "before": {"price": "300.00", "active": True},
        "after": {"price": "350.00", "active": False},
    }


def test_diff_on_creation_and_deletion() -> None:
    assert diff(None, {"name": "CBC", "code": None}) == {
        "before": {},
        "after": {"code": None, "name": "CBC"},
    }
    assert diff({"name": "CBC"}, None) == {"before": {"name": "CBC"}, "after": {}}
    assert diff({"a": 1}, {"a": 1}) == {"before": {}, "after": {}}


def test_diff_treats_changed_decimal_scale_as_a_change() -> None:
    # "5.1" and "5.10" say different things about precision on a lab report.
    assert diff({"v": Decimal("5.1")}, {"v": Decimal("5.10")}) == {
        "before": {"v": "5.1"},
        "after": {"v": "5.10"},
    }


def test_diff_redacts_sensitive_keys_but_shows_they_changed() -> None:
    before = {
        "password_hash": "$argon2id$old",
        "mobile_encrypted": "enc-old",
        "mobile_index": "idx-old",
        "api_key": "k-old",
        "refresh_token": "t-old",
        "client_secret": "s-old",
        "aadhaar": "1234",
        "email": "a@example.com",
    }
    after = {
        "password_hash": "$argon2id$new",
        "mobile_encrypted": "enc-new",
        "mobile_index": "idx-new",
        "api_key": "k-new",
        "refresh_token": "t-new",
        "client_secret": "s-new",
        "aadhaar": "5678",
        "email": "b@example.com",
    }
    changes = diff(before, after)
    secret_keys = set(before) - {"email"}
    for side in ("before", "after"):
        assert {k: changes[side][k] for k in secret_keys} == dict.fromkeys(secret_keys, REDACTED)
    assert changes["before"]["email"] == "a@example.com"
    assert "enc-old" not in canonical_json(changes).decode()


def test_diff_redacts_nested_and_extra_sensitive_keys() -> None:
    changes = diff(
        {"settings": {"webhook": {"signing_secret": "old"}, "url": "a"}, "dob": "1990-01-01"},
        {"settings": {"webhook": {"signing_secret": "new"}, "url": "b"}, "dob": "1991-01-01"},
        sensitive=frozenset({"dob"}),
    )
    assert changes == {
        "before": {
            "dob": REDACTED,
            "settings": {"url": "a", "webhook": {"signing_secret": REDACTED}},
        },
        "after": {
            "dob": REDACTED,
            "settings": {"url": "b", "webhook": {"signing_secret": REDACTED}},
        },
    }


def test_diff_keeps_none_for_cleared_sensitive_values() -> None:
    assert diff({"mobile": "9876543210"}, {"mobile": None}) == {
        "before": {"mobile": REDACTED},
        "after": {"mobile": None},
    }


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("password", True),
        ("new_password", True),
        ("access_token", True),
        ("webhook_secret", True),
        ("phone_encrypted", True),
        ("abha_index", True),
        ("key_hash", True),
        ("name", False),
        ("email", False),
        ("result_value", False),
    ],
)
def test_is_sensitive(key: str, expected: bool) -> None:
    assert is_sensitive(key) is expected


def _content(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "organisation_id": ORG,
        "seq": 1,
        "occurred_at": WHEN,
        "actor_kind": "user",
        "actor_id": uuid.UUID("01890000-0000-7000-8000-000000000002"),
        "actor_label": "Dr A. Rao",
        "action": "result.verified",
        "entity_type": "result",
        "entity_id": "r-1",
        "changes": {"before": {"status": "entered"}, "after": {"status": "verified"}},
        "request_id": "req-1",
    }
    fields.update(overrides)
    return entry_content(**fields)


def test_entry_hash_is_known_sha256() -> None:
    content = _content()
    digest = entry_hash(GENESIS_HASH, content)
    assert len(digest) == 64
    assert digest == entry_hash(GENESIS_HASH, dict(reversed(list(content.items()))))
    assert digest != entry_hash("1" * 64, content)


_new_values = {
    "organisation_id": st.uuids().filter(lambda u: u != ORG),
    "seq": st.integers(min_value=2, max_value=2**62),
    "occurred_at": st.datetimes(timezones=st.just(UTC)).filter(lambda d: d != WHEN),
    "actor_kind": st.sampled_from(["api_key", "system"]),
    "actor_id": st.one_of(st.none(), st.uuids()),
    "actor_label": st.text().filter(lambda s: s != "Dr A. Rao"),
    "action": st.text(min_size=1).filter(lambda s: s != "result.verified"),
    "entity_type": st.text().filter(lambda s: s != "result"),
    "entity_id": st.text().filter(lambda s: s != "r-1"),
    "changes": st.dictionaries(
        st.text(), st.one_of(st.none(), st.integers(), st.text(), st.booleans())
    ).map(lambda d: {"before": {}, "after": d}),
    "request_id": st.one_of(st.none(), st.text()).filter(lambda s: s != "req-1"),
}


@given(data=st.data(), field=st.sampled_from(sorted(_new_values)))
def test_hash_changes_when_any_content_field_changes(data: st.DataObject, field: str) -> None:
    original = _content()
    value = data.draw(_new_values[field])
    changed = _content(**{field: value})
    if changed == original:  # e.g. the same actor_id drawn again
        return
    assert entry_hash(GENESIS_HASH, changed) != entry_hash(GENESIS_HASH, original)


@given(prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_hash_changes_when_prev_hash_changes(prev: str) -> None:
    if prev == GENESIS_HASH:
        return
    assert entry_hash(prev, _content()) != entry_hash(GENESIS_HASH, _content())
