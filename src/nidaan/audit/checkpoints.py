"""Signed checkpoints of the audit chains, kept outside the database.

The hash chain proves the log is consistent with itself; someone with superuser rights on
the database can still rewrite an entry and recompute every later hash and the head. A
checkpoint pins the chain from outside: every few minutes each organisation's new entries
(sequence numbers and hashes) and head are signed with an Ed25519 key the database never
sees, and written to the file/object store (write-once; S3 Object Lock where available).
``nidaan audit verify`` then checks the chain against the signed checkpoints with the public
key from the configuration, and names the first entry that differs.

A checkpoint document (canonical JSON, so outside verifiers can recompute the signature):

    {"format": "nidaan.audit.checkpoint.v1", "organisation_id": "...", "seq": 483,
     "head_hash": "<hash of entry 483>", "created_at": "2026-12-07T10:15:00.000000Z",
     "from_seq": 400, "hashes": ["<hash of entry 401>", ..., "<hash of entry 483>"],
     "previous_sha256": "<SHA-256 of checkpoint 400's document>", "key_id": "...",
     "signature": "<base64 Ed25519 over the document without 'signature'>"}

Checkpoints of one organisation form a chain of their own: ``from_seq`` is the previous
checkpoint's ``seq`` and ``previous_sha256`` its digest, so a removed or replaced checkpoint
shows. ``latest.json`` points at the newest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.audit.domain import GENESIS_HASH, canonical_json, entry_hash, format_timestamp
from nidaan.audit.models import AuditChainHead, AuditLog
from nidaan.audit.service import BrokenLink, content_of
from nidaan.config import ConfigurationError, Settings
from nidaan.kit.storage import ObjectNotFoundError, ObjectStore, get_object_store
from nidaan.kit.time import utcnow

_log = structlog.get_logger("nidaan.audit")

FORMAT = "nidaan.audit.checkpoint.v1"
PREFIX = "audit-checkpoints"
_BATCH = 5000

REASON_CHECKPOINT_DIFFERS = "differs from the signed checkpoint"
REASON_CHECKPOINT_MISSING_ENTRY = "missing: the signed checkpoint lists it"
REASON_CHECKPOINT_BAD_SIGNATURE = "checkpoint signature does not verify"
REASON_CHECKPOINT_UNKNOWN_KEY = "checkpoint signed by a key that is not trusted"
REASON_CHECKPOINT_LINK = "checkpoint does not follow the previous one (removed or replaced?)"


class CheckpointError(Exception):
    """A checkpoint document cannot be read."""


@dataclass(frozen=True)
class Checkpoint:
    organisation_id: uuid.UUID
    seq: int
    head_hash: str
    created_at: datetime
    from_seq: int
    hashes: tuple[str, ...]
    previous_sha256: str | None
    key_id: str = ""
    signature: str = ""

    def unsigned(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "organisation_id": str(self.organisation_id),
            "seq": self.seq,
            "head_hash": self.head_hash,
            "created_at": format_timestamp(self.created_at),
            "from_seq": self.from_seq,
            "hashes": list(self.hashes),
            "previous_sha256": self.previous_sha256,
            "key_id": self.key_id,
        }

    def document(self) -> bytes:
        return canonical_json({**self.unsigned(), "signature": self.signature})

    @classmethod
    def from_document(cls, raw: bytes) -> Checkpoint:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise CheckpointError(f"not a {FORMAT} document")
            return cls(
                organisation_id=uuid.UUID(data["organisation_id"]),
                seq=int(data["seq"]),
                head_hash=str(data["head_hash"]),
                created_at=datetime.fromisoformat(data["created_at"].replace("Z", "+00:00")),
                from_seq=int(data["from_seq"]),
                hashes=tuple(str(h) for h in data["hashes"]),
                previous_sha256=data.get("previous_sha256"),
                key_id=str(data["key_id"]),
                signature=str(data["signature"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"unreadable checkpoint: {exc}") from exc


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The base64 form operators copy into NIDAAN_AUDIT_VERIFY_KEYS elsewhere."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode()


class CheckpointSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, checkpoint: Checkpoint) -> Checkpoint:
        keyed = replace(checkpoint, key_id=self.key_id, signature="")
        signature = self._private_key.sign(canonical_json(keyed.unsigned()))
        return replace(keyed, signature=base64.urlsafe_b64encode(signature).decode())


class CheckpointVerifier:
    """Checks signatures with trusted public keys (from the configuration, never the DB)."""

    def __init__(self, public_keys: list[Ed25519PublicKey]) -> None:
        self.keys = {key_id(k): k for k in public_keys}

    def problem(self, checkpoint: Checkpoint) -> str | None:
        key = self.keys.get(checkpoint.key_id)
        if key is None:
            return REASON_CHECKPOINT_UNKNOWN_KEY
        try:
            signature = base64.urlsafe_b64decode(checkpoint.signature)
            key.verify(signature, canonical_json(checkpoint.unsigned()))
        except (InvalidSignature, ValueError):
            return REASON_CHECKPOINT_BAD_SIGNATURE
        return None


def signer_from_settings(settings: Settings) -> CheckpointSigner:
    return CheckpointSigner(Ed25519PrivateKey.from_private_bytes(settings.audit_signing_seed()))


def verifier_from_settings(settings: Settings) -> CheckpointVerifier:
    keys: list[Ed25519PublicKey] = []
    for text in settings.audit_verify_key_texts():
        try:
            keys.append(Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(text)))
        except ValueError as exc:
            raise ConfigurationError(
                "NIDAAN_AUDIT_VERIFY_KEYS must be base64 Ed25519 public keys"
            ) from exc
    if settings.audit_signing_key is not None:
        keys.append(signer_from_settings(settings).public_key)
    return CheckpointVerifier(keys)


class CheckpointStore:
    """Checkpoint documents in the object store: write-once numbered files and a pointer."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def key(organisation_id: uuid.UUID, seq: int) -> str:
        return f"{PREFIX}/{organisation_id}/{seq:015d}.json"

    @staticmethod
    def latest_key(organisation_id: uuid.UUID) -> str:
        return f"{PREFIX}/{organisation_id}/latest.json"

    async def read(self, key: str) -> tuple[Checkpoint, bytes] | None:
        try:
            raw = await self.store.get(key)
        except ObjectNotFoundError:
            return None
        return Checkpoint.from_document(raw), raw

    async def latest(self, organisation_id: uuid.UUID) -> tuple[Checkpoint, bytes] | None:
        return await self.read(self.latest_key(organisation_id))

    async def write(self, checkpoint: Checkpoint) -> str:
        key = self.key(checkpoint.organisation_id, checkpoint.seq)
        if await self.store.exists(key):
            raise CheckpointError(f"checkpoint {key} exists already; checkpoints are write-once")
        document = checkpoint.document()
        await self.store.put(key, document, "application/json")
        await self.store.put(
            self.latest_key(checkpoint.organisation_id), document, "application/json"
        )
        return key

    async def history(
        self, organisation_id: uuid.UUID, limit: int | None = None
    ) -> tuple[list[Checkpoint], BrokenLink | None]:
        """The organisation's checkpoints, oldest first (the newest ``limit`` when given),
        and the first problem found walking back from the newest (a broken link)."""
        found: list[Checkpoint] = []
        current = await self.latest(organisation_id)
        while current is not None and (limit is None or len(found) < limit):
            checkpoint, _ = current
            found.append(checkpoint)
            if checkpoint.from_seq == 0:
                break
            previous = await self.read(self.key(organisation_id, checkpoint.from_seq))
            if previous is None or (
                hashlib.sha256(previous[1]).hexdigest() != checkpoint.previous_sha256
            ):
                return found[::-1], BrokenLink(
                    organisation_id, checkpoint.seq, None, REASON_CHECKPOINT_LINK
                )
            current = previous
        return found[::-1], None


