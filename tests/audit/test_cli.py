"""``nidaan audit verify`` in its own process against the test database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from nidaan.audit.schemas import SYSTEM_ACTOR
from nidaan.audit.service import audit_service
from nidaan.tenancy.models import Organisation
from tests.audit.conftest import CommittingSession, superuser_execute

# The real `nidaan` entry point in its own process: it gets its own engine and event loop,
# exactly as an operator running `nidaan audit verify` would.
_RUN = "import sys; from nidaan.cli import app; app(sys.argv[1:], prog_name='nidaan')"


async def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NIDAAN_DATABASE_URL": database_url}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _RUN, "audit", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_verify_command_exits_0_then_1_after_tampering(
    committing_session: CommittingSession,
    committed_organisation: Organisation,
    superuser_conninfo: str,
    database_url: str,
) -> None:
    async with committing_session() as session:
        entries = [
            await audit_service.record(
                session,
                organisation_id=committed_organisation.id,
                actor=SYSTEM_ACTOR,
                action="report.signed",
                entity_type="report",
                entity_id=f"r-{i}",
                after={"status": "signed"},
            )
            for i in range(3)
        ]

    ok = await run_cli(database_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: ")
    assert "verified" in ok.stdout

    by_slug = await run_cli(database_url, "--organisation", committed_organisation.slug)
    assert by_slug.returncode == 0, by_slug.stderr
    assert "OK: 3 audit entries in 1 organisation(s) verified." in by_slug.stdout

    await superuser_execute(
        superuser_conninfo,
        "UPDATE audit_log SET actor_label = 'someone else' WHERE id = %s",
        params=(str(entries[1].id),),
    )
    broken = await run_cli(database_url)
    assert broken.returncode == 1
    assert "BROKEN" in broken.stderr
    assert str(committed_organisation.id) in broken.stderr
    assert "seq:          2" in broken.stderr
    assert str(entries[1].id) in broken.stderr
    assert "hash mismatch: content changed" in broken.stderr

    by_id = await run_cli(database_url, "--organisation", str(committed_organisation.id))
    assert by_id.returncode == 1


async def test_verify_command_rejects_unknown_organisation(database_url: str) -> None:
    result = await run_cli(database_url, "--organisation", "no-such-lab")
    assert result.returncode == 2
    assert "No organisation" in result.stderr
