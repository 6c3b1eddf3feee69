"""The synced entities and the merge class of each field, registered next to each entity.

An entity handler says which table it is, which branches may see a row (scope), how a row
looks in a pull, which ops each role may send, and how each op is applied (through the
owning module's service, so validation, audit and events are the same as over REST).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import select

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from nidaan.sync.context import OpContext


class MergeClass(enum.StrEnum):
    LWW = "lww"  # last writer wins by HLC; the loser goes to field history
    LWW_IDENTITY = "lww_identity"  # LWW, and a concurrent edit opens a reviewable conflict
    GUARDED = "guarded"  # clinical: applied only on a version match, else a conflict
    APPEND = "append"  # insert-only with a client id; a replay is a no-op
    STATE = "state"  # checked state-machine transitions


class OpStatus(enum.StrEnum):
    APPLIED = "APPLIED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"
    CONFLICT = "CONFLICT"
    GAP = "GAP"


@dataclass
class Outcome:
    status: OpStatus
    reason: str | None = None
    conflict_ids: list[uuid.UUID] = field(default_factory=list)

    @classmethod
    def applied(cls) -> Outcome:
        return cls(OpStatus.APPLIED)


class Rejected(Exception):
    """A permanent refusal of one op (bad data, forbidden, illegal): REJECTED, never retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EntityHandler(ABC):
    """Base for one synced entity. Subclasses set the class attributes and the op methods."""

    name: ClassVar[str]
    model: ClassVar[type[Any]]
    #: Field -> merge class for ``update`` ops; a field not listed cannot be changed by sync.
    fields: ClassVar[Mapping[str, MergeClass]] = {}
    #: Column attribute -> field name, where an op's field is stored under another name.
    columns: ClassVar[Mapping[str, str]] = {}
    #: Child tables shown inside this entity's pull view: child model -> attribute holding
    #: this entity's id. A changed child is captured as a change of the parent.
    children: ClassVar[Mapping[type[Any], str]] = {}
    #: Operation -> roles that may send it.
    operations: ClassVar[Mapping[str, frozenset[str]]] = {}
    #: Personal fields (a mobile number): copies kept by sync are sealed (sync/sealing.py).
    sensitive: ClassVar[frozenset[str]] = frozenset()
    #: Version column used as the base version of guarded edits (None: no row version).
    version_attr: ClassVar[str | None] = "version"

    # ---- capture and pull -------------------------------------------------------------
    def field_for_column(self, column: str) -> str | None:
        """The merge-tracked field a changed column belongs to, if any."""
        name = self.columns.get(column, column)
        return name if name in self.fields else None

    def scope(self, session: Session, row: Any) -> list[uuid.UUID]:
        """Branch ids that may see ``row``; empty means every branch of the organisation."""
        return []

    def is_deleted(self, row: Any) -> bool:
        return False

    def version(self, row: Any) -> int | None:
        return getattr(row, self.version_attr) if self.version_attr else None

    @abstractmethod
    async def serialize_many(self, session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
        """Rows as a pull shows them (the REST shape, sensitive values masked)."""

    # ---- apply ------------------------------------------------------------------------
    async def load_for_update(self, ctx: OpContext, entity_id: uuid.UUID) -> Any | None:
        """The row, locked for the rest of the transaction, or None when unknown here."""
        return await ctx.session.scalar(
            select(self.model)
            .where(
                self.model.id == entity_id,
                self.model.organisation_id == ctx.principal.organisation_id,
            )
            .with_for_update()
            # Locked now: read what is committed, not a copy loaded earlier in this session.
            .execution_options(populate_existing=True)
        )

    def read_field(self, row: Any, name: str) -> Any:
        """The stored value of an updatable field, as JSON would carry it."""
        return _jsonable(getattr(row, name))

    def normalize_fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise incoming field values (raise Rejected)."""
        return dict(data)

    async def before_update(self, ctx: OpContext, row: Any) -> None:  # noqa: B027 - optional hook
        """Refuse an update outright (raise Rejected) before any merging, e.g. verified rows."""

    async def apply_fields(self, ctx: OpContext, row: Any, values: dict[str, Any]) -> None:
        """Write already-merged field values through the owning service."""
        raise Rejected(f"{self.name} cannot be updated by sync")

    async def create(self, ctx: OpContext) -> Outcome:
        raise Rejected(f"{self.name} cannot be created by sync")

    async def append(self, ctx: OpContext) -> Outcome:
        raise Rejected(f"{self.name} does not take appends")

    async def transition(self, ctx: OpContext, row: Any) -> Outcome:
        raise Rejected(f"{self.name} has no transitions")

    async def delete(self, ctx: OpContext, row: Any) -> Outcome:
        raise Rejected(f"{self.name} cannot be deleted by sync")

    async def operate(self, ctx: OpContext, row: Any) -> Outcome:
        """An entity's own operation (listed in ``operations`` beyond the standard ones)."""
        raise Rejected(f"unknown operation '{ctx.op.operation}'")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


REGISTRY: dict[str, EntityHandler] = {}
BY_MODEL: dict[type[Any], EntityHandler] = {}
#: Child model -> (parent handler, attribute with the parent's id).
BY_CHILD: dict[type[Any], tuple[EntityHandler, str]] = {}


def register(handler: EntityHandler) -> EntityHandler:
    REGISTRY[handler.name] = handler
    BY_MODEL[handler.model] = handler
    for child, attribute in handler.children.items():
        BY_CHILD[child] = (handler, attribute)
    return handler


def handler_for(entity: str) -> EntityHandler:
    try:
        return REGISTRY[entity]
    except KeyError:
        raise Rejected(f"unknown entity {entity!r}; synced: {sorted(REGISTRY)}") from None
