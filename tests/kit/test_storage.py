"""Local object store: safe keys, atomic round trips, signed expiring URLs."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from nidaan.kit.storage import (
    InvalidKeyError,
    LocalFileStore,
    ObjectNotFoundError,
    validate_key,
)

KEY = b"k" * 32


@pytest.fixture
def store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "files", signing_key=KEY, base_url="https://lab.example")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../etc/passwd",
        "reports/../../secret",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "a\\b",
        ".hidden",
        "reports/.meta",
        "a/b/",
        "x" * 301,
        "with space.pdf",
        "nul\x00.pdf",
    ],
)
async def test_unsafe_keys_are_refused(store: LocalFileStore, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)
    with pytest.raises(InvalidKeyError):
        await store.put(key, b"x", "text/plain")
    with pytest.raises(InvalidKeyError):
        await store.get(key)


async def test_symlink_out_of_the_root_is_refused(store: LocalFileStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    store.root.mkdir(parents=True)
    (store.root / "link").symlink_to(outside)
    with pytest.raises(InvalidKeyError):
        await store.get("link/secret.txt")


async def test_round_trip_exists_and_delete(store: LocalFileStore) -> None:
    key = "reports/org/order/report.pdf"
    assert not await store.exists(key)
    stored = await store.put(key, b"%PDF-1.7 data", "application/pdf")
    assert stored.size == 13
    assert len(stored.sha256) == 64
    assert await store.exists(key)
    assert await store.get(key) == b"%PDF-1.7 data"
    assert await store.content_type(key) == "application/pdf"
    await store.put(key, b"%PDF-1.7 replaced", "application/pdf")
    assert await store.get(key) == b"%PDF-1.7 replaced"
    # Atomic writes leave no temporary files behind.
    assert [p.name for p in (store.root / "reports/org/order").iterdir()] == ["report.pdf"]
    await store.delete(key)
    await store.delete(key)  # deleting twice is fine
    assert not await store.exists(key)
    with pytest.raises(ObjectNotFoundError):
        await store.get(key)


def test_signed_url_verifies_until_it_expires(store: LocalFileStore) -> None:
    url = store.presigned_url("reports/a b.pdf".replace(" ", "-"), expires_in=60)
    parts = urlsplit(url)
    assert url.startswith("https://lab.example/files/reports/a-b.pdf?")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    key = unquote(parts.path.removeprefix("/files/"))
    expires, signature = int(query["expires"]), query["signature"]
    assert store.verify_signature(key, expires, signature)
    assert not store.verify_signature(key, expires, signature, now=expires + 1)
    assert not store.verify_signature(key, expires + 1, signature)  # tampered expiry
    assert not store.verify_signature("reports/other.pdf", expires, signature)
    flipped = "B" if signature.endswith("A") else "A"  # always a different last character
    assert not store.verify_signature(key, expires, signature[:-1] + flipped)
    other = LocalFileStore(store.root, signing_key=b"z" * 32)
    assert not other.verify_signature(key, expires, signature)


def test_signed_url_expiry_is_bounded(store: LocalFileStore) -> None:
    with pytest.raises(ValueError):
        store.presigned_url("a.pdf", expires_in=0)
    with pytest.raises(ValueError):
        store.presigned_url("a.pdf", expires_in=8 * 24 * 3600)
    far = int(time.time()) + 30 * 24 * 3600
    assert not store.verify_signature("a.pdf", far, store._signature("a.pdf", far))
    with pytest.raises(ValueError):
        LocalFileStore(store.root, signing_key=b"short")
