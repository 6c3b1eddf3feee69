"""Object storage port: report PDFs, labels, uploads and other files, by key.

``ObjectStore`` is the interface every store implements; ``LocalFileStore`` keeps objects
as files under ``<data_dir>/files`` (the default) and ``nidaan.kit.s3_storage.S3ObjectStore``
keeps them in an S3-compatible bucket (MinIO, AWS). ``NIDAAN_STORAGE_URL`` picks one
(``file:///var/lib/nidaan/files`` or ``s3://bucket?endpoint=...&region=...``).
Keys are relative, slash-separated paths of safe characters; anything that could leave the
root (``..``, absolute paths, backslashes, dot-files) is refused before the filesystem is
touched. Writes are atomic (temporary file + ``os.replace``), so a reader never sees half a
PDF. ``presigned_url`` gives an expiring HMAC-signed link, like S3's presigned GET: anyone
holding it may download the object until it expires, so treat it as a secret.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from nidaan.config import ConfigurationError, Settings

#: Longest key accepted (the ``storage_key`` columns are 300 characters).
MAX_KEY_LENGTH = 300
#: Longest validity of a signed URL: 7 days, as S3's SigV4 presigned URLs.
MAX_URL_EXPIRY_SECONDS = 7 * 24 * 3600
#: Path under which the API serves signed local files.
FILES_URL_PREFIX = "/files"

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_KEY = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_META_DIR = ".meta"


class StorageError(Exception):
    """Base of the object store's errors."""


class InvalidKeyError(StorageError, ValueError):
    """The key is not a safe relative path (traversal, absolute, odd characters, too long)."""


