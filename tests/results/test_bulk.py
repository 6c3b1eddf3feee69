"""Set-based result rows (``results.bulk``): what commits is what the ORM path commits — the
rows, their change capture for sync and their merge stamps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from nidaan.kit.db import commit, get_sessionmaker
from nidaan.results.batch import BatchEntry
from nidaan.results.models import Result
from nidaan.results.service import results_service
from nidaan.sync.models import SyncChange, SyncRowMeta
from tests.fixtures.lab import create_catalog_test, create_patient
from tests.fixtures.objects import create_organisation
from tests.fixtures.results import make_lab, place_order, principal_of


async def test_set_based_rows_commit_like_orm_rows(settings: Any) -> None:
    async with get_sessionmaker(settings)() as session:
        org = await create_organisation(session)
        lab = await make_lab(session, org)
        tests = [
            await create_catalog_test(
                session,
                org,
                code=code,
                unit="mg/dL",
                ranges=[{"low": Decimal("1"), "high": Decimal("9")}],
            )
            for code in ("GLU", "CREA")
        ]
        one = await place_order(session, lab, await create_patient(session, org), tests)
        many = await place_order(session, lab, await create_patient(session, org), tests)
        await commit(session)
    caller = principal_of(lab.users["tech"])
    async with get_sessionmaker(settings)() as session:
        # Through the ORM: one by one.
        orm = [
            (await results_service.enter(session, caller, one[code].id, "12", None)).id
            for code in ("GLU", "CREA")
        ]
        await commit(session)
    async with get_sessionmaker(settings)() as session:
        outcomes = await results_service.enter_many(
            session,
            caller,
            [BatchEntry(many[code].id, "12", None, raw={"n": 1}) for code in ("GLU", "CREA")],
        )
        bulk = [outcome.result.id for outcome in outcomes]  # type: ignore[union-attr]
        # The objects are usable in the session (loaded, no lazy read).
        assert [outcome.result.flag for outcome in outcomes] == ["H", "H"]  # type: ignore[union-attr]
        await commit(session)
    async with get_sessionmaker(settings)() as session:
        rows = {
            r.id: r for r in await session.scalars(select(Result).where(Result.id.in_(orm + bulk)))
        }
        changes = {
            c.entity_id: c
            for c in await session.scalars(
                select(SyncChange).where(SyncChange.entity_id.in_(orm + bulk))
            )
        }
        stamps = {
            m.entity_id: m
            for m in await session.scalars(
                select(SyncRowMeta).where(SyncRowMeta.entity_id.in_(orm + bulk))
            )
        }
    for by_orm, by_bulk in zip(orm, bulk, strict=True):
        a, b = rows[by_orm], rows[by_bulk]
        assert (a.status, a.flag, a.value_numeric, a.delta_failed, a.autoverified) == (
            b.status,
            b.flag,
            b.value_numeric,
            b.delta_failed,
            b.autoverified,
        )
        assert (b.raw, b.result_version, b.is_current) == ({"n": 1}, 1, True)
        assert (changes[by_bulk].entity, changes[by_bulk].op) == ("result", "upsert")
        assert changes[by_bulk].scope_keys == changes[by_orm].scope_keys
        assert set(changes[by_bulk].changed_fields) == set(changes[by_orm].changed_fields)
        assert stamps[by_bulk].field_meta.keys() == stamps[by_orm].field_meta.keys()
