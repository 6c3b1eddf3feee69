"""The test catalogue: tests with reference ranges, panels, and what orders may contain.

Reads are for every role; changes are admin-only (checked by the endpoints) and audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from nidaan.audit.schemas import AuditActor
from nidaan.audit.service import audit_service
from nidaan.catalog.domain import formula_inputs, parse_age, validate_formula
from nidaan.catalog.enums import ResultType
from nidaan.catalog.errors import (
    CatalogCodeTaken,
    CatalogIdConflict,
    FormulaError,
    UnknownOrderables,
    VersionConflict,
)
from nidaan.catalog.models import CatalogTest, Panel, PanelTest, ReferenceRange
from nidaan.catalog.schemas import (
    CatalogTestCreate,
    CatalogTestUpdate,
    PanelCreate,
    PanelUpdate,
    ReferenceRangeIn,
)
from nidaan.kit.cache import invalidate
from nidaan.kit.db import any_of
from nidaan.kit.errors import InvalidInput, NotFound, check_version
from nidaan.kit.pagination import PageParams, paginate


class Caller(Protocol):
    """What the catalogue needs to know about the caller (auth's Principal satisfies it)."""

    @property
    def organisation_id(self) -> uuid.UUID: ...

    @property
    def actor(self) -> AuditActor: ...


@dataclass(frozen=True)
class ResolvedTest:
    """One test to perform; ``panel_id`` is the panel that brought it in, if any."""

    test: CatalogTest
    panel_id: uuid.UUID | None


_TEST_FIELDS = (
    "code",
    "name",
    "loinc",
    "department",
    "specimen_type",
    "container",
    "method",
    "unit",
    "unit_conversions",
    "result_type",
    "decimals",
    "formula",
    "choices",
    "tat_minutes",
    "price",
    "required_verifications",
    "delta_percent",
    "delta_absolute",
    "delta_window_days",
    "accredited",
    "referral_lab",
    "stability_hours",
    "sort_order",
)
_RANGE_FIELDS = (
    "sex",
    "age_min_days",
    "age_max_days",
    "pregnant",
    "low",
    "high",
    "critical_low",
    "critical_high",
    "text",
)


def catalogue_family(organisation_id: uuid.UUID) -> str:
    """The cache family of one organisation's catalogue (bumped by any test/panel change)."""
    return f"catalog:{organisation_id}"


def _canon(value: Any) -> Any:
    """Comparable form: Decimals by value (5.10 == 5.1000), containers recursively."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    return value


def catalog_test_snapshot(
    test: CatalogTest, ranges: Sequence[ReferenceRange] = ()
) -> dict[str, Any]:
    snapshot = {f: getattr(test, f) for f in _TEST_FIELDS}
    snapshot["is_active"] = test.is_active
    snapshot["ranges"] = sorted(
        (range_snapshot(r) for r in ranges), key=lambda r: repr(sorted(_canon(r).items()))
    )
    return snapshot


def range_snapshot(rng: ReferenceRange) -> dict[str, Any]:
    return {f: getattr(rng, f) for f in _RANGE_FIELDS}


def _range_values(data: ReferenceRangeIn) -> dict[str, Any]:
    age_min = parse_age(data.age_min) if data.age_min is not None else data.age_min_days
    age_max = parse_age(data.age_max) if data.age_max is not None else data.age_max_days
    if age_min is not None and age_max is not None and age_min >= age_max:
        raise InvalidInput(
            "The age band is empty: the lower age must be below the upper age.",
            field="ranges",
            age_min_days=age_min,
            age_max_days=age_max,
        )
    return {
        "sex": data.sex.value if data.sex is not None else None,
        "age_min_days": age_min,
        "age_max_days": age_max,
        "pregnant": data.pregnant,
        "low": data.low,
        "high": data.high,
        "critical_low": data.critical_low,
        "critical_high": data.critical_high,
        "text": data.text,
    }


def _test_values(data: CatalogTestCreate) -> dict[str, Any]:
    values = data.model_dump(include=set(_TEST_FIELDS))
    values["result_type"] = data.result_type.value
    values["unit_conversions"] = {
        unit.strip(): format(factor, "f") for unit, factor in data.unit_conversions.items()
    }
    values["choices"] = [c.model_dump() for c in data.choices]
    return values


def _content(values: dict[str, Any], ranges: Iterable[dict[str, Any]]) -> Any:
    return _canon({**values, "ranges": sorted((_canon(r) for r in ranges), key=lambda r: repr(r))})


class CatalogService:
    # ---- reads used by other modules --------------------------------------------------

    async def get_test(
        self, session: AsyncSession, caller: Caller, test_id: uuid.UUID
    ) -> CatalogTest:
        test = await session.scalar(
            select(CatalogTest).where(
                CatalogTest.id == test_id, CatalogTest.organisation_id == caller.organisation_id
            )
        )
        if test is None:
            raise NotFound("No such test in your catalogue.", entity="catalog_test")
        return test

    async def tests_by_ids(
        self, session: AsyncSession, organisation_id: uuid.UUID, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, CatalogTest]:
        wanted = set(ids)
        if not wanted:
            return {}
        rows = await session.scalars(
            select(CatalogTest).where(
                CatalogTest.organisation_id == organisation_id, any_of(CatalogTest.id, wanted)
            )
        )
        return {t.id: t for t in rows}

    async def tests_by_codes(
        self, session: AsyncSession, organisation_id: uuid.UUID, codes: Iterable[str]
    ) -> dict[str, CatalogTest]:
        wanted = {c.strip().upper() for c in codes}
        if not wanted:
            return {}
        rows = await session.scalars(
            select(CatalogTest).where(
                CatalogTest.organisation_id == organisation_id, CatalogTest.code.in_(wanted)
            )
        )
        return {t.code: t for t in rows}

    async def panels_by_ids(
        self, session: AsyncSession, organisation_id: uuid.UUID, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, Panel]:
        wanted = set(ids)
        if not wanted:
            return {}
        rows = await session.scalars(
            select(Panel).where(Panel.organisation_id == organisation_id, any_of(Panel.id, wanted))
        )
        return {p.id: p for p in rows}

    async def panels_by_codes(
        self, session: AsyncSession, organisation_id: uuid.UUID, codes: Iterable[str]
    ) -> dict[str, Panel]:
        wanted = {c.strip().upper() for c in codes}
        if not wanted:
            return {}
        rows = await session.scalars(
            select(Panel).where(Panel.organisation_id == organisation_id, Panel.code.in_(wanted))
        )
        return {p.code: p for p in rows}

    async def calculated_tests_using(
        self, session: AsyncSession, organisation_id: uuid.UUID, code: str
    ) -> list[CatalogTest]:
        """Active calculated tests whose formula reads ``code`` (e.g. CREA -> EGFR)."""
        rows = await session.scalars(
            select(CatalogTest)
            .where(
                CatalogTest.organisation_id == organisation_id,
                CatalogTest.result_type == ResultType.CALCULATED.value,
                CatalogTest.is_active.is_(True),
            )
            .order_by(CatalogTest.code)
        )
        return [t for t in rows if t.formula and code in formula_inputs(t.formula)]

    async def ranges_for_tests(
        self, session: AsyncSession, test_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, list[ReferenceRange]]:
        """Every band of each test (an empty list for tests without ranges)."""
        wanted = set(test_ids)
        result: dict[uuid.UUID, list[ReferenceRange]] = {t: [] for t in wanted}
        if not wanted:
            return result
        rows = await session.scalars(
            select(ReferenceRange)
            .where(any_of(ReferenceRange.test_id, wanted))
            .order_by(ReferenceRange.test_id, ReferenceRange.id)
        )
        for rng in rows:
            result[rng.test_id].append(rng)
        return result

    async def resolve_orderables(
        self, session: AsyncSession, organisation_id: uuid.UUID, items: Sequence[str | uuid.UUID]
    ) -> list[ResolvedTest]:
        """Turn test/panel ids or codes into the tests to perform, in order, without repeats.

        Panels expand to their tests in position order; a test already present (ordered
        directly or through an earlier panel) is kept only where it first appeared.
        Unknown or inactive items raise UnknownOrderables listing them.
        """
        ids: set[uuid.UUID] = set()
        codes: set[str] = set()
        keys: list[uuid.UUID | str] = []
        for item in items:
            key = _orderable_key(item)
            keys.append(key)
            (ids if isinstance(key, uuid.UUID) else codes).add(key)  # type: ignore[arg-type]

        org = organisation_id
        tests = list(
            await session.scalars(
                select(CatalogTest).where(
                    CatalogTest.organisation_id == org,
                    or_(CatalogTest.id.in_(ids), CatalogTest.code.in_(codes)),
                )
            )
        )
        # The panels with their members (in position order), in one query.
        member_rows = await session.execute(
            select(Panel, PanelTest, CatalogTest)
            .outerjoin(PanelTest, PanelTest.panel_id == Panel.id)
            .outerjoin(CatalogTest, CatalogTest.id == PanelTest.test_id)
            .where(Panel.organisation_id == org, or_(Panel.id.in_(ids), Panel.code.in_(codes)))
            .order_by(Panel.id, PanelTest.position, CatalogTest.code)
        )
        panels: list[Panel] = []
        members: dict[uuid.UUID, list[tuple[PanelTest, CatalogTest]]] = {}
        for panel, membership, member in member_rows:
            if panel.id not in members:
                panels.append(panel)
                members[panel.id] = []
            if membership is not None and member is not None:
                members[panel.id].append((membership, member))
        by_key: dict[uuid.UUID | str, CatalogTest | Panel] = {}
        for row in [*tests, *panels]:
            by_key[row.id] = row
            by_key[row.code] = row

        unknown: list[str] = []
        inactive: list[str] = []
        resolved: list[ResolvedTest] = []
        seen: set[uuid.UUID] = set()
        for item, key in zip(items, keys, strict=True):
            row = by_key.get(key)
            if row is None:
                unknown.append(str(item))
                continue
            if not row.is_active:
                inactive.append(row.code)
                continue
            if isinstance(row, CatalogTest):
                if row.id not in seen:
                    seen.add(row.id)
                    resolved.append(ResolvedTest(row, None))
                continue
            for _, test in members.get(row.id, []):
                if not test.is_active:
                    inactive.append(f"{row.code}: {test.code}")
                elif test.id not in seen:
                    seen.add(test.id)
                    resolved.append(ResolvedTest(test, row.id))
        if unknown or inactive:
            parts = []
            if unknown:
                parts.append(f"unknown: {', '.join(unknown)}")
            if inactive:
                parts.append(f"inactive: {', '.join(inactive)}")
            raise UnknownOrderables(
                f"These tests or panels cannot be ordered ({'; '.join(parts)}).",
                field="items",
                unknown=unknown,
                inactive=inactive,
            )
        return resolved

    # ---- tests ---------------------------------------------------------------------------

    async def list_tests(
        self,
        session: AsyncSession,
        caller: Caller,
        page: PageParams,
        *,
        code: str | None = None,
        loinc: str | None = None,
        department: str | None = None,
        q: str | None = None,
        active: bool | None = None,
    ) -> tuple[list[CatalogTest], int]:
        statement: Select[Any] = select(CatalogTest).where(
            CatalogTest.organisation_id == caller.organisation_id
        )
        if code:
            statement = statement.where(CatalogTest.code == code.strip().upper())
        if loinc:
            statement = statement.where(CatalogTest.loinc == loinc.strip())
        if department:
            statement = statement.where(
                func.lower(CatalogTest.department) == department.strip().lower()
            )
        if q and q.strip():
            pattern = f"%{_escape_like(q.strip())}%"
            statement = statement.where(
                or_(
                    CatalogTest.name.ilike(pattern, escape="\\"),
                    CatalogTest.code == q.strip().upper(),
                )
            )
        if active is not None:
            statement = statement.where(CatalogTest.is_active.is_(active))
        statement = statement.order_by(
            CatalogTest.department, CatalogTest.sort_order, CatalogTest.code
        )
        return await paginate(session, statement, page)

    async def create_test(
        self, session: AsyncSession, caller: Caller, data: CatalogTestCreate
    ) -> tuple[CatalogTest, bool]:
        """Create a test with its ranges; returns (test, created). See ``create_test_in``."""
        return await self.create_test_in(session, caller.organisation_id, data, actor=caller.actor)

    async def create_test_in(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        data: CatalogTestCreate,
        *,
        actor: AuditActor,
    ) -> tuple[CatalogTest, bool]:
        """Create in ``organisation_id`` (also the seed). A repeat of the same client ``id``
        with the same content returns the existing test with ``created`` False."""
        values = _test_values(data)
        ranges = [_range_values(r) for r in data.ranges]
        if data.id is not None:
            existing = await session.get(CatalogTest, data.id)
            if existing is not None:
                if existing.organisation_id == organisation_id:
                    current = (await self.ranges_for_tests(session, [existing.id]))[existing.id]
                    same = _content(values, ranges) == _content(
                        {f: getattr(existing, f) for f in _TEST_FIELDS},
                        [range_snapshot(r) for r in current],
                    )
                    if same:
                        return existing, False
                raise CatalogIdConflict(
                    "A different test already has this id.", field="id", id=str(data.id)
                )
        await self._check_code_free(session, organisation_id, data.code)
        await self._check_kind(session, organisation_id, data.code, values)
        test = CatalogTest(organisation_id=organisation_id, is_active=True, **values)
        if data.id is not None:
            test.id = data.id
        session.add(test)
        await session.flush()
        rows = [
            ReferenceRange(organisation_id=organisation_id, test_id=test.id, **r) for r in ranges
        ]
        session.add_all(rows)
        await session.flush()
        await invalidate(session, catalogue_family(organisation_id))
        await session.refresh(test)  # numbers as stored (price 200 -> 200.00)
        for row in rows:
            await session.refresh(row)
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor,
            action="catalog_test.created",
            entity_type="catalog_test",
            entity_id=test.id,
            after=catalog_test_snapshot(test, rows),
        )
        return test, True

    async def update_test(
        self,
        session: AsyncSession,
        caller: Caller,
        test_id: uuid.UUID,
        data: CatalogTestUpdate,
    ) -> CatalogTest:
        test = await self.get_test(session, caller, test_id)
        _check_version(test.version, data.version, "test")
        before = catalog_test_snapshot(test)
        changes = data.model_dump(exclude_unset=True, exclude={"version"})
        not_null = {"name", "department", "specimen_type", "container", "decimals", "tat_minutes"}
        not_null |= {"price", "required_verifications", "accredited", "sort_order", "is_active"}
        not_null |= {"unit_conversions", "choices"}
        for field in list(changes):
            if changes[field] is None and field in not_null:
                del changes[field]
        if "unit_conversions" in changes:
            changes["unit_conversions"] = {
                u.strip(): format(f, "f")
                for u, f in data.unit_conversions.items()  # type: ignore[union-attr]
            }
        if "choices" in changes:
            changes["choices"] = [c.model_dump() for c in data.choices]  # type: ignore[union-attr]
        proposed = {f: getattr(test, f) for f in _TEST_FIELDS} | changes
        await self._check_kind(
            session, caller.organisation_id, test.code, proposed, test_id=test.id
        )
        for field, value in changes.items():
            setattr(test, field, value)
        await _flush_versioned(session, "test")
        await invalidate(session, catalogue_family(caller.organisation_id))
        await session.refresh(test)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="catalog_test.updated",
            entity_type="catalog_test",
            entity_id=test.id,
            before=before,
            after=catalog_test_snapshot(test),
        )
        return test

    async def add_range(
        self, session: AsyncSession, caller: Caller, test_id: uuid.UUID, data: ReferenceRangeIn
    ) -> ReferenceRange:
        test = await self.get_test(session, caller, test_id)
        rng = ReferenceRange(
            organisation_id=caller.organisation_id, test_id=test.id, **_range_values(data)
        )
        session.add(rng)
        await session.flush()
        await invalidate(session, catalogue_family(caller.organisation_id))
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="catalog_reference_range.created",
            entity_type="catalog_reference_range",
            entity_id=rng.id,
            after={"test_id": test.id, "test_code": test.code, **range_snapshot(rng)},
        )
        return rng

    async def delete_range(
        self, session: AsyncSession, caller: Caller, test_id: uuid.UUID, range_id: uuid.UUID
    ) -> None:
        test = await self.get_test(session, caller, test_id)
        rng = await session.scalar(
            select(ReferenceRange).where(
                ReferenceRange.id == range_id,
                ReferenceRange.test_id == test.id,
                ReferenceRange.organisation_id == caller.organisation_id,
            )
        )
        if rng is None:
            raise NotFound("No such range on this test.", entity="catalog_reference_range")
        before = {"test_id": test.id, "test_code": test.code, **range_snapshot(rng)}
        await session.execute(delete(ReferenceRange).where(ReferenceRange.id == rng.id))
        await invalidate(session, catalogue_family(caller.organisation_id))
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="catalog_reference_range.deleted",
            entity_type="catalog_reference_range",
            entity_id=range_id,
            before=before,
        )

    # ---- panels --------------------------------------------------------------------------

    async def list_panels(
        self,
        session: AsyncSession,
        caller: Caller,
        page: PageParams,
        *,
        q: str | None = None,
        active: bool | None = None,
    ) -> tuple[list[Panel], int]:
        statement: Select[Any] = select(Panel).where(
            Panel.organisation_id == caller.organisation_id
        )
        if q and q.strip():
            pattern = f"%{_escape_like(q.strip())}%"
            statement = statement.where(
                or_(Panel.name.ilike(pattern, escape="\\"), Panel.code == q.strip().upper())
            )
        if active is not None:
            statement = statement.where(Panel.is_active.is_(active))
        return await paginate(session, statement.order_by(Panel.code), page)

    async def get_panel(self, session: AsyncSession, caller: Caller, panel_id: uuid.UUID) -> Panel:
        panel = await session.scalar(
            select(Panel).where(
                Panel.id == panel_id, Panel.organisation_id == caller.organisation_id
            )
        )
        if panel is None:
            raise NotFound("No such panel in your catalogue.", entity="catalog_panel")
        return panel

    async def panel_tests(
        self, session: AsyncSession, panel_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[PanelTest, CatalogTest]]]:
        """Each panel's (membership, test) pairs in position order."""
        return await self._panel_members(session, list(panel_ids))

    async def create_panel(
        self, session: AsyncSession, caller: Caller, data: PanelCreate
    ) -> tuple[Panel, bool]:
        return await self.create_panel_in(session, caller.organisation_id, data, actor=caller.actor)

    async def create_panel_in(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        data: PanelCreate,
        *,
        actor: AuditActor,
    ) -> tuple[Panel, bool]:
        tests = await self._panel_test_list(session, organisation_id, data.tests)
        if data.id is not None:
            existing = await session.get(Panel, data.id)
            if existing is not None:
                if existing.organisation_id == organisation_id:
                    members = (await self._panel_members(session, [existing.id]))[existing.id]
                    same = (
                        existing.code == data.code
                        and existing.name == data.name
                        and _canon(existing.price) == _canon(data.price)
                        and [t.id for _, t in members] == [t.id for t in tests]
                    )
                    if same:
                        return existing, False
                raise CatalogIdConflict(
                    "A different panel already has this id.", field="id", id=str(data.id)
                )
        await self._check_code_free(session, organisation_id, data.code)
        panel = Panel(
            organisation_id=organisation_id,
            code=data.code,
            name=data.name.strip(),
            price=data.price,
            is_active=True,
        )
        if data.id is not None:
            panel.id = data.id
        session.add(panel)
        await session.flush()
        session.add_all(
            PanelTest(panel_id=panel.id, test_id=t.id, position=i) for i, t in enumerate(tests)
        )
        await session.flush()
        await invalidate(session, catalogue_family(organisation_id))
        await session.refresh(panel)
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor,
            action="catalog_panel.created",
            entity_type="catalog_panel",
            entity_id=panel.id,
            after=_panel_snapshot(panel, tests),
        )
        return panel, True

    async def update_panel(
        self, session: AsyncSession, caller: Caller, panel_id: uuid.UUID, data: PanelUpdate
    ) -> Panel:
        panel = await self.get_panel(session, caller, panel_id)
        _check_version(panel.version, data.version, "panel")
        members = (await self._panel_members(session, [panel.id]))[panel.id]
        old_tests = [t for _, t in members]
        before = _panel_snapshot(panel, old_tests)
        new_tests = old_tests
        if data.tests is not None:
            new_tests = await self._panel_test_list(session, caller.organisation_id, data.tests)
            await session.execute(delete(PanelTest).where(PanelTest.panel_id == panel.id))
            session.add_all(
                PanelTest(panel_id=panel.id, test_id=t.id, position=i)
                for i, t in enumerate(new_tests)
            )
        if data.name is not None:
            panel.name = data.name.strip()
        if data.price is not None:
            panel.price = data.price
        if data.is_active is not None:
            panel.is_active = data.is_active
        if data.tests is not None:
            # Membership lives in another table; touching the row bumps its version too.
            panel.updated_at = func.now()
        await _flush_versioned(session, "panel")
        await invalidate(session, catalogue_family(caller.organisation_id))
        await session.refresh(panel)
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="catalog_panel.updated",
            entity_type="catalog_panel",
            entity_id=panel.id,
            before=before,
            after=_panel_snapshot(panel, new_tests),
        )
        return panel

    # ---- helpers -------------------------------------------------------------------------

    async def _panel_members(
        self, session: AsyncSession, panel_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[PanelTest, CatalogTest]]]:
        result: dict[uuid.UUID, list[tuple[PanelTest, CatalogTest]]] = {p: [] for p in panel_ids}
        if not panel_ids:
            return result
        rows = await session.execute(
            select(PanelTest, CatalogTest)
            .join(CatalogTest, CatalogTest.id == PanelTest.test_id)
            .where(PanelTest.panel_id.in_(panel_ids))
            .order_by(PanelTest.panel_id, PanelTest.position, CatalogTest.code)
        )
        for membership, test in rows:
            result[membership.panel_id].append((membership, test))
        return result

    async def _panel_test_list(
        self, session: AsyncSession, organisation_id: uuid.UUID, items: Sequence[str]
    ) -> list[CatalogTest]:
        keys = [_orderable_key(i) for i in items]
        rows = list(
            await session.scalars(
                select(CatalogTest).where(
                    CatalogTest.organisation_id == organisation_id,
                    or_(
                        CatalogTest.id.in_([k for k in keys if isinstance(k, uuid.UUID)]),
                        CatalogTest.code.in_([k for k in keys if isinstance(k, str)]),
                    ),
                )
            )
        )
        by_key: dict[uuid.UUID | str, CatalogTest] = {}
        for t in rows:
            by_key[t.id] = t
            by_key[t.code] = t
        unknown = [str(i) for i, k in zip(items, keys, strict=True) if k not in by_key]
        if unknown:
            raise InvalidInput(
                f"Unknown tests: {', '.join(unknown)}.", field="tests", unknown=unknown
            )
        tests: list[CatalogTest] = []
        for key in keys:
            test = by_key[key]
            if test not in tests:
                tests.append(test)
        return tests

    async def _check_code_free(
        self, session: AsyncSession, organisation_id: uuid.UUID, code: str
    ) -> None:
        """Test and panel codes share one namespace, so an order item is never ambiguous."""
        in_tests = await session.scalar(
            select(CatalogTest.id).where(
                CatalogTest.organisation_id == organisation_id, CatalogTest.code == code
            )
        )
        in_panels = await session.scalar(
            select(Panel.id).where(Panel.organisation_id == organisation_id, Panel.code == code)
        )
        if in_tests or in_panels:
            kind = "test" if in_tests else "panel"
            raise CatalogCodeTaken(
                f"Code {code} is already used by a {kind} in your catalogue.", field="code"
            )

    async def _check_kind(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        code: str,
        values: dict[str, Any],
        *,
        test_id: uuid.UUID | None = None,
    ) -> None:
        """Formulas only (and always) on calculated tests; choices only on coded ones."""
        kind = values["result_type"]
        formula = values.get("formula")
        if kind == ResultType.CALCULATED:
            if not formula:
                raise FormulaError("A calculated test needs a formula.", field="formula")
            await self._check_formula(session, organisation_id, code, formula)
        elif formula:
            raise FormulaError("Only calculated tests have a formula.", field="formula")
        choices = values.get("choices") or []
        if kind == ResultType.CODED:
            if not choices:
                raise InvalidInput("A coded test needs at least one choice.", field="choices")
            choice_codes = [c["code"] for c in choices]
            if len(set(choice_codes)) != len(choice_codes):
                raise InvalidInput("Choice codes must be different.", field="choices")
        elif choices:
            raise InvalidInput("Only coded tests have choices.", field="choices")

    async def _check_formula(
        self, session: AsyncSession, organisation_id: uuid.UUID, code: str, formula: str
    ) -> None:
        validate_formula(formula)
        inputs = formula_inputs(formula)
        if code in inputs:
            raise FormulaError(f"The formula of {code} cannot use {code} itself.", field="formula")
        known = await self.tests_by_codes(session, organisation_id, inputs)
        missing = sorted(inputs - known.keys())
        if missing:
            raise FormulaError(
                f"The formula uses codes that are not tests in your catalogue: "
                f"{', '.join(missing)}.",
                field="formula",
                unknown=missing,
            )
        wrong = sorted(
            c
            for c, t in known.items()
            if t.result_type not in (ResultType.NUMERIC, ResultType.CALCULATED)
        )
        if wrong:
            raise FormulaError(
                f"Formulas can only use numeric or calculated tests, not: {', '.join(wrong)}.",
                field="formula",
            )
        # No cycles: follow calculated inputs and make sure none leads back to ``code``.
        pending = [t for t in known.values() if t.formula]
        visited: set[str] = set()
        while pending:
            current = pending.pop()
            if current.code in visited:
                continue
            visited.add(current.code)
            needs = formula_inputs(current.formula or "")
            if code in needs:
                raise FormulaError(
                    f"The formula would make {code} depend on itself through {current.code}.",
                    field="formula",
                )
            more = await self.tests_by_codes(session, organisation_id, needs)
            pending.extend(t for t in more.values() if t.formula)


def _panel_snapshot(panel: Panel, tests: Sequence[CatalogTest]) -> dict[str, Any]:
    return {
        "code": panel.code,
        "name": panel.name,
        "price": panel.price,
        "is_active": panel.is_active,
        "tests": [t.code for t in tests],
    }


def _orderable_key(item: str | uuid.UUID) -> uuid.UUID | str:
    if isinstance(item, uuid.UUID):
        return item
    text = str(item).strip()
    try:
        return uuid.UUID(text)
    except ValueError:
        return text.upper()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _check_version(current: int, given: int, what: str) -> None:
    check_version(current, given, what)


async def _flush_versioned(session: AsyncSession, what: str) -> None:
    try:
        await session.flush()
    except StaleDataError:
        raise VersionConflict(
            f"This {what} was changed by someone else at the same time; reload and try again."
        ) from None


catalog_service = CatalogService()