def checkpoint_store(settings: Settings) -> CheckpointStore:
    return CheckpointStore(get_object_store(settings))


@dataclass(frozen=True)
class CheckpointWritten:
    organisation_id: uuid.UUID
    checkpoint: Checkpoint | None
    key: str | None
    skipped: str | None = None


async def write_checkpoints(
    session: AsyncSession,
    store: CheckpointStore,
    signer: CheckpointSigner,
    organisation_id: uuid.UUID | None = None,
) -> list[CheckpointWritten]:
    """Sign and store a checkpoint for each organisation whose chain moved on since its
    last checkpoint. The new stretch is re-verified first: a chain that no longer matches
    its last checkpoint (or itself) is never signed."""
    heads = select(
        AuditChainHead.organisation_id, AuditChainHead.last_seq, AuditChainHead.last_hash
    )
    if organisation_id is not None:
        heads = heads.where(AuditChainHead.organisation_id == organisation_id)
    written: list[CheckpointWritten] = []
    for org_id, head_seq, head_hash in (await session.execute(heads)).all():
        latest = await store.latest(org_id)
        previous = latest[0] if latest else None
        from_seq = previous.seq if previous else 0
        if head_seq <= from_seq:
            written.append(CheckpointWritten(org_id, None, None, skipped="no new entries"))
            continue
        hashes, problem = await _stretch(
            session, org_id, from_seq, head_seq, previous.head_hash if previous else GENESIS_HASH
        )
        if problem is not None or hashes[-1] != head_hash:
            reason = problem or "chain head does not match its last entry"
            _log.error("audit_checkpoint_refused", organisation_id=str(org_id), reason=reason)
            written.append(CheckpointWritten(org_id, None, None, skipped=reason))
            continue
        checkpoint = signer.sign(
            Checkpoint(
                organisation_id=org_id,
                seq=head_seq,
                head_hash=head_hash,
                created_at=utcnow(),
                from_seq=from_seq,
                hashes=tuple(hashes),
                previous_sha256=hashlib.sha256(latest[1]).hexdigest() if latest else None,
            )
        )
        key = await store.write(checkpoint)
        written.append(CheckpointWritten(org_id, checkpoint, key))
    return written


