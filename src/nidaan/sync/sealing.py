"""Copies of personal identifiers that the sync module keeps are sealed, never stored in clear.

Field history and conflicts keep copies of field values (a mobile number that lost a merge, the
two sides of a conflict). For a field its entity marks ``sensitive`` (a patient's mobile,
e-mail, address, ABHA address) the true value goes into an encrypted column
(``EncryptedString``, so ``nidaan keys rotate`` re-wraps it with everything else) and the JSON
column that APIs, pulls and audit diffs read holds only a masked form.
"""

from __future__ import annotations

import json
from typing import Any

from nidaan.kit.phone import mask_mobile
from nidaan.sync.models import SyncConflict, SyncFieldHistory
from nidaan.sync.registry import REGISTRY

MASKED = "[redacted]"
#: The value columns of a conflict, each with its true value in ``sealed_values`` when sealed.
CONFLICT_VALUES = ("server_value", "client_value", "current_value", "resolution_value")


def is_sensitive(entity: str, field: str) -> bool:
    handler = REGISTRY.get(entity)
    return handler is not None and field in handler.sensitive


def masked(field: str, value: Any) -> Any:
    """What a reader may see of a sensitive value: the last four digits of a mobile, or a
    marker that a value is there."""
    if value is None:
        return None
    if field == "mobile":
        return mask_mobile(str(value))
    return MASKED


def history_row(entity: str, field: str, value: Any, **columns: Any) -> SyncFieldHistory:
    """A field history row holding ``value``, sealed when the field is sensitive."""
    if is_sensitive(entity, field) and value is not None:
        return SyncFieldHistory(
            entity=entity,
            field=field,
            value=masked(field, value),
            value_sealed=json.dumps(value),
            **columns,
        )
    return SyncFieldHistory(entity=entity, field=field, value=value, **columns)


def history_value(row: SyncFieldHistory) -> Any:
    """The true value a field history row keeps."""
    return json.loads(row.value_sealed) if row.value_sealed is not None else row.value


def conflict_values(row: SyncConflict) -> dict[str, Any]:
    """The true server, client, current and resolution values of a conflict."""
    sealed: dict[str, Any] = json.loads(row.sealed_values) if row.sealed_values else {}
    return {name: sealed.get(name, getattr(row, name)) for name in CONFLICT_VALUES}


def set_conflict_values(row: SyncConflict, **values: Any) -> None:
    """Set some of a conflict's values; a sensitive field's go masked to the JSON columns and
    in full to the sealed column."""
    unknown = set(values) - set(CONFLICT_VALUES)
    if unknown:
        raise ValueError(f"not conflict values: {sorted(unknown)}")
    if not is_sensitive(row.entity, row.field):
        for name, value in values.items():
            setattr(row, name, value)
        return
    true = {**conflict_values(row), **values}
    for name, value in values.items():
        setattr(row, name, masked(row.field, value))
    row.sealed_values = json.dumps(true, sort_keys=True)
