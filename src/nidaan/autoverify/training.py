"""Training and evaluating the second opinion on labelled panels with injected errors.

The labelled set is built from clean panels (the lab's own verified history, or the shipped
generator below) by copying some of them and injecting one of three physiologically plausible
pre-analytical errors into the copy:

* **Sample mix-up** (wrong blood in tube): the whole panel is another patient's; the deltas
  against this patient's previous results no longer fit.
* **Drip-arm contamination**: blood drawn above an intravenous line running 0.9% saline
  (Na 154, Cl 154 mmol/L, nothing else), mixing fraction 10-50%: every other analyte is
  diluted by that fraction, Na barely moves and Cl rises.
* **EDTA contamination** (K2EDTA carried into the serum tube, e.g. a wrong order of draw):
  potassium rises by 1.5-9 mmol/L while calcium falls (chelated, by 25-85%) and alkaline
  phosphatase falls (its Zn/Mg cofactors chelated, by 15-60%); sodium is unchanged.

The generator (``generate_population``) draws adults with realistic between-person spread of
the panel, common conditions (chronic kidney disease, dehydration, diuretic hypokalaemia,
liver/bone disease, hypercalcaemia), a previous visit for most of them with within-person
biological variation (CVi) plus analytical noise, and genuine clinical change between visits
for some (acute kidney injury, treatment): the changes the model must not mistake for errors.

The threshold is the lowest score whose precision on a validation split is at least
``target_precision`` (the most recall a lab can have while few holds are false); precision and
recall are then measured on a test split no part of training saw.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import precision_recall_curve

from nidaan.autoverify.second_opinion import (
    DEFAULT_ANALYTES,
    PanelCase,
    TrainedModel,
    features,
    one_thread,
)

ERRORS = ("mix_up", "drip_arm", "edta")
#: Saline (0.9% NaCl) as the contaminating fluid, in the catalogue's units.
SALINE = {"NA": 154.0, "CL": 154.0}
#: Within-person biological variation (CVi, fraction) and analytical CV of each analyte.
CV_WITHIN = {
    "NA": 0.006,
    "K": 0.048,
    "CL": 0.012,
    "HCO3": 0.048,
    "UREA": 0.12,
    "CREA": 0.06,
    "CA": 0.019,
    "ALP": 0.064,
}
CV_ANALYTICAL = {
    "NA": 0.007,
    "K": 0.015,
    "CL": 0.01,
    "HCO3": 0.03,
    "UREA": 0.03,
    "CREA": 0.03,
    "CA": 0.015,
    "ALP": 0.03,
}
DECIMALS = {"NA": 0, "K": 1, "CL": 0, "HCO3": 0, "UREA": 0, "CREA": 2, "CA": 1, "ALP": 0}


@dataclass(frozen=True)
class LabelledCase:
    case: PanelCase
    error: str | None  # None: clean; else one of ERRORS
    patient: int  # splits keep a patient's cases together
    genuine_change: bool = False


@dataclass
class Evaluation:
    threshold: float
    precision: float
    recall: float
    clean_cases: int
    error_cases: int
    recall_by_error: dict[str, float] = field(default_factory=dict)
    false_hold_rate: float = 0.0  # clean cases held
    false_hold_rate_genuine_change: float = 0.0  # clean cases with real clinical change held
    train_cases: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": round(self.threshold, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "recall_by_error": {k: round(v, 4) for k, v in self.recall_by_error.items()},
            "false_hold_rate": round(self.false_hold_rate, 4),
            "false_hold_rate_genuine_change": round(self.false_hold_rate_genuine_change, 4),
            "test_clean_cases": self.clean_cases,
            "test_error_cases": self.error_cases,
            "train_cases": self.train_cases,
            "seconds": round(self.seconds, 1),
        }


# --- the generated population ----------------------------------------------------------------


def _baseline(rng: np.random.Generator) -> tuple[dict[str, float], float, str, list[str]]:
    age = float(rng.uniform(18, 88))
    sex = "male" if rng.random() < 0.5 else "female"
    base = {
        "NA": rng.normal(140, 2.0),
        "K": rng.normal(4.3, 0.3),
        "CL": rng.normal(103, 2.5),
        "HCO3": rng.normal(25, 2.0),
        "UREA": float(np.exp(rng.normal(math.log(26 + 0.1 * age), 0.25))),
        "CREA": rng.normal(0.95, 0.14) if sex == "male" else rng.normal(0.74, 0.11),
        "CA": rng.normal(9.5, 0.35),
        "ALP": float(np.exp(rng.normal(math.log(80), 0.28))),
    }
    conditions = []
    if rng.random() < 0.12 + 0.002 * max(0, age - 50):  # chronic kidney disease
        conditions.append("ckd")
        factor = rng.uniform(1.6, 5.0)
        base["CREA"] *= factor
        base["UREA"] *= rng.uniform(1.5, 0.8 * factor + 0.8)
        base["K"] += rng.uniform(0.2, 1.3)
        base["HCO3"] -= rng.uniform(1, 8)
        base["CA"] -= rng.uniform(0, 1.0)
        base["ALP"] *= rng.uniform(1.0, 1.5)
    if rng.random() < 0.05:  # dehydration
        conditions.append("dehydration")
        base["NA"] += rng.uniform(3, 9)
        base["CL"] += rng.uniform(2, 7)
        base["UREA"] *= rng.uniform(1.3, 2.2)
        base["CREA"] *= rng.uniform(1.05, 1.4)
    if rng.random() < 0.06:  # diuretics
        conditions.append("diuretic")
        base["K"] -= rng.uniform(0.5, 1.5)
        base["CL"] -= rng.uniform(2, 6)
        base["HCO3"] += rng.uniform(2, 6)
        base["NA"] -= rng.uniform(0, 5)
    if rng.random() < 0.08:  # liver or bone disease
        conditions.append("alp")
        base["ALP"] *= rng.uniform(1.5, 5.0)
    if rng.random() < 0.02:  # hypercalcaemia
        conditions.append("hypercalcaemia")
        base["CA"] += rng.uniform(1.0, 3.5)
    base["K"] = max(base["K"], 2.3)
    base["CREA"] = max(base["CREA"], 0.3)
    return {k: float(v) for k, v in base.items()}, age, sex, conditions


def _measure(
    rng: np.random.Generator, truth: dict[str, float], *, biological: bool
) -> dict[str, float]:
    out = {}
    for code, value in truth.items():
        cv = math.hypot(CV_WITHIN[code] if biological else 0.0, CV_ANALYTICAL[code])
        out[code] = round(max(value * (1 + rng.normal(0, cv)), 0.0), DECIMALS[code])
    return out


def _genuine_change(rng: np.random.Generator, truth: dict[str, float]) -> dict[str, float]:
    changed = dict(truth)
    kind = rng.integers(0, 4)
    if kind == 0:  # acute kidney injury
        factor = rng.uniform(1.5, 3.5)
        changed["CREA"] *= factor
        changed["UREA"] *= rng.uniform(1.4, 2.8)
        changed["K"] += rng.uniform(0.3, 1.8)
        changed["HCO3"] -= rng.uniform(1, 7)
    elif kind == 1:  # recovery / treatment
        changed["CREA"] /= rng.uniform(1.2, 2.0)
        changed["UREA"] /= rng.uniform(1.2, 2.0)
        changed["K"] -= rng.uniform(0.2, 0.9)
    elif kind == 2:  # started a diuretic
        changed["K"] -= rng.uniform(0.4, 1.4)
        changed["NA"] -= rng.uniform(1, 7)
        changed["CL"] -= rng.uniform(2, 6)
        changed["HCO3"] += rng.uniform(1, 5)
    else:  # cholestasis or bone flare
        changed["ALP"] *= rng.uniform(1.8, 4.0)
    changed["K"] = max(changed["K"], 2.0)
    return changed


def generate_population(
    patients: int = 12000,
    *,
    seed: int = 17,
    previous_rate: float = 0.75,
    missing_rate: float = 0.05,
) -> list[LabelledCase]:
    """Clean panels of ``patients`` people (one current sample each, most with a previous)."""
    rng = np.random.default_rng(seed)
    cases = []
    for patient in range(patients):
        truth, age, sex, _ = _baseline(rng)
        previous: dict[str, float] = {}
        if rng.random() < previous_rate:
            previous = _measure(rng, truth, biological=True)
        change = bool(previous) and rng.random() < 0.15
        now = _genuine_change(rng, truth) if change else truth
        values = _measure(rng, now, biological=True)
        for code in list(values):
            if rng.random() < missing_rate:
                del values[code]
        cases.append(
            LabelledCase(PanelCase(values, previous, round(age, 1), sex), None, patient, change)
        )
    return cases


# --- injected errors ----------------------------------------------------------------------------


def inject(
    rng: np.random.Generator, case: PanelCase, kind: str, donors: Sequence[PanelCase]
) -> PanelCase:
    """``case`` with the pre-analytical error ``kind`` (see the module docstring)."""
    values = dict(case.values)
    if kind == "mix_up":
        donor = donors[int(rng.integers(0, len(donors)))]
        values = {k: v for k, v in donor.values.items()}
    elif kind == "drip_arm":
        fraction = rng.uniform(0.1, 0.5)
        values = {
            k: round((1 - fraction) * v + fraction * SALINE.get(k, 0.0), DECIMALS.get(k, 2))
            for k, v in values.items()
        }
    elif kind == "edta":
        severity = rng.uniform(0.0, 1.0)
        if "K" in values:
            values["K"] = round(values["K"] + 1.5 + 7.5 * severity * rng.uniform(0.6, 1.0), 1)
        if "CA" in values:
            values["CA"] = round(values["CA"] * (1 - (0.25 + 0.6 * severity)), 1)
        if "ALP" in values:
            values["ALP"] = round(values["ALP"] * (1 - (0.15 + 0.45 * severity)), 0)
    else:
        raise ValueError(f"unknown error {kind!r}")
    return replace(case, values=values)


def labelled_set(
    clean: Sequence[LabelledCase], *, error_rate: float = 0.12, seed: int = 18
) -> list[LabelledCase]:
    """The clean cases and, for ``error_rate`` of them, a copy with an injected error (the
    three kinds in turn)."""
    rng = np.random.default_rng(seed)
    donors = [c.case for c in clean]
    out = list(clean)
    chosen = rng.choice(len(clean), size=int(len(clean) * error_rate), replace=False)
    for n, index in enumerate(sorted(chosen)):
        source = clean[int(index)]
        kind = ERRORS[n % len(ERRORS)]
        out.append(LabelledCase(inject(rng, source.case, kind, donors), kind, source.patient))
    return out


# --- training and evaluation ---------------------------------------------------------------------


def _split(
    cases: Sequence[LabelledCase], seed: int
) -> tuple[list[LabelledCase], list[LabelledCase], list[LabelledCase]]:
    """60/20/20 by patient (a patient's clean and erroneous copies stay together)."""
    patients = sorted({c.patient for c in cases})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(patients))
    bucket = {
        patients[i]: (0 if k < 0.6 * len(patients) else 1 if k < 0.8 * len(patients) else 2)
        for k, i in enumerate(order)
    }
    parts: tuple[list[LabelledCase], list[LabelledCase], list[LabelledCase]] = ([], [], [])
    for case in cases:
        parts[bucket[case.patient]].append(case)
    return parts


