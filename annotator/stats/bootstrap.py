"""Patient-level (cluster) bootstrap of agreement figures, and of the difference between two pairs.

Resampling unit: the patient. Each resample draws P patients with replacement out of the P patients
with usable slices and keeps all slices of each drawn patient (a patient drawn twice counts twice), so
slices of one patient never split. Confidence intervals are percentile intervals
(``np.nanquantile``, linear interpolation) of the resampled figures; resamples where a figure is
undefined (e.g. kappa when a resample holds one grade only) are left out and counted in
``n_undefined``.

Difference of two pairs (e.g. expert1-expert2 vs expert1-model1): both pairs are computed on the
slices where all their grades exist and on the *same* resampled patients (a paired bootstrap).
Two-sided p-value for "no difference":
``p = min(1, 2 * min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (B + 1))`` over the B defined resampled
differences d* (the percentile-bootstrap test, with the +1 correction so that p > 0).

Vectorised: per-patient confusion counts (P x q^2) are built once with ``np.bincount``; each chunk of
resamples becomes a multiplicity matrix (resamples x patients, again one ``np.bincount`` over flattened
(resample, patient) indices) and one matrix product gives every resampled confusion matrix; all figures
are then computed on the stack (``annotator.stats.agreement``). No Python loop per resample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from annotator.domain.errors import InputError
from annotator.stats import agreement as ag
from annotator.stats._inputs import (
    Categories,
    FloatArray,
    Grades,
    IntArray,
    as_categories,
    encode_1d,
    encode_groups,
    jsonable,
    same_length,
)

METRICS: tuple[str, ...] = (
    "accuracy",
    "f1_macro",
    "f1_weighted",
    "kappa",
    "kappa_linear",
    "kappa_quadratic",
    "ac1",
    "ac2",
)
_CHUNK_CELLS = 4_000_000  # resamples x patients per chunk (32 MB of float64 multiplicities)


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float
    n_undefined: int


@dataclass(frozen=True, slots=True)
class BootstrapPair:
    """Percentile CIs of one pair's figures (keys of ``intervals``: ``METRICS``)."""

    n: int
    n_patients: int
    n_resamples: int
    confidence: float
    seed: int | None
    intervals: dict[str, Interval]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(self)
        return out


@dataclass(frozen=True, slots=True)
class DifferenceTest:
    """``difference = estimate_1 - estimate_2``; CI and two-sided p-value from the paired bootstrap."""

    estimate_1: float
    estimate_2: float
    difference: float
    low: float
    high: float
    p_value: float
    n_undefined: int


@dataclass(frozen=True, slots=True)
class BootstrapDifference:
    n: int
    n_patients: int
    n_resamples: int
    confidence: float
    seed: int | None
    tests: dict[str, DifferenceTest]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(self)
        return out


def resample_index_chunks(rng: np.random.Generator, n_patients: int, n_resamples: int) -> Iterator[IntArray]:
    """Patient indices of each resample, in chunks of rows (resamples) x n_patients."""
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // max(n_patients, 1)))
    done = 0
    while done < n_resamples:
        rows = min(chunk, n_resamples - done)
        yield rng.integers(0, n_patients, size=(rows, n_patients), dtype=np.int64)
        done += rows


def _multiplicities(index: IntArray, n_patients: int) -> FloatArray:
    rows = index.shape[0]
    flat = (np.arange(rows, dtype=np.int64)[:, None] * n_patients + index).ravel()
    return np.bincount(flat, minlength=rows * n_patients).reshape(rows, n_patients).astype(np.float64)


def _patient_cells(ia: IntArray, ib: IntArray, pid: IntArray, n_patients: int, q: int) -> FloatArray:
    flat = pid * (q * q) + ia * q + ib
    counts = np.bincount(flat, minlength=n_patients * q * q)
    return counts.reshape(n_patients, q * q).astype(np.float64)


def _resampled_confusions(
    cells: list[FloatArray], rng: np.random.Generator, n_resamples: int, q: int
) -> list[FloatArray]:
    n_patients = cells[0].shape[0]
    parts: list[list[FloatArray]] = [[] for _ in cells]
    for index in resample_index_chunks(rng, n_patients, n_resamples):
        weights = _multiplicities(index, n_patients)
        for out, per_patient in zip(parts, cells, strict=True):
            out.append((weights @ per_patient).reshape(-1, q, q))
    return [np.concatenate(p, axis=0) for p in parts]


def _rng(seed: int | np.random.Generator | None) -> tuple[np.random.Generator, int | None]:
    if isinstance(seed, np.random.Generator):
        return seed, None
    return np.random.default_rng(seed), seed


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise InputError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _quantiles(values: FloatArray, confidence: float) -> tuple[float, float, int]:
    defined = values[~np.isnan(values)]
    undefined = int(values.size - defined.size)
    if defined.size == 0:
        return float("nan"), float("nan"), undefined
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return float(low), float(high), undefined


