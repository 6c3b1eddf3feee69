"""Tenancy tables. An organisation is the tenant; every other row points at one."""

from __future__ import annotations

from sqlalchemy import Boolean, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin


class Organisation(IdMixin, TimestampMixin, Base):
    __tablename__ = "organisations"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    # Demo organisations exist only in demo mode; production refuses to start with one.
    is_demo: Mapped[bool] = mapped_column(Boolean, server_default=false())
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # What the report header prints (NABL/ISO 15189 wants lab name, address, accreditation).
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    accreditation: Mapped[str | None] = mapped_column(String(300))
    # Lab policy: may the person who entered a result also verify it? Off, as SENAITE/OE.
    allow_self_verification: Mapped[bool] = mapped_column(Boolean, server_default=false())


class Branch(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "branches"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)

    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(500))
    state: Mapped[str | None] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
