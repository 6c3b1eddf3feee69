"""Re-wrap every stored encrypted value under the active key-encryption key.

Rotation procedure: add a new key to ``NIDAAN_ENCRYPTION_KEYS``, make it active, run this
(``nidaan keys rotate``), and only then remove the old key. Only the wrapped data key of
each token changes; values are never decrypted, so no plaintext passes through here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    MetaData,
    Text,
    and_,
    bindparam,
    select,
    true,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.kit.crypto import TOKEN_VERSION, DecryptionError, FieldCipher, get_cipher
from nidaan.kit.encrypted_type import EncryptedColumn, encrypted_columns

Progress = Callable[[str, int], None]


async def rotate_encryption_keys(
    session: AsyncSession,
    metadata: MetaData,
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
    cipher: FieldCipher | None = None,
) -> dict[str, int]:
    """Re-wrap values not under the active key, for every ``EncryptedString`` column.

    Returns ``{"table.column": rows re-wrapped}`` for every encrypted column (0 included)
    and calls ``progress(name, count)`` once per column when it is done. Idempotent: a
    second run re-wraps nothing. It only flushes; the caller commits.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cipher = cipher or get_cipher()
    # Pending ORM changes must reach the database before we read tokens from it.
    await session.flush()
    counts: dict[str, int] = {}
    for target in encrypted_columns(metadata):
        counts[target.name] = await _rotate_column(session, target, cipher, batch_size)
        if progress is not None:
            progress(target.name, counts[target.name])
    return counts


async def _rotate_column(
    session: AsyncSession, target: EncryptedColumn, cipher: FieldCipher, batch_size: int
) -> int:
    table, column = target.table, target.column
    pk = list(table.primary_key.columns)
    if not pk:
        raise ValueError(f"{target.name} cannot be rotated: {table.fullname} has no primary key")
    # type_coerce to Text: read and write the stored token, bypassing EncryptedString.
    raw = type_coerce(column, Text)
    current_prefix = f"{TOKEN_VERSION}.{cipher.active_key_id}."
    stale = and_(raw.is_not(None), ~raw.startswith(current_prefix, autoescape=True))

    # Compare-and-set on the old token: a value rewritten concurrently by the app (already
    # under the active key) is left alone instead of being overwritten.
    pk_params = [f"pk_{index}" for index in range(len(pk))]
    statement = (
        update(table)
        .where(
            *(col == bindparam(name) for col, name in zip(pk, pk_params, strict=True)),
            raw == bindparam("old_token", type_=Text),
        )
        .values({column: bindparam("new_token", type_=Text)})
    )

    rotated = 0
    last: Sequence[Any] | None = None
    while True:
        # Keyset pagination by primary key: stable and cheap however many rows there are.
        after: ColumnElement[bool] = true() if last is None else tuple_(*pk) > tuple_(*last)
        query = select(*pk, raw.label("token")).where(stale, after).order_by(*pk).limit(batch_size)
        rows = (await session.execute(query)).all()
        if not rows:
            return rotated
        params: list[dict[str, Any]] = []
        for row in rows:
            key = tuple(row[: len(pk)])
            try:
                new_token = cipher.rewrap(row.token)
            except DecryptionError as exc:
                raise DecryptionError(f"{target.name} row {key!r}: {exc}") from None
            if new_token != row.token:
                params.append(
                    dict(zip(pk_params, key, strict=True), old_token=row.token, new_token=new_token)
                )
        if params:
            # One executemany per batch; psycopg pipelines it and reports the summed rowcount.
            result = await session.execute(statement, params)
            rotated += result.rowcount  # type: ignore[attr-defined]
        last = tuple(rows[-1][: len(pk)])
