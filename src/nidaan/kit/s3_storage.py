"""S3-compatible object store (MinIO, AWS S3) on ``obstore``.

Selected by ``NIDAAN_STORAGE_URL=s3://bucket?endpoint=http://127.0.0.1:9000&region=ap-south-1``
with the credentials in ``NIDAAN_S3_ACCESS_KEY_ID`` / ``NIDAAN_S3_SECRET_ACCESS_KEY``
(or the usual AWS environment/instance credentials when those are unset). Optional
query parameters: ``prefix`` (keys live under it) and ``virtual_hosted=true`` (bucket in
the host name, as AWS prefers; the default path style is what MinIO expects).

Streaming writes are multipart uploads of ``PART_SIZE`` parts with at most
``PART_CONCURRENCY`` in flight, so a large upload holds about ten megabytes in memory at
most. Presigned URLs are S3's own SigV4 query signatures (at most seven days); the object's
``Content-Disposition`` is set when it is written, so a download through a presigned URL
gets the right filename.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from typing import Any

import obstore
from obstore.store import S3Store

from nidaan.config import ConfigurationError, Settings
from nidaan.kit.storage import (
    ObjectNotFoundError,
    StoredObject,
    check_expiry,
    content_disposition,
    validate_key,
)

#: S3's smallest multipart part (except the last) is 5 MiB.
PART_SIZE = 5 * 1024 * 1024
PART_CONCURRENCY = 2


class S3ObjectStore:
    """Objects in one bucket (optionally under a prefix) of an S3-compatible server."""

    kind = "s3"

    def __init__(self, store: S3Store, *, bucket: str, prefix: str = "") -> None:
        self._store = store
        self.bucket = bucket
        self._prefix = prefix.strip("/")

    @classmethod
    def from_settings(
        cls, bucket: str, options: dict[str, str], settings: Settings
    ) -> S3ObjectStore:
        """Build the store from the URL's query ``options`` and the S3 credential settings."""
        unknown = set(options) - {"endpoint", "region", "prefix", "virtual_hosted"}
        if unknown:
            raise ConfigurationError(
                f"NIDAAN_STORAGE_URL has unknown s3 options: {', '.join(sorted(unknown))}"
            )
        config: dict[str, Any] = {
            "region": options.get("region") or "us-east-1",
            "virtual_hosted_style_request": options.get("virtual_hosted", "") == "true",
        }
        endpoint = options.get("endpoint")
        if endpoint:
            config["endpoint"] = endpoint
        if settings.s3_access_key_id and settings.s3_secret_access_key:
            config["access_key_id"] = settings.s3_access_key_id
            config["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
        client_options = {"allow_http": True} if (endpoint or "").startswith("http://") else {}
        store = S3Store(bucket, config=config, client_options=client_options)  # type: ignore[arg-type]
        return cls(store, bucket=bucket, prefix=options.get("prefix", ""))

    def _path(self, key: str) -> str:
        validate_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    async def put(
        self, key: str, data: bytes, content_type: str, *, filename: str | None = None
    ) -> StoredObject:
        await obstore.put_async(
            self._store,
            self._path(key),
            data,
            attributes=_attributes(content_type, filename),
            use_multipart=False,
        )
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest(), content_type)

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

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        try:
            await obstore.put_async(
                self._store,
                path,
                counted(),
                attributes=_attributes(content_type, filename),
                chunk_size=PART_SIZE,
                max_concurrency=PART_CONCURRENCY,
            )
        except BaseException:
            # obstore aborts the multipart upload; make sure no object is left either.
            await self._delete_quietly(path)
            raise
        return StoredObject(key, size, digest.hexdigest(), content_type)

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self._store, self._path(key))
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            raise ObjectNotFoundError(f"No object {key!r}") from None

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        try:
            result = await obstore.get_async(self._store, self._path(key))
        except FileNotFoundError:
            raise ObjectNotFoundError(f"No object {key!r}") from None
        async for chunk in result.stream():
            yield bytes(chunk)

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        await self._delete_quietly(self._path(key))

    async def _delete_quietly(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, path)

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self._store, self._path(key))
        except FileNotFoundError:
            return False
        return True

    def presigned_url(self, key: str, expires_in: int) -> str:
        """S3's SigV4 presigned GET for ``key``, valid ``expires_in`` seconds (1 s to 7 days)."""
        expiry = timedelta(seconds=check_expiry(expires_in))
        return str(obstore.sign(self._store, "GET", self._path(key), expiry))


def _attributes(content_type: str, filename: str | None) -> dict[str, str]:
    return {"Content-Type": content_type, "Content-Disposition": content_disposition(filename)}
