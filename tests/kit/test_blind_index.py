"""Blind indexes: deterministic per key and context, unlinkable across either."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest

from nidaan.kit.blind_index import (
    BlindIndexer,
    blind_index,
    get_blind_indexer,
    set_blind_indexer,
    use_blind_indexer,
)

KEY_A, KEY_B = os.urandom(32), os.urandom(32)
MOBILE = "+919876543210"


def test_matches_the_documented_construction() -> None:
    expected = hmac.new(KEY_A, b"users.mobile\x00" + MOBILE.encode(), hashlib.sha256).hexdigest()
    assert BlindIndexer(KEY_A).index(MOBILE, "users.mobile") == expected


def test_deterministic_hex_64() -> None:
    indexer = BlindIndexer(KEY_A)
    first = indexer.index(MOBILE, "users.mobile")
    assert first == indexer.index(MOBILE, "users.mobile")
    assert first == BlindIndexer(KEY_A).index(MOBILE, "users.mobile")
    assert len(first) == 64
    assert set(first) <= set("0123456789abcdef")
    assert MOBILE not in first


def test_differs_across_contexts_and_keys() -> None:
    a = BlindIndexer(KEY_A)
    assert a.index(MOBILE, "users.mobile") != a.index(MOBILE, "patients.mobile")
    assert a.index(MOBILE, "users.mobile") != BlindIndexer(KEY_B).index(MOBILE, "users.mobile")
    assert a.index(MOBILE, "users.mobile") != a.index("+919876543211", "users.mobile")


def test_context_value_boundary_is_unambiguous() -> None:
    a = BlindIndexer(KEY_A)
    assert a.index("bc", "a") != a.index("c", "ab")
    with pytest.raises(ValueError):
        a.index("c", "a\x00b")


def test_light_normalisation_only() -> None:
    a = BlindIndexer(KEY_A)
    assert a.index(f"  {MOBILE}\n", "ctx") == a.index(MOBILE, "ctx")
    # NFC: a precomposed and a decomposed "é" are the same text.
    assert a.index("caf\u00e9", "ctx") == a.index("cafe\u0301", "ctx")
    # Case is meaningful; domain normalisation is the caller's job.
    assert a.index("ABC", "ctx") != a.index("abc", "ctx")


def test_invalid_use() -> None:
    with pytest.raises(ValueError):
        BlindIndexer(b"too short")
    with pytest.raises(ValueError):
        BlindIndexer(KEY_A).index(MOBILE, "")
    with pytest.raises(TypeError):
        BlindIndexer(KEY_A).index(9876543210, "ctx")  # type: ignore[arg-type]


def test_repr_hides_key() -> None:
    text = repr(BlindIndexer(KEY_A))
    assert KEY_A.hex() not in text
    assert repr(KEY_A) not in text


def test_module_function_uses_process_indexer() -> None:
    previous = set_blind_indexer(None)
    try:
        configured = get_blind_indexer()  # from the test settings
        assert blind_index(MOBILE, "ctx") == configured.index(MOBILE, "ctx")
        with use_blind_indexer(BlindIndexer(KEY_B)):
            assert blind_index(MOBILE, "ctx") == BlindIndexer(KEY_B).index(MOBILE, "ctx")
        assert get_blind_indexer() is configured
    finally:
        set_blind_indexer(previous)
