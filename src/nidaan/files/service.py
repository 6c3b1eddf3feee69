"""File records over the object store: upload, versions, access, links, soft delete, purge.

Every read is scoped to the caller's organisation (another organisation's file is "not
found") and checked against the roles that may read the file's purpose. Objects are written
before their row: if the transaction then fails, the object is removed again (or, after a
crash, left as an orphan under a random key that no row names), never a row without its
object.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.schemas import SYSTEM_ACTOR, AuditActor
from nidaan.audit.service import audit_service
from nidaan.auth.errors import RoleRequired
from nidaan.auth.principal import Principal
from nidaan.config import Settings, get_settings
from nidaan.files.domain import (
    purge_after,
    readable_purposes,
    rule_for,
    safe_filename,
)
from nidaan.files.enums import FilePurpose
from nidaan.files.errors import (
    FileDeleted,
    FileMissingFromStore,
    FileNotFound,
    PurposeNotUploadable,
)
from nidaan.files.models import StoredFile
from nidaan.files.upload import CheckedUpload, bytes_stream, check_upload
from nidaan.kit.db import get_in_organisation
from nidaan.kit.errors import InvalidInput
from nidaan.kit.ids import new_id
from nidaan.kit.pagination import PageParams, paginate
from nidaan.kit.storage import MAX_URL_EXPIRY_SECONDS, ObjectNotFoundError, ObjectStore
from nidaan.kit.storage import get_object_store as _store_for
from nidaan.kit.time import utcnow
from nidaan.orders.models import Order
from nidaan.patients.models import Patient

logger = logging.getLogger(__name__)

AUDITED_FIELDS = (
    "purpose",
    "document_id",
    "version",
    "is_current",
    "filename",
    "content_type",
    "size_bytes",
    "sha256",
    "patient_id",
    "order_id",
    "subject_type",
    "subject_id",
    "deleted_at",
    "delete_reason",
    "purge_after",
    "purged_at",
    "legal_hold",
)


def snapshot(row: StoredFile) -> dict[str, Any]:
    return {name: getattr(row, name) for name in AUDITED_FIELDS}


@dataclass(frozen=True)
class PresignedLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class UploadMetadata:
    """What the uploader says about the file (all optional except the purpose)."""

    purpose: FilePurpose
    filename: str | None = None
    document_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    order_id: uuid.UUID | None = None
    description: str | None = None


@dataclass(frozen=True)
class PurgeItem:
    file_id: uuid.UUID
    organisation_id: uuid.UUID
    purpose: str
    filename: str
    size_bytes: int
    deleted_at: datetime | None
    purge_after: datetime | None


def parse_purpose(raw: str | None) -> FilePurpose:
    try:
        return FilePurpose((raw or "").strip())
    except ValueError:
        raise InvalidInput(
            f"purpose must be one of: {', '.join(p.value for p in FilePurpose)}.",
            field="purpose",
        ) from None


class FilesService:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    def store(self) -> ObjectStore:
        return _store_for(self.settings)

    # ---------------------------------------------------------------- writing

    async def upload(
        self,
        session: AsyncSession,
        caller: Principal,
        metadata: UploadMetadata,
        content: AsyncIterable[bytes],
    ) -> StoredFile:
        """Store an uploaded file as a new document or as the next version of one.

        The content is streamed to the store while its type, size and SHA-256 are checked;
        a refused upload raises and leaves neither an object nor a row.
        """
        rule = rule_for(metadata.purpose)
        if not rule.uploadable:
            raise PurposeNotUploadable(
                f"{metadata.purpose.value} files are made by Nidaan and cannot be uploaded.",
                field="purpose",
            )
        _require(caller, rule.uploaders, "upload", metadata.purpose)
        organisation_id = caller.organisation_id
        await self._check_links(session, organisation_id, metadata.patient_id, metadata.order_id)
        if metadata.order_id is not None:
            await _require_order_reach(session, caller, metadata.order_id)
        previous = await self._previous_version(session, caller, metadata)
        return await self._write(
            session,
            organisation_id=organisation_id,
            purpose=metadata.purpose,
            checked=await check_upload(content, rule),
            filename=metadata.filename,
            previous=previous,
            document_id=metadata.document_id,
            patient_id=metadata.patient_id or (previous.patient_id if previous else None),
            order_id=metadata.order_id or (previous.order_id if previous else None),
            description=metadata.description,
            actor=caller.actor,
            uploaded_by_id=caller.id if caller.kind == "user" else None,
        )

    async def store_generated(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        purpose: FilePurpose,
        data: bytes,
        *,
        filename: str,
        document_id: uuid.UUID,
        subject: tuple[str, uuid.UUID] | None = None,
        patient_id: uuid.UUID | None = None,
        order_id: uuid.UUID | None = None,
        actor: AuditActor = SYSTEM_ACTOR,
    ) -> StoredFile:
        """Keep a file Nidaan made (report PDF, labels, invoice) as the next version of
        ``document_id``; its type is checked from the content like an upload's."""
        rule = rule_for(purpose)
        current = await self._current_version(session, organisation_id, purpose, document_id)
        return await self._write(
            session,
            organisation_id=organisation_id,
            purpose=purpose,
            checked=await check_upload(bytes_stream(data), rule),
            filename=filename,
            previous=current,
            document_id=document_id,
            patient_id=patient_id,
            order_id=order_id,
            subject=subject,
            actor=actor,
        )

    async def keep_generated(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        purpose: FilePurpose,
        data: bytes,
        *,
        filename: str,
        document_id: uuid.UUID,
        subject: tuple[str, uuid.UUID] | None = None,
        patient_id: uuid.UUID | None = None,
        order_id: uuid.UUID | None = None,
        actor: AuditActor = SYSTEM_ACTOR,
    ) -> StoredFile:
        """``store_generated``, unless the document's current version has these very bytes
        (a label printed again is not a new version)."""
        current = await self._current_version(session, organisation_id, purpose, document_id)
        digest = hashlib.sha256(data).hexdigest()
        if current is not None and current.deleted_at is None and current.sha256 == digest:
            return current
        return await self.store_generated(
            session,
            organisation_id,
            purpose,
            data,
            filename=filename,
            document_id=document_id,
            subject=subject,
            patient_id=patient_id,
            order_id=order_id,
            actor=actor,
        )

    async def _write(
        self,
        session: AsyncSession,
        *,
        organisation_id: uuid.UUID,
        purpose: FilePurpose,
        checked: CheckedUpload,
        filename: str | None,
        previous: StoredFile | None,
        document_id: uuid.UUID | None,
        patient_id: uuid.UUID | None,
        order_id: uuid.UUID | None,
        actor: AuditActor,
        description: str | None = None,
        subject: tuple[str, uuid.UUID] | None = None,
        uploaded_by_id: uuid.UUID | None = None,
    ) -> StoredFile:
        file_id = new_id()
        key = f"{organisation_id}/{purpose.value}/{file_id}"
        store = self.store()
        content_type = checked.content_type
        name = safe_filename(filename, content_type, fallback=purpose.value)
        stored = await store.put_stream(key, checked.chunks(), content_type, filename=name)
        try:
            row = StoredFile(
                id=file_id,
                organisation_id=organisation_id,
                purpose=purpose.value,
                document_id=document_id or (previous.document_id if previous else file_id),
                version=(previous.version + 1) if previous else 1,
                is_current=True,
                filename=name,
                content_type=content_type,
                size_bytes=stored.size,
                sha256=stored.sha256,
                storage_key=key,
                patient_id=patient_id,
                order_id=order_id,
                subject_type=subject[0] if subject else None,
                subject_id=subject[1] if subject else None,
                description=(description or "").strip()[:500] or None,
                uploaded_by_id=uploaded_by_id,
                created_at=utcnow(),
            )
            if previous is not None and previous.is_current:
                previous.is_current = False
            session.add(row)
            await session.flush()
            await audit_service.record(
                session,
                organisation_id=organisation_id,
                actor=actor,
                action="file.stored",
                entity_type="file",
                entity_id=row.id,
                after=snapshot(row),
            )
        except BaseException:
            await store.delete(key)
            raise
        logger.info(
            "Stored %s file %s v%d (%d bytes) in the %s store",
            purpose.value,
            row.id,
            row.version,
            row.size_bytes,
            store.kind,
        )
        return row

    async def _check_links(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        patient_id: uuid.UUID | None,
        order_id: uuid.UUID | None,
    ) -> None:
        if patient_id and not await get_in_organisation(
            session, Patient, patient_id, organisation_id
        ):
            raise InvalidInput("No such patient in your organisation.", field="patient_id")
        if order_id and not await get_in_organisation(session, Order, order_id, organisation_id):
            raise InvalidInput("No such order in your organisation.", field="order_id")

    async def _previous_version(
        self, session: AsyncSession, caller: Principal, metadata: UploadMetadata
    ) -> StoredFile | None:
        if metadata.document_id is None:
            return None
        current = await self._current_version(
            session, caller.organisation_id, metadata.purpose, metadata.document_id
        )
        if current is None:
            raise InvalidInput(
                "No document with this id and purpose in your organisation.",
                field="document_id",
            )
        return current

    async def _current_version(
        self,
        session: AsyncSession,
        organisation_id: uuid.UUID,
        purpose: FilePurpose,
        document_id: uuid.UUID,
    ) -> StoredFile | None:
        """The document's newest version, locked so that two writers number in turn."""
        return await session.scalar(
            select(StoredFile)
            .where(
                StoredFile.organisation_id == organisation_id,
                StoredFile.purpose == purpose.value,
                StoredFile.document_id == document_id,
            )
            .order_by(StoredFile.version.desc())
            .limit(1)
            .with_for_update(key_share=True)
        )

    # ---------------------------------------------------------------- reading

    async def get(
        self,
        session: AsyncSession,
        caller: Principal,
        file_id: uuid.UUID,
        *,
        include_deleted: bool = False,
    ) -> StoredFile:
        """The file record if the caller may read it (404 elsewhere, 410 once deleted)."""
        row = await get_in_organisation(session, StoredFile, file_id, caller.organisation_id)
        if row is None:
            raise FileNotFound("No such file in your organisation.", entity="file")
        _require(caller, rule_for(FilePurpose(row.purpose)).readers, "read", row.purpose)
        if row.order_id is not None:
            await _require_order_reach(session, caller, row.order_id)
        if row.deleted_at is not None and not include_deleted:
            raise FileDeleted("This file was deleted.", deleted_at=row.deleted_at.isoformat())
        return row

    async def list(
        self,
        session: AsyncSession,
        caller: Principal,
        page: PageParams,
        *,
        purpose: FilePurpose | None = None,
        patient_id: uuid.UUID | None = None,
        order_id: uuid.UUID | None = None,
        document_id: uuid.UUID | None = None,
        include_deleted: bool = False,
        all_versions: bool = False,
    ) -> tuple[list[StoredFile], int]:
        """Files the caller may read, newest first; current versions unless asked."""
        allowed = [p.value for p in readable_purposes(caller.roles)]
        if purpose is not None:
            _require(caller, rule_for(purpose).readers, "read", purpose)
            allowed = [purpose.value]
        statement: Select[Any] = select(StoredFile).where(
            StoredFile.organisation_id == caller.organisation_id,
            StoredFile.purpose.in_(allowed),
        )
        if caller.branch_ids is not None:
            # A file of an order is at the order's branch; other files are the organisation's.
            statement = statement.where(
                or_(
                    StoredFile.order_id.is_(None),
                    StoredFile.order_id.in_(
                        select(Order.id).where(Order.branch_id.in_(sorted(caller.branch_ids)))
                    ),
                )
            )
        if patient_id is not None:
            statement = statement.where(StoredFile.patient_id == patient_id)
        if order_id is not None:
            statement = statement.where(StoredFile.order_id == order_id)
        if document_id is not None:
            statement = statement.where(StoredFile.document_id == document_id)
        if not all_versions and document_id is None:
            statement = statement.where(StoredFile.is_current.is_(True))
        if not include_deleted:
            statement = statement.where(StoredFile.deleted_at.is_(None))
        statement = statement.order_by(StoredFile.created_at.desc(), StoredFile.version.desc())
        return await paginate(session, statement, page)

    async def versions(
        self, session: AsyncSession, caller: Principal, file_id: uuid.UUID
    ) -> list[StoredFile]:
        """Every version of the file's document, newest first (deleted ones included)."""
        row = await self.get(session, caller, file_id, include_deleted=True)
        return list(
            await session.scalars(
                select(StoredFile)
                .where(
                    StoredFile.organisation_id == row.organisation_id,
                    StoredFile.purpose == row.purpose,
                    StoredFile.document_id == row.document_id,
                )
                .order_by(StoredFile.version.desc())
            )
        )

    async def content(
        self, session: AsyncSession, caller: Principal, file_id: uuid.UUID
    ) -> tuple[StoredFile, AsyncIterator[bytes]]:
        """The record and its bytes as a stream (the first chunk is read here, so a missing
        object is an error before any response starts)."""
        row = await self.get(session, caller, file_id)
        return row, await self._open(row)

    async def _open(self, row: StoredFile) -> AsyncIterator[bytes]:
        chunks = aiter(self.store().iter_bytes(row.storage_key))
        try:
            first = await anext(chunks)
        except ObjectNotFoundError:
            logger.error("File %s is missing from the object store", row.id)
            raise FileMissingFromStore(
                "The stored file is missing; tell your administrator."
            ) from None
        except StopAsyncIteration:
            first = b""

        async def stream() -> AsyncIterator[bytes]:
            yield first
            async for chunk in chunks:
                yield chunk

        return stream()

    async def read_bytes(
        self, session: AsyncSession, organisation_id: uuid.UUID, file_id: uuid.UUID
    ) -> tuple[StoredFile, bytes]:
        """A file's record and bytes for Nidaan's own use (reports, attachments to e-mails);
        ``FileDeleted`` once deleted, ``FileMissingFromStore`` if the object is gone."""
        row = await get_in_organisation(session, StoredFile, file_id, organisation_id)
        if row is None:
            raise FileNotFound("No such file in this organisation.", entity="file")
        if row.deleted_at is not None:
            raise FileDeleted("This file was deleted.", deleted_at=row.deleted_at.isoformat())
        try:
            return row, await self.store().get(row.storage_key)
        except ObjectNotFoundError:
            logger.error("File %s is missing from the object store", row.id)
            raise FileMissingFromStore(
                "The stored file is missing; tell your administrator."
            ) from None

    async def by_storage_key(self, session: AsyncSession, key: str) -> StoredFile | None:
        """The record of ``key`` (installation-wide: signed links carry no organisation)."""
        return await session.scalar(select(StoredFile).where(StoredFile.storage_key == key))

    # ---------------------------------------------------------------- links

    async def presigned_url(
        self,
        session: AsyncSession,
        caller: Principal,
        file_id: uuid.UUID,
        expiry_seconds: int | None = None,
    ) -> PresignedLink:
        """A download link anyone holding it may use until it expires (1 s to 7 days)."""
        row = await self.get(session, caller, file_id)
        return self.link_for(row, expiry_seconds)

    def link_for(self, row: StoredFile, expiry_seconds: int | None = None) -> PresignedLink:
        """A presigned link for a record already checked (notifications, system use)."""
        seconds = expiry_seconds or self.settings.file_link_minutes * 60
        if not 1 <= seconds <= MAX_URL_EXPIRY_SECONDS:
            raise InvalidInput(
                f"expiry_seconds must be 1 to {MAX_URL_EXPIRY_SECONDS} (7 days).",
                field="expiry_seconds",
            )
        if row.deleted_at is not None:
            raise FileDeleted("This file was deleted.", deleted_at=row.deleted_at.isoformat())
        issued = utcnow()
        url = self.store().presigned_url(row.storage_key, seconds)
        return PresignedLink(url=url, expires_at=issued + timedelta(seconds=seconds))

    # ---------------------------------------------------------------- deleting

    async def delete(
        self,
        session: AsyncSession,
        caller: Principal,
        file_id: uuid.UUID,
        reason: str | None = None,
    ) -> StoredFile:
        """Soft-delete one version; purged after the purpose's retention. Deleting a
        deleted file changes nothing."""
        row = await self.get(session, caller, file_id, include_deleted=True)
        _require(caller, rule_for(FilePurpose(row.purpose)).deleters, "delete", row.purpose)
        if row.deleted_at is not None:
            return row
        locked = await session.scalar(
            select(StoredFile)
            .where(StoredFile.id == row.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        assert locked is not None
        if locked.deleted_at is not None:
            return locked
        before = snapshot(locked)
        now = utcnow()
        locked.deleted_at = now
        locked.deleted_by_id = caller.id if caller.kind == "user" else None
        locked.delete_reason = (reason or "").strip()[:500] or None
        locked.purge_after = purge_after(
            FilePurpose(locked.purpose), now, self.settings.file_retention_days
        )
        if locked.is_current:
            # The newest version still present becomes current again.
            locked.is_current = False
            await session.flush()
            await session.execute(
                update(StoredFile)
                .where(
                    StoredFile.id
                    == select(StoredFile.id)
                    .where(
                        StoredFile.organisation_id == locked.organisation_id,
                        StoredFile.purpose == locked.purpose,
                        StoredFile.document_id == locked.document_id,
                        StoredFile.deleted_at.is_(None),
                    )
                    .order_by(StoredFile.version.desc())
                    .limit(1)
                    .scalar_subquery()
                )
                .values(is_current=True)
            )
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=locked.organisation_id,
            actor=caller.actor,
            action="file.deleted",
            entity_type="file",
            entity_id=locked.id,
            before=before,
            after=snapshot(locked),
        )
        return locked

    async def purge(
        self,
        session: AsyncSession,
        *,
        dry_run: bool,
        now: datetime | None = None,
        organisation_id: uuid.UUID | None = None,
        limit: int = 1000,
    ) -> list[PurgeItem]:
        """Remove from the store the deleted files whose retention has passed (not under a
        legal hold); with ``dry_run`` only list them."""
        moment = now or utcnow()
        statement = (
            select(StoredFile)
            .where(
                StoredFile.deleted_at.is_not(None),
                StoredFile.purged_at.is_(None),
                StoredFile.purge_after <= moment,
                StoredFile.legal_hold.is_(False),
            )
            .order_by(StoredFile.purge_after)
            .limit(limit)
        )
        if organisation_id is not None:
            statement = statement.where(StoredFile.organisation_id == organisation_id)
        if not dry_run:
            statement = statement.with_for_update(skip_locked=True, key_share=True)
        rows = list(await session.scalars(statement))
        items = [
            PurgeItem(
                file_id=row.id,
                organisation_id=row.organisation_id,
                purpose=row.purpose,
                filename=row.filename,
                size_bytes=row.size_bytes,
                deleted_at=row.deleted_at,
                purge_after=row.purge_after,
            )
            for row in rows
        ]
        if dry_run:
            return items
        store = self.store()
        for row in rows:
            before = snapshot(row)
            row.purged_at = moment
            await session.flush()
            # Marked first: if the store fails, the transaction rolls the mark back and the
            # next run tries again (deleting an absent object is not an error).
            await store.delete(row.storage_key)
            await audit_service.record(
                session,
                organisation_id=row.organisation_id,
                actor=SYSTEM_ACTOR,
                action="file.purged",
                entity_type="file",
                entity_id=row.id,
                before=before,
                after=snapshot(row),
            )
        logger.info("Purged %d deleted files past their retention", len(rows))
        return items

    async def set_legal_hold(
        self, session: AsyncSession, caller: Principal, file_id: uuid.UUID, hold: bool
    ) -> StoredFile:
        row = await self.get(session, caller, file_id, include_deleted=True)
        _require(caller, rule_for(FilePurpose(row.purpose)).deleters, "hold", row.purpose)
        if row.legal_hold == hold:
            return row
        before = snapshot(row)
        row.legal_hold = hold
        await session.flush()
        await audit_service.record(
            session,
            organisation_id=row.organisation_id,
            actor=caller.actor,
            action="file.legal_hold_set" if hold else "file.legal_hold_released",
            entity_type="file",
            entity_id=row.id,
            before=before,
            after=snapshot(row),
        )
        return row


def _require(caller: Principal, roles: frozenset[str], action: str, purpose: str) -> None:
    if caller.kind == "system":
        return
    if not caller.roles & roles:
        raise RoleRequired(
            f"To {action} {purpose} files you need one of the roles: {', '.join(sorted(roles))}.",
            required_roles=sorted(roles),
        )


files_service = FilesService()


async def _require_order_reach(
    session: AsyncSession, caller: Principal, order_id: uuid.UUID
) -> None:
    """Branch limits: a file of an order is at the order's branch (403 elsewhere)."""
    if caller.branch_ids is None:
        return
    branch_id = await session.scalar(select(Order.branch_id).where(Order.id == order_id))
    caller.require_reach([branch_id], "file")
