"""Migration 0013: models and schema agree, and reports stored before it get file records."""

from __future__ import annotations

import hashlib
import uuid

import psycopg
import pytest

from nidaan import migrate
from nidaan.config import Settings, get_settings, reset_settings
from nidaan.kit import db

OUR_TABLES = ("'files'", "'reports'", "'notification")


def test_models_match_migration(settings: Settings) -> None:
    differences = [
        d for d in migrate.schema_differences(settings) if any(t in repr(d) for t in OUR_TABLES)
    ]
    assert differences == []


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def database_at_0009(scratch_database: str, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The scratch database is migrated (and used) as its owner, not the shared test database.
    monkeypatch.setenv("NIDAAN_DATABASE_URL", scratch_database)
    monkeypatch.setenv("NIDAAN_MIGRATION_DATABASE_URL", scratch_database)
    reset_settings()
    db.configure(scratch_database)
    migrate.upgrade(get_settings(), "0009_sync")
    yield scratch_database
    monkeypatch.undo()
    reset_settings()
    db.configure(database_url)


def test_existing_reports_move_onto_file_records(database_at_0009: str) -> None:
    organisation, patient, order, report = (uuid.uuid4() for _ in range(4))
    key = f"reports/{organisation}/{order}/{report}--{'f' * 32}.pdf"
    sha = hashlib.sha256(b"%PDF old").hexdigest()
    with psycopg.connect(_libpq(database_at_0009), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO organisations (id, name, slug) VALUES (%s, 'Old Lab', %s)",
            (organisation, f"old-{organisation.hex[:8]}"),
        )
        branch = conn.execute(
            "INSERT INTO branches (id, organisation_id, code, name, kind) "
            "VALUES (gen_random_uuid(), %s, 'CL', 'Lab', 'central_lab') RETURNING id",
            (organisation,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO patients (id, organisation_id, mrn, full_name, name_normalized, sex) "
            "VALUES (%s, %s, 'M1', 'Old Patient', 'old patient', 'female')",
            (patient, organisation),
        )
        conn.execute(
            "INSERT INTO orders (id, organisation_id, order_number, patient_id, branch_id, "
            "status, priority) VALUES (%s, %s, 'ORD-1', %s, %s, 'reported', 'routine')",
            (order, organisation, patient, branch),
        )
        conn.execute(
            "INSERT INTO reports (id, organisation_id, order_id, report_number, report_version, "
            "is_current, amended, language, storage_key, sha256, page_count, size_bytes, "
            "verification_code, created_at) VALUES (%s, %s, %s, 'RPT-2026-000001', 1, true, "
            "false, 'en', %s, %s, 1, 8, 'code-old', now())",
            (report, organisation, order, key, sha),
        )
    migrate.upgrade(get_settings())
    with psycopg.connect(_libpq(database_at_0009)) as conn:
        row = conn.execute(
            "SELECT f.purpose, f.document_id, f.version, f.is_current, f.filename, "
            "f.storage_key, f.sha256, f.patient_id, f.subject_id, r.source_fingerprint "
            "FROM reports r JOIN files f ON f.id = r.file_id WHERE r.id = %s",
            (report,),
        ).fetchone()
    assert row == (
        "report",
        order,
        1,
        True,
        "RPT-2026-000001.pdf",
        key,
        sha,
        patient,
        report,
        "f" * 32,
    )
