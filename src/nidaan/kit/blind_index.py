"""Keyed blind indexes: exact-match search over encrypted columns without decrypting.

``blind_index(value, context)`` is HMAC-SHA256(blind-index key, context NUL value), hex.
The context (e.g. ``"users.mobile"``) keeps equal values in different columns from
producing linkable hashes. Callers normalise domain-specifically first (for mobiles,
:func:`nidaan.kit.phone.normalize_mobile`) so that every spelling of one value matches.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

from nidaan.config import get_settings

MIN_KEY_BYTES = 32
INDEX_LENGTH = 64  # hex characters of SHA-256; size String/CHAR columns with this


class BlindIndexer:
    """Computes blind indexes under one secret key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"The blind index key must be at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "BlindIndexer(<key hidden>)"

    def index(self, value: str, context: str) -> str:
        """Hex HMAC-SHA256 of ``context + "\\x00" + value`` (value NFC-normalised, stripped)."""
        if not isinstance(context, str) or not context or "\x00" in context:
            # A NUL inside the context would make (context, value) pairs ambiguous.
            raise ValueError("A blind index context must be a non-empty string without NUL")
        if not isinstance(value, str):
            raise TypeError("Only str values can be blind-indexed")
        # NFC so that the same visible text typed on different keyboards matches.
        normalized = unicodedata.normalize("NFC", value.strip())
        message = context.encode("utf-8") + b"\x00" + normalized.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


_indexer: BlindIndexer | None = None


def get_blind_indexer() -> BlindIndexer:
    """The process-wide indexer, keyed from ``NIDAAN_BLIND_INDEX_KEY``."""
    global _indexer
    if _indexer is None:
        _indexer = BlindIndexer(get_settings().blind_index_secret())
    return _indexer


def set_blind_indexer(indexer: BlindIndexer | None) -> BlindIndexer | None:
    """Replace the process-wide indexer (``None`` = rebuild from settings); returns the old one."""
    global _indexer
    previous, _indexer = _indexer, indexer
    return previous


@contextmanager
def use_blind_indexer(indexer: BlindIndexer) -> Iterator[BlindIndexer]:
    """Temporarily make ``indexer`` the process-wide one (tests)."""
    previous = set_blind_indexer(indexer)
    try:
        yield indexer
    finally:
        set_blind_indexer(previous)


def blind_index(value: str, context: str) -> str:
    """The 64-character hex blind index of ``value`` in ``context``, under the configured key."""
    return get_blind_indexer().index(value, context)
