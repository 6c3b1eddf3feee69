"""Orders: what was requested for a patient, the tests in it and the tubes they need.

An order's tests are grouped into samples by (specimen type, container): one tube per group,
created through ``samples_service``. Results report progress with ``set_test_status``; the
order completes when every test not cancelled is verified.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR, AuditActor
from nidaan.audit.service import AuditEntry, audit_service
from nidaan.auth.principal import Principal
from nidaan.catalog.models import CatalogTest
from nidaan.catalog.service import ResolvedTest, catalog_service
from nidaan.events.service import publish
from nidaan.files.enums import FilePurpose
from nidaan.files.service import files_service
from nidaan.kit.db import (
    SetIf,
    any_of,
    get_in_organisation,
    set_if,
    set_on_locked_rows,
    transaction_state,
)
from nidaan.kit.errors import InvalidInput, NotFound
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.sequences import next_values
from nidaan.kit.time import IST, utcnow
from nidaan.orders import domain
from nidaan.orders.enums import OrderStatus, OrderTestStatus
from nidaan.orders.errors import (
    BranchNotAllowed,
    IdConflict,
    OrderNotOpen,
    OrderTestIllegalTransition,
    PatientMerged,
    VersionConflict,
)
from nidaan.orders.events import OrderCreated, SampleRejected
from nidaan.orders.models import Order, OrderTest
from nidaan.orders.schemas import OrderCreate
from nidaan.patients.models import Patient
from nidaan.samples import stability
from nidaan.samples.domain import ist_day
from nidaan.samples.enums import RejectionReason, SampleStatus
from nidaan.samples.models import Sample
from nidaan.samples.service import NOT_YET_RECEIVED, LabelOrderFacts, samples_service
from nidaan.tenancy.models import Branch


@dataclass(frozen=True)
class OrderDetail:
    """An order with its tests (and their catalogue entries) and its samples."""

    order: Order
    tests: list[tuple[OrderTest, CatalogTest]]
    samples: list[Sample]


def _order_snapshot(order: Order) -> dict[str, Any]:
    return {
        "order_number": order.order_number,
        "patient_id": order.patient_id,
        "branch_id": order.branch_id,
        "priority": order.priority,
        "status": order.status,
        "referring_doctor": order.referring_doctor,
        "completed_at": order.completed_at,
    }


def _test_snapshot(order_test: OrderTest) -> dict[str, Any]:
    return {
        "order_id": order_test.order_id,
        "test_id": order_test.test_id,
        "sample_id": order_test.sample_id,
        "status": order_test.status,
        "cancelled_at": order_test.cancelled_at,
        "cancel_reason": order_test.cancel_reason,
    }


def _specimen(test: CatalogTest) -> tuple[str, str]:
    return (test.specimen_type, test.container)


def _status_changed(order_test: OrderTest, before: dict[str, Any], actor: AuditActor) -> AuditEntry:
    """The audit entry of one test's status change (recorded by the caller)."""
    return AuditEntry(
        organisation_id=order_test.organisation_id,
        actor=actor,
        action="order_test.status_changed",
        entity_type="order_test",
        entity_id=order_test.id,
        before=before,
        after=_test_snapshot(order_test),
    )


def _order_status_changed(
    order: Order, before: dict[str, Any], previous: str, actor: AuditActor
) -> AuditEntry:
    """The audit entry of an order's derived status change (recorded by the caller)."""
    verb = {
        OrderStatus.COMPLETED: "completed",
        OrderStatus.CANCELLED: "cancelled",
        OrderStatus.OPEN: "reopened",
    }[OrderStatus(order.status)]
    return AuditEntry(
        organisation_id=order.organisation_id,
        actor=actor,
        action=f"order.{verb}",
        entity_type="order",
        entity_id=order.id,
        before=before,
        after={**_order_snapshot(order), "previous_status": previous},
    )


def _window(group: Sequence[ResolvedTest]) -> int | None:
    """The strictest catalogue stability window of the tests going into one tube."""
    return stability.strictest(item.test.stability_hours for item in group)


