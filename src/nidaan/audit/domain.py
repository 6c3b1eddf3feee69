"""Pure audit rules: canonical JSON, the hash chain and before/after diffs with redaction.

Nothing here touches the database, so the rules that make the log tamper-evident can be
tested (and re-implemented by an outside verifier) from this file alone.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry in every organisation's chain."""

REDACTED = "[redacted]"

DEFAULT_SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "password_hash",
        "token",
        "secret",
        "key_hash",
        "api_key",
        "mobile",
        "mobile_encrypted",
        "mobile_index",
        "aadhaar",
        "email_encrypted",
        "abha_number",
    }
)
"""Keys whose values never reach the audit log (they still show *that* they changed)."""

_SENSITIVE_FRAGMENTS = ("password", "secret", "token")
_SENSITIVE_SUFFIXES = ("_encrypted", "_index")


def format_timestamp(value: datetime) -> str:
    """Render an aware datetime as UTC ISO 8601 with microseconds (the hashed form)."""
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    # A fixed format: isoformat() drops ".000000" when microseconds are 0, which is
    # deterministic too, but a fixed width is easier for outside verifiers to reproduce.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: Values that are their own JSON form (exact types: a StrEnum member is not one of them).
_PLAIN = frozenset({str, int, bool, type(None)})


def jsonable(value: Any) -> Any:
    """Convert ``value`` recursively into plain JSON types, deterministically."""
    kind = type(value)
    if kind in _PLAIN:
        return value  # the common cases first (audit snapshots are mostly plain values)
    if kind is dict:
        return {
            k if type(k) is str else str(jsonable(k)): v if type(v) in _PLAIN else jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, enum.Enum):
        # Before str/int: a StrEnum member is a str, but we store its plain value.
        return jsonable(value.value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        # JSON (and JSONB) has no NaN/Infinity; keep the information as text.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        # Text keeps the scale ("5.10" is not "5.1" on a lab report) and avoids float error.
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        items = [jsonable(v) for v in value]
        # Sets have no order; sort by canonical form so the same set always hashes the same.
        return sorted(items, key=canonical_json)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in the audit log")


def _normalise_numbers(value: Any) -> Any:
    """Make numbers hash the same before and after a JSONB round trip.

    JSONB stores numbers as ``numeric``: ``1e+16`` (a float) comes back as the integer
    ``10000000000000000``. Hashing integral floats as integers makes both forms agree.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(v) for v in value]
    return value


def _canonical(value: Any) -> Any:
    """``_normalise_numbers(jsonable(value))`` in one pass over plain dicts and lists."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {k if type(k) is str else str(jsonable(k)): _canonical(v) for k, v in value.items()}
    if kind is list:
        return [_canonical(v) for v in value]
    return _normalise_numbers(jsonable(value))


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` as canonical JSON: sorted keys, no spaces, UTF-8, numbers normalised."""
    return json.dumps(
        _canonical(obj),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def entry_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest chaining ``content`` to the previous entry's hash."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    # The separator keeps the boundary unambiguous (a hash is fixed-width hex anyway).
    digest.update(b"\n")
    digest.update(canonical_json(content))
    return digest.hexdigest()


def entry_content(
    *,
    organisation_id: uuid.UUID,
    seq: int,
    occurred_at: datetime,
    actor_kind: str,
    actor_id: uuid.UUID | None,
    actor_label: str,
    action: str,
    entity_type: str,
    entity_id: str,
    changes: Mapping[str, Any],
    request_id: str | None,
) -> dict[str, Any]:
    """The fields of one audit entry that its hash covers, in hashable form."""
    return {
        "organisation_id": str(organisation_id),
        "seq": seq,
        "occurred_at": format_timestamp(occurred_at),
        "actor_kind": actor_kind,
        "actor_id": str(actor_id) if actor_id is not None else None,
        "actor_label": actor_label,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "changes": jsonable(changes),
        "request_id": request_id,
    }


def _same(old: Any, new: Any) -> bool:
    """Whether two jsonable values are stored alike (plain values compare directly)."""
    if type(old) is type(new) and type(old) in _PLAIN:
        return bool(old == new)
    return canonical_json(old) == canonical_json(new)


@functools.lru_cache(maxsize=4096)
def is_sensitive(key: str, sensitive: frozenset[str] = DEFAULT_SENSITIVE_KEYS) -> bool:
    """Whether values under ``key`` must be redacted.

    The name patterns always apply, so a new ``*_token`` column is safe by default.
    """
    lowered = key.lower()
    return (
        lowered in sensitive
        or any(fragment in lowered for fragment in _SENSITIVE_FRAGMENTS)
        or lowered.endswith(_SENSITIVE_SUFFIXES)
    )


def redact(value: Any, sensitive: frozenset[str] = DEFAULT_SENSITIVE_KEYS) -> Any:
    """Replace sensitive values inside nested mappings and lists (``value`` is jsonable)."""
    if isinstance(value, dict):
        return {
            k: (_redacted(v) if is_sensitive(k, sensitive) else redact(v, sensitive))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, sensitive) for v in value]
    return value


def _redacted(value: Any) -> Any:
    # None stays None: "mobile was removed" is useful and reveals nothing.
    return None if value is None else REDACTED


def diff(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    sensitive: frozenset[str] = DEFAULT_SENSITIVE_KEYS,
) -> dict[str, dict[str, Any]]:
    """Return ``{"before": {...}, "after": {...}}`` holding only the keys that changed.

    A key present on one side only appears on that side (creation has an empty
    ``before``, deletion an empty ``after``). Values are compared in their stored
    (jsonable) form; sensitive keys show ``"[redacted]"`` instead of their values.
    """
    old = jsonable(dict(before or {}))
    new = jsonable(dict(after or {}))
    changes: dict[str, dict[str, Any]] = {"before": {}, "after": {}}
    for key in sorted(old.keys() | new.keys()):
        in_old, in_new = key in old, key in new
        if in_old and in_new and _same(old[key], new[key]):
            continue
        secret = is_sensitive(key, sensitive)
        if in_old:
            changes["before"][key] = _redacted(old[key]) if secret else redact(old[key], sensitive)
        if in_new:
            changes["after"][key] = _redacted(new[key]) if secret else redact(new[key], sensitive)
    return changes
