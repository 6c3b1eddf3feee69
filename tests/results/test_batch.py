"""``enter_many`` (one analyzer message at a time) against ``enter`` one by one: the same
results, flags, holds, alerts, calculated values, status changes and audit entries."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.models import AuditLog
from nidaan.catalog.models import CatalogTest
from nidaan.kit.errors import NidaanError
from nidaan.orders.enums import OrderTestStatus
from nidaan.results.batch import BatchEntry
from nidaan.results.enums import ResultSource
from nidaan.results.models import CriticalAlert, Result
from nidaan.results.service import results_service
from tests.fixtures.lab import create_reference_range
from tests.fixtures.results import PlacedOrder, enter_and_verify, principal_of
from tests.results.conftest import Lab, adult_woman, numeric_test, place_order

# (test code, value, unit): normal, delta hold, re-entry with a critical value, a cancelled
# test, a calculated test entered directly, inputs of a calculated test (one invalid), and a
# re-entry in another unit.
ENTRIES = [
    ("GLU", "95", None),
    ("CREA", "1.5", None),
    ("GLU", "450", None),
    ("UREA", "30", None),
    ("LDL", "100", None),
    ("CHOL", "200", None),
    ("HDL", "abc", None),
    ("HDL", "50", None),
    ("TG", "150", None),
    ("TG", "8", "mmol/L"),
    ("GLU", "5.5", "mmol/L"),
]
_RESULT_FIELDS = (
    "status",
    "source",
    "result_version",
    "is_current",
    "entered_value",
    "entered_unit",
    "value_numeric",
    "value_text",
    "value_code",
    "unit",
    "flag",
    "reference_low",
    "reference_high",
    "reference_text",
    "delta_failed",
    "delta_previous_value",
    "hold_reason",
    "instrument_flags",
    "comment",
    "raw",
)


@dataclass
class World:
    placed: PlacedOrder
    tests: dict[str, CatalogTest]


async def _catalog(session: AsyncSession, lab: Lab) -> dict[str, CatalogTest]:
    glu = await numeric_test(session, lab, "GLU", decimals=0, unit_conversions={"mmol/L": "18.016"})
    await create_reference_range(
        session, glu, low="70", high="100", critical_low="40", critical_high="400"
    )
    crea = await numeric_test(
        session, lab, "CREA", decimals=2, delta_absolute=Decimal("0.3"), delta_window_days=30
    )
    await create_reference_range(session, crea, low="0.5", high="1.2")
    tests = {"GLU": glu, "CREA": crea}
    for code in ("CHOL", "HDL", "TG", "UREA"):
        tests[code] = await numeric_test(session, lab, code, decimals=0)
    tests["LDL"] = await numeric_test(
        session, lab, "LDL", decimals=0, result_type="calculated", formula="CHOL - HDL - TG/5"
    )
    await create_reference_range(session, tests["LDL"], low=None, high="100")
    return tests


async def _world(session: AsyncSession, lab: Lab, tests: dict[str, CatalogTest]) -> World:
    patient = await adult_woman(session, lab)
    earlier = await place_order(session, lab, patient, [tests["CREA"]])
    await enter_and_verify(session, lab, earlier["CREA"], "0.9")
    placed = await place_order(session, lab, patient, list(tests.values()))
    placed["UREA"].status = OrderTestStatus.CANCELLED
    await session.flush()
    return World(placed, tests)


def _entries(world: World) -> list[BatchEntry]:
    return [
        BatchEntry(
            world.placed[code].id,
            value,
            unit,
            source=ResultSource.INSTRUMENT,
            instrument_flags="H" if code == "GLU" else None,
            raw={"code": code},
        )
        for code, value, unit in ENTRIES
    ]


def _outcome(outcome: Any) -> tuple[Any, ...]:
    if isinstance(outcome, NidaanError):
        return ("error", type(outcome).__name__, outcome.code)
    return ("ok", outcome.created, outcome.result.test_id)


def _no_ids(value: Any) -> Any:
    """Audit changes without ids, numbers compared by value: a row read back from the
    database says 0.900000 where the same row still in memory says 0.90."""
    if isinstance(value, dict):
        return {k: _no_ids(v) for k, v in sorted(value.items()) if not k.endswith("_id")}
    if isinstance(value, str):
        try:
            return Decimal(value).normalize()
        except ArithmeticError:
            return value
    return value


async def _state(session: AsyncSession, world: World) -> dict[str, Any]:
    """Everything entering changed, without ids and times (which differ between worlds)."""
    codes = {t.id: code for code, t in world.tests.items()}
    order = world.placed.order
    results = list(
        await session.scalars(
            select(Result)
            .where(Result.order_id == order.id)
            .execution_options(populate_existing=True)  # as stored, not as set in memory
        )
    )
    alerts = list(
        await session.scalars(select(CriticalAlert).where(CriticalAlert.order_id == order.id))
    )
    entities = (
        {str(r.id) for r in results}
        | {str(a.id) for a in alerts}
        | {str(t.id) for t in world.placed.tests.values()}
        | {str(world.placed.sample.id)}
    )
    audit = await session.scalars(select(AuditLog).where(AuditLog.entity_id.in_(entities)))
    await session.refresh(world.placed.sample)
    for order_test in world.placed.tests.values():
        await session.refresh(order_test)
    return {
        "results": sorted(
            (codes[r.test_id], *(str(getattr(r, f)) for f in _RESULT_FIELDS)) for r in results
        ),
        "alerts": sorted((codes[a.test_id], a.value, a.flag, a.status) for a in alerts),
        "audit": Counter((a.action, a.entity_type, repr(_no_ids(a.changes))) for a in audit),
        "order_tests": {code: t.status for code, t in world.placed.tests.items()},
        "sample": world.placed.sample.status,
    }


async def test_enter_many_matches_entering_one_by_one(session: AsyncSession, lab: Lab) -> None:
    tests = await _catalog(session, lab)
    one_by_one, batched = await _world(session, lab, tests), await _world(session, lab, tests)
    caller = principal_of(lab.users["tech"])

    expected = []
    for entry in _entries(one_by_one):
        try:
            async with session.begin_nested():
                expected.append(
                    await results_service.enter_with_outcome(
                        session,
                        caller,
                        entry.order_test_id,
                        entry.value,
                        entry.unit,
                        source=entry.source,
                        instrument_flags=entry.instrument_flags,
                        raw=entry.raw,
                    )
                )
        except NidaanError as error:
            expected.append(error)
    got = await results_service.enter_many(session, caller, _entries(batched))

    assert [_outcome(o) for o in got] == [_outcome(o) for o in expected]
    assert [_outcome(o)[:2] for o in got] == [
        ("ok", True),
        ("ok", True),
        ("ok", False),
        ("error", "OrderTestNotActive"),
        ("error", "CalculatedResult"),
        ("ok", True),
        ("error", "InvalidResultValue"),
        ("ok", True),
        ("ok", True),
        ("error", "InvalidInput"),
        ("ok", False),
    ]
    state, reference = await _state(session, batched), await _state(session, one_by_one)
    assert (state["audit"] - reference["audit"], reference["audit"] - state["audit"]) == ({}, {})
    assert state == reference
    # What the batch did, in the domain's words.
    current = {
        row[0]: dict(zip(_RESULT_FIELDS, row[1:], strict=True))
        for row in state["results"]
        if row[4] == "True"
    }
    assert (current["GLU"]["value_text"], current["GLU"]["flag"]) == ("99", "N")
    assert (current["CREA"]["status"], current["CREA"]["flag"]) == ("held", "H")
    assert (current["LDL"]["value_text"], current["LDL"]["source"]) == ("120", "calculated")
    assert state["alerts"] == [("GLU", "450", "HH", "open")]
    assert state["order_tests"]["UREA"] == OrderTestStatus.CANCELLED
    assert state["order_tests"]["GLU"] == OrderTestStatus.RESULTED
    assert state["sample"] == "in_process"


async def test_enter_many_of_nothing_and_of_unknown_tests(session: AsyncSession, lab: Lab) -> None:
    caller = principal_of(lab.users["tech"])
    assert await results_service.enter_many(session, caller, []) == []
    world = await _world(session, lab, await _catalog(session, lab))
    [missing, landed] = await results_service.enter_many(
        session,
        caller,
        [
            BatchEntry(world.placed.sample.id, "1", None),  # not an ordered test's id
            BatchEntry(world.placed["GLU"].id, "80", None),
        ],
    )
    assert isinstance(missing, NidaanError)
    assert missing.code == "not_found"
    assert not isinstance(landed, NidaanError)
    assert landed.result.flag == "N"
