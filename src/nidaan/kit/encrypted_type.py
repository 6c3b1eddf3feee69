"""``EncryptedString``: a column type that stores values as field-encryption tokens.

Usage::

    mobile: Mapped[str | None] = mapped_column(EncryptedString("patients.mobile"))
    mobile_bidx: Mapped[str | None] = mapped_column(String(64), index=True)

Search goes through a blind index column, never the encrypted column: every encryption
is randomised, so SQL comparisons against ciphertext can never match. The column's
comparator therefore refuses ``==``, ``LIKE``, ``IN`` etc. with a clear error instead of
silently returning no rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Column, MetaData, Table, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.types import TypeDecorator

from nidaan.kit.crypto import get_cipher

# Operators that would compare ciphertext; they can only ever give wrong answers.
_BLOCKED_OPERATORS: frozenset[Any] = frozenset(
    {
        operators.eq,
        operators.ne,
        operators.lt,
        operators.le,
        operators.gt,
        operators.ge,
        operators.in_op,
        operators.not_in_op,
        operators.like_op,
        operators.not_like_op,
        operators.ilike_op,
        operators.not_ilike_op,
        operators.contains_op,
        operators.not_contains_op,
        operators.startswith_op,
        operators.not_startswith_op,
        operators.endswith_op,
        operators.not_endswith_op,
        operators.between_op,
        operators.not_between_op,
        operators.regexp_match_op,
        operators.not_regexp_match_op,
        operators.is_distinct_from,
        operators.is_not_distinct_from,
    }
)


class EncryptedComparisonError(TypeError):
    """Someone tried to compare an encrypted column in SQL."""


class _EncryptedComparator(TypeDecorator.Comparator[str]):
    __slots__ = ()

    def operate(self, op: OperatorType, *other: Any, **kwargs: Any) -> ColumnElement[Any]:
        # ``col == None`` / ``col != None`` are IS [NOT] NULL and stay allowed.
        if op in _BLOCKED_OPERATORS and not (
            op in (operators.eq, operators.ne) and len(other) == 1 and other[0] is None
        ):
            raise EncryptedComparisonError(
                f"{self.expr} is encrypted; compare its blind index column instead "
                "(see nidaan.kit.blind_index)"
            )
        return super().operate(op, *other, **kwargs)

    def reverse_operate(self, op: OperatorType, other: Any, **kwargs: Any) -> ColumnElement[Any]:
        if op in _BLOCKED_OPERATORS:
            raise EncryptedComparisonError(f"{self.expr} is encrypted; it cannot be compared")
        return super().reverse_operate(op, other, **kwargs)


class EncryptedString(TypeDecorator[str]):
    """Text column holding :class:`~nidaan.kit.crypto.FieldCipher` tokens.

    ``context`` names the column (e.g. ``"patients.mobile"``); it is bound into every
    ciphertext, so it must never change once data exists.
    """

    impl = Text
    cache_ok = True
    comparator_factory = _EncryptedComparator  # type: ignore[assignment]

    def __init__(self, context: str) -> None:
        if not isinstance(context, str) or not context:
            raise ValueError("EncryptedString needs a context such as 'patients.mobile'")
        super().__init__()
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return get_cipher().encrypt(value, self.context)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return get_cipher().decrypt(value, self.context)

    def __repr__(self) -> str:
        return f"EncryptedString({self.context!r})"


class EncryptedColumn(NamedTuple):
    """One encrypted column found in a :class:`MetaData`."""

    table: Table
    column: Column[Any]
    context: str

    @property
    def name(self) -> str:
        """``table.column`` (schema-qualified when the table has a schema)."""
        return f"{self.table.fullname}.{self.column.name}"


def encrypted_columns(metadata: MetaData) -> list[EncryptedColumn]:
    """Every ``EncryptedString`` column in ``metadata``, ordered by table then column name."""
    found = [
        EncryptedColumn(table, column, column.type.context)
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, EncryptedString)
    ]
    return sorted(found, key=lambda item: (item.table.fullname, item.column.name))
