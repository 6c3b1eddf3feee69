"""Finding 2(b): the audit chain is anchored outside the database by signed checkpoints.

The probe, as a database superuser with triggers off, changed entry 5, recomputed the 478
later hashes and the head, and `nidaan audit verify` said OK. Now the chain is compared with
Ed25519-signed checkpoints kept in the file store, and the first differing entry is named.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from nidaan.audit.checkpoints import (
    REASON_CHECKPOINT_BAD_SIGNATURE,
    REASON_CHECKPOINT_LINK,
    REASON_CHECKPOINT_MISSING_ENTRY,
    CheckpointSigner,
    CheckpointStore,
    CheckpointVerifier,
    verify_against_checkpoints,
    write_checkpoints,
)
from nidaan.audit.domain import entry_hash
from nidaan.audit.models import AuditLog
from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import AuditEntry, audit_service, content_of
from nidaan.config import get_settings
from nidaan.kit.storage import LocalFileStore
from nidaan.tenancy.models import Organisation
from tests.audit.conftest import CommittingSession

_RUN = "import sys; from nidaan.cli import app; app(sys.argv[1:], prog_name='nidaan')"
PROBE_ENTRIES = 483


async def record(committing_session: CommittingSession, organisation: Organisation, n: int) -> None:
    async with committing_session() as session:
        await audit_service.record_many(
            session,
            [
                AuditEntry(
                    organisation_id=organisation.id,
                    actor=SYSTEM_ACTOR,
                    action="result.verified",
                    entity_type="result",
                    entity_id=f"r-{i}",
                    before={"status": "entered"},
                    after={"status": "verified", "value": str(i)},
                )
                for i in range(n)
            ],
        )


async def forge(
    committing_session: CommittingSession,
    superuser_conninfo: str,
    organisation_id: uuid.UUID,
    seq: int,
) -> None:
    """The probe's forgery: change entry ``seq``, recompute every later hash and the head."""
    async with committing_session() as session:
        rows = list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.organisation_id == organisation_id)
                .order_by(AuditLog.seq)
            )
        )
    updates = []
    prev = rows[seq - 2].hash
    for row in rows[seq - 1 :]:
        if row.seq == seq:
            row.changes = {"before": {"status": "entered"}, "after": {"status": "rejected"}}
        new_hash = entry_hash(prev, content_of(row))
        updates.append((json.dumps(row.changes), prev, new_hash, str(row.id)))
        prev = new_hash
    async with await psycopg.AsyncConnection.connect(superuser_conninfo) as conn:
        await conn.execute("SET session_replication_role = replica")
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "UPDATE audit_log SET changes = %s::jsonb, prev_hash = %s, hash = %s WHERE id = %s",
                updates,
            )
        await conn.execute(
            "UPDATE audit_chain_heads SET last_hash = %s WHERE organisation_id = %s",
            (prev, str(organisation_id)),
        )
        await conn.commit()