async def _stretch(
    session: AsyncSession, organisation_id: uuid.UUID, after_seq: int, to_seq: int, prev: str
) -> tuple[list[str], str | None]:
    """Stored hashes of entries ``after_seq+1 .. to_seq``, each re-derived from its content
    and predecessor; (hashes, problem or None)."""
    hashes: list[str] = []
    expected = after_seq + 1
    while expected <= to_seq:
        rows = (
            await session.execute(
                select(AuditLog)
                .where(
                    AuditLog.organisation_id == organisation_id,
                    AuditLog.seq >= expected,
                    AuditLog.seq <= to_seq,
                )
                .order_by(AuditLog.seq)
                .limit(_BATCH)
            )
        ).scalars()
        batch = list(rows)
        if not batch:
            return hashes, f"entry {expected} is missing"
        for row in batch:
            if row.seq != expected or row.prev_hash != prev:
                return hashes, f"entry {expected} does not follow its predecessor"
            if entry_hash(prev, content_of(row)) != row.hash:
                return hashes, f"entry {expected} does not match its hash"
            hashes.append(row.hash)
            prev = row.hash
            expected += 1
    return hashes, None


@dataclass(frozen=True)
class CheckpointReport:
    organisation_id: uuid.UUID
    checkpoints_checked: int
    entries_checked: int
    latest: Checkpoint | None
    first_difference: BrokenLink | None