def _estimator(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.08,
        max_leaf_nodes=31,
        l2_regularization=1.0,
        random_state=seed,
    )


def choose_threshold(labels: np.ndarray, scores: np.ndarray, target_precision: float) -> float:
    """The lowest threshold whose precision reaches the target (else the most precise)."""
    precision, _, thresholds = precision_recall_curve(labels, scores)
    for p, t in zip(precision[:-1], thresholds, strict=True):
        if p >= target_precision:
            return float(t)
    return float(thresholds[int(np.argmax(precision[:-1]))])


def train_and_evaluate(
    cases: Sequence[LabelledCase],
    *,
    analytes: Sequence[str] = DEFAULT_ANALYTES,
    target_precision: float = 0.9,
    seed: int = 19,
) -> tuple[TrainedModel, Evaluation]:
    """Fit on 60% of the patients, choose the threshold on 20%, measure on the last 20%; then
    refit on training and validation together for the model that is kept."""
    started = time.perf_counter()
    train, validation, test = _split(cases, seed)

    def xy(part: Sequence[LabelledCase]) -> tuple[np.ndarray, np.ndarray]:
        return features([c.case for c in part], analytes), np.array(
            [c.error is not None for c in part]
        )

    x_train, y_train = xy(train)
    x_val, y_val = xy(validation)
    x_test, y_test = xy(test)
    with one_thread():
        estimator = _estimator(seed).fit(x_train, y_train)
        threshold = choose_threshold(y_val, estimator.predict_proba(x_val)[:, 1], target_precision)
        held = estimator.predict_proba(x_test)[:, 1] >= threshold
    true_pos = int(np.sum(held & y_test))
    evaluation = Evaluation(
        threshold=threshold,
        precision=true_pos / max(1, int(np.sum(held))),
        recall=true_pos / max(1, int(np.sum(y_test))),
        clean_cases=int(np.sum(~y_test)),
        error_cases=int(np.sum(y_test)),
        train_cases=len(train) + len(validation),
    )
    for kind in ERRORS:
        mask = np.array([c.error == kind for c in test])
        evaluation.recall_by_error[kind] = float(np.sum(held & mask)) / max(1, int(np.sum(mask)))
    clean = ~y_test
    evaluation.false_hold_rate = float(np.sum(held & clean)) / max(1, int(np.sum(clean)))
    genuine = np.array([c.genuine_change for c in test])
    evaluation.false_hold_rate_genuine_change = float(np.sum(held & genuine)) / max(
        1, int(np.sum(genuine))
    )
    with one_thread():
        final = _estimator(seed).fit(np.vstack([x_train, x_val]), np.concatenate([y_train, y_val]))
    evaluation.seconds = time.perf_counter() - started
    return TrainedModel(final, tuple(analytes), threshold), evaluation


def clean_cases(panels: Sequence[PanelCase]) -> list[LabelledCase]:
    """The lab's verified panels as clean labelled cases (one patient number per panel)."""
    return [LabelledCase(panel, None, n) for n, panel in enumerate(panels)]
