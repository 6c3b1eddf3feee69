"""Typed settings, read once from the environment (prefix ``NIDAAN_``) and failing fast.

No other module reads ``os.environ``: everything configurable lives here.
"""

from __future__ import annotations

import enum
import json
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(enum.StrEnum):
    """How this installation runs; demo data and generated secrets are allowed only in demo/test."""

    DEMO = "demo"
    TEST = "test"
    PRODUCTION = "production"


DEMO_SECRETS_FILE = "demo-secrets.json"


class Settings(BaseSettings):
    """All configuration of one Nidaan process."""

    model_config = SettingsConfigDict(env_prefix="NIDAAN_", env_file=".env", extra="ignore")

    mode: Mode = Field(Mode.PRODUCTION, description="demo, test or production")
    data_dir: Path = Field(
        Path("var"), description="Where the embedded database, files and demo keys live"
    )
    database_url: str | None = Field(
        None, description="External PostgreSQL 15+ URL; unset means the embedded server"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = Field(
        None,
        description="Public URL of this installation, e.g. https://reports.lab.in; used in "
        "report QR codes and signed file links (default http://HOST:PORT)",
    )
    log_json: bool | None = Field(None, description="JSON logs; default on outside demo mode")
    log_level: str = "INFO"

    secret_key: SecretStr | None = Field(None, description="Signs access tokens (32+ chars)")
    encryption_keys: SecretStr | None = Field(
        None, description='JSON object of key id -> base64 32-byte key, e.g. {"k1": "..."}'
    )
    active_encryption_key: str | None = Field(None, description="Key id used for new values")
    blind_index_key: SecretStr | None = Field(None, description="Base64 key for searchable hashes")

    access_token_minutes: int = 15
    refresh_token_days: int = 14
    argon2_time_cost: int = Field(3, description="Argon2id passes (RFC 9106 second choice: 3)")
    argon2_memory_kib: int = Field(65536, description="Argon2id memory in KiB (64 MiB)")
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    idempotency_hours: int = 24
    worker_in_process: bool = Field(True, description="Run background jobs inside `nidaan serve`")
    sync_max_drift_seconds: int = Field(
        600, description="Sync: client clocks further ahead than this are clamped and flagged"
    )
    sync_tombstone_days: int = Field(
        45, ge=1, description="Sync: deletions are kept this long; older cursors reset"
    )

    # ---- security hardening (request limits, throttling, audit anchoring) ----
    max_json_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest JSON (or form) request body accepted"
    )
    max_graphql_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest GraphQL request body (sync batches)"
    )
    max_upload_body_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Largest file upload request body"
    )
    redis_url: str | None = Field(
        None,
        description="redis://host:6379/0 to share login throttling between API processes "
        "(default: counted inside each process)",
    )
    login_client_max_failures: int = Field(
        20, ge=1, description="Failed logins from one client address before it is locked out"
    )
    login_client_window_minutes: int = Field(
        15, ge=1, description="Window (and lock-out time) of the per-address login limit"
    )
    migration_database_url: str | None = Field(
        None,
        description="URL of the role that owns the schema and runs migrations (external "
        "PostgreSQL); NIDAAN_DATABASE_URL's role then only gets data privileges. Default: "
        "NIDAAN_DATABASE_URL itself",
    )
    audit_signing_key: SecretStr | None = Field(
        None,
        description="Base64 Ed25519 private key (32 bytes) signing audit checkpoints; keep it "
        "away from the database server",
    )
    audit_verify_keys: str | None = Field(
        None,
        description="Comma-separated base64 Ed25519 public keys also trusted for checkpoints "
        "(earlier keys after a rotation, or an outside auditor's copy)",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def is_production(self) -> bool:
        return self.mode is Mode.PRODUCTION

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.mode is Mode.PRODUCTION

    def jwt_secret(self) -> str:
        return _require(self.secret_key, "NIDAAN_SECRET_KEY")

    def encryption_keyring(self) -> tuple[str, dict[str, bytes]]:
        """Return (active key id, {key id: 32-byte key})."""
        raw = _require(self.encryption_keys, "NIDAAN_ENCRYPTION_KEYS")
        try:
            keys = {kid: urlsafe_b64decode(val) for kid, val in json.loads(raw).items()}
        except (ValueError, AttributeError) as exc:
            raise ConfigurationError(
                "NIDAAN_ENCRYPTION_KEYS must be a JSON object of key id -> base64 key"
            ) from exc
        if not keys or any(len(k) != 32 for k in keys.values()):
            raise ConfigurationError(
                "Every key in NIDAAN_ENCRYPTION_KEYS must be 32 bytes (base64)"
            )
        active = self.active_encryption_key or sorted(keys)[-1]
        if active not in keys:
            raise ConfigurationError(
                f"NIDAAN_ACTIVE_ENCRYPTION_KEY {active!r} is not a known key id"
            )
        return active, keys

    def audit_signing_seed(self) -> bytes:
        raw = _require(self.audit_signing_key, "NIDAAN_AUDIT_SIGNING_KEY")
        try:
            seed = urlsafe_b64decode(raw)
        except ValueError as exc:
            raise ConfigurationError("NIDAAN_AUDIT_SIGNING_KEY must be base64") from exc
        if len(seed) != 32:
            raise ConfigurationError("NIDAAN_AUDIT_SIGNING_KEY must decode to 32 bytes")
        return seed

    def audit_verify_key_texts(self) -> list[str]:
        return [k.strip() for k in (self.audit_verify_keys or "").split(",") if k.strip()]

    def blind_index_secret(self) -> bytes:
        raw = _require(self.blind_index_key, "NIDAAN_BLIND_INDEX_KEY")
        key = urlsafe_b64decode(raw)
        if len(key) < 32:
            raise ConfigurationError("NIDAAN_BLIND_INDEX_KEY must decode to at least 32 bytes")
        return key


class ConfigurationError(RuntimeError):
    """The configuration cannot work; the message says which setting to fix."""


def _require(value: SecretStr | None, name: str) -> str:
    if value is None or not value.get_secret_value():
        raise ConfigurationError(f"{name} is not set. Set it in the environment or .env file.")
    return value.get_secret_value()


def generate_secrets() -> dict[str, Any]:
    """Fresh random key material, in the shape of the settings above."""
    return {
        "secret_key": secrets.token_urlsafe(48),
        "encryption_keys": json.dumps({"k1": urlsafe_b64encode(secrets.token_bytes(32)).decode()}),
        "active_encryption_key": "k1",
        "blind_index_key": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "audit_signing_key": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }


def _load_or_create_demo_secrets(data_dir: Path) -> dict[str, Any]:
    path = data_dir / DEMO_SECRETS_FILE
    if path.exists():
        values = dict(json.loads(path.read_text()))
        missing = {k: v for k, v in generate_secrets().items() if k not in values}
        if missing:  # a key added by a newer version: generate it once, keep the others
            values.update(missing)
            path.write_text(json.dumps(values, indent=2))
        return values
    data_dir.mkdir(parents=True, exist_ok=True)
    values = generate_secrets()
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Load settings once; demo and test modes get generated keys in the data directory."""
    settings = Settings()
    if settings.mode is not Mode.PRODUCTION:
        generated = _load_or_create_demo_secrets(settings.data_dir)
        updates = {
            key: SecretStr(value) if key != "active_encryption_key" else value
            for key, value in generated.items()
            if getattr(settings, key) is None
        }
        settings = settings.model_copy(update=updates)
    return settings


def check_production_ready(settings: Settings) -> list[str]:
    """Problems that forbid starting in production mode (empty list means fine)."""
    problems: list[str] = []
    if not settings.is_production:
        return problems
    for name, env in (
        ("secret_key", "NIDAAN_SECRET_KEY"),
        ("encryption_keys", "NIDAAN_ENCRYPTION_KEYS"),
        ("blind_index_key", "NIDAAN_BLIND_INDEX_KEY"),
        ("audit_signing_key", "NIDAAN_AUDIT_SIGNING_KEY"),
    ):
        if getattr(settings, name) is None:
            problems.append(f"{env} is not set (run `nidaan keys generate` to make one)")
    demo_file = settings.data_dir / DEMO_SECRETS_FILE
    if demo_file.exists():
        demo = json.loads(demo_file.read_text())
        for name, env in (
            ("secret_key", "NIDAAN_SECRET_KEY"),
            ("blind_index_key", "NIDAAN_BLIND_INDEX_KEY"),
            ("audit_signing_key", "NIDAAN_AUDIT_SIGNING_KEY"),
        ):
            value = getattr(settings, name)
            if value is not None and value.get_secret_value() == demo.get(name):
                problems.append(f"{env} is the demo key from {demo_file}; generate a real one")
    if settings.secret_key is not None and len(settings.secret_key.get_secret_value()) < 32:
        problems.append("NIDAAN_SECRET_KEY must be at least 32 characters")
    return problems
