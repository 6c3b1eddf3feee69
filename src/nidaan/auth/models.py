"""Identity tables: users, their branch limits, refresh tokens, API keys, failed logins."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, Boolean, ForeignKey, Index, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.encrypted_type import EncryptedString
from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin


class User(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "users"

    # Logins are by e-mail across the whole installation, so it is unique globally.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    qualification: Mapped[str | None] = mapped_column(String(200))
    # What a signatory prints under the name (NABL 112): e.g. "KMC 45812" (council, number).
    registration_number: Mapped[str | None] = mapped_column(String(80))
    # Object-store key of the scanned signature printed on reports (PNG/JPEG), if uploaded.
    signature_key: Mapped[str | None] = mapped_column(String(300))
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    # Stored encrypted (column mobile_encrypted); found by equality through mobile_index.
    mobile: Mapped[str | None] = mapped_column("mobile_encrypted", EncryptedString("users.mobile"))
    mobile_index: Mapped[str | None] = mapped_column(String(64), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    last_login_at: Mapped[datetime | None]
    # In every access token; bumped on a password change or deactivation so that tokens
    # issued before stop working at once (checked on every request).
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")


class UserBranch(Base):
    """A row here limits a user to that branch; a user with no rows may work in all."""

    __tablename__ = "user_branches"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    branch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True
    )


class RefreshToken(IdMixin, TenantMixin, Base):
    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Tokens issued by rotating one another share a family; reuse of a spent token revokes it.
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiKey(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginFailure(IdMixin, Base):
    """Failed password logins, kept briefly to throttle guessing."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_username_key_occurred_at", "username_key", "occurred_at"),
    )

    username_key: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    # The account tried, when it exists: a lock-out notice goes to its organisation.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