async def verify_against_checkpoints(
    session: AsyncSession,
    store: CheckpointStore,
    verifier: CheckpointVerifier,
    organisation_id: uuid.UUID,
    *,
    limit: int | None = None,
) -> CheckpointReport:
    """Compare the stored chain with the organisation's signed checkpoints (the newest
    ``limit`` of them, or all); report the first entry whose hash differs or is missing,
    or the first checkpoint that is not genuine."""
    checkpoints, link_problem = await store.history(organisation_id, limit)
    latest = checkpoints[-1] if checkpoints else None
    entries_checked = 0
    for index, checkpoint in enumerate(checkpoints, start=1):
        problem = verifier.problem(checkpoint)
        if problem is not None or checkpoint.organisation_id != organisation_id:
            return CheckpointReport(
                organisation_id,
                index,
                entries_checked,
                latest,
                BrokenLink(
                    organisation_id,
                    checkpoint.seq,
                    None,
                    problem or "checkpoint belongs to another organisation",
                ),
            )
        found = await session.execute(
            select(AuditLog.seq, AuditLog.hash).where(
                AuditLog.organisation_id == organisation_id,
                AuditLog.seq > checkpoint.from_seq,
                AuditLog.seq <= checkpoint.seq,
            )
        )
        stored = {seq: hash_ for seq, hash_ in found}
        for offset, signed_hash in enumerate(checkpoint.hashes):
            seq = checkpoint.from_seq + 1 + offset
            entries_checked += 1
            if seq not in stored:
                return CheckpointReport(
                    organisation_id,
                    index,
                    entries_checked,
                    latest,
                    BrokenLink(
                        organisation_id,
                        seq,
                        None,
                        _with_checkpoint(REASON_CHECKPOINT_MISSING_ENTRY, checkpoint),
                    ),
                )
            if stored[seq] != signed_hash:
                entry_id = await session.scalar(
                    select(AuditLog.id).where(
                        AuditLog.organisation_id == organisation_id, AuditLog.seq == seq
                    )
                )
                return CheckpointReport(
                    organisation_id,
                    index,
                    entries_checked,
                    latest,
                    BrokenLink(
                        organisation_id,
                        seq,
                        entry_id,
                        _with_checkpoint(REASON_CHECKPOINT_DIFFERS, checkpoint),
                    ),
                )
    return CheckpointReport(
        organisation_id, len(checkpoints), entries_checked, latest, link_problem
    )


def _with_checkpoint(reason: str, checkpoint: Checkpoint) -> str:
    return (
        f"{reason} (checkpoint of seq {checkpoint.seq}, "
        f"{format_timestamp(checkpoint.created_at)}, key {checkpoint.key_id})"
    )


@dataclass(frozen=True)
class AnchoredReport:
    """The chain's own verification combined with the signed checkpoints."""

    ok: bool
    organisations_checked: int
    entries_checked: int
    first_broken: BrokenLink | None
    checkpoints: list[CheckpointReport]


async def verify_anchored(
    session: AsyncSession,
    settings: Settings,
    organisation_id: uuid.UUID | None = None,
    *,
    limit: int | None = None,
) -> AnchoredReport:
    """Verify the chains (``audit_service.verify``) and each organisation's chain against
    its signed checkpoints; the first break reported is the lowest sequence number found
    in the first organisation with a finding."""
    from nidaan.audit.service import audit_service

    chain = await audit_service.verify(session, organisation_id)
    if organisation_id is not None:
        organisation_ids = [organisation_id]
    else:
        organisation_ids = list(
            await session.scalars(
                select(AuditChainHead.organisation_id).order_by(AuditChainHead.organisation_id)
            )
        )
    store = checkpoint_store(settings)
    verifier = verifier_from_settings(settings)
    reports = [
        await verify_against_checkpoints(session, store, verifier, org_id, limit=limit)
        for org_id in organisation_ids
    ]
    findings = {r.organisation_id: r.first_difference for r in reports if r.first_difference}
    first = chain.first_broken
    if first is not None and first.organisation_id in findings:
        other = findings[first.organisation_id]
        first = other if other is not None and other.seq < first.seq else first
    elif first is None and findings:
        first = next(iter(findings.values()))
    return AnchoredReport(
        ok=first is None,
        organisations_checked=chain.organisations_checked,
        entries_checked=chain.entries_checked,
        first_broken=first,
        checkpoints=reports,
    )
