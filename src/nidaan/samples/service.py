"""Samples (tubes): accessioning, the collect/dispatch/receive/process/complete/reject
lifecycle, transport manifests, worklists and barcode labels.

Samples sit below orders and know nothing of orders' tables: ``order_id`` is an opaque
reference here. Mutations lock the sample row (``FOR UPDATE``) before checking its state, so
two people scanning one tube at once get one success and one 409.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from nidaan.audit.service import AuditEntry, audit_service
from nidaan.auth.principal import Principal
from nidaan.catalog.domain import container_words
from nidaan.events.service import publish
from nidaan.kit.db import (
    SetIf,
    any_of,
    get_in_organisation,
    insert_together,
    note_bulk_change,
    set_if,
    set_on_locked_rows,
    transaction_state,
)
from nidaan.kit.errors import InvalidInput, NotFound, check_version
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.sequences import next_value
from nidaan.kit.time import utcnow
from nidaan.patients.service import patients_service
from nidaan.samples import domain
from nidaan.samples.domain import SampleEvent, transition
from nidaan.samples.enums import ManifestStatus, RejectionReason, SampleStatus
from nidaan.samples.errors import (
    BranchNotALab,
    BranchNotAllowed,
    IdConflict,
    LabelAlreadyBound,
    ManifestEmpty,
    ManifestIllegalTransition,
    SampleNotAtBranch,
    SampleOnManifest,
    VersionConflict,
    WrongDestination,
)
from nidaan.samples.events import SampleReceived
from nidaan.samples.labels import Label, render_labels
from nidaan.samples.models import Manifest, Sample
from nidaan.samples.schemas import ManifestCreate
from nidaan.tenancy.enums import BranchKind
from nidaan.tenancy.models import Branch
from nidaan.tenancy.service import tenancy_service

#: How far in the future a client clock may put a collection time.
CLOCK_SKEW = timedelta(minutes=5)
#: Rows read ahead for later steps of the transaction, kept referenced until it ends.
_KEPT = "samples.kept_rows"
_S = TypeVar("_S", bound=Select[Any])
#: A pre-printed barcode label as scanned: letters, digits, dashes.
LABEL_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{3,39}")

#: Samples that may still take more tests (the tube has not reached the lab).
NOT_YET_RECEIVED = frozenset(
    {SampleStatus.ORDERED, SampleStatus.COLLECTED, SampleStatus.IN_TRANSIT}
)


@dataclass(frozen=True)
class LabelOrderFacts:
    """What a label needs from the order a sample belongs to (orders supplies it)."""

    order_number: str
    patient_id: uuid.UUID


def _user_id(caller: Principal) -> uuid.UUID | None:
    return caller.id if caller.kind == "user" else None


def _snapshot(sample: Sample) -> dict[str, Any]:
    return {
        "accession": sample.accession,
        "order_id": sample.order_id,
        "branch_id": sample.branch_id,
        "specimen_type": sample.specimen_type,
        "container": sample.container,
        "status": sample.status,
        "collected_at": sample.collected_at,
        "collected_by_id": sample.collected_by_id,
        "collected_at_branch_id": sample.collected_at_branch_id,
        "manifest_id": sample.manifest_id,
        "received_at": sample.received_at,
        "received_by_id": sample.received_by_id,
        "received_at_branch_id": sample.received_at_branch_id,
        "receipt_condition": sample.receipt_condition,
        "receipt_remarks": sample.receipt_remarks,
        "completed_at": sample.completed_at,
        "rejected_at": sample.rejected_at,
        "rejected_by_id": sample.rejected_by_id,
        "rejection_reason": sample.rejection_reason,
        "rejection_note": sample.rejection_note,
        "recollection_id": sample.recollection_id,
    }


def _manifest_snapshot(manifest: Manifest) -> dict[str, Any]:
    return {
        "manifest_number": manifest.manifest_number,
        "from_branch_id": manifest.from_branch_id,
        "to_branch_id": manifest.to_branch_id,
        "status": manifest.status,
        "courier": manifest.courier,
        "dispatched_at": manifest.dispatched_at,
        "dispatched_by_id": manifest.dispatched_by_id,
        "received_at": manifest.received_at,
    }


def _by_ref(statement: _S, organisation_id: uuid.UUID, ref: uuid.UUID | str) -> _S:
    """``statement`` narrowed to one sample of the organisation, by id (UUID) or accession
    (str); a scanned pre-printed label finds its sample too (the accession wins a clash)."""
    statement = statement.where(Sample.organisation_id == organisation_id)
    if isinstance(ref, uuid.UUID):
        return statement.where(Sample.id == ref)
    code = ref.strip().upper()
    return (
        statement.where(or_(Sample.accession == code, Sample.label_alias == code))
        .order_by((Sample.accession == code).desc())
        .limit(1)
    )


def _check_version(row: Sample | Manifest, version: int | None, entity: str) -> None:
    check_version(row.version, version, entity)


def age_text(date_of_birth: date | None, on: date) -> str:
    """``34Y``, ``18M`` or ``20D`` (years from 2 on, months from 1 month, else days)."""
    if date_of_birth is None:
        return ""
    years = (
        on.year
        - date_of_birth.year
        - ((on.month, on.day) < (date_of_birth.month, date_of_birth.day))
    )
    if years >= 2:
        return f"{years}Y"
    months = (on.year - date_of_birth.year) * 12 + on.month - date_of_birth.month
    if on.day < date_of_birth.day:
        months -= 1
    if months >= 1:
        return f"{months}M"
    return f"{max(0, (on - date_of_birth).days)}D"


class SamplesService:
    # ---------------------------------------------------------------- creation and reads

    async def create(
        self,
        session: AsyncSession,
        caller: Principal,
        *,
        order_id: uuid.UUID,
        branch_id: uuid.UUID,
        specimen_type: str,
        container: str,
        sample_id: uuid.UUID | None = None,
    ) -> Sample:
        """A new ``ordered`` sample with accession ``<BRANCH>-YYYYMMDD-NNNN`` (IST day).

        The number comes from a per-branch, per-day sequence, so concurrent orders at one
        branch get unique consecutive accessions. A ``sample_id`` already used for the same
        content returns that sample; for other content it is a 409 ``id_conflict``.
        """
        if sample_id is not None:
            existing = await session.get(Sample, sample_id)
            if existing is not None:
                same = (
                    existing.organisation_id == caller.organisation_id
                    and existing.order_id == order_id
                    and existing.branch_id == branch_id
                    and existing.specimen_type == specimen_type
                    and existing.container == container
                )
                if not same:
                    raise IdConflict("This sample id is already used for another sample.")
                return existing
        (sample,) = await self.create_many(
            session,
            caller,
            order_id=order_id,
            branch_id=branch_id,
            tubes=[(specimen_type, container)],
            ids=[sample_id],
        )
        return sample

    async def create_many(
        self,
        session: AsyncSession,
        caller: Principal,
        *,
        order_id: uuid.UUID,
        branch_id: uuid.UUID,
        tubes: Sequence[tuple[str, str]],
        ids: Sequence[uuid.UUID | None] | None = None,
        windows: Sequence[int | None] | None = None,
        drawn: tuple[date, int] | None = None,
        together: Sequence[Any] = (),
    ) -> list[Sample]:
        """One ``ordered`` sample per (specimen_type, container) in ``tubes``, in that order;
        ``windows`` are the strictest catalogue stability hours of each tube's tests.

        The accessions are reserved together, in one short transaction of their own, unless
        the caller drew them (``drawn``: the IST day and the first number of
        ``accession_scope``). ``together``: new rows referring to these samples (given
        ``ids``), inserted with them in one statement.
        """
        branch = await tenancy_service.get_branch(session, caller, branch_id)
        if drawn is None:
            accessions = await self._next_accessions(session, caller, branch, len(tubes))
        else:
            day, first = drawn
            accessions = [
                domain.accession_number(branch.code, day, first + i) for i in range(len(tubes))
            ]
        samples = []
        for index, ((specimen_type, container), accession) in enumerate(
            zip(tubes, accessions, strict=True)
        ):
            sample = Sample(
                organisation_id=caller.organisation_id,
                order_id=order_id,
                branch_id=branch.id,
                accession=accession,
                specimen_type=specimen_type,
                container=container,
                status=SampleStatus.ORDERED,
                test_stability_hours=windows[index] if windows is not None else None,
            )
            if ids is not None and ids[index] is not None:
                sample.id = ids[index]
            samples.append(sample)
        # Written now, before their audit entries are added (those go out with the caller's
        # next flush, in one INSERT with its other entries).
        await insert_together(session, [*samples, *together])
        for sample in samples:
            await self._audit_created(session, caller, sample)
        return samples

    @staticmethod
    def accession_scope(branch: Branch, day: date) -> str:
        """The number sequence of ``branch``'s accessions on ``day`` (an IST day), for a
        caller drawing them with its own numbers (``create_many``'s ``drawn``)."""
        return domain.accession_scope(branch.code, day)

    async def _next_accession(
        self, session: AsyncSession, caller: Principal, branch: Branch
    ) -> str:
        return (await self._next_accessions(session, caller, branch, 1))[0]

    async def _next_accessions(
        self, session: AsyncSession, caller: Principal, branch: Branch, count: int
    ) -> list[str]:
        if count == 0:
            return []
        day = domain.ist_day(utcnow())
        first = await next_value(
            session, caller.organisation_id, domain.accession_scope(branch.code, day), count=count
        )
        return [domain.accession_number(branch.code, day, first + i) for i in range(count)]

    async def _audit_created(
        self,
        session: AsyncSession,
        caller: Principal,
        sample: Sample,
        replaces: Sample | None = None,
    ) -> None:
        after: dict[str, Any] = {
            "accession": sample.accession,
            "order_id": sample.order_id,
            "branch_id": sample.branch_id,
            "specimen_type": sample.specimen_type,
            "container": sample.container,
            "status": sample.status,
        }
        if replaces is not None:
            after["replaces"] = replaces.accession
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="sample.created",
            entity_type="sample",
            entity_id=sample.id,
            after=after,
        )

    async def get(self, session: AsyncSession, caller: Principal, sample_id: uuid.UUID) -> Sample:
        return await self._load(session, caller, sample_id, lock=False)

    async def get_by_accession(
        self, session: AsyncSession, caller: Principal, accession: str
    ) -> Sample:
        return await self._load(session, caller, accession, lock=False)

    async def list(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        status: SampleStatus | None = None,
        branch_id: uuid.UUID | None = None,
        order_id: uuid.UUID | None = None,
    ) -> tuple[list[Sample], int]:
        """Samples of the organisation, newest first; ``branch_id`` is the order's branch."""
        statement = select(Sample).where(Sample.organisation_id == caller.organisation_id)
        if status is not None:
            statement = statement.where(Sample.status == status)
        if branch_id is not None:
            statement = statement.where(Sample.branch_id == branch_id)
        if order_id is not None:
            statement = statement.where(Sample.order_id == order_id)
        if caller.branch_ids is not None:
            statement = statement.where(self.reach_clause(caller.branch_ids))
        return await paginate(
            session, statement.order_by(Sample.created_at.desc(), Sample.id.desc()), page
        )

    # ---------------------------------------------------------------- branch reach

    @staticmethod
    def reach_clause(branch_ids: Iterable[uuid.UUID]) -> ColumnElement[bool]:
        """SQL condition: the sample is at one of ``branch_ids`` (its order's branch, where
        it was collected, or the lab a manifest took it to)."""
        ids = list(branch_ids)
        return or_(
            any_of(Sample.branch_id, ids),
            any_of(Sample.collected_at_branch_id, ids),
            Sample.manifest_id.in_(select(Manifest.id).where(any_of(Manifest.to_branch_id, ids))),
        )

    @staticmethod
    def orders_reaching(branch_ids: Iterable[uuid.UUID]) -> Select[tuple[uuid.UUID]]:
        """Ids of the orders with a sample at one of ``branch_ids`` (for order filters)."""
        return select(Sample.order_id).where(SamplesService.reach_clause(branch_ids))

    async def branches_of(self, session: AsyncSession, sample: Sample) -> set[uuid.UUID | None]:
        branches = {sample.branch_id, sample.collected_at_branch_id}
        if sample.manifest_id is not None:
            branches.add(
                await session.scalar(
                    select(Manifest.to_branch_id).where(Manifest.id == sample.manifest_id)
                )
            )
        return branches

    async def require_reach(
        self,
        session: AsyncSession,
        caller: Principal,
        sample: Sample,
        receiving_at: uuid.UUID | None = None,
    ) -> None:
        """Refuse a sample at branches the caller does not work at. A lab receiving a tube
        (``receiving_at``) reaches it: the tube is in its hands, from whichever centre."""
        if caller.branch_ids is not None:
            branches = await self.branches_of(session, sample) | {receiving_at}
            caller.require_reach(branches, "sample")

    async def order_branches(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_id: uuid.UUID
    ) -> set[uuid.UUID | None]:
        """Branches an order's samples are at (collected there, or sent there)."""
        rows = await session.execute(
            select(Sample.collected_at_branch_id, Manifest.to_branch_id)
            .outerjoin(Manifest, Manifest.id == Sample.manifest_id)
            .where(Sample.organisation_id == organisation_id, Sample.order_id == order_id)
        )
        return {branch for row in rows for branch in row}

    async def for_orders(
        self, session: AsyncSession, organisation_id: uuid.UUID, order_ids: Iterable[uuid.UUID]
    ) -> list[Sample]:
        """Every sample of these orders, in creation order."""
        ids = list(order_ids)
        if not ids:
            return []
        rows = await session.scalars(
            select(Sample)
            .where(Sample.organisation_id == organisation_id, Sample.order_id.in_(ids))
            .order_by(Sample.created_at, Sample.id)
        )
        return list(rows)

    async def _load(
        self,
        session: AsyncSession,
        caller: Principal,
        ref: uuid.UUID | str,
        *,
        lock: bool = True,
    ) -> Sample:
        """A sample by id (UUID) or accession (str) in the caller's organisation."""
        if isinstance(ref, uuid.UUID) and not lock:
            found = await get_in_organisation(session, Sample, ref, caller.organisation_id)
            if found is None:
                raise NotFound("No such sample in your organisation.", entity="sample")
            await self.require_reach(session, caller, found)
            return found
        statement = _by_ref(select(Sample), caller.organisation_id, ref)
        if lock:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        sample = await session.scalar(statement)
        if sample is None:
            raise NotFound("No such sample in your organisation.", entity="sample")
        await self.require_reach(session, caller, sample)
        return sample

    async def _load_with_manifest(
        self,
        session: AsyncSession,
        caller: Principal,
        ref: uuid.UUID | str,
        receiving_at: uuid.UUID | None = None,
    ) -> tuple[Sample, Manifest | None]:
        """Lock the sample's manifest, then the sample (the order dispatch locks them in),
        so receiving and dispatching at once cannot deadlock.

        One statement: a materialised CTE locks the manifest the sample is on, and the outer
        ``FOR UPDATE OF samples`` locks the sample row it is joined to, which it can only do
        after the CTE produced (and locked) that manifest row. The branch the tube would be
        received at comes with it (into the session, where ``_branch`` finds it).
        """
        for _ in range(3):
            found = (await session.execute(self._locking(caller, ref, receiving_at))).first()
            if found is None:
                raise NotFound("No such sample in your organisation.", entity="sample")
            row, manifest, branch = found
            if branch is not None:
                # Held until the transaction ends (the identity map keeps rows weakly).
                transaction_state(session, _KEPT, list).append(branch)
            # The sample moved to another manifest between the snapshot and its lock.
            if row.manifest_id == (manifest.id if manifest is not None else None):
                if caller.branch_ids is not None:
                    branches = {row.branch_id, row.collected_at_branch_id, receiving_at}
                    if manifest is not None:
                        branches.add(manifest.to_branch_id)
                    caller.require_reach(branches, "sample")
                return row, manifest
        raise VersionConflict("The sample's manifest keeps changing; try again.")

    @staticmethod
    def _locking(
        caller: Principal, ref: uuid.UUID | str, receiving_at: uuid.UUID | None
    ) -> Select[tuple[Sample, Manifest, Branch]]:
        """(sample, its manifest, the receiving branch) with the manifest, then the sample,
        locked (see ``_load_with_manifest``)."""
        org = caller.organisation_id
        on = _by_ref(select(Sample.manifest_id), org, ref).scalar_subquery()
        locked = (
            select(Manifest)
            .where(Manifest.id == on, Manifest.organisation_id == org)
            .with_for_update()
            .cte("locked_manifest")
            .prefix_with("MATERIALIZED")
        )
        manifest = aliased(Manifest, locked)
        # ``receive``'s default: the manifest's destination once it left, else where the
        # tube was collected, else the order's branch.
        target = func.coalesce(
            cast(literal(receiving_at), PG_UUID(as_uuid=True)),
            case((manifest.status != ManifestStatus.OPEN.value, manifest.to_branch_id)),
            Sample.collected_at_branch_id,
            Sample.branch_id,
        )
        return (
            _by_ref(select(Sample, manifest, Branch), org, ref)
            .outerjoin(manifest, manifest.id == Sample.manifest_id)
            .outerjoin(Branch, and_(Branch.id == target, Branch.organisation_id == org))
            .with_for_update(of=Sample)
            .execution_options(populate_existing=True)
        )

    async def _branch(
        self, session: AsyncSession, caller: Principal, branch_id: uuid.UUID
    ) -> Branch:
        try:
            return await tenancy_service.get_branch(session, caller, branch_id)
        except NotFound:
            raise InvalidInput("Unknown branch for this organisation.", field="branch_id") from None

    @staticmethod
    def _require_branch(caller: Principal, branch: Branch) -> None:
        if not caller.may_use_branch(branch.id):
            raise BranchNotAllowed(
                f"You are not allowed to work at branch {branch.code}.", branch_id=str(branch.id)
            )

    async def _audit(
        self,
        session: AsyncSession,
        caller: Principal,
        action: str,
        sample: Sample,
        before: dict[str, Any],
    ) -> None:
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action=action,
            entity_type="sample",
            entity_id=sample.id,
            before=before,
            after=_snapshot(sample),
        )

    # ---------------------------------------------------------------- lifecycle

    async def collect(
        self,
        session: AsyncSession,
        caller: Principal,
        sample: uuid.UUID | str,
        *,
        branch_id: uuid.UUID | None = None,
        collected_at: datetime | None = None,
        version: int | None = None,
    ) -> Sample:
        """ordered -> collected, at ``branch_id`` (default: the order's branch)."""
        row = await self._load(session, caller, sample)
        _check_version(row, version, "sample")
        new_status = transition(row.status, SampleEvent.COLLECT)
        if branch_id in (None, row.branch_id) and caller.may_use_branch(row.branch_id):
            # Drawn at the order's branch, which the caller works at: nothing to look up.
            collected_at_branch_id = row.branch_id
        else:
            branch = await self._branch(session, caller, branch_id or row.branch_id)
            self._require_branch(caller, branch)
            collected_at_branch_id = branch.id
        now = utcnow()
        if collected_at is not None:
            if collected_at.tzinfo is None:
                raise InvalidInput("collected_at needs a time zone.", field="collected_at")
            if collected_at > now + CLOCK_SKEW:
                raise InvalidInput("collected_at is in the future.", field="collected_at")
        before = _snapshot(row)
        row.status = new_status
        row.collected_at = collected_at or now
        row.collected_by_id = _user_id(caller)
        row.collected_at_branch_id = collected_at_branch_id
        await session.flush()
        await self._audit(session, caller, "sample.collected", row, before)
        return row

    async def bind_label(
        self, session: AsyncSession, caller: Principal, sample: uuid.UUID | str, label: str
    ) -> Sample:
        """Stick a pre-printed barcode label on a sample: the label becomes its accession
        alias (found by it like by the accession). Binding the same label again is a no-op;
        a label already on any other sample of the organisation, or a second label on this
        one, is refused (a unique index settles races between two phones)."""
        text = label.strip().upper()
        if not LABEL_PATTERN.fullmatch(text):
            raise InvalidInput(
                "A label is 4 to 40 letters, digits or dashes, as printed.", field="label"
            )
        row = await self._load(session, caller, sample)
        if row.label_alias == text:
            return row
        if row.label_alias is not None:
            raise LabelAlreadyBound(
                f"Sample {row.accession} already carries label {row.label_alias}.",
                label=row.label_alias,
            )
        elsewhere = await session.scalar(
            select(Sample.accession).where(
                Sample.organisation_id == row.organisation_id,
                or_(Sample.label_alias == text, Sample.accession == text),
            )
        )
        if elsewhere is not None:
            raise LabelAlreadyBound(f"Label {text} is already bound to another sample.")
        before = _snapshot(row)
        row.label_alias = text
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            raise LabelAlreadyBound(f"Label {text} is already bound to another sample.") from None
        await self._audit(session, caller, "sample.label_bound", row, before)
        return row

    async def receive(
        self,
        session: AsyncSession,
        caller: Principal,
        sample: uuid.UUID | str,
        *,
        branch_id: uuid.UUID | None = None,
        version: int | None = None,
        condition: Sequence[str] = (),
        remarks: str | None = None,
    ) -> Sample:
        """collected | in_transit -> received, at a central lab the caller may work at.

        ``condition`` (haemolysed, lipaemic ...) and ``remarks`` record how it arrived; the
        report prints them beside the sample.

        The lab defaults to the manifest's destination, else the branch it was collected at.
        Receiving the last outstanding sample of a dispatched manifest marks it received.
        """
        condition = sorted({str(c) for c in condition})
        fast = await self._receive_at_once(
            session, caller, sample, branch_id, version, condition, remarks
        )
        if fast is not None:
            row, before = fast
            await self._audit(session, caller, "sample.received", row, before)
            await self._publish_received(session, row)
            return row
        row, manifest = await self._load_with_manifest(session, caller, sample, branch_id)
        _check_version(row, version, "sample")
        new_status = transition(row.status, SampleEvent.RECEIVE)
        target = branch_id
        if target is None and manifest is not None and manifest.status != ManifestStatus.OPEN:
            target = manifest.to_branch_id
        if target is None:
            target = row.collected_at_branch_id or row.branch_id
        branch = await self._branch(session, caller, target)
        if branch.kind != BranchKind.CENTRAL_LAB:
            raise BranchNotALab(
                f"Branch {branch.code} is a collection centre; samples are received at a "
                "central lab.",
                field="branch_id",
            )
        self._require_branch(caller, branch)
        before = _snapshot(row)
        if manifest is not None and manifest.status == ManifestStatus.OPEN:
            # Received before its manifest left: it did not travel with it.
            row.manifest_id = None
            manifest = None
        if manifest is not None and manifest.to_branch_id != branch.id:
            raise WrongDestination(
                f"Sample {row.accession} is on manifest {manifest.manifest_number} to another lab.",
                manifest_id=str(manifest.id),
                to_branch_id=str(manifest.to_branch_id),
            )
        row.status = new_status
        row.received_at = utcnow()
        row.received_by_id = _user_id(caller)
        row.received_at_branch_id = branch.id
        row.receipt_condition = condition or None
        row.receipt_remarks = (remarks or "").strip() or None
        await session.flush()
        await self._audit(session, caller, "sample.received", row, before)
        if manifest is not None:
            await self._settle_manifest(session, caller, manifest)
        await self._publish_received(session, row)
        return row

    async def _receive_at_once(
        self,
        session: AsyncSession,
        caller: Principal,
        ref: uuid.UUID | str,
        receiving_at: uuid.UUID | None,
        version: int | None,
        condition: list[str],
        remarks: str | None,
    ) -> tuple[Sample, dict[str, Any]] | None:
        """Receive a tube that is on no manifest with one guarded ``UPDATE … RETURNING``
        (lock, check and write at once); returns it with its snapshot before, or None when
        any check of ``receive`` would fail or the tube is on a manifest: nothing was written
        then, and ``receive`` takes the path that checks step by step and says what failed.

        The guards are ``receive``'s checks in SQL: the organisation, the caller's branches,
        the version, a state receipt is allowed from, a central lab to receive at.
        """
        org = caller.organisation_id
        old = aliased(Sample)
        target = func.coalesce(
            cast(literal(receiving_at), PG_UUID(as_uuid=True)),
            Sample.collected_at_branch_id,
            Sample.branch_id,
        )
        lab = select(Branch.id).where(
            Branch.id == target,
            Branch.organisation_id == org,
            Branch.kind == BranchKind.CENTRAL_LAB.value,
        )
        guards: list[ColumnElement[bool]] = [
            # Its own FROM: not correlated with the UPDATE's ``samples``.
            Sample.id == _by_ref(select(Sample.id), org, ref).correlate(None).scalar_subquery(),
            Sample.organisation_id == org,
            Sample.manifest_id.is_(None),
            any_of(Sample.status, [s.value for s in domain.ALLOWED_FROM[SampleEvent.RECEIVE]]),
            old.id == Sample.id,
            old.version == Sample.version,  # the snapshot below is the row updated
        ]
        if version is not None:
            guards.append(Sample.version == version)
        if caller.branch_ids is not None:
            mine = list(caller.branch_ids)
            lab = lab.where(any_of(Branch.id, mine))
            if receiving_at not in caller.branch_ids:
                guards.append(
                    or_(any_of(Sample.branch_id, mine), any_of(Sample.collected_at_branch_id, mine))
                )
        guards.append(lab.exists())
        now = utcnow()
        changed = {
            "status": SampleStatus.RECEIVED.value,
            "received_at": now,
            "received_by_id": _user_id(caller),
            "received_at_branch_id": target,
            "receipt_condition": condition or None,
            "receipt_remarks": (remarks or "").strip() or None,
        }
        found = (
            await session.execute(
                update(Sample)
                .where(*guards)
                .values(**changed, version=Sample.version + 1, updated_at=func.now())
                .returning(Sample, *(getattr(old, name) for name in changed))
                .execution_options(synchronize_session=False, populate_existing=True)
            )
        ).first()
        if found is None:
            return None
        row, *before_values = found
        before = {**_snapshot(row), **dict(zip(changed, before_values, strict=True))}
        note_bulk_change(session, [row], (*changed, "version", "updated_at"))
        return row, before

    async def _publish_received(self, session: AsyncSession, row: Sample) -> None:
        await publish(
            session,
            SampleReceived(
                organisation_id=row.organisation_id,
                sample_id=row.id,
                accession=row.accession,
                order_id=row.order_id,
                branch_id=row.received_at_branch_id,
            ),
        )

    async def start_processing(
        self, session: AsyncSession, caller: Principal, sample: uuid.UUID | str
    ) -> Sample:
        """received -> in_process (results calls it on the first result); a sample already
        in process is returned unchanged."""
        row = await self._load(session, caller, sample)
        if row.status == SampleStatus.IN_PROCESS:
            return row
        new_status = transition(row.status, SampleEvent.START_PROCESSING)
        before = _snapshot(row)
        row.status = new_status
        await session.flush()
        await self._audit(session, caller, "sample.processing_started", row, before)
        return row

    def start_processing_change(
        self, caller: Principal, sample: Sample
    ) -> SetIf[AuditEntry] | None:
        """``start_processing`` on a loaded sample, planned: received -> in process as a
        compare-and-set for the caller to apply with others (``kit.db.set_if_each``), which
        returns its audit entry when it held (not when another transaction's first result
        started the tube first). None unless received."""
        if sample.status != SampleStatus.RECEIVED:
            return None
        before = _snapshot(sample)
        status = transition(SampleStatus.RECEIVED, SampleEvent.START_PROCESSING)
        return SetIf(
            sample,
            {"status": SampleStatus.RECEIVED.value},
            {"status": status},
            lambda: AuditEntry(
                organisation_id=caller.organisation_id,
                actor=caller.actor,
                action="sample.processing_started",
                entity_type="sample",
                entity_id=sample.id,
                before=before,
                after=_snapshot(sample),
            ),
        )

    async def complete_unlocked(
        self, session: AsyncSession, caller: Principal, sample: Sample
    ) -> AuditEntry | None:
        """``complete`` on a loaded sample with one compare-and-set UPDATE (in process ->
        completed); returns the audit entry for the caller to record, or None when it was
        not in process (any more)."""
        if sample.status != SampleStatus.IN_PROCESS:
            return None
        await self.require_reach(session, caller, sample, None)
        before = _snapshot(sample)
        status = transition(SampleStatus.IN_PROCESS, SampleEvent.COMPLETE)
        moved = await set_if(
            session,
            sample,
            {"status": SampleStatus.IN_PROCESS.value},
            status=status,
            completed_at=utcnow(),
        )
        if not moved:
            return None
        return self.completed_entry(caller, sample, before)

    @staticmethod
    def audit_snapshot(sample: Sample) -> dict[str, Any]:
        """What a sample's audit entries show of it."""
        return _snapshot(sample)

    @staticmethod
    def completed_entry(caller: Principal, sample: Sample, before: dict[str, Any]) -> AuditEntry:
        """The audit entry of a tube completed (in process -> completed), by any means."""
        return AuditEntry(
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="sample.completed",
            entity_type="sample",
            entity_id=sample.id,
            before=before,
            after=_snapshot(sample),
        )

    async def lock_many(
        self, session: AsyncSession, caller: Principal, sample_ids: Iterable[uuid.UUID]
    ) -> list[Sample]:
        """Lock samples (id order, so two lockers cannot deadlock) and refresh them."""
        rows = await session.scalars(
            select(Sample)
            .where(
                any_of(Sample.id, set(sample_ids)),
                Sample.organisation_id == caller.organisation_id,
            )
            .order_by(Sample.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return list(rows)

    async def start_processing_locked(
        self, session: AsyncSession, caller: Principal, locked: Iterable[Sample]
    ) -> list[AuditEntry]:
        """``start_processing`` for samples locked with ``lock_many`` (received -> in process;
        others unchanged), in one UPDATE; returns the audit entries for the caller to record."""
        rows = [row for row in locked if row.status == SampleStatus.RECEIVED]
        if not rows:
            return []
        befores = {row.id: _snapshot(row) for row in rows}
        status = transition(SampleStatus.RECEIVED, SampleEvent.START_PROCESSING)
        await set_on_locked_rows(session, rows, status=status)
        return [
            AuditEntry(
                organisation_id=caller.organisation_id,
                actor=caller.actor,
                action="sample.processing_started",
                entity_type="sample",
                entity_id=row.id,
                before=befores[row.id],
                after=_snapshot(row),
            )
            for row in rows
        ]

    async def complete(
        self, session: AsyncSession, caller: Principal, sample: uuid.UUID | str
    ) -> Sample:
        """in_process -> completed; a completed sample is returned unchanged."""
        row = await self._load(session, caller, sample)
        if row.status == SampleStatus.COMPLETED:
            return row
        new_status = transition(row.status, SampleEvent.COMPLETE)
        before = _snapshot(row)
        row.status = new_status
        row.completed_at = utcnow()
        await session.flush()
        await self._audit(session, caller, "sample.completed", row, before)
        return row

    async def reject(
        self,
        session: AsyncSession,
        caller: Principal,
        sample: uuid.UUID | str,
        reason: RejectionReason | str,
        note: str | None = None,
        *,
        version: int | None = None,
    ) -> Sample:
        """Any open state -> rejected with a reason (a note is required for ``other``).

        Orders' ``reject_sample`` uses ``reject_and_recollect`` to order the replacement.
        """
        rejected, _ = await self._reject(
            session, caller, sample, reason, note, version=version, recollect=False
        )
        return rejected

    async def reject_and_recollect(
        self,
        session: AsyncSession,
        caller: Principal,
        sample: uuid.UUID | str,
        reason: RejectionReason | str,
        note: str | None = None,
        *,
        version: int | None = None,
    ) -> tuple[Sample, Sample]:
        """Reject and create the ``ordered`` replacement (same order, branch, specimen and
        container); the rejected sample points at it through ``recollection_id``."""
        rejected, new = await self._reject(
            session, caller, sample, reason, note, version=version, recollect=True
        )
        assert new is not None
        return rejected, new

    async def _reject(
        self,
        session: AsyncSession,
        caller: Principal,
        sample: uuid.UUID | str,
        reason: RejectionReason | str,
        note: str | None,
        *,
        version: int | None,
        recollect: bool,
    ) -> tuple[Sample, Sample | None]:
        try:
            reason = RejectionReason(reason)
        except ValueError:
            raise InvalidInput("Unknown rejection reason.", field="reason") from None
        note = (note or "").strip() or None
        if reason == RejectionReason.OTHER and note is None:
            raise InvalidInput("Say why in a note when the reason is 'other'.", field="note")
        row, manifest = await self._load_with_manifest(session, caller, sample)
        _check_version(row, version, "sample")
        new_status = transition(row.status, SampleEvent.REJECT)
        new: Sample | None = None
        if recollect:
            # The accession is drawn before any audit entry (see create_many).
            branch = await tenancy_service.get_branch(session, caller, row.branch_id)
            new = Sample(
                organisation_id=caller.organisation_id,
                order_id=row.order_id,
                branch_id=row.branch_id,
                accession=await self._next_accession(session, caller, branch),
                specimen_type=row.specimen_type,
                container=row.container,
                status=SampleStatus.ORDERED,
                test_stability_hours=row.test_stability_hours,
            )
            session.add(new)
            await session.flush()
        before = _snapshot(row)
        row.status = new_status
        row.rejected_at = utcnow()
        row.rejected_by_id = _user_id(caller)
        row.rejection_reason = reason
        row.rejection_note = note
        row.recollection_id = new.id if new is not None else None
        await session.flush()
        if new is not None:
            await self._audit_created(session, caller, new, replaces=row)
        await self._audit(session, caller, "sample.rejected", row, before)
        if manifest is not None:
            await self._settle_manifest(session, caller, manifest)
        return row, new

    # ---------------------------------------------------------------- manifests

    async def create_manifest(
        self, session: AsyncSession, caller: Principal, data: ManifestCreate
    ) -> tuple[Manifest, bool]:
        """An open manifest from a branch to a central lab, holding collected samples.

        Returns (manifest, created); a client ``id`` already used for the same content
        returns the existing manifest with ``created`` False.
        """
        accessions = list(dict.fromkeys(a.strip().upper() for a in data.accessions))
        if data.id is not None:
            existing = await session.get(Manifest, data.id)
            if existing is not None:
                if existing.organisation_id == caller.organisation_id:
                    held = {s.accession for s in await self._manifest_samples(session, existing)}
                    if (
                        existing.from_branch_id == data.from_branch_id
                        and existing.to_branch_id == data.to_branch_id
                        and held == set(accessions)
                    ):
                        return existing, False
                raise IdConflict("This manifest id is already used for another manifest.")
        source = await self._branch(session, caller, data.from_branch_id)
        destination = await self._branch(session, caller, data.to_branch_id)
        self._require_branch(caller, source)
        if destination.kind != BranchKind.CENTRAL_LAB:
            raise BranchNotALab(
                f"Branch {destination.code} is not a central lab.", field="to_branch_id"
            )
        if source.id == destination.id:
            raise InvalidInput("A manifest goes to another branch.", field="to_branch_id")
        samples = list(
            await session.scalars(
                select(Sample)
                .where(
                    Sample.organisation_id == caller.organisation_id,
                    Sample.accession.in_(accessions),
                )
                .order_by(Sample.accession)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        found = {s.accession for s in samples}
        unknown = [a for a in accessions if a not in found]
        if unknown:
            raise InvalidInput(
                f"Unknown accessions: {', '.join(unknown)}.", field="accessions", unknown=unknown
            )
        for sample in samples:
            transition(sample.status, SampleEvent.DISPATCH)  # only collected samples travel
            if sample.collected_at_branch_id != source.id:
                raise SampleNotAtBranch(
                    f"Sample {sample.accession} was not collected at {source.code}.",
                    accession=sample.accession,
                )
            if sample.manifest_id is not None:
                raise SampleOnManifest(
                    f"Sample {sample.accession} is already on another manifest.",
                    accession=sample.accession,
                    manifest_id=str(sample.manifest_id),
                )
        day = domain.ist_day(utcnow())
        number = await next_value(
            session, caller.organisation_id, domain.manifest_scope(source.code, day)
        )
        manifest = Manifest(
            organisation_id=caller.organisation_id,
            manifest_number=domain.manifest_number(source.code, day, number),
            from_branch_id=source.id,
            to_branch_id=destination.id,
            status=ManifestStatus.OPEN,
            courier=data.courier,
        )
        if data.id is not None:
            manifest.id = data.id
        session.add(manifest)
        await session.flush()
        for sample in samples:
            sample.manifest_id = manifest.id
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="manifest.created",
            entity_type="manifest",
            entity_id=manifest.id,
            after={**_manifest_snapshot(manifest), "accessions": sorted(found)},
        )
        return manifest, True

    async def dispatch_manifest(
        self,
        session: AsyncSession,
        caller: Principal,
        manifest_id: uuid.UUID,
        *,
        courier: str | None = None,
        version: int | None = None,
    ) -> Manifest:
        """open -> dispatched; its collected samples go in_transit."""
        manifest = await self._lock_manifest(session, caller, manifest_id)
        assert manifest is not None
        _check_version(manifest, version, "manifest")
        if manifest.status != ManifestStatus.OPEN:
            raise ManifestIllegalTransition(manifest.status, ManifestStatus.DISPATCHED)
        source = await self._branch(session, caller, manifest.from_branch_id)
        self._require_branch(caller, source)
        samples = [
            s
            for s in await self._manifest_samples(session, manifest, lock=True)
            if s.status == SampleStatus.COLLECTED
        ]
        if not samples:
            raise ManifestEmpty("No collected sample is left on this manifest.")
        before = _manifest_snapshot(manifest)
        now = utcnow()
        for sample in samples:
            sample_before = _snapshot(sample)
            sample.status = transition(sample.status, SampleEvent.DISPATCH)
            await session.flush()
            await self._audit(session, caller, "sample.dispatched", sample, sample_before)
        manifest.status = ManifestStatus.DISPATCHED
        manifest.dispatched_at = now
        manifest.dispatched_by_id = _user_id(caller)
        if courier is not None:
            manifest.courier = courier
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="manifest.dispatched",
            entity_type="manifest",
            entity_id=manifest.id,
            before=before,
            after=_manifest_snapshot(manifest),
        )
        return manifest

    async def get_manifest(
        self, session: AsyncSession, caller: Principal, manifest_id: uuid.UUID
    ) -> Manifest:
        manifest = await session.scalar(
            select(Manifest).where(
                Manifest.id == manifest_id, Manifest.organisation_id == caller.organisation_id
            )
        )
        if manifest is None:
            raise NotFound("No such manifest in your organisation.", entity="manifest")
        caller.require_reach((manifest.from_branch_id, manifest.to_branch_id), "manifest")
        return manifest

    async def manifest_samples(
        self, session: AsyncSession, caller: Principal, manifest: Manifest
    ) -> list[Sample]:
        if manifest.organisation_id != caller.organisation_id:
            raise NotFound("No such manifest in your organisation.", entity="manifest")
        return await self._manifest_samples(session, manifest)

    async def _manifest_samples(
        self, session: AsyncSession, manifest: Manifest, *, lock: bool = False
    ) -> list[Sample]:
        statement = (
            select(Sample)
            .where(
                Sample.organisation_id == manifest.organisation_id,
                Sample.manifest_id == manifest.id,
            )
            .order_by(Sample.accession)
        )
        if lock:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return list(await session.scalars(statement))

    async def _lock_manifest(
        self, session: AsyncSession, caller: Principal, manifest_id: uuid.UUID | None
    ) -> Manifest | None:
        if manifest_id is None:
            return None
        manifest = await session.scalar(
            select(Manifest)
            .where(Manifest.id == manifest_id, Manifest.organisation_id == caller.organisation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if manifest is None:
            raise NotFound("No such manifest in your organisation.", entity="manifest")
        return manifest

    async def _settle_manifest(
        self, session: AsyncSession, caller: Principal, manifest: Manifest
    ) -> None:
        """A dispatched manifest with no sample left in transit has been received."""
        if manifest.status != ManifestStatus.DISPATCHED:
            return
        samples = await self._manifest_samples(session, manifest)
        if any(s.status == SampleStatus.IN_TRANSIT for s in samples):
            return
        before = _manifest_snapshot(manifest)
        manifest.status = ManifestStatus.RECEIVED
        manifest.received_at = utcnow()
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=caller.organisation_id,
            actor=caller.actor,
            action="manifest.received",
            entity_type="manifest",
            entity_id=manifest.id,
            before=before,
            after=_manifest_snapshot(manifest),
        )

    # ---------------------------------------------------------------- worklists

    def _scope(self, caller: Principal, branch_id: uuid.UUID | None) -> frozenset[uuid.UUID] | None:
        """Branches a worklist covers: the one asked for (if allowed) or all the caller's."""
        if branch_id is not None:
            if not caller.may_use_branch(branch_id):
                raise BranchNotAllowed(
                    "You are not allowed to work at this branch.", branch_id=str(branch_id)
                )
            return frozenset({branch_id})
        return caller.branch_ids

    async def pending_collection(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        branch_id: uuid.UUID | None = None,
    ) -> tuple[list[Sample], int]:
        """Ordered samples still to be drawn, oldest first, at the caller's branches."""
        statement = select(Sample).where(
            Sample.organisation_id == caller.organisation_id,
            Sample.status == SampleStatus.ORDERED,
        )
        scope = self._scope(caller, branch_id)
        if scope is not None:
            statement = statement.where(Sample.branch_id.in_(scope))
        return await paginate(session, statement.order_by(Sample.created_at, Sample.id), page)

    async def pending_receipt(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        branch_id: uuid.UUID | None = None,
    ) -> tuple[list[Sample], int]:
        """Samples a lab can receive now: in transit to it, or collected at the lab itself.

        ``branch_id`` is the receiving lab (the manifest's destination, or the lab where
        the sample was collected).
        """
        destination = case(
            (Sample.status == SampleStatus.IN_TRANSIT, Manifest.to_branch_id),
            else_=Sample.collected_at_branch_id,
        )
        statement: Select[Any] = (
            select(Sample)
            .outerjoin(Manifest, Manifest.id == Sample.manifest_id)
            .join(Branch, Branch.id == destination)
            .where(
                Sample.organisation_id == caller.organisation_id,
                or_(
                    Sample.status == SampleStatus.IN_TRANSIT,
                    and_(
                        Sample.status == SampleStatus.COLLECTED,
                        Branch.kind == BranchKind.CENTRAL_LAB,
                    ),
                ),
            )
        )
        scope = self._scope(caller, branch_id)
        if scope is not None:
            statement = statement.where(destination.in_(scope))
        return await paginate(session, statement.order_by(Sample.collected_at, Sample.id), page)

    # ---------------------------------------------------------------- labels

    async def labels_pdf(
        self,
        session: AsyncSession,
        caller: Principal,
        sample_ids: Sequence[uuid.UUID],
        *,
        order_facts: Mapping[uuid.UUID, LabelOrderFacts],
    ) -> bytes:
        """One 50 x 25 mm label page per sample, in the order given.

        ``order_facts`` maps each sample's ``order_id`` to its order number and patient
        (orders supplies them: samples does not read orders' tables).
        """
        ids = list(dict.fromkeys(sample_ids))
        rows = {
            s.id: s
            for s in await session.scalars(
                select(Sample).where(
                    Sample.organisation_id == caller.organisation_id, Sample.id.in_(ids)
                )
            )
        }
        if len(rows) != len(ids):
            raise NotFound("No such sample in your organisation.", entity="sample")
        today = domain.ist_day(utcnow())
        patients: dict[uuid.UUID, Any] = {}
        labels = []
        for sample_id in ids:
            sample = rows[sample_id]
            facts = order_facts[sample.order_id]
            if facts.patient_id not in patients:
                patients[facts.patient_id] = await patients_service.get(
                    session, caller, facts.patient_id
                )
            patient = patients[facts.patient_id]
            age = age_text(patient.date_of_birth, today)
            sex = (patient.sex or "U")[:1].upper()
            labels.append(
                Label(
                    accession=sample.accession,
                    patient_name=patient.full_name,
                    age_sex=f"{age}/{sex}" if age else sex,
                    specimen_type=sample.specimen_type,
                    container=container_words(sample.container),
                    order_number=facts.order_number,
                    collected_at=sample.collected_at,
                    mrn=patient.mrn,
                )
            )
        return render_labels(labels)


samples_service = SamplesService()