async def nidaan(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _RUN, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def operator_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """`nidaan` as an operator runs it: the lab's database, its own data (file) directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIDAAN_")}
    env.update(NIDAAN_MODE="test", NIDAAN_DATABASE_URL=database_url, NIDAAN_DATA_DIR=str(tmp_path))
    return env


async def test_probe_forged_chain_is_detected_by_the_signed_checkpoint(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
    operator_env: dict[str, str],
) -> None:
    await record(committing_session, committed_organisation, PROBE_ENTRIES)
    slug = committed_organisation.slug
    written = await nidaan(operator_env, "audit", "checkpoint", "--organisation", slug)
    assert written.returncode == 0, written.stdout + written.stderr
    assert f"checkpoint of seq {PROBE_ENTRIES} written" in written.stdout

    await forge(committing_session, superuser_conninfo, committed_organisation.id, seq=5)

    # What the probe saw: the chain on its own is consistent again.
    async with committing_session() as session:
        assert (await audit_service.verify(session, committed_organisation.id)).ok
    # Against the signed checkpoint, entry 5 is named.
    result = await nidaan(operator_env, "audit", "verify", "--organisation", slug)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN: the audit trail has been altered." in result.stderr
    assert "seq:          5\n" in result.stderr
    assert "differs from the signed checkpoint" in result.stderr
    assert f"seq {PROBE_ENTRIES} head" in result.stderr  # the checkpoint is printed


async def test_verify_prints_the_latest_checkpoint_when_intact(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    operator_env: dict[str, str],
) -> None:
    await record(committing_session, committed_organisation, 3)
    slug = committed_organisation.slug
    assert (await nidaan(operator_env, "audit", "checkpoint", "-o", slug)).returncode == 0
    await record(committing_session, committed_organisation, 2)
    assert (await nidaan(operator_env, "audit", "checkpoint", "-o", slug)).returncode == 0
    again = await nidaan(operator_env, "audit", "checkpoint", "-o", slug)
    assert "no new entries" in again.stdout

    result = await nidaan(operator_env, "audit", "verify", "-o", slug)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: 5 audit entries in 1 organisation(s) verified.")
    assert "seq 5 head" in result.stdout
    assert "(2 checkpoint(s), 5 entries compared)" in result.stdout


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(LocalFileStore(tmp_path / "files", signing_key=b"k" * 32))


@pytest.fixture
def signer() -> CheckpointSigner:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return CheckpointSigner(Ed25519PrivateKey.generate())


async def _check(
    committing_session: CommittingSession,
    store: CheckpointStore,
    signer: CheckpointSigner,
    organisation_id: uuid.UUID,
):  # type: ignore[no-untyped-def]
    async with committing_session() as session:
        return await verify_against_checkpoints(
            session, store, CheckpointVerifier([signer.public_key]), organisation_id
        )


async def test_a_truncated_tail_with_a_rewound_head_is_caught(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
    store: CheckpointStore,
    signer: CheckpointSigner,
) -> None:
    await record(committing_session, committed_organisation, 6)
    async with committing_session() as session:
        await write_checkpoints(session, store, signer, committed_organisation.id)
        kept = await session.scalar(
            select(AuditLog).where(
                AuditLog.organisation_id == committed_organisation.id, AuditLog.seq == 4
            )
        )
    assert kept is not None
    async with await psycopg.AsyncConnection.connect(superuser_conninfo, autocommit=True) as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "DELETE FROM audit_log WHERE organisation_id = %s AND seq > 4",
            (str(committed_organisation.id),),
        )
        await conn.execute(
            "UPDATE audit_chain_heads SET last_seq = 4, last_hash = %s, last_entry_id = %s "
            "WHERE organisation_id = %s",
            (kept.hash, str(kept.id), str(committed_organisation.id)),
        )
    async with committing_session() as session:
        assert (await audit_service.verify(session, committed_organisation.id)).ok
    report = await _check(committing_session, store, signer, committed_organisation.id)
    assert report.first_difference is not None
    assert report.first_difference.seq == 5
    assert report.first_difference.reason.startswith(REASON_CHECKPOINT_MISSING_ENTRY)


async def test_a_doctored_or_removed_checkpoint_is_caught(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    store: CheckpointStore,
    signer: CheckpointSigner,
    tmp_path: Path,
) -> None:
    org = committed_organisation.id
    for n in (3, 2):
        await record(committing_session, committed_organisation, n)
        async with committing_session() as session:
            await write_checkpoints(session, store, signer, org)
    report = await _check(committing_session, store, signer, org)
    assert (report.first_difference, report.checkpoints_checked, report.entries_checked) == (
        None,
        2,
        5,
    )

    latest_path = tmp_path / "files" / store.latest_key(org)
    document = json.loads(latest_path.read_text())
    document["head_hash"] = "f" * 64
    latest_path.write_text(json.dumps(document))
    doctored = await _check(committing_session, store, signer, org)
    assert doctored.first_difference is not None
    assert doctored.first_difference.reason == REASON_CHECKPOINT_BAD_SIGNATURE

    (tmp_path / "files" / store.key(org, 5)).write_bytes(
        (tmp_path / "files" / store.key(org, 5)).read_bytes()
    )
    latest_path.write_bytes((tmp_path / "files" / store.key(org, 5)).read_bytes())
    (tmp_path / "files" / store.key(org, 3)).unlink()
    removed = await _check(committing_session, store, signer, org)
    assert removed.first_difference is not None
    assert removed.first_difference.reason == REASON_CHECKPOINT_LINK


async def test_a_chain_already_broken_is_never_signed(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
    store: CheckpointStore,
    signer: CheckpointSigner,
) -> None:
    await record(committing_session, committed_organisation, 4)
    async with await psycopg.AsyncConnection.connect(superuser_conninfo, autocommit=True) as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE audit_log SET actor_label = 'someone' WHERE organisation_id = %s AND seq = 2",
            (str(committed_organisation.id),),
        )
    async with committing_session() as session:
        (written,) = await write_checkpoints(session, store, signer, committed_organisation.id)
    assert written.checkpoint is None
    assert written.skipped == "entry 2 does not match its hash"
    assert await store.latest(committed_organisation.id) is None


def test_demo_and_test_installations_get_a_signing_key() -> None:
    settings = get_settings()
    assert len(settings.audit_signing_seed()) == 32