class ObjectNotFoundError(StorageError, LookupError):
    """No object is stored under the key."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    content_type: str


#: Bytes read or written per step when streaming.
CHUNK_SIZE = 256 * 1024


class ObjectStore(Protocol):
    """What the rest of Nidaan needs from a file store (local disk or S3-compatible)."""

    #: "local" or "s3", for messages and metrics.
    kind: str

    async def put(
        self, key: str, data: bytes, content_type: str, *, filename: str | None = None
    ) -> StoredObject: ...

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        content_type: str,
        *,
        filename: str | None = None,
    ) -> StoredObject:
        """Store what ``chunks`` yields without holding it all in memory.

        If ``chunks`` raises, nothing is left under ``key`` and the error propagates.
        """
        ...

    async def get(self, key: str) -> bytes: ...

    def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks (``ObjectNotFoundError`` on the first step if absent)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    def presigned_url(self, key: str, expires_in: int) -> str: ...


def content_disposition(filename: str | None) -> str:
    """``attachment`` with a safe ASCII filename and the RFC 6266 UTF-8 form."""
    if not filename:
        return "attachment"
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
    ascii_name = re.sub(r'[\x00-\x1f"\\;]', "_", ascii_name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def check_expiry(expires_in: int) -> int:
    """``expires_in`` if it is 1 s to 7 days (S3's bounds), else ``ValueError``."""
    if not 1 <= expires_in <= MAX_URL_EXPIRY_SECONDS:
        raise ValueError(f"expires_in must be 1 to {MAX_URL_EXPIRY_SECONDS} seconds")
    return expires_in


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ``InvalidKeyError``."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError("An object key must be 1 to 300 characters.")
    if not _KEY.fullmatch(key) or any(part in {".", ".."} for part in key.split("/")):
        raise InvalidKeyError(
            "An object key is slash-separated segments of letters, digits, '.', '_' and '-', "
            "each starting with a letter or digit."
        )
    return key


class LocalFileStore:
    """Objects as files under ``root``; content type kept in a small sidecar file."""

    kind = "local"

    def __init__(
        self, root: Path, *, signing_key: bytes, base_url: str = "", url_prefix: str = ""
    ) -> None:
        if len(signing_key) < 32:
            raise ValueError("The URL signing key must be at least 32 bytes")
        self.root = Path(root).resolve()
        self._signing_key = signing_key
        self._base_url = base_url.rstrip("/")
        self._url_prefix = url_prefix or FILES_URL_PREFIX

    # -- paths -------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        # Belt and braces against symlinks planted under the root.
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKeyError("The object key resolves outside the store.")
        return path

    def _meta_path(self, key: str) -> Path:
        return self.root / _META_DIR / f"{validate_key(key)}.json"

    # -- the port ----------------------------------------------------------------------

    async def put(
        self, key: str, data: bytes, content_type: str, *, filename: str | None = None
    ) -> StoredObject:
        path = self._path(key)
        stored = StoredObject(
            key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=content_type,
        )
        await asyncio.to_thread(_atomic_write, self._meta_path(key), self._meta(stored, filename))
        await asyncio.to_thread(_atomic_write, path, data)
        return stored

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        content_type: str,
        *,
        filename: str | None = None,
    ) -> StoredObject:
        path = self._path(key)
        digest = hashlib.sha256()
        size = 0
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                await asyncio.to_thread(_flush_and_sync, handle)
            stored = StoredObject(key, size, digest.hexdigest(), content_type)
            await asyncio.to_thread(
                _atomic_write, self._meta_path(key), self._meta(stored, filename)
            )
            await asyncio.to_thread(os.replace, temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return stored

    @staticmethod
    def _meta(stored: StoredObject, filename: str | None) -> bytes:
        return json.dumps(
            {"content_type": stored.content_type, "sha256": stored.sha256, "filename": filename}
        ).encode()

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"No object {key!r}") from None

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"No object {key!r}") from None
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error (as S3)."""
        path = self._path(key)
        for target in (path, self._meta_path(key)):
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(target.unlink)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def content_type(self, key: str) -> str:
        """The content type given at ``put`` (``application/octet-stream`` if unknown)."""
        try:
            raw = await asyncio.to_thread(self._meta_path(key).read_bytes)
            return str(json.loads(raw)["content_type"])
        except (FileNotFoundError, KeyError, ValueError):
            return "application/octet-stream"

    async def filename(self, key: str) -> str | None:
        """The download filename given at ``put``, if any."""
        try:
            raw = await asyncio.to_thread(self._meta_path(key).read_bytes)
            name = json.loads(raw).get("filename")
            return str(name) if name else None
        except (FileNotFoundError, ValueError):
            return None

    def presigned_url(self, key: str, expires_in: int) -> str:
        """A GET URL for ``key`` valid for ``expires_in`` seconds (1 s to 7 days)."""
        validate_key(key)
        expires = int(time.time()) + check_expiry(expires_in)
        query = urlencode({"expires": expires, "signature": self._signature(key, expires)})
        return f"{self._base_url}{self._url_prefix}/{quote(key)}?{query}"

    # -- signed URLs -------------------------------------------------------------------

    def verify_signature(
        self, key: str, expires: int, signature: str, *, now: float | None = None
    ) -> bool:
        """True when ``signature`` was made by this store for (key, expires) and is unexpired."""
        try:
            validate_key(key)
        except InvalidKeyError:
            return False
        current = time.time() if now is None else now
        if expires < current or expires > current + MAX_URL_EXPIRY_SECONDS:
            return False
        return hmac.compare_digest(signature, self._signature(key, expires))

    def _signature(self, key: str, expires: int) -> str:
        message = f"GET\n{key}\n{expires}".encode()
        digest = hmac.new(self._signing_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _flush_and_sync(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def url_signing_key(settings: Settings) -> bytes:
    """A key for signing file URLs, derived from the secret key (never the key itself)."""
    return hmac.new(
        settings.jwt_secret().encode(), b"nidaan.storage.signed-url.v1", hashlib.sha256
    ).digest()


def public_base_url(settings: Settings) -> str:
    """Where this installation is reachable (``NIDAAN_PUBLIC_BASE_URL``), no trailing slash."""
    configured = settings.public_base_url
    if configured:
        return str(configured).rstrip("/")
    return f"http://{settings.host}:{settings.port}"


_override: ObjectStore | None = None
_stores: dict[tuple[str, str, str], ObjectStore] = {}


def set_object_store(store: ObjectStore | None) -> ObjectStore | None:
    """Use ``store`` for every ``get_object_store`` call (tests); None restores the setting."""
    global _override
    previous, _override = _override, store
    return previous


def get_object_store(settings: Settings) -> ObjectStore:
    """The installation's object store, from ``NIDAAN_STORAGE_URL`` (default: local files
    under ``<data_dir>/files``)."""
    if _override is not None:
        return _override
    url = settings.storage_url or (settings.data_dir / "files").as_uri()
    cache_key = (url, public_base_url(settings), str(settings.data_dir))
    store = _stores.get(cache_key)
    if store is None:
        store = _stores[cache_key] = open_object_store(url, settings)
    return store


def open_object_store(url: str, settings: Settings) -> ObjectStore:
    """A store for ``file:///path`` or ``s3://bucket?endpoint=&region=&prefix=``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError("NIDAAN_STORAGE_URL file:// URLs take an absolute path")
        return LocalFileStore(
            Path(unquote(parts.path)),
            signing_key=url_signing_key(settings),
            base_url=public_base_url(settings),
        )
    if parts.scheme == "s3":
        from nidaan.kit.s3_storage import S3ObjectStore

        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if not parts.netloc:
            raise ConfigurationError("NIDAAN_STORAGE_URL s3:// URLs name a bucket: s3://bucket")
        return S3ObjectStore.from_settings(parts.netloc, options, settings)
    raise ConfigurationError(
        "NIDAAN_STORAGE_URL must start with file:// or s3:// (e.g. s3://reports?"
        "endpoint=http://127.0.0.1:9000&region=ap-south-1)"
    )
