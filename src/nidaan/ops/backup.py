"""``nidaan backup`` / ``nidaan restore``: one encrypted archive of the database and file store.

The archive holds a ``pg_dump`` (custom format) taken in one snapshot, the row count of
every table read in that same snapshot, the local file store, and a manifest with the
SHA-256 of every member. It is encrypted with AES-256-GCM under ``NIDAAN_BACKUP_KEY`` in
chunks, each chunk authenticated with its position and the last one marked, so a
truncated, reordered or altered archive is refused before anything is restored.

A restore goes only into an empty database: it checks the archive, restores the dump
(``pg_restore``), puts the files back, compares every table's row count with the
manifest, verifies the audit hash chains, and moves the sync epoch so every collection
centre rebuilds its copy from the restored data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nidaan import __version__
from nidaan.config import ConfigurationError, Settings

MAGIC = b"NIDAAN-BACKUP-1\n"
CHUNK = 4 * 1024 * 1024
MANIFEST = "manifest.json"
DUMP = "database.dump"
FILES = "files"


class BackupError(RuntimeError):
    """The backup or restore cannot go on; the message says why."""


@dataclass
class RestoreReport:
    manifest: dict[str, Any]
    row_counts: dict[str, int]
    mismatched_tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    files_restored: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatched_tables


def backup_key(settings: Settings) -> bytes:
    if settings.backup_key is None:
        raise ConfigurationError(
            "NIDAAN_BACKUP_KEY is not set (run `nidaan keys generate`; keep the key apart "
            "from the backups: without it they cannot be read)"
        )
    key = base64.urlsafe_b64decode(settings.backup_key.get_secret_value())
    if len(key) != 32:
        raise ConfigurationError("NIDAAN_BACKUP_KEY must decode to 32 bytes")
    return key


# ---- tools ----------------------------------------------------------------------------


def _pg_tool(name: str) -> str:
    """The newest ``pg_dump``/``pg_restore`` at hand: the embedded server's own, or PATH's
    (a newer pg_dump reads an older server, never the reverse)."""
    candidates: list[Path] = []
    try:
        import pgserver

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)
    except ImportError:
        pass
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    best: tuple[int, str] | None = None
    for candidate in candidates:
        if not candidate.exists():
            continue
        out = subprocess.run(  # noqa: S603 - our own binary path
            [str(candidate), "--version"], capture_output=True, text=True, check=False
        ).stdout
        digits = "".join(c if c.isdigit() else " " for c in out).split()
        major = int(digits[0]) if digits else 0
        if best is None or major > best[0]:
            best = (major, str(candidate))
    if best is None:
        raise BackupError(f"{name} was not found (install postgresql-client)")
    return best[1]


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_store_root(settings: Settings) -> Path | None:
    url = settings.storage_url or (settings.data_dir / "files").as_uri()
    parts = urlsplit(url)
    return Path(parts.path) if parts.scheme == "file" else None


_TABLES = (
    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)


def _row_counts(connection: psycopg.Connection[Any]) -> dict[str, int]:
    counts = {}
    for (table,) in connection.execute(_TABLES).fetchall():
        counts[table] = int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]  # noqa: S608
    return counts


# ---- encryption -----------------------------------------------------------------------


def _aad(index: int, final: bool) -> bytes:
    return MAGIC + struct.pack(">Q?", index, final)


def encrypt_stream(key: bytes, source: BinaryIO, target: BinaryIO) -> None:
    """Write ``source`` to ``target`` as authenticated chunks (see the module docstring)."""
    aead = AESGCM(key)
    prefix = os.urandom(4)
    target.write(MAGIC + prefix)
    index = 0
    chunk = source.read(CHUNK)
    while True:
        following = source.read(CHUNK)
        final = not following
        nonce = prefix + struct.pack(">Q", index)
        sealed = aead.encrypt(nonce, chunk, _aad(index, final))
        target.write(struct.pack(">I", len(sealed)) + sealed)
        if final:
            return
        chunk, index = following, index + 1


def decrypt_stream(key: bytes, source: BinaryIO, target: BinaryIO) -> None:
    """Reverse ``encrypt_stream``; raise ``BackupError`` on any alteration or truncation."""
    from cryptography.exceptions import InvalidTag

    if source.read(len(MAGIC)) != MAGIC:
        raise BackupError("not a Nidaan backup archive")
    aead = AESGCM(key)
    prefix = source.read(4)
    index = 0
    while True:
        header = source.read(4)
        if len(header) != 4:
            raise BackupError("the archive is truncated")
        sealed = source.read(struct.unpack(">I", header)[0])
        nonce = prefix + struct.pack(">Q", index)
        final = source.peek(1)[:1] == b"" if hasattr(source, "peek") else False
        try:
            target.write(aead.decrypt(nonce, sealed, _aad(index, final)))
        except InvalidTag:
            raise BackupError(
                "the archive is altered, truncated or was made with another NIDAAN_BACKUP_KEY"
            ) from None
        if final:
            return
        index += 1


# ---- backup ---------------------------------------------------------------------------


def create_backup(settings: Settings, owner_url: str, out: Path) -> dict[str, Any]:
    """Write an encrypted archive of the database at ``owner_url`` and the file store."""
    key = backup_key(settings)
    conninfo = _libpq(owner_url)
    with tempfile.TemporaryDirectory(prefix="nidaan-backup-") as scratch:
        work = Path(scratch)
        dump = work / DUMP
        # One snapshot for the dump and the row counts: the manifest describes the dump.
        with psycopg.connect(conninfo, autocommit=False) as connection:
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            counts = _row_counts(connection)
            migration = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            result = subprocess.run(  # noqa: S603 - fixed arguments
                [
                    _pg_tool("pg_dump"),
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    "--no-owner",
                    f"--file={dump}",
                    f"--dbname={conninfo}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            connection.rollback()
        if result.returncode != 0:
            raise BackupError(f"pg_dump failed: {result.stderr.strip()[:500]}")
        members = [{"path": DUMP, "bytes": dump.stat().st_size, "sha256": _sha256(dump)}]
        store = _local_store_root(settings)
        if store is not None and store.exists():
            for path in sorted(p for p in store.rglob("*") if p.is_file()):
                relative = f"{FILES}/{path.relative_to(store).as_posix()}"
                members.append(
                    {"path": relative, "bytes": path.stat().st_size, "sha256": _sha256(path)}
                )
        manifest = {
            "format": 1,
            "created_at": datetime.now(UTC).isoformat(),
            "nidaan_version": __version__,
            "migration": migration[0] if migration else None,
            "file_store": "local" if store is not None else "s3 (not in the archive)",
            "members": members,
            "row_counts": counts,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        plain = work / "backup.tar"
        with tarfile.open(plain, "w") as tar:
            tar.add(work / MANIFEST, MANIFEST)
            tar.add(dump, DUMP)
            if store is not None and store.exists():
                tar.add(store, FILES)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with plain.open("rb") as source, partial.open("wb") as target:
            encrypt_stream(key, source, target)
        partial.chmod(0o600)
        partial.replace(out)
    return manifest


# ---- restore --------------------------------------------------------------------------


@dataclass
class _Opened:
    root: Path
    manifest: dict[str, Any]


def _open_archive(settings: Settings, archive: Path, work: Path) -> _Opened:
    key = backup_key(settings)
    plain = work / "backup.tar"
    with archive.open("rb") as raw, plain.open("wb") as target:
        import io

        decrypt_stream(key, io.BufferedReader(raw), target)  # type: ignore[arg-type]
    root = work / "content"
    with tarfile.open(plain) as tar:
        tar.extractall(root, filter="data")
    plain.unlink()
    manifest = json.loads((root / MANIFEST).read_text())
    for member in manifest["members"]:
        path = root / member["path"]
        if not path.is_file() or _sha256(path) != member["sha256"]:
            raise BackupError(f"{member['path']} does not match its checksum in the manifest")
    return _Opened(root, manifest)


def check_archive(settings: Settings, archive: Path) -> dict[str, Any]:
    """Decrypt and check every member of ``archive``; its manifest (nothing is restored)."""
    with tempfile.TemporaryDirectory(prefix="nidaan-restore-") as scratch:
        return _open_archive(settings, archive, Path(scratch)).manifest


def restore_backup(settings: Settings, archive: Path, owner_url: str) -> RestoreReport:
    """Restore ``archive`` into the empty database at ``owner_url`` and the file store."""
    conninfo = _libpq(owner_url)
    with psycopg.connect(conninfo) as connection:
        tables = connection.execute(_TABLES).fetchall()
    if tables:
        raise BackupError(
            f"the target database is not empty ({len(tables)} tables); restore into a new one"
        )
    with tempfile.TemporaryDirectory(prefix="nidaan-restore-") as scratch:
        opened = _open_archive(settings, archive, Path(scratch))
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [
                _pg_tool("pg_restore"),
                "--no-owner",
                "--exit-on-error",
                "--single-transaction",
                f"--dbname={conninfo}",
                str(opened.root / DUMP),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BackupError(f"pg_restore failed: {result.stderr.strip()[:500]}")
        restored_files = 0
        store = _local_store_root(settings)
        source = opened.root / FILES
        if store is not None and source.exists():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                destination = store / path.relative_to(source)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
                restored_files += 1
        with psycopg.connect(conninfo) as connection:
            counts = _row_counts(connection)
        expected: dict[str, int] = opened.manifest["row_counts"]
        mismatched = {
            table: (count, counts.get(table, -1))
            for table, count in expected.items()
            if counts.get(table, -1) != count
        }
        return RestoreReport(opened.manifest, counts, mismatched, restored_files)


def iter_summary(manifest: dict[str, Any]) -> Iterator[str]:
    """Human lines describing a backup's manifest."""
    members = manifest["members"]
    yield f"created {manifest['created_at']} by Nidaan {manifest['nidaan_version']}"
    yield f"schema at migration {manifest['migration']}"
    yield f"{len(manifest['row_counts'])} tables, {sum(manifest['row_counts'].values())} rows"
    yield f"{len(members) - 1} stored file(s); file store: {manifest['file_store']}"
