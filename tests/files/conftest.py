"""Files tests run the same suite on the local store and on an S3 server on loopback (moto's
server mode, a real HTTP S3 API in a thread)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from nidaan.config import Settings
from nidaan.kit.s3_storage import S3ObjectStore
from nidaan.kit.storage import (
    LocalFileStore,
    ObjectStore,
    public_base_url,
    set_object_store,
    url_signing_key,
)

BUCKET = "nidaan-files-test"
REGION = "ap-south-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on an ephemeral loopback port, with the test bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name=REGION,
    ).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield endpoint
    server.stop()


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name=REGION,
    )


def make_s3_store(endpoint: str, settings: Settings, prefix: str) -> S3ObjectStore:
    with_credentials = settings.model_copy(
        update={
            "s3_access_key_id": "test-key",
            "s3_secret_access_key": SecretStr("test-secret"),
        }
    )
    return S3ObjectStore.from_settings(
        BUCKET, {"endpoint": endpoint, "region": REGION, "prefix": prefix}, with_credentials
    )


@pytest.fixture(params=["local", "s3"])
def object_store(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[ObjectStore]:
    """Each test runs once per store; the store is the installation's for its duration."""
    store: ObjectStore
    if request.param == "local":
        store = LocalFileStore(
            tmp_path / "files",
            signing_key=url_signing_key(settings),
            base_url=public_base_url(settings),
        )
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        store = make_s3_store(endpoint, settings, prefix=tmp_path.name)
    previous = set_object_store(store)
    yield store
    set_object_store(previous)


# ---- sample files -------------------------------------------------------------------------


def pdf_bytes(pages: int = 1, padding: int = 0) -> bytes:
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    for page in range(pages):
        canvas.drawString(72, 720, f"Prescription page {page + 1}")
        canvas.showPage()
    canvas.save()
    data = buffer.getvalue()
    # A PDF comment after %%EOF keeps it a PDF while making it as large as a test needs.
    return data + (b"\n%" + b"x" * (padding - 2) if padding > 2 else b"")


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 16), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 16), (30, 30, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def dicom_bytes() -> bytes:
    return b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"\x00" * 200