#: Orders this transaction created, by id, with their detail (see ``create_detailed``).
_CREATED = "orders.created"


class OrdersService:
    # ---------------------------------------------------------------- create

    async def create(self, session: AsyncSession, caller: Principal, data: OrderCreate) -> Order:
        """Place an order; see ``create_or_replay``."""
        order, _ = await self.create_or_replay(session, caller, data)
        return order

    async def create_or_replay(
        self, session: AsyncSession, caller: Principal, data: OrderCreate
    ) -> tuple[Order, bool]:
        """Place an order and create one sample per (specimen type, container) of its tests.

        Returns (order, created). A client ``id`` already used for the same content returns
        that order with ``created`` False; for other content it is a 409 ``id_conflict``.
        """
        org = caller.organisation_id
        resolved = await catalog_service.resolve_orderables(session, org, data.items)
        if data.id is not None:
            existing = await session.get(Order, data.id)
            if existing is not None:
                if existing.organisation_id == org and await self._same_content(
                    session, existing, data, {r.test.id for r in resolved}
                ):
                    return existing, False
                raise IdConflict("This order id is already used for another order.")

        branch, patient = await self._branch_and_patient(session, org, data)
        if branch is None:
            raise InvalidInput("Unknown branch for this organisation.", field="branch_id")
        if not branch.is_active:
            raise InvalidInput(f"Branch {branch.code} is not active.", field="branch_id")
        self._require_branch(caller, branch.id)
        if patient is None:
            raise InvalidInput("Unknown patient.", field="patient_id")
        if patient.merged_into_id is not None:
            raise PatientMerged(
                "This patient record was merged; order for the surviving record.",
                field="patient_id",
                merged_into_id=str(patient.merged_into_id),
            )

        groups = domain.group_by(resolved, lambda r: _specimen(r.test))
        # The order's number and its tubes' accessions, drawn with one statement.
        day = ist_day(utcnow())
        order_scope = domain.order_scope(day)
        accession_scope = samples_service.accession_scope(branch, day)
        counts = {order_scope: 1} | ({accession_scope: len(groups)} if groups else {})
        firsts = await next_values(session, org, counts)
        order = Order(
            organisation_id=org,
            order_number=domain.order_number(day, firsts[order_scope]),
            branch_id=branch.id,
            patient_id=patient.id,
            priority=data.priority,
            status=OrderStatus.OPEN,
            referring_doctor=(data.referring_doctor or "").strip() or patient.referring_doctor,
            clinical_notes=(data.clinical_notes or "").strip() or None,
            created_by_id=caller.id if caller.kind == "user" else None,
        )
        # The order is flushed (the unit of work, which change capture follows, writes it);
        # its tubes and tests then go in with one INSERT statement (``create_many``), then
        # every audit entry and the event with the last flush.
        order.id = data.id or new_id()
        session.add(order)
        await session.flush()

        sample_ids = [new_id() for _ in groups]
        order_tests = [
            (
                OrderTest(
                    id=new_id(),
                    organisation_id=org,
                    order_id=order.id,
                    test_id=item.test.id,
                    panel_id=item.panel_id,
                    sample_id=sample_id,
                    status=OrderTestStatus.ACTIVE,
                ),
                item.test,
            )
            for sample_id, group in zip(sample_ids, groups.values(), strict=True)
            for item in group
        ]
        samples = await samples_service.create_many(
            session,
            caller,
            order_id=order.id,
            branch_id=branch.id,
            tubes=list(groups),
            ids=sample_ids,
            windows=[_window(group) for group in groups.values()],
            drawn=(day, firsts.get(accession_scope, 1)),
            together=[order_test for order_test, _ in order_tests],
        )
        accessions = [s.accession for s in samples]
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="order.created",
            entity_type="order",
            entity_id=order.id,
            after={
                **_order_snapshot(order),
                "tests": [r.test.code for r in resolved],
                "accessions": accessions,
            },
        )
        await publish(
            session,
            OrderCreated(
                organisation_id=org,
                order_id=order.id,
                patient_id=order.patient_id,
                branch_id=order.branch_id,
            ),
        )
        # What ``detail`` would read back, from memory (tests in the order they were added).
        transaction_state(session, _CREATED, dict)[order.id] = OrderDetail(
            order, sorted(order_tests, key=lambda pair: pair[0].id), samples
        )
        return order, True

    @staticmethod
    async def _branch_and_patient(
        session: AsyncSession, organisation_id: uuid.UUID, data: OrderCreate
    ) -> tuple[Branch | None, Patient | None]:
        """The order's branch and patient (None where not of the organisation), in one query
        (what ``tenancy_service.get_branch`` and ``patients_service.get`` each look up)."""
        one = select(literal(1).label("one")).subquery()
        found = await session.execute(
            select(Branch, Patient)
            .select_from(one)
            .outerjoin(
                Branch, and_(Branch.id == data.branch_id, Branch.organisation_id == organisation_id)
            )
            .outerjoin(
                Patient,
                and_(Patient.id == data.patient_id, Patient.organisation_id == organisation_id),
            )
        )
        branch, patient = found.one()
        return branch, patient

    async def create_detailed(
        self, session: AsyncSession, caller: Principal, data: OrderCreate
    ) -> tuple[OrderDetail, bool]:
        """``create_or_replay`` with the order's ``detail`` (read back only for a replay)."""
        order, created = await self.create_or_replay(session, caller, data)
        made = transaction_state(session, _CREATED, dict)
        detail = made.pop(order.id, None) if created else None
        if detail is None:
            detail = await self.detail(session, caller, order.id)
        return detail, created

    async def _same_content(
        self, session: AsyncSession, order: Order, data: OrderCreate, test_ids: set[uuid.UUID]
    ) -> bool:
        ordered = set(
            await session.scalars(select(OrderTest.test_id).where(OrderTest.order_id == order.id))
        )
        return (
            order.patient_id == data.patient_id
            and order.branch_id == data.branch_id
            and order.priority == data.priority
            and (
                data.referring_doctor is None
                or order.referring_doctor == data.referring_doctor.strip()
            )
            and ((data.clinical_notes or "").strip() or None) == order.clinical_notes
            and test_ids <= ordered
        )

    # ---------------------------------------------------------------- reads

    async def get(self, session: AsyncSession, caller: Principal, order_id: uuid.UUID) -> Order:
        order = await get_in_organisation(session, Order, order_id, caller.organisation_id)
        if order is None:
            raise NotFound("No such order in your organisation.", entity="order")
        await self.require_reach(session, caller, order)
        return order

    # ---------------------------------------------------------------- branch reach

    async def require_reach(self, session: AsyncSession, caller: Principal, order: Order) -> None:
        """Refuse an order of branches the caller does not work at: an order is at its
        branch and wherever its samples were collected or sent (the lab analysing them)."""
        if caller.branch_ids is None or order.branch_id in caller.branch_ids:
            return
        branches = await samples_service.order_branches(session, order.organisation_id, order.id)
        caller.require_reach(branches, "order")

    @staticmethod
    def ids_reaching(branch_ids: Iterable[uuid.UUID]) -> Select[tuple[uuid.UUID]]:
        """Ids of the orders at one of ``branch_ids`` (for filtering lists)."""
        ids = list(branch_ids)
        return (
            select(Order.id)
            .where(any_of(Order.branch_id, ids))
            .union(samples_service.orders_reaching(ids))
        )

    async def tests_of(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> list[OrderTest]:
        """The order's tests (cancelled ones included) in the order they were added."""
        order = await self.get(session, caller, order_id)
        return await self._tests(session, order)

    async def detail(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> OrderDetail:
        order = await self.get(session, caller, order_id)
        tests = await self._tests(session, order)
        catalog = await catalog_service.tests_by_ids(
            session, order.organisation_id, {t.test_id for t in tests}
        )
        samples = await samples_service.for_orders(session, order.organisation_id, [order.id])
        return OrderDetail(order, [(t, catalog[t.test_id]) for t in tests], samples)

    async def list(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        patient_id: uuid.UUID | None = None,
        status: OrderStatus | None = None,
        branch_id: uuid.UUID | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> tuple[list[Order], int]:
        """Orders, newest first; dates are IST calendar days, both inclusive."""
        statement = select(Order).where(Order.organisation_id == caller.organisation_id)
        if patient_id is not None:
            statement = statement.where(Order.patient_id == patient_id)
        if status is not None:
            statement = statement.where(Order.status == status)
        if branch_id is not None:
            statement = statement.where(Order.branch_id == branch_id)
        if date_from is not None:
            statement = statement.where(
                Order.created_at >= datetime.combine(date_from, time(), IST)
            )
        if date_to is not None:
            end = datetime.combine(date_to + timedelta(days=1), time(), IST)
            statement = statement.where(Order.created_at < end)
        if caller.branch_ids is not None:
            statement = statement.where(Order.id.in_(self.ids_reaching(caller.branch_ids)))
        return await paginate(
            session, statement.order_by(Order.created_at.desc(), Order.id.desc()), page
        )

    async def _tests(self, session: AsyncSession, order: Order) -> list[OrderTest]:
        rows = await session.scalars(
            select(OrderTest)
            .where(
                OrderTest.organisation_id == order.organisation_id,
                OrderTest.order_id == order.id,
            )
            .order_by(OrderTest.created_at, OrderTest.id)
        )
        return list(rows)

    async def _lock_order(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> Order:
        order = await session.scalar(
            select(Order)
            .where(Order.id == order_id, Order.organisation_id == organisation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if order is None:
            raise NotFound("No such order in your organisation.", entity="order")
        return order

    @staticmethod
    def _require_branch(caller: Principal, branch_id: uuid.UUID) -> None:
        if not caller.may_use_branch(branch_id):
            raise BranchNotAllowed(
                "You are not allowed to work at this branch.", branch_id=str(branch_id)
            )

    # ---------------------------------------------------------------- changes

    async def add_tests(
        self,
        session: AsyncSession,
        caller: Principal,
        order_id: uuid.UUID,
        items: Sequence[str | uuid.UUID],
        *,
        version: int | None = None,
    ) -> list[OrderTest]:
        """Add tests to an open order; returns the order tests added.

        Tests already on the order (not cancelled) are skipped. A new test joins a tube of
        the same specimen and container that has not reached the lab yet, else gets a new one.
        """
        org = caller.organisation_id
        order = await self._lock_order(session, org, order_id)
        await self.require_reach(session, caller, order)
        if version is not None and version != order.version:
            raise VersionConflict(
                f"The order was changed meanwhile (version {order.version}, you sent {version}).",
                current_version=order.version,
            )
        if order.status != OrderStatus.OPEN:
            raise OrderNotOpen(f"Order {order.order_number} is {order.status}.")
        self._require_branch(caller, order.branch_id)
        resolved = await catalog_service.resolve_orderables(session, org, items)
        existing = await self._tests(session, order)
        present = {t.test_id for t in existing if t.status != OrderTestStatus.CANCELLED}
        wanted = [r for r in resolved if r.test.id not in present]
        if not wanted:
            return []
        open_tubes: dict[tuple[str, str], Sample] = {}
        for sample in await samples_service.for_orders(session, org, [order.id]):
            if sample.status in NOT_YET_RECEIVED:
                open_tubes.setdefault((sample.specimen_type, sample.container), sample)

        groups = domain.group_by(wanted, lambda r: _specimen(r.test))
        missing = [key for key in groups if key not in open_tubes]
        created = await samples_service.create_many(
            session,
            caller,
            order_id=order.id,
            branch_id=order.branch_id,
            tubes=missing,
            windows=[_window(groups[key]) for key in missing],
        )
        open_tubes.update(zip(missing, created, strict=True))
        added: list[OrderTest] = []
        for key, group in groups.items():
            # A test joining a tube can only tighten its window (the stricter one wins).
            tube = open_tubes[key]
            tighter = stability.strictest([tube.test_stability_hours, _window(group)])
            if tighter != tube.test_stability_hours:
                tube.test_stability_hours = tighter
            for item in group:
                order_test = OrderTest(
                    organisation_id=org,
                    order_id=order.id,
                    test_id=item.test.id,
                    panel_id=item.panel_id,
                    sample_id=open_tubes[key].id,
                    status=OrderTestStatus.ACTIVE,
                )
                session.add(order_test)
                added.append(order_test)
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="order.tests_added",
            entity_type="order",
            entity_id=order.id,
            after={
                "tests": [r.test.code for r in wanted],
                "order_test_ids": [t.id for t in added],
            },
        )
        return added

    async def cancel_test(
        self,
        session: AsyncSession,
        caller: Principal,
        order_id: uuid.UUID,
        order_test_id: uuid.UUID,
        reason: str,
        *,
        version: int | None = None,
    ) -> OrderTest:
        """Cancel a test still waiting for a result (409 ``illegal_transition`` once resulted).

        The order completes if every remaining test is verified, and is cancelled when no
        test is left. A tube whose tests are all cancelled stays as it is (nothing is done
        on it; it is not rejected).
        """
        reason = reason.strip()
        if not reason:
            raise InvalidInput("Say why the test is cancelled.", field="reason")
        org = caller.organisation_id
        order = await self._lock_order(session, org, order_id)
        self._require_branch(caller, order.branch_id)
        order_test = await self._lock_test(session, org, order_test_id)
        if order_test.order_id != order.id:
            raise NotFound("No such test on this order.", entity="order_test")
        if version is not None and version != order_test.version:
            raise VersionConflict(
                f"The test was changed meanwhile (version {order_test.version}, you sent "
                f"{version}).",
                current_version=order_test.version,
            )
        if order_test.status not in domain.CANCELLABLE:
            raise OrderTestIllegalTransition(
                order_test.status,
                OrderTestStatus.CANCELLED,
                f"A {order_test.status} test cannot be cancelled"
                + ("; correct its result instead." if order_test.status != "cancelled" else "."),
            )
        before = _test_snapshot(order_test)
        order_test.status = OrderTestStatus.CANCELLED
        order_test.cancelled_at = utcnow()
        order_test.cancel_reason = reason
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=org,
            actor=caller.actor,
            action="order_test.cancelled",
            entity_type="order_test",
            entity_id=order_test.id,
            before=before,
            after=_test_snapshot(order_test),
        )
        await self._refresh_status(session, caller.actor, order)
        return order_test

    async def set_test_status(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        order_test_id: uuid.UUID,
        status: OrderTestStatus | str,
        *,
        actor: AuditActor = SYSTEM_ACTOR,
    ) -> OrderTest:
        """Results reports a test's progress: RESULTED when a result is entered, VERIFIED when
        verified, back to RESULTED on a correction.

        The order becomes COMPLETED (``completed_at`` set) when every test not cancelled is
        VERIFIED, and OPEN again when one goes back to RESULTED. Cancelling is not done here
        (``cancel_test``); a cancelled test cannot change.
        """
        status = OrderTestStatus(status)
        found = (
            await session.execute(
                select(OrderTest.order_id, OrderTest.status).where(
                    OrderTest.id == order_test_id, OrderTest.organisation_id == organisation_id
                )
            )
        ).one_or_none()
        if found is None:
            raise NotFound("No such ordered test.", entity="order_test")
        # A first result (active -> resulted) cannot change the order's status, so it needs
        # neither the order's lock nor a status refresh; this runs for every result entered.
        first_result = status == OrderTestStatus.RESULTED and found.status == OrderTestStatus.ACTIVE
        # Otherwise lock the order first: two tests verified at once must not both miss
        # completion.
        order = (
            None
            if first_result
            else await self._lock_order(session, organisation_id, found.order_id)
        )
        order_test = await self._lock_test(session, organisation_id, order_test_id)
        if not domain.may_change_status(order_test.status, status):
            raise OrderTestIllegalTransition(order_test.status, status)
        if order_test.status == status:
            return order_test
        before = _test_snapshot(order_test)
        order_test.status = status
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=organisation_id,
            actor=actor,
            action="order_test.status_changed",
            entity_type="order_test",
            entity_id=order_test.id,
            before=before,
            after=_test_snapshot(order_test),
        )
        if order is not None:
            await self._refresh_status(session, actor, order)
        return order_test

    async def lock_tests(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_test_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, OrderTest]:
        """Lock ordered tests (id order, so two lockers cannot deadlock) and refresh them."""
        rows = await session.scalars(
            select(OrderTest)
            .where(
                any_of(OrderTest.id, set(order_test_ids)),
                OrderTest.organisation_id == organisation_id,
            )
            .order_by(OrderTest.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {row.id: row for row in rows}

    async def mark_resulted(
        self,
        session: AsyncSession,
        locked: Iterable[OrderTest],
        *,
        actor: AuditActor = SYSTEM_ACTOR,
    ) -> list[AuditEntry]:
        """``set_test_status(..., RESULTED)`` for tests locked with ``lock_tests``: active ones
        become resulted (a first result needs no order lock); returns the audit entries to
        write (the caller records them in bulk).

        One UPDATE for all of them rather than one per row (analyzer batches).
        """
        rows = [t for t in locked if t.status == OrderTestStatus.ACTIVE]
        if not rows:
            return []
        befores = {t.id: _test_snapshot(t) for t in rows}
        await set_on_locked_rows(session, rows, status=OrderTestStatus.RESULTED.value)
        return [_status_changed(order_test, befores[order_test.id], actor) for order_test in rows]

    async def lock_with_tests(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> tuple[Order, list[tuple[OrderTest, CatalogTest, Sample | None]]]:
        """Lock the order (as ``_lock_order``) and read, in the same statement, its tests in
        the order they were added with their catalogue entries and samples (fresh)."""
        rows = (
            await session.execute(
                select(Order, OrderTest, CatalogTest, Sample)
                .join(OrderTest, OrderTest.order_id == Order.id)
                .join(CatalogTest, CatalogTest.id == OrderTest.test_id)
                .outerjoin(Sample, Sample.id == OrderTest.sample_id)
                .where(
                    Order.id == order_id,
                    Order.organisation_id == organisation_id,
                    OrderTest.organisation_id == organisation_id,
                )
                .order_by(OrderTest.created_at, OrderTest.id)
                .with_for_update(of=Order)
                .execution_options(populate_existing=True)
            )
        ).all()
        if not rows:
            raise NotFound("No such order in your organisation.", entity="order")
        return rows[0][0], [(ot, test, sample) for _, ot, test, sample in rows]

    async def set_test_status_locked(
        self,
        session: AsyncSession,
        order: Order,
        tests: Sequence[OrderTest],
        order_test: OrderTest,
        status: OrderTestStatus,
        *,
        actor: AuditActor = SYSTEM_ACTOR,
    ) -> list[AuditEntry]:
        """``set_test_status`` for a caller holding the order's lock with its tests read
        fresh (``lock_with_tests``): one compare-and-set UPDATE of the test, one of the order
        when its status follows. Returns the audit entries for the caller to record."""
        if not domain.may_change_status(order_test.status, status):
            raise OrderTestIllegalTransition(order_test.status, status)
        if order_test.status == status:
            return []
        before = _test_snapshot(order_test)
        if not await set_if(
            session, order_test, {"status": order_test.status}, status=status.value
        ):  # the order's lock keeps other status changes out; a cancellation may not
            raise VersionConflict(
                "The ordered test changed meanwhile; try again.",
                current_version=order_test.version,
            )
        entries = [_status_changed(order_test, before, actor)]
        new = domain.derived_status(t.status for t in tests)
        if new == order.status:
            return entries
        before = _order_snapshot(order)
        previous = order.status
        completed_at = utcnow() if new == OrderStatus.COMPLETED else None
        await set_if(session, order, {}, status=new.value, completed_at=completed_at)
        entries.append(_order_status_changed(order, before, previous, actor))
        return entries

    def first_result_change(
        self, order_test: OrderTest, *, actor: AuditActor = SYSTEM_ACTOR
    ) -> SetIf[AuditEntry] | None:
        """``set_test_status(..., RESULTED)`` for a test's first result, planned: active ->
        resulted as a compare-and-set (a first result cannot change the order's status, so no
        order lock) for the caller to apply with others (``kit.db.set_if_each``), which
        returns its audit entry when it held (not when another transaction's first result
        moved the test first). None when the test is not active."""
        if order_test.status != OrderTestStatus.ACTIVE:
            return None
        before = _test_snapshot(order_test)
        return SetIf(
            order_test,
            {"status": OrderTestStatus.ACTIVE.value},
            {"status": OrderTestStatus.RESULTED.value},
            lambda: _status_changed(order_test, before, actor),
        )

    @staticmethod
    def test_snapshot(order_test: OrderTest) -> dict[str, Any]:
        """What an ordered test's audit entries show of it."""
        return _test_snapshot(order_test)

    @staticmethod
    def order_snapshot(order: Order) -> dict[str, Any]:
        """What an order's audit entries show of it."""
        return _order_snapshot(order)

    @staticmethod
    def test_status_changed(
        order_test: OrderTest, before: dict[str, Any], actor: AuditActor
    ) -> AuditEntry:
        """The audit entry of a test's status change made by set-based SQL elsewhere."""
        return _status_changed(order_test, before, actor)

    @staticmethod
    def order_status_changed(
        order: Order, before: dict[str, Any], previous: str, actor: AuditActor
    ) -> AuditEntry:
        """The audit entry of an order's status change (``order.completed`` and so on)."""
        return _order_status_changed(order, before, previous, actor)

    async def _lock_test(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_test_id: uuid.UUID
    ) -> OrderTest:
        order_test = await session.scalar(
            select(OrderTest)
            .where(OrderTest.id == order_test_id, OrderTest.organisation_id == organisation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if order_test is None:
            raise NotFound("No such ordered test.", entity="order_test")
        return order_test

    async def _refresh_status(self, session: AsyncSession, actor: AuditActor, order: Order) -> None:
        """Derive the order's status from its tests (caller holds the order's lock)."""
        tests = await self._tests(session, order)
        new = domain.derived_status(t.status for t in tests)
        if new == order.status:
            return
        before = _order_snapshot(order)
        previous = order.status
        order.status = new
        order.completed_at = utcnow() if new == OrderStatus.COMPLETED else None
        await session.flush()
        verb = {
            OrderStatus.COMPLETED: "completed",
            OrderStatus.CANCELLED: "cancelled",
            OrderStatus.OPEN: "reopened",
        }[new]
        await audit_service.record(
            session,
            organisation_id=order.organisation_id,
            actor=actor,
            action=f"order.{verb}",
            entity_type="order",
            entity_id=order.id,
            before=before,
            after={**_order_snapshot(order), "previous_status": previous},
        )

    async def reject_sample(
        self,
        session: AsyncSession,
        caller: Principal,
        accession: str,
        reason: RejectionReason | str,
        note: str | None = None,
        *,
        version: int | None = None,
    ) -> tuple[Sample, Sample | None]:
        """Reject a tube and order its recollection for the same tests.

        Returns (rejected, recollection). The recollection has the same order, branch,
        specimen and container; the tube's tests that are not cancelled move to it. When no
        such test is left, nothing is recollected (recollection None).
        """
        org = caller.organisation_id
        # Locks in the order every writer takes them: order, manifest, sample, sequences,
        # audit chain head (see samples_service.create_many).
        peek = await samples_service.get_by_accession(session, caller, accession)
        order = await self._lock_order(session, org, peek.order_id)
        moving = list(
            await session.scalars(
                select(OrderTest)
                .where(
                    OrderTest.organisation_id == org,
                    OrderTest.sample_id == peek.id,
                    OrderTest.status != OrderTestStatus.CANCELLED,
                )
                .order_by(OrderTest.created_at, OrderTest.id)
                .with_for_update()
            )
        )
        recollection: Sample | None = None
        if moving:
            rejected, recollection = await samples_service.reject_and_recollect(
                session, caller, peek.id, reason, note, version=version
            )
            for order_test in moving:
                order_test.sample_id = recollection.id
            await session.flush()
            await audit_service.record(
                session,
                organisation_id=org,
                actor=caller.actor,
                action="order.recollection_ordered",
                entity_type="order",
                entity_id=order.id,
                before={"accession": rejected.accession},
                after={
                    "accession": recollection.accession,
                    "rejected_sample_id": rejected.id,
                    "recollection_id": recollection.id,
                    "order_test_ids": [t.id for t in moving],
                },
            )
        else:
            rejected = await samples_service.reject(
                session, caller, peek.id, reason, note, version=version
            )
        await publish(
            session,
            SampleRejected(
                organisation_id=org,
                sample_id=rejected.id,
                accession=rejected.accession,
                reason=str(rejected.rejection_reason),
                recollection_id=recollection.id if recollection else None,
            ),
        )
        return rejected, recollection

    # ---------------------------------------------------------------- labels

    async def labels_pdf(
        self, session: AsyncSession, caller: Principal, sample_ids: Sequence[uuid.UUID]
    ) -> bytes:
        """Labels for these samples (one 50 x 25 mm page each), with order and patient."""
        samples = [await samples_service.get(session, caller, s) for s in sample_ids]
        order_ids = {s.order_id for s in samples}
        orders = await session.scalars(
            select(Order).where(
                Order.organisation_id == caller.organisation_id, Order.id.in_(order_ids)
            )
        )
        facts = {o.id: LabelOrderFacts(o.order_number, o.patient_id) for o in orders}
        return await samples_service.labels_pdf(
            session, caller, [s.id for s in samples], order_facts=facts
        )

    async def sample_label_pdf(
        self, session: AsyncSession, caller: Principal, accession: str
    ) -> bytes:
        sample = await samples_service.get_by_accession(session, caller, accession)
        pdf = await self.labels_pdf(session, caller, [sample.id])
        order = await self.get(session, caller, sample.order_id)
        await self._keep_labels(session, caller, order, pdf, sample.id, sample.accession)
        return pdf

    async def _keep_labels(
        self,
        session: AsyncSession,
        caller: Principal,
        order: Order,
        pdf: bytes,
        document_id: uuid.UUID,
        name: str,
    ) -> None:
        """Keep what was printed as a label file (a new version only when it changed)."""
        await files_service.keep_generated(
            session,
            order.organisation_id,
            FilePurpose.LABEL,
            pdf,
            filename=f"labels-{name}.pdf",
            document_id=document_id,
            subject=("order", order.id),
            patient_id=order.patient_id,
            order_id=order.id,
            actor=caller.actor,
        )

    async def order_labels_pdf(
        self, session: AsyncSession, caller: Principal, order_id: uuid.UUID
    ) -> bytes:
        """Labels of every tube of the order except rejected ones."""
        order = await self.get(session, caller, order_id)
        samples = await samples_service.for_orders(session, order.organisation_id, [order.id])
        wanted = [s.id for s in samples if s.status != SampleStatus.REJECTED]
        if not wanted:
            raise NotFound("This order has no tube to label.", entity="sample")
        pdf = await self.labels_pdf(session, caller, wanted)
        await self._keep_labels(session, caller, order, pdf, order.id, order.order_number)
        return pdf


orders_service = OrdersService()
