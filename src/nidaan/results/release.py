"""What a result's last signature releases, in one statement.

The result becomes verified, the signature is stored, the ordered test becomes verified,
its tube completed when all the tube's tests are and the order's status follows its tests:
one SQL statement (data-modifying CTEs) instead of an UPDATE or INSERT per row and a read of
the order's tests. The caller holds the order's row lock, taken by an earlier statement, so
this statement's snapshot sees every other test's status as committed by the verifications
before it (two tests verified at once cannot both miss the order's completion). Each UPDATE
is a compare-and-set on the status it expects, with the version bumped; the sibling tests'
statuses are read in SQL, never in Python between a read and a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from nidaan.catalog.models import CatalogTest
from nidaan.kit.db import note_bulk_change
from nidaan.orders.enums import OrderStatus, OrderTestStatus
from nidaan.orders.models import Order, OrderTest
from nidaan.results.enums import ResultStatus
from nidaan.results.models import Result, ResultVerification
from nidaan.samples.enums import SampleStatus
from nidaan.samples.models import Sample


@dataclass(frozen=True)
class Released:
    """What the statement changed (the ORM objects passed in carry the new values)."""

    result_verified: bool
    test_verified: bool
    sample_completed: bool
    #: The order's status before, when it changed.
    order_previous_status: str | None
    #: Every test of the result's department (not cancelled) is verified now.
    department_verified: bool
    #: Every test of the order (not cancelled) is verified now.
    order_verified: bool


def _scalar(column: Any) -> Any:
    return select(column).scalar_subquery()


@cache
def _statement(with_sample: bool) -> Any:
    """The release statement, built once per shape (building it costs more CPU than running
    it). Parameters (``p_`` + ``org``, ``result_id``, ``verifier``, ``now``,
    ``signature_id``, ``level``, ``order_test_id``, ``test_status``, ``order_id``,
    ``department`` and, with ``with_sample``, ``sample_id``) are prefixed: a parameter named
    like a column would become a SET value of the UPDATEs."""
    results, signatures = Result.__table__, ResultVerification.__table__
    tests, samples, orders = OrderTest.__table__, Sample.__table__, Order.__table__
    org = bindparam("p_org", type_=results.c.organisation_id.type)
    now = bindparam("p_now", type_=results.c.verified_at.type)
    verifier = bindparam("p_verifier", type_=results.c.verified_by_id.type)
    order_test_id = bindparam("p_order_test_id", type_=tests.c.id.type)

    verified_result = (
        update(results)
        .where(
            results.c.id == bindparam("p_result_id", type_=results.c.id.type),
            results.c.organisation_id == org,
            results.c.status == ResultStatus.ENTERED.value,
            results.c.is_current.is_(True),
        )
        .values(
            status=ResultStatus.VERIFIED.value,
            verified_at=now,
            verified_by_id=verifier,
            updated_at=func.now(),
        )
        .returning(results.c.id, results.c.updated_at)
        .cte("verified_result")
    )
    stored_signature = (
        insert(signatures)
        .from_select(
            ["id", "organisation_id", "result_id", "user_id", "level", "verified_at"],
            select(
                bindparam("p_signature_id", type_=signatures.c.id.type),
                org,
                verified_result.c.id,
                verifier,
                bindparam("p_level", type_=signatures.c.level.type),
                now,
            ),
        )
        .returning(signatures.c.id)
        .cte("stored_signature")
    )
    verified_test = (
        update(tests)
        .where(
            tests.c.id == order_test_id,
            tests.c.organisation_id == org,
            tests.c.status == bindparam("p_test_status", type_=tests.c.status.type),
            exists(select(verified_result.c.id)),
        )
        .values(
            status=OrderTestStatus.VERIFIED.value,
            version=tests.c.version + 1,
            updated_at=func.now(),
        )
        .returning(tests.c.version, tests.c.updated_at)
        .cte("verified_test")
    )
    # The order's other tests that count (not cancelled), as committed now.
    order_id = bindparam("p_order_id", type_=orders.c.id.type)
    others = (
        select(tests.c.status, tests.c.sample_id, CatalogTest.department)
        .join(CatalogTest, CatalogTest.id == tests.c.test_id)
        .where(
            tests.c.order_id == order_id,
            tests.c.organisation_id == org,
            tests.c.id != order_test_id,
            tests.c.status != OrderTestStatus.CANCELLED.value,
        )
        .cte("others")
    )

    def all_verified(*where: ColumnElement[bool]) -> ColumnElement[bool]:
        pending = select(others.c.status).where(
            others.c.status != OrderTestStatus.VERIFIED.value, *where
        )
        return ~exists(pending)

    test_moved = exists(select(verified_test.c.version))
    order_done = all_verified()
    # ``orders.domain.derived_status`` with this test verified: never "cancelled" then.
    new_status = case((order_done, OrderStatus.COMPLETED.value), else_=OrderStatus.OPEN.value)
    moved_order = (
        update(orders)
        .where(
            orders.c.id == order_id,
            orders.c.organisation_id == org,
            orders.c.status != new_status,
            test_moved,
        )
        .values(
            status=new_status,
            completed_at=case((order_done, now)),
            version=orders.c.version + 1,
            updated_at=func.now(),
        )
        .returning(orders.c.status, orders.c.completed_at, orders.c.version, orders.c.updated_at)
        .cte("moved_order")
    )
    department = bindparam("p_department", type_=CatalogTest.__table__.c.department.type)
    columns: list[Any] = [
        _scalar(verified_result.c.updated_at).label("result_updated_at"),
        _scalar(stored_signature.c.id).label("signature_id"),
        _scalar(verified_test.c.version).label("test_version"),
        _scalar(verified_test.c.updated_at).label("test_updated_at"),
        _scalar(moved_order.c.status).label("order_status"),
        _scalar(moved_order.c.completed_at).label("order_completed_at"),
        _scalar(moved_order.c.version).label("order_version"),
        _scalar(moved_order.c.updated_at).label("order_updated_at"),
        all_verified(others.c.department == department).label("department_verified"),
        order_done.label("order_verified"),
    ]
    if with_sample:
        sample_id = bindparam("p_sample_id", type_=samples.c.id.type)
        completed_sample = (
            update(samples)
            .where(
                samples.c.id == sample_id,
                samples.c.organisation_id == org,
                samples.c.status == SampleStatus.IN_PROCESS.value,
                test_moved,
                all_verified(others.c.sample_id == sample_id),
            )
            .values(
                status=SampleStatus.COMPLETED.value,
                completed_at=now,
                version=samples.c.version + 1,
                updated_at=func.now(),
            )
            .returning(samples.c.version, samples.c.updated_at)
            .cte("completed_sample")
        )
        columns += [
            _scalar(completed_sample.c.version).label("sample_version"),
            _scalar(completed_sample.c.updated_at).label("sample_updated_at"),
        ]
    else:
        columns += [
            literal(None).label("sample_version"),
            literal(None).label("sample_updated_at"),
        ]
    return select(*columns)


async def release(
    session: AsyncSession,
    *,
    result: Result,
    signature: ResultVerification,
    order: Order,
    order_test: OrderTest,
    sample: Sample | None,
    department: str,
    now: datetime,
) -> Released:
    """Verify ``result`` with ``signature`` (the final one) and move its ordered test, tube
    and order on, as ``ResultsService`` did row by row; the caller holds ``order``'s lock."""
    verifier = signature.user_id
    params = {
        "p_org": result.organisation_id,
        "p_result_id": result.id,
        "p_verifier": verifier,
        "p_now": now,
        "p_signature_id": signature.id,
        "p_level": signature.level,
        "p_order_test_id": order_test.id,
        "p_test_status": order_test.status,
        "p_order_id": order.id,
        "p_department": department,
    }
    if sample is not None:
        params["p_sample_id"] = sample.id
    row = (await session.execute(_statement(sample is not None), params)).one()

    if row.result_updated_at is not None:
        values = {"status": ResultStatus.VERIFIED.value, "verified_at": now}
        _set(session, result, **values, verified_by_id=verifier, updated_at=row.result_updated_at)
    if row.test_version is not None:
        _set(
            session,
            order_test,
            status=OrderTestStatus.VERIFIED.value,
            version=row.test_version,
            updated_at=row.test_updated_at,
        )
    previous = None
    if row.order_version is not None:
        previous = order.status
        _set(
            session,
            order,
            status=row.order_status,
            completed_at=row.order_completed_at,
            version=row.order_version,
            updated_at=row.order_updated_at,
        )
    if row.sample_version is not None:
        assert sample is not None
        _set(
            session,
            sample,
            status=SampleStatus.COMPLETED.value,
            completed_at=now,
            version=row.sample_version,
            updated_at=row.sample_updated_at,
        )
    return Released(
        result_verified=row.result_updated_at is not None,
        test_verified=row.test_version is not None,
        sample_completed=row.sample_version is not None,
        order_previous_status=previous,
        department_verified=bool(row.department_verified),
        order_verified=bool(row.order_verified),
    )


def _set(session: AsyncSession, row: Any, **values: Any) -> None:
    """The loaded object gets what the statement wrote; change capture is told."""
    for name, value in values.items():
        set_committed_value(row, name, value)
    note_bulk_change(session, [row], tuple(values))
