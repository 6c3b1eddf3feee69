"""Uploads stream: a 50 MB file never sits in memory, and however the body is cut into
chunks the multipart reader gives the same fields and bytes."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from nidaan.config import Settings
from nidaan.files.upload import MultipartFileReader
from nidaan.kit.storage import LocalFileStore, public_base_url, set_object_store, url_signing_key
from nidaan.tenancy.models import Organisation
from tests.files.conftest import pdf_bytes
from tests.fixtures.objects import bearer_for, create_user

BOUNDARY = "----nidaan-test-boundary-7MA4YWxkTrZu0gW"
MB = 1024 * 1024


def envelope(fields: dict[str, str], filename: str) -> tuple[bytes, bytes]:
    head = b""
    for name, value in fields.items():
        head += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/pdf\r\n\r\n'
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_a_50_mb_upload_is_not_held_in_memory(
    client: httpx.AsyncClient,
    session: AsyncSession,
    organisation: Organisation,
    settings: Settings,
    tmp_path: Path,
) -> None:
    store = LocalFileStore(
        tmp_path / "files",
        signing_key=url_signing_key(settings),
        base_url=public_base_url(settings),
    )
    previous = set_object_store(store)
    headers = bearer_for(await create_user(session, organisation, roles=("front_desk",)))
    start = pdf_bytes()
    size = 49 * MB
    block = b"%" + b"0123456789abcdef" * (64 * 1024 // 16 - 1) + b"\n"
    digest = hashlib.sha256(start)
    remaining = size - len(start)
    while remaining > 0:
        digest.update(block[: min(remaining, len(block))])
        remaining -= len(block)
    head, tail = envelope({"purpose": "attachment"}, "scan.pdf")

    async def body() -> AsyncIterator[bytes]:
        yield head + start
        left = size - len(start)
        while left > 0:
            chunk = block[: min(left, len(block))]
            left -= len(chunk)
            yield chunk
        yield tail

    tracemalloc.start()
    try:
        response = await client.post(
            "/api/v1/files",
            content=body(),
            headers={**headers, "content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        set_object_store(previous)
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == size
    assert response.json()["sha256"] == digest.hexdigest()
    # The whole file would be 49 MB; streaming keeps a few chunks at a time.
    assert peak < 8 * MB, f"peak traced memory {peak / MB:.1f} MB"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    content=st.binary(min_size=0, max_size=3000),
    description=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40).map(
        str.strip
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=40),
)
async def test_any_chunking_of_the_body_reads_the_same(
    content: bytes, description: str, cuts: list[int]
) -> None:
    head, tail = envelope({"purpose": "prescription", "description": description}, "a.pdf")
    raw = head + content + tail

    async def chunked() -> AsyncIterator[bytes]:
        position, index = 0, 0
        while position < len(raw):
            step = cuts[index % len(cuts)]
            yield raw[position : position + step]
            position += step
            index += 1

    reader = MultipartFileReader(f"multipart/form-data; boundary={BOUNDARY}", chunked())
    fields = await reader.read_fields()
    received = b"".join([chunk async for chunk in reader.file_chunks()])
    assert fields == {"purpose": "prescription", "description": description}
    assert reader.filename == "a.pdf"
    assert received == content


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nx\r\n'
        f"--{BOUNDARY}--\r\n".encode(),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        "truncated".encode(),
    ],
    ids=["empty", "no-file-part", "truncated"],
)
async def test_broken_bodies_are_refused(raw: bytes) -> None:
    from nidaan.files.errors import InvalidUpload

    async def once() -> AsyncIterator[bytes]:
        yield raw

    async def read_all() -> None:
        reader = MultipartFileReader(f"multipart/form-data; boundary={BOUNDARY}", once())
        await reader.read_fields()
        async for _ in reader.file_chunks():
            pass

    with pytest.raises(InvalidUpload):
        await read_all()
