"""One suite, both stores: round trips, streaming, failed streams, presigned links."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from nidaan.kit.storage import ObjectNotFoundError, ObjectStore
from tests.files.conftest import pdf_bytes


async def fetch(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """GET a presigned URL: S3's through the network, the local store's through the app."""
    parts = urlsplit(url)
    if "X-Amz-Signature" in parts.query:
        async with httpx.AsyncClient() as outside:
            return await outside.get(url)
    return await client.get(f"{parts.path}?{parts.query}")


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_round_trip_exists_delete(object_store: ObjectStore) -> None:
    key = "org/attachment/round-trip"
    data = pdf_bytes()
    assert not await object_store.exists(key)
    stored = await object_store.put(key, data, "application/pdf", filename="a.pdf")
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await object_store.exists(key)
    assert await object_store.get(key) == data
    assert b"".join([c async for c in object_store.iter_bytes(key)]) == data
    await object_store.delete(key)
    await object_store.delete(key)  # twice is fine
    assert not await object_store.exists(key)
    with pytest.raises(ObjectNotFoundError):
        await object_store.get(key)
    with pytest.raises(ObjectNotFoundError):
        await anext(aiter(object_store.iter_bytes(key)))


async def test_streamed_put_spans_several_parts(object_store: ObjectStore) -> None:
    # 12 MiB in 64 KiB chunks: three multipart parts on S3, one temp file locally.
    data = os.urandom(12 * 1024 * 1024)
    stored = await object_store.put_stream(
        "org/attachment/big", chunks_of(data, 64 * 1024), "application/pdf", filename="big.pdf"
    )
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(await object_store.get("org/attachment/big")).hexdigest() == (
        stored.sha256
    )


async def test_a_failing_stream_leaves_nothing(object_store: ObjectStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"z" * (3 * 1024 * 1024)
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        await object_store.put_stream("org/attachment/broken", broken(), "application/pdf")
    assert not await object_store.exists("org/attachment/broken")


async def test_presigned_link_downloads_with_its_name(
    object_store: ObjectStore, client: httpx.AsyncClient
) -> None:
    data = pdf_bytes()
    await object_store.put("org/report/linked", data, "application/pdf", filename="RPT-1.pdf")
    url = object_store.presigned_url("org/report/linked", 120)
    query = parse_qs(urlsplit(url).query)
    if object_store.kind == "s3":
        assert query["X-Amz-Expires"] == ["120"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    response = await fetch(client, url)
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["content-type"] == "application/pdf"
    assert 'filename="RPT-1.pdf"' in response.headers["content-disposition"]
    assert response.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize("seconds", [0, -5, 7 * 24 * 3600 + 1])
def test_presigned_expiry_is_bounded(object_store: ObjectStore, seconds: int) -> None:
    with pytest.raises(ValueError):
        object_store.presigned_url("org/report/x", seconds)


async def test_unsafe_keys_are_refused_by_both(object_store: ObjectStore) -> None:
    for key in ("../escape", "/abs", "a//b", ".hidden"):
        with pytest.raises(ValueError):
            await object_store.put(key, b"x", "text/plain")
