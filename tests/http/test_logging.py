"""Logs carry request ids and never secrets or personal identifiers."""

from __future__ import annotations

import io
import json
import logging

import httpx
import structlog

from nidaan.config import Settings
from nidaan.logging import configure_logging, scrub_text
from nidaan.tenancy.models import Organisation
from tests.fixtures.objects import TEST_PASSWORD, create_user


def test_scrub_masks_mobiles_aadhaar_bearer_tokens_and_api_keys() -> None:
    text = (
        "call +91 98765 43210 or 9876543210, aadhaar 2345 6789 0123, "
        "Authorization: Bearer eyJhbGciOi.abc.def key nid_0123456789ab_SECRETSECRET"
    )
    scrubbed = scrub_text(text)
    for leaked in ("98765", "9876543210", "6789", "eyJhbGciOi", "SECRETSECRET"):
        assert leaked not in scrubbed
    assert (
        scrub_text("sample CC1-20261126-0007 took 12 ms") == "sample CC1-20261126-0007 took 12 ms"
    )


async def test_json_log_lines_have_request_id_and_no_secrets(
    client: httpx.AsyncClient,
    session,
    organisation: Organisation,
    settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    user = await create_user(session, organisation)
    configure_logging(settings.model_copy(update={"log_json": True}))
    stream = io.StringIO()
    root = logging.getLogger()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        await client.post(
            "/api/v1/auth/token",
            data={"username": user.email, "password": TEST_PASSWORD},
            headers={"X-Request-ID": "log-test-1"},
        )
        structlog.get_logger("test").info(
            "probe",
            password=TEST_PASSWORD,
            mobile="9876543210",
            note="patient 98765 43210",
            token="abc",
        )
    finally:
        configure_logging(settings)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    request_line = next(line for line in lines if line["event"] == "request")
    assert request_line["request_id"] == "log-test-1"
    probe = next(line for line in lines if line["event"] == "probe")
    assert probe["password"] == probe["mobile"] == probe["token"] == "[redacted]"
    assert "98765" not in probe["note"]
    assert TEST_PASSWORD not in stream.getvalue()


_EMIT = (
    "import logging, structlog;"
    "from nidaan.config import Settings;"
    "from nidaan.logging import configure_logging;"
    "configure_logging(Settings(log_json=False));"
    "structlog.get_logger('nidaan.demo').warning('listener_failed', port=5100);"
    "logging.getLogger('uvicorn.error').error('plain stdlib line')"
)


def test_console_logs_have_colour_on_a_terminal_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import pty
    import subprocess
    import sys

    with (tmp_path / "nidaan.log").open("w") as log_file:
        subprocess.run([sys.executable, "-c", _EMIT], stderr=log_file, check=True)
    written = (tmp_path / "nidaan.log").read_text()
    assert "listener_failed" in written
    assert "plain stdlib line" in written
    assert "\x1b[" not in written  # no ANSI escape codes in a file

    piped = subprocess.run([sys.executable, "-c", _EMIT], capture_output=True, text=True)
    assert "listener_failed" in piped.stderr
    assert "\x1b[" not in piped.stderr

    main, secondary = pty.openpty()
    try:
        subprocess.run([sys.executable, "-c", _EMIT], stderr=secondary, check=True)
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert b"\x1b[" in shown  # a person at a terminal still gets colour
