"""Typed settings, read once from the environment (prefix ``NIDAAN_``) and failing fast.

No other module reads ``os.environ``: everything configurable lives here.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    interfaces_listen_host: str = Field(
        "127.0.0.1",
        description="Address analyzer listeners (tcp-server instruments without a host) bind "
        "to: this computer's address on the lab network, e.g. 192.168.1.10. The default "
        "(loopback) accepts no analyzer from the network until it is set; 0.0.0.0 listens on "
        "every network card.",
    )
    demo_analyzer_port: int = Field(
        5100,
        ge=1,
        le=65535,
        description="Demo mode: TCP port the demo analyzer (cobas c311, ASTM) listens on",
    )

    # ---- ABDM: the lab as a Health Information Provider (see docs/abdm.md) ----
    abdm_enabled: bool | None = Field(
        None, description="Talk to ABDM (HIP); default on in demo mode (wired to the simulator)"
    )
    abdm_gateway_url: str | None = Field(
        None, description="HIE-CM gateway base, e.g. https://dev.abdm.gov.in/api/hiecm"
    )
    abdm_abha_url: str | None = Field(
        None, description="ABHA service base, e.g. https://abhasbx.abdm.gov.in/abha/api"
    )
    abdm_client_id: str | None = Field(None, description="Gateway client id of this bridge")
    abdm_client_secret: SecretStr | None = Field(None, description="Gateway client secret")
    abdm_cm_id: str = Field("sbx", description="X-CM-ID: sbx in the sandbox, abdm in production")
    abdm_allow_simulator: bool = Field(
        False, description="Production only: allow ABDM URLs that are not *.abdm.gov.in (https)"
    )
    abdm_simulator_port: int = Field(
        8090, description="Demo mode: port of the embedded ABDM gateway simulator"
    )
    abdm_callback_timeout_seconds: int = Field(
        300, ge=5, description="An ABDM request without its callback after this is timed out"
    )
    abdm_otp_sms_url: str | None = Field(
        None,
        description="Where care-context link OTPs are POSTed for SMS delivery "
        "({to, message}); demo mode: the simulator's phone",
    )

    # -- files and notifications (issue 12) ----------------------------------------------
    storage_url: str | None = Field(
        None,
        description="Object store: file:///path (default <data_dir>/files) or "
        "s3://bucket?endpoint=http://host:9000&region=ap-south-1[&prefix=p]",
    )
    s3_access_key_id: str | None = Field(None, description="S3/MinIO access key id")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3/MinIO secret key")
    file_retention_days: int = Field(
        30, ge=0, description="Files: days a deleted upload is kept before it is purged"
    )
    file_link_minutes: int = Field(
        15, ge=1, le=10080, description="Files: default life of a presigned download link"
    )
    allow_simulator_urls: bool = Field(
        False, description="Let production mode use a provider simulator URL (loopback)"
    )
    notification_link_hours: int = Field(
        72, ge=1, le=168, description="Notifications: life of report download links sent"
    )
    whatsapp_api_url: str | None = Field(
        None,
        description="WhatsApp Cloud API base URL, e.g. https://graph.facebook.com (demo mode: "
        "the built-in simulator)",
    )
    whatsapp_api_version: str = "v21.0"
    whatsapp_phone_number_id: str | None = None
    whatsapp_access_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = Field(
        None, description="Meta App Secret: verifies X-Hub-Signature-256 on webhooks"
    )
    whatsapp_verify_token: SecretStr | None = Field(
        None, description="Token Meta echoes when it verifies the webhook URL"
    )
    whatsapp_messages_per_second: float = Field(
        80, gt=0, description="Business number throughput (Meta's default is 80 mps)"
    )
    whatsapp_pair_interval_seconds: float = Field(
        6, ge=0, description="Least time between two messages to one recipient"
    )
    sms_api_url: str | None = Field(None, description="HTTP SMS provider base URL")
    sms_api_key: SecretStr | None = None
    sms_sender_id: str = Field("NIDAAN", description="DLT-registered 6-character header")
    sms_dlt_entity_id: str | None = Field(None, description="DLT principal entity id")
    sms_dlt_template_ids: str | None = Field(
        None,
        description='JSON of "template:language" -> DLT template id, e.g. '
        '{"test_result_ready:en": "1107161234567890123"}',
    )
    sms_messages_per_second: float = Field(20, gt=0)
    smtp_host: str | None = Field(None, description="SMTP server for e-mail notifications")
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: str = Field("starttls", description="starttls, tls or none")
    smtp_from: str = Field("reports@nidaan.invalid", description="From address of e-mails")
    email_messages_per_second: float = Field(10, gt=0)
    demo_smtp_port: int = Field(
        0, ge=0, description="Demo mode: port of the built-in SMTP sink (0: any free port)"
    )
    # The staff web application (browser sessions: refresh token in an httpOnly cookie).
    web_idle_minutes: int = Field(
        15, ge=1, le=720, description="Web app: lock the screen after this long without input"
    )
    web_session_idle_hours: int = Field(
        10,
        ge=1,
        le=168,
        description="Web app: a session unused this long (browser closed, "
        "offline) needs a new login",
    )
    web_session_max_hours: int = Field(
        24, ge=1, le=720, description="Web app: a login lasts at most this long"
    )
    cookie_secure: bool | None = Field(
        None,
        description="Mark session cookies Secure; default: when the request came over "
        "HTTPS (behind a proxy, run uvicorn with --proxy-headers)",
    )

    # ---- security hardening (request limits, throttling, audit anchoring) ----
    max_json_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest JSON (or form) request body accepted"
    )
    max_graphql_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest GraphQL request body (sync batches)"
    )
    max_upload_body_bytes: int = Field(
        # The largest file any purpose accepts (50 MB, files.domain) plus multipart framing;
        # each purpose's own, smaller limit is enforced by the files service.
        51 * 1024 * 1024,
        ge=1024,
        description="Largest file upload request body",
    )

    # ---- payment gateways (billing). Unset credentials: the gateway is not offered, except
    # in demo mode, where the built-in simulators under /simulators/<name> stand in.
    razorpay_api_url: str = Field("https://api.razorpay.com", description="Razorpay API base")
    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = Field(
        None, description="Razorpay webhook secret (not the key secret)"
    )
    stripe_api_url: str = Field("https://api.stripe.com", description="Stripe API base")
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = Field(None, description="Stripe endpoint secret")
    payu_payment_url: str = Field(
        "https://secure.payu.in", description="PayU hosted checkout base (test.payu.in to test)"
    )
    payu_api_url: str = Field(
        "https://info.payu.in", description="PayU postservice API base (test.payu.in to test)"
    )
    payu_key: str | None = None
    payu_salt: SecretStr | None = None
    payment_simulators_allowed: bool = Field(
        False, description="Let production use payment simulator URLs (staging only)"
    )
    # ---- GST e-invoicing (IRP). Unset URL: no e-invoices, except in demo mode, where the
    # built-in IRP simulator under /simulators/irp stands in.
    irp_api_url: str | None = Field(
        None,
        description="IRP (or GSP) API base, e.g. https://einv-apisandbox.nic.in for NIC's sandbox",
    )
    irp_client_id: str | None = Field(None, description="IRP API client id")
    irp_client_secret: SecretStr | None = Field(None, description="IRP API client secret")
    irp_public_key: str | None = Field(
        None, description="The IRP's RSA public key (PEM, or the Base64 text NIC publishes)"
    )
    irp_public_key_file: Path | None = Field(None, description="File holding the IRP public key")
    irp_signing_key: str | None = Field(
        None,
        description="Public key the IRP signs SignedInvoice/SignedQRCode with (PEM; default: "
        "the IRP public key)",
    )
    irp_attempts: int = Field(4, ge=1, le=10, description="Tries per IRP call before 'pending'")
    irp_backoff_seconds: float = Field(
        0.5, ge=0, le=30, description="First retry delay of an IRP call (doubles each time)"
    )
    irp_simulator_allowed: bool = Field(
        False, description="Let production use an IRP simulator URL (staging only)"
    )
    redis_url: str | None = Field(
        None,
        description="redis://host:6379/0 to share login throttling and the catalogue and "
        "rate list caches between API processes (default: kept inside each process)",
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

    # ---- running it for real: metrics, traces, event streaming, backups (docs/operations.md)
    metrics_token: SecretStr | None = Field(
        None,
        description="Production: GET /metrics on the API port answers only `Authorization: "
        "Bearer <this>` (unset: /metrics only on NIDAAN_METRICS_PORT)",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics (no login) on this separate port; `nidaan worker` and "
        "`nidaan interfaces` take --metrics-port for theirs",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address of the separate metrics port (0.0.0.0 in containers)"
    )
    otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector (OTLP over HTTP), e.g. http://jaeger:4318; unset: "
        "no tracing at all",
    )
    service_name: str | None = Field(
        None, description="Service name on traces (default nidaan-<role>, e.g. nidaan-api)"
    )
    events_url: str | None = Field(
        None,
        description="Event broker for the outbox relay: nats://host:4222 (JetStream) or "
        "kafka://host:9092; unset: domain events stay in the database",
    )
    events_subject_prefix: str = Field(
        "nidaan", description="Prefix of NATS subjects / the Kafka topic name"
    )
    events_include_personal_data: bool = Field(
        False,
        description="Publish events as stored, with no personal fields removed (only for a "
        "subscriber that may hold patient data)",
    )
    backup_key: SecretStr | None = Field(
        None,
        description="Base64 32-byte key encrypting `nidaan backup` archives (AES-256-GCM); "
        "keep it apart from the backups",
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
        "backup_key": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
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


_loaded: Settings | None = None


def get_settings() -> Settings:
    """The settings of this process, loaded from the environment on first use."""
    global _loaded
    if _loaded is None:
        _loaded = load_settings()
    return _loaded


def reset_settings(settings: Settings | None = None) -> None:
    """Forget the loaded settings so the next ``get_settings()`` reads the environment again
    (after ``--port`` changes it), or put a given settings object in their place."""
    global _loaded
    _loaded = settings


def load_settings() -> Settings:
    """Read settings from the environment; demo and test modes get generated keys in the
    data directory."""
    settings = Settings()
    if settings.mode is not Mode.PRODUCTION:
        generated = _load_or_create_demo_secrets(settings.data_dir)
        updates = {
            key: SecretStr(value) if key != "active_encryption_key" else value
            for key, value in generated.items()
            if getattr(settings, key) is None
        }
        settings = settings.model_copy(update=updates)
    if settings.mode is Mode.DEMO:
        settings = settings.model_copy(update=demo_provider_settings(settings))
    return settings


#: Demo DLT template ids (real ones come from the lab's DLT registration).
DEMO_DLT_TEMPLATE_IDS = {
    f"{template}:{language}": f"11070000000000{index}{offset}"
    for offset, language in enumerate(("en", "hi"))
    for index, template in enumerate(
        (
            "test_result_ready",
            "critical_value_alert",
            "appointment_reminder",
            "payment_confirmation",
            "booking_otp",
            "phlebotomist_on_the_way",
        )
    )
}


def demo_provider_settings(settings: Settings) -> dict[str, Any]:
    """Demo mode: WhatsApp, SMS and SMTP point at the built-in simulators (mounted under
    /_simulators, SMTP on port+25) unless configured; their keys derive from the secret key."""
    base = (settings.public_base_url or f"http://{settings.host}:{settings.port}").rstrip("/")

    def derived(label: str) -> SecretStr:
        digest = hmac.new(settings.jwt_secret().encode(), label.encode(), hashlib.sha256)
        return SecretStr(digest.hexdigest()[:40])

    values: dict[str, Any] = {}
    if settings.whatsapp_api_url is None:
        values |= {
            "whatsapp_api_url": f"{base}/_simulators/whatsapp",
            "whatsapp_phone_number_id": "100000000000001",
            "whatsapp_access_token": derived("demo.whatsapp.token"),
            "whatsapp_app_secret": settings.whatsapp_app_secret
            or derived("demo.whatsapp.app-secret"),
            "whatsapp_verify_token": settings.whatsapp_verify_token
            or derived("demo.whatsapp.verify"),
        }
    if settings.sms_api_url is None:
        values |= {
            "sms_api_url": f"{base}/_simulators/sms",
            "sms_api_key": derived("demo.sms.key"),
            "sms_dlt_entity_id": "1101000000000000000",
            "sms_dlt_template_ids": json.dumps(DEMO_DLT_TEMPLATE_IDS),
        }
    if settings.smtp_host is None:
        values |= {
            "smtp_host": "127.0.0.1",
            "smtp_port": settings.demo_smtp_port or settings.port + 25,
            "smtp_security": "none",
            "smtp_from": "reports@demo.example.com",
        }
    return values


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
    if not settings.payment_simulators_allowed:
        for env, url in (
            ("NIDAAN_RAZORPAY_API_URL", settings.razorpay_api_url),
            ("NIDAAN_STRIPE_API_URL", settings.stripe_api_url),
            ("NIDAAN_PAYU_PAYMENT_URL", settings.payu_payment_url),
            ("NIDAAN_PAYU_API_URL", settings.payu_api_url),
        ):
            if looks_like_simulator(url):
                problems.append(
                    f"{env} ({url}) points at a simulator or a local address; set the real "
                    "gateway URL, or NIDAAN_PAYMENT_SIMULATORS_ALLOWED=true for a staging copy"
                )
    if (
        settings.irp_api_url is not None
        and not settings.irp_simulator_allowed
        and looks_like_simulator(settings.irp_api_url)
    ):
        problems.append(
            f"NIDAAN_IRP_API_URL ({settings.irp_api_url}) points at a simulator or a local "
            "address; set the IRP's URL, or NIDAAN_IRP_SIMULATOR_ALLOWED=true for a staging copy"
        )
    if settings.secret_key is not None and len(settings.secret_key.get_secret_value()) < 32:
        problems.append("NIDAAN_SECRET_KEY must be at least 32 characters")
    problems += abdm_url_problems(settings)
    return problems


def abdm_url_problems(settings: Settings) -> list[str]:
    """Production talks only to ABDM's own https hosts, unless a simulator is allowed."""
    if not settings.is_production or settings.abdm_allow_simulator:
        return []
    problems = []
    for name, url in (
        ("NIDAAN_ABDM_GATEWAY_URL", settings.abdm_gateway_url),
        ("NIDAAN_ABDM_ABHA_URL", settings.abdm_abha_url),
    ):
        if url is None:
            continue
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not (host == "abdm.gov.in" or host.endswith(".abdm.gov.in")):
            problems.append(
                f"{name} ({url}) is not an ABDM https host (*.abdm.gov.in); a simulator is "
                "refused in production unless NIDAAN_ABDM_ALLOW_SIMULATOR=true"
            )
    return problems


def looks_like_simulator(url: str) -> bool:
    """A URL production must not send payments to: plain http, a loopback or private host,
    or one of our simulator paths."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or "/simulators/" in f"{parts.path}/" or host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.endswith((".local", ".internal", ".invalid"))
    return address.is_loopback or address.is_private or address.is_link_local
