"""Autoverification tables: rule sets per test, one evaluation per entered value, and the
second-opinion models trained on the lab's history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from nidaan.kit.model_base import Base, IdMixin, TenantMixin, TimestampMixin, VersionMixin


class RuleSet(IdMixin, TenantMixin, TimestampMixin, VersionMixin, Base):
    """The ordered rules a test's results must pass to be verified by the system.

    ``rules`` is data (a list of ``{"type": ..., ...parameters}``), not code per test; every
    change bumps ``version`` and evaluations record the version they applied.
    """

    __tablename__ = "autoverify_rule_sets"
    __table_args__ = (UniqueConstraint("organisation_id", "test_id"),)

    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"))
    enabled: Mapped[bool] = mapped_column(Boolean)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # The pathologist who approved this version (AUTO15: validated before go-live).
    approved_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(String(500))


class Evaluation(IdMixin, TenantMixin, Base):
    """What the rules (and the second opinion) made of one entered value of a result."""

    __tablename__ = "autoverify_evaluations"

    result_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("results.id", ondelete="CASCADE"), index=True
    )
    test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_tests.id"), index=True)
    entered_at: Mapped[datetime]
    rule_set_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("autoverify_rule_sets.id"))
    rule_set_version: Mapped[int | None] = mapped_column(Integer)
    # autoverified, stopped (waits for a person), held (the second opinion held it).
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    # The rule that stopped it ("3:delta"), or "all" when every rule held.
    decided_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(300))
    trail: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    model_score: Mapped[float | None] = mapped_column(Float)
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("autoverify_models.id"))
    evaluated_at: Mapped[datetime]
    # What asked: a value was entered, or a QC block on its instrument was lifted.
    trigger: Mapped[str] = mapped_column(String(32))


class SecondOpinionModel(IdMixin, TenantMixin, Base):
    """A trained classifier of improbable result patterns (it can only hold results)."""

    __tablename__ = "autoverify_models"

    created_at: Mapped[datetime]
    # history (the lab's verified results) or generated (the shipped synthetic population).
    trained_on: Mapped[str] = mapped_column(String(16))
    # Panel analytes (catalogue codes) in feature order, and the decision threshold.
    analytes: Mapped[list[str]] = mapped_column(JSONB)
    threshold: Mapped[float] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    active: Mapped[bool] = mapped_column(Boolean)
    # The fitted estimator (joblib) and its HMAC: a blob that was not written by us is
    # never unpickled.
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[str] = mapped_column(String(64))
