"""The learned second opinion: a classifier of improbable result patterns in a sample's panel.

It looks at one sample's chemistry panel as a whole (the values, their changes since the
patient's previous results, age and sex) and says how likely the pattern is to come from a
pre-analytical error: a sample mix-up, contamination from an intravenous drip arm, or EDTA
carried over into a serum tube (high K, low Ca). It can only *hold* a result for review; it
never releases one. The estimator is scikit-learn's gradient boosting (histogram based:
missing analytes and first visits are NaN, handled natively). Training and the injected
errors are in ``autoverify.training``; the measured precision and recall are in
``docs/autoverify-second-opinion.md``.

A stored model is a joblib blob with an HMAC (keyed from the installation's secret): a blob
that this installation did not write is never unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

import joblib
import numpy as np
from threadpoolctl import threadpool_limits

#: The panel the model reads (catalogue codes and units of the shipped catalogue).
DEFAULT_ANALYTES: tuple[str, ...] = ("NA", "K", "CL", "HCO3", "UREA", "CREA", "CA", "ALP")
SEXES = {"male": 0.0, "female": 1.0}


@dataclass(frozen=True)
class PanelCase:
    """One sample's panel: current values, the patient's previous values, age and sex."""

    values: Mapping[str, float]
    previous: Mapping[str, float] = field(default_factory=dict)
    age_years: float | None = None
    sex: str | None = None


def one_thread() -> threadpool_limits:
    """OpenMP on one thread: on a busy two-core server more threads spin and run ~25x slower
    (measured), and a request scores a handful of panels."""
    return threadpool_limits(limits=1)


def feature_names(analytes: Sequence[str]) -> list[str]:
    return [
        *analytes,
        *(f"delta_{a}" for a in analytes),
        *(f"ratio_{a}" for a in analytes),
        "age",
        "sex",
    ]


def features(cases: Sequence[PanelCase], analytes: Sequence[str]) -> np.ndarray:
    """One row per case: values, absolute and relative changes, age, sex (NaN if unknown)."""
    rows = np.full((len(cases), 3 * len(analytes) + 2), np.nan, dtype=float)
    n = len(analytes)
    for i, case in enumerate(cases):
        for j, code in enumerate(analytes):
            value = case.values.get(code)
            if value is None or not math.isfinite(value):
                continue
            rows[i, j] = value
            previous = case.previous.get(code)
            if previous is not None and math.isfinite(previous):
                rows[i, n + j] = value - previous
                if previous:
                    rows[i, 2 * n + j] = value / previous
        if case.age_years is not None:
            rows[i, 3 * n] = case.age_years
        if case.sex in SEXES:
            rows[i, 3 * n + 1] = SEXES[case.sex]
    return rows


@dataclass(frozen=True)
class TrainedModel:
    estimator: Any
    analytes: tuple[str, ...]
    threshold: float

    def scores(self, cases: Sequence[PanelCase]) -> np.ndarray:
        """Probability that each case carries a pre-analytical error."""
        if not cases:
            return np.zeros(0)
        with one_thread():
            return np.asarray(self.estimator.predict_proba(features(cases, self.analytes))[:, 1])

    def enough(self, case: PanelCase) -> bool:
        """Whether the case has enough of the panel to be judged (half of it)."""
        present = sum(1 for a in self.analytes if case.values.get(a) is not None)
        return present * 2 >= len(self.analytes)


def signature(blob: bytes, key: bytes) -> str:
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def model_key(secret: str) -> bytes:
    """The HMAC key of stored models, derived from the installation's secret key."""
    return hashlib.sha256(b"nidaan.autoverify.model:" + secret.encode()).digest()


def dump(estimator: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


class UntrustedModel(Exception):
    """The stored blob's HMAC does not match: it was not written by this installation."""


@lru_cache(maxsize=8)
def load(blob: bytes, stored_signature: str, key: bytes) -> Any:
    """The estimator of a stored blob, after checking its HMAC (cached per blob)."""
    if not hmac.compare_digest(signature(blob, key), stored_signature):
        raise UntrustedModel("the model's signature does not match; retrain it")
    return joblib.load(io.BytesIO(blob))


def as_float(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)
