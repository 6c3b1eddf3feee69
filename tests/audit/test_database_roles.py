"""Finding 2(a): the application connects as a role that cannot switch the audit triggers
off (not a superuser, not the owner); a migration role owns the schema. Embedded too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from nidaan import migrate
from nidaan.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _app_conninfo(settings: Settings) -> str:
    from nidaan.kit.db import database_url, libpq_conninfo

    return libpq_conninfo(database_url(settings))


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner"),
        ("SET session_replication_role = replica", "permission denied"),
        ("UPDATE audit_log SET action = 'forged'", "permission denied for table audit_log"),
        ("DELETE FROM audit_log", "permission denied for table audit_log"),
        ("TRUNCATE audit_log", "permission denied for table audit_log"),
        ("DELETE FROM audit_chain_heads", "permission denied for table audit_chain_heads"),
        ("DROP TABLE audit_log", "must be owner"),
        ("ALTER FUNCTION audit_log_append_only() OWNER TO CURRENT_USER", "must be owner"),
        ("UPDATE alembic_version SET version_num = 'x'", "permission denied"),
    ],
)
def test_the_application_role_cannot_disable_or_bypass_the_audit_triggers(
    settings: Settings, statement: str, refusal: str
) -> None:
    with (
        psycopg.connect(_app_conninfo(settings)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match=refusal),
    ):
        conn.execute(statement)


def test_the_application_role_is_no_superuser_and_owns_nothing(settings: Settings) -> None:
    with psycopg.connect(_app_conninfo(settings)) as conn:
        superuser, owned = conn.execute(
            "SELECT rolsuper, (SELECT count(*) FROM pg_class c WHERE pg_has_role("
            "current_user, c.relowner, 'USAGE') AND c.relnamespace = 'public'::regnamespace) "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchone()  # type: ignore[misc]
    assert (superuser, owned) == (False, 0)
    assert migrate.database_role_problems(settings) == []


def test_even_the_owner_meets_the_append_only_trigger(superuser_conninfo: str) -> None:
    with psycopg.connect(superuser_conninfo) as conn:
        organisation = conn.execute(
            "INSERT INTO organisations (id, name, slug) VALUES (gen_random_uuid(), 'T', "
            "'t-' || substr(md5(random()::text), 1, 12)) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO audit_log (id, organisation_id, occurred_at, actor_kind, actor_label, "
            "action, entity_type, entity_id, changes) VALUES (gen_random_uuid(), %s, now(), "
            "'system', 'system', 'x.done', 'x', '1', '{}')",
            (organisation,),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(
                "UPDATE audit_log SET action = 'forged' WHERE organisation_id = %s", (organisation,)
            )
        conn.rollback()


def test_a_privileged_application_role_is_named_as_a_problem(
    settings: Settings, superuser_conninfo: str
) -> None:
    from nidaan.kit import db

    privileged = settings.model_copy(update={"database_url": superuser_conninfo})
    previous = db.database_url(settings)
    db.configure(superuser_conninfo.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        problems = migrate.database_role_problems(privileged)
    finally:
        db.configure(previous)
    assert problems == ["the application connects to PostgreSQL as a superuser"]


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root, pgserver runs PostgreSQL as another user, and
    # every pytest session on the machine resets /tmp/pytest-of-root to mode 0700.
    (ROOT / "var").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="roles-", dir=ROOT / "var"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


PROBE = """
import json
from sqlalchemy import create_engine, text
from nidaan.config import get_settings
from nidaan.kit.db import database_url
with create_engine(database_url(get_settings())).connect() as c:
    print(json.dumps(list(c.execute(text(
        "SELECT current_user, r.rolsuper, pg_get_userbyid(t.relowner) "
        "FROM pg_roles r, pg_class t WHERE r.rolname = current_user "
        "AND t.oid = 'audit_log'::regclass")).one())))
"""


def test_embedded_mode_connects_as_the_unprivileged_role(embedded_data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIDAAN_")}
    env.update(NIDAAN_MODE="test", NIDAAN_DATA_DIR=str(embedded_data_dir))
    nidaan = str(Path(sys.executable).parent / "nidaan")
    upgraded = subprocess.run(
        [nidaan, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=300
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    probed = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert probed.returncode == 0, probed.stderr
    role, superuser, owner = json.loads(probed.stdout.strip().splitlines()[-1])
    assert (role, superuser, owner) == ("nidaan_app", False, "postgres")