def bootstrap_p_value(differences: FloatArray) -> float:
    """Two-sided percentile-bootstrap p-value for H0: difference = 0 (NaN resamples ignored)."""
    d = differences[~np.isnan(differences)]
    if d.size == 0:
        return float("nan")
    side = min(int((d <= 0).sum()), int((d >= 0).sum()))
    return min(1.0, 2.0 * (1 + side) / (d.size + 1))


def _prepare(
    grades: list[tuple[str, Grades]], categories: Categories, patient_ids: npt.ArrayLike | None
) -> tuple[tuple[int, ...], list[IntArray], IntArray, int]:
    cats = as_categories(categories)
    idx = [encode_1d(g, cats, name) for name, g in grades]
    n_slices = same_length(**{name: i for (name, _), i in zip(grades, idx, strict=True)})
    usable = np.logical_and.reduce([i >= 0 for i in idx])
    if patient_ids is None:
        pid_all = np.arange(n_slices, dtype=np.int64)
    else:
        pid_all = np.asarray(patient_ids)
        if pid_all.shape != (n_slices,):
            raise InputError(f"patient_ids: expected {n_slices} ids (one per slice), got {pid_all.shape}")
    pid, n_patients = encode_groups(pid_all[usable])
    return cats, [i[usable] for i in idx], pid, n_patients


def bootstrap_pair(
    a: Grades,
    b: Grades,
    categories: Categories,
    patient_ids: npt.ArrayLike | None = None,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> BootstrapPair:
    """Percentile CIs for one pair, resampling patients (``patient_ids=None``: one patient per slice)."""
    _check(n_resamples, confidence)
    cats, (ia, ib), pid, n_patients = _prepare([("a", a), ("b", b)], categories, patient_ids)
    q = len(cats)
    rng, seed_used = _rng(seed)
    point = ag.summary(ag.confusion_counts(ia, ib, q))
    intervals: dict[str, Interval] = {}
    if n_patients == 0:
        intervals = {k: Interval(float(point[k]), float("nan"), float("nan"), n_resamples) for k in METRICS}
    else:
        (stack,) = _resampled_confusions([_patient_cells(ia, ib, pid, n_patients, q)], rng, n_resamples, q)
        resampled = ag.summary(stack)
        for k in METRICS:
            low, high, undefined = _quantiles(resampled[k], confidence)
            intervals[k] = Interval(float(point[k]), low, high, undefined)
    return BootstrapPair(int(ia.size), n_patients, n_resamples, confidence, seed_used, intervals)


def bootstrap_difference(
    a1: Grades,
    b1: Grades,
    a2: Grades,
    b2: Grades,
    categories: Categories,
    patient_ids: npt.ArrayLike | None = None,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> BootstrapDifference:
    """Paired bootstrap of pair 1 (a1 vs b1) minus pair 2 (a2 vs b2) on the slices all four graded.

    A reader shared by both pairs (expert1 in expert1-expert2 vs expert1-model1) is simply passed
    twice. Returns per-figure difference, percentile CI and two-sided bootstrap p-value. With
    ``n_resamples=0`` nothing is resampled: the differences only, CI and p-value NaN (undefined), rather
    than an "interval" from a single resample that a reader would take for a real one.
    """
    _check(max(n_resamples, 1), confidence)
    if n_resamples < 0:
        raise InputError(f"n_resamples must be >= 0, got {n_resamples}")
    cats, (i1, j1, i2, j2), pid, n_patients = _prepare(
        [("a1", a1), ("b1", b1), ("a2", a2), ("b2", b2)], categories, patient_ids
    )
    q = len(cats)
    rng, seed_used = _rng(seed)
    point1 = ag.summary(ag.confusion_counts(i1, j1, q))
    point2 = ag.summary(ag.confusion_counts(i2, j2, q))
    tests: dict[str, DifferenceTest] = {}
    nan = float("nan")
    if n_patients == 0 or n_resamples == 0:
        for k in METRICS:
            e1, e2 = float(point1[k]), float(point2[k])
            tests[k] = DifferenceTest(e1, e2, e1 - e2, nan, nan, nan, n_resamples)
    else:
        cells = [_patient_cells(i1, j1, pid, n_patients, q), _patient_cells(i2, j2, pid, n_patients, q)]
        stack1, stack2 = _resampled_confusions(cells, rng, n_resamples, q)
        res1, res2 = ag.summary(stack1), ag.summary(stack2)
        for k in METRICS:
            diff = res1[k] - res2[k]
            low, high, undefined = _quantiles(diff, confidence)
            e1, e2 = float(point1[k]), float(point2[k])
            tests[k] = DifferenceTest(e1, e2, e1 - e2, low, high, bootstrap_p_value(diff), undefined)
    return BootstrapDifference(int(i1.size), n_patients, n_resamples, confidence, seed_used, tests)
