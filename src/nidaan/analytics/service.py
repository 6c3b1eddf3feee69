"""Dashboard queries over the lab's tables, scoped to the caller's organisation (and branches).

Read only: one SELECT per figure, aggregated in PostgreSQL. Days are India days (IST), since
that is the day a lab counts its work by.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.auth.principal import Principal
from nidaan.catalog.models import CatalogTest
from nidaan.kit.errors import Forbidden, InvalidInput
from nidaan.kit.time import utcnow
from nidaan.orders.enums import OrderTestStatus
from nidaan.orders.models import Order, OrderTest
from nidaan.results.enums import CriticalAlertStatus, ResultStatus
from nidaan.results.models import CriticalAlert, Result
from nidaan.samples.enums import SampleStatus
from nidaan.samples.models import Sample
from nidaan.tenancy.models import Branch

IST = ZoneInfo("Asia/Kolkata")
MAX_DAYS = 92
IN_TRANSIT = (SampleStatus.COLLECTED, SampleStatus.IN_TRANSIT)


def india_today() -> date:
    return utcnow().astimezone(IST).date()


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """UTC-aware bounds of India days ``first`` .. ``last`` (inclusive)."""
    if last < first:
        raise InvalidInput("date_to is before date_from.", field="date_to")
    if (last - first).days >= MAX_DAYS:
        raise InvalidInput(f"Ask for at most {MAX_DAYS} days at a time.", field="date_to")
    start = datetime.combine(first, time.min, IST)
    end = datetime.combine(last + timedelta(days=1), time.min, IST)
    return start, end


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 60, 1)


class AnalyticsService:
    def _branch_filter(
        self, statement: Select, column, principal: Principal, branch_id: uuid.UUID | None
    ) -> Select:  # type: ignore[type-arg, no-untyped-def]
        if branch_id is not None:
            if not principal.may_use_branch(branch_id):
                raise Forbidden("You do not work at that branch.")
            return statement.where(column == branch_id)
        if principal.branch_ids is not None:
            return statement.where(column.in_(sorted(principal.branch_ids)))
        return statement

    async def work_by_state(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        day: date | None = None,
        branch_id: uuid.UUID | None = None,
    ) -> dict[str, object]:
        """Orders placed on ``day`` and where their tubes and tests are now."""
        day = day or india_today()
        start, end = day_bounds(day, day)
        org = principal.organisation_id
        placed = and_(
            Order.organisation_id == org, Order.created_at >= start, Order.created_at < end
        )
        orders = self._branch_filter(
            select(func.count()).select_from(Order).where(placed),
            Order.branch_id,
            principal,
            branch_id,
        )
        samples = self._branch_filter(
            select(Sample.status, func.count())
            .join(Order, Order.id == Sample.order_id)
            .where(placed)
            .group_by(Sample.status),
            Order.branch_id,
            principal,
            branch_id,
        )
        tests = self._branch_filter(
            select(OrderTest.status, func.count())
            .join(Order, Order.id == OrderTest.order_id)
            .where(placed)
            .group_by(OrderTest.status),
            Order.branch_id,
            principal,
            branch_id,
        )
        return {
            "day": day,
            "branch_id": branch_id,
            "orders": int(await session.scalar(orders) or 0),
            "samples": [
                {"state": state, "count": count}
                for state, count in sorted((await session.execute(samples)).all())
            ],
            "tests": [
                {"state": state, "count": count}
                for state, count in sorted((await session.execute(tests)).all())
            ],
        }

    async def turnaround(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        date_from: date | None = None,
        date_to: date | None = None,
        branch_id: uuid.UUID | None = None,
    ) -> dict[str, object]:
        """Receipt-to-verification times per department and branch against the TAT targets."""
        last = date_to or india_today()
        first = date_from or last
        start, end = day_bounds(first, last)
        org = principal.organisation_id
        minutes = func.extract("epoch", Result.verified_at - Sample.received_at)
        target_seconds = CatalogTest.tat_minutes * 60
        verified = self._branch_filter(
            select(
                CatalogTest.department,
                Order.branch_id,
                func.count(),
                func.count().filter(minutes <= target_seconds),
                func.percentile_cont(0.5).within_group(minutes),
                func.percentile_cont(0.9).within_group(minutes),
                func.percentile_cont(0.5).within_group(CatalogTest.tat_minutes),
            )
            .select_from(Result)
            .join(OrderTest, OrderTest.id == Result.order_test_id)
            .join(Order, Order.id == OrderTest.order_id)
            .join(Sample, Sample.id == OrderTest.sample_id)
            .join(CatalogTest, CatalogTest.id == OrderTest.test_id)
            .where(
                Result.organisation_id == org,
                Result.is_current.is_(True),
                Result.status == ResultStatus.VERIFIED,
                Result.verified_at >= start,
                Result.verified_at < end,
                Sample.received_at.is_not(None),
            )
            .group_by(CatalogTest.department, Order.branch_id),
            Order.branch_id,
            principal,
            branch_id,
        )
        now = utcnow()
        overdue = self._branch_filter(
            select(CatalogTest.department, Order.branch_id, func.count())
            .select_from(OrderTest)
            .join(Order, Order.id == OrderTest.order_id)
            .join(Sample, Sample.id == OrderTest.sample_id)
            .join(CatalogTest, CatalogTest.id == OrderTest.test_id)
            .where(
                OrderTest.organisation_id == org,
                OrderTest.status.in_([OrderTestStatus.ACTIVE, OrderTestStatus.RESULTED]),
                Sample.received_at.is_not(None),
                CatalogTest.tat_minutes.is_not(None),
                func.extract("epoch", now - Sample.received_at) > target_seconds,
            )
            .group_by(CatalogTest.department, Order.branch_id),
            Order.branch_id,
            principal,
            branch_id,
        )
        codes = dict(
            (
                await session.execute(
                    select(Branch.id, Branch.code).where(Branch.organisation_id == org)
                )
            ).all()
        )
        rows: dict[tuple[str, uuid.UUID], dict[str, object]] = {}

        def row(department: str, branch: uuid.UUID) -> dict[str, object]:
            return rows.setdefault(
                (department, branch),
                {
                    "department": department,
                    "branch_id": branch,
                    "branch_code": codes.get(branch, "?"),
                    "verified": 0,
                    "within_target": 0,
                    "median_minutes": None,
                    "p90_minutes": None,
                    "target_minutes": None,
                    "overdue_open": 0,
                },
            )

        for department, branch, count, within, median, p90, target in await session.execute(
            verified
        ):
            entry = row(department, branch)
            entry.update(
                verified=count,
                within_target=within,
                median_minutes=_minutes(median),
                p90_minutes=_minutes(p90),
                target_minutes=None if target is None else float(target),
            )
        for department, branch, count in await session.execute(overdue):
            row(department, branch)["overdue_open"] = count
        return {
            "date_from": first,
            "date_to": last,
            "rows": [rows[key] for key in sorted(rows, key=lambda k: (k[0], codes.get(k[1], "")))],
        }

    async def critical_pending(
        self, session: AsyncSession, principal: Principal
    ) -> dict[str, object]:
        statement = self._branch_filter(
            select(func.count(), func.min(CriticalAlert.created_at))
            .select_from(CriticalAlert)
            .join(Order, Order.id == CriticalAlert.order_id)
            .where(
                CriticalAlert.organisation_id == principal.organisation_id,
                CriticalAlert.status == CriticalAlertStatus.OPEN,
            ),
            Order.branch_id,
            principal,
            None,
        )
        count, oldest = (await session.execute(statement)).one()
        age = None if oldest is None else (utcnow() - oldest).total_seconds()
        return {"open": count, "oldest_at": oldest, "oldest_minutes": _minutes(age)}

    async def in_transit(self, session: AsyncSession, principal: Principal) -> dict[str, object]:
        """Collected tubes not yet received at the lab, by the centre they left."""
        origin = func.coalesce(Sample.collected_at_branch_id, Sample.branch_id)
        statement = self._branch_filter(
            select(origin, Branch.code, func.count(), func.min(Sample.collected_at))
            .join(Branch, Branch.id == origin)
            .where(
                Sample.organisation_id == principal.organisation_id,
                Sample.status.in_(list(IN_TRANSIT)),
            )
            .group_by(origin, Branch.code)
            .order_by(Branch.code),
            origin,
            principal,
            None,
        )
        now = utcnow()
        rows = [
            {
                "from_branch_id": branch,
                "from_branch_code": code,
                "samples": count,
                "oldest_collected_at": oldest,
                "oldest_minutes": _minutes((now - oldest).total_seconds()) if oldest else None,
            }
            for branch, code, count, oldest in await session.execute(statement)
        ]
        return {"total": sum(r["samples"] for r in rows), "rows": rows}  # type: ignore[misc]


analytics_service = AnalyticsService()
