"""Agreement of any number of readers: Fleiss' kappa and Krippendorff's ordinal alpha.

Input is a matrix slices x readers of grades (missing = -1, NaN or masked). Both figures are
vectorised re-implementations (one ``np.bincount`` builds the slice x grade count table), tested to
1e-9 against ``statsmodels.stats.inter_rater.fleiss_kappa(aggregate_raters(x)[0])`` and
``krippendorff.alpha(level_of_measurement="ordinal", value_domain=categories)``; the libraries cost
too much per call for the agreement report's speed target.

- Fleiss' kappa uses the slices every reader graded (``n_complete``); NaN when there are none or when
  every rating is the same grade.
- Krippendorff's alpha (ordinal metric, Krippendorff 2011 "Computing Krippendorff's alpha-reliability")
  uses every slice with at least two grades (``n_pairable``), so it copes with missing readings; NaN
  when no slice is pairable or all pairable grades are equal (where ``krippendorff.alpha`` raises or
  returns NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from annotator.domain.errors import InputError
from annotator.stats._inputs import Categories, FloatArray, Grades, IntArray, as_categories, encode, jsonable


@dataclass(frozen=True, slots=True)
class GroupStats:
    categories: tuple[int, ...]
    n_readers: int
    n_slices: int
    n_complete: int
    fleiss_kappa: float
    n_pairable: int
    krippendorff_alpha: float

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(self)
        return out


def value_counts(idx: IntArray, q: int) -> IntArray:
    """Slices x grades: how many readers gave each grade to each slice (idx: slices x readers, -1 missing)."""
    n_units = idx.shape[0]
    units = np.broadcast_to(np.arange(n_units, dtype=np.int64)[:, None], idx.shape)
    valid = idx >= 0
    flat = units[valid] * q + idx[valid]
    return np.bincount(flat, minlength=n_units * q).reshape(n_units, q)


def fleiss_from_counts(counts: IntArray) -> float:
    """Fleiss' kappa of the rows of ``counts`` (each row must sum to the same number of raters >= 2)."""
    if counts.shape[0] == 0:
        return float("nan")
    m = float(counts[0].sum())
    cf = counts.astype(np.float64)
    p_i = ((cf * cf).sum(axis=1) - m) / (m * (m - 1.0))
    p_bar = float(p_i.mean())
    p_j = cf.sum(axis=0) / (cf.shape[0] * m)
    p_e = float((p_j * p_j).sum())
    return (p_bar - p_e) / (1.0 - p_e) if p_e != 1.0 else float("nan")


def ordinal_distances(n_v: FloatArray) -> FloatArray:
    """Krippendorff's ordinal delta^2 for value pairs given the pairable-value frequencies n_v."""
    cum = np.cumsum(n_v)
    q = n_v.size
    lo = np.minimum.outer(np.arange(q), np.arange(q))
    hi = np.maximum.outer(np.arange(q), np.arange(q))
    between = cum[hi] - cum[lo] + n_v[lo]
    result: FloatArray = (between - (n_v[lo] + n_v[hi]) / 2.0) ** 2
    return result


def krippendorff_from_counts(counts: IntArray) -> float:
    """Ordinal Krippendorff's alpha from a slices x grades count table (columns in ordinal order)."""
    m = counts.sum(axis=1)
    pairable = m >= 2
    if not pairable.any():
        return float("nan")
    cp = counts[pairable].astype(np.float64)
    scaled = cp / (m[pairable] - 1.0)[:, None]
    o = scaled.T @ cp - np.diag(scaled.sum(axis=0))
    n_v = o.sum(axis=0)
    n = float(n_v.sum())
    d = ordinal_distances(n_v)
    e = (np.outer(n_v, n_v) - np.diag(n_v)) / (n - 1.0)
    disagreement_expected = float((e * d).sum())
    if disagreement_expected == 0.0:
        return float("nan")
    return 1.0 - float((o * d).sum()) / disagreement_expected


def group(matrix: Grades, categories: Categories) -> GroupStats:
    """Fleiss' kappa and Krippendorff's ordinal alpha of a slices x readers grade matrix."""
    cats = as_categories(categories)
    idx = encode(matrix, cats, "matrix")
    if idx.ndim != 2:
        raise InputError(f"matrix: expected slices x readers (2-D), got shape {idx.shape}")
    n_slices, n_readers = idx.shape
    if n_readers < 2:
        raise InputError(f"matrix: need at least two readers (columns), got {n_readers}")
    counts = value_counts(idx, len(cats))
    graded = counts.sum(axis=1)
    complete = graded == n_readers
    return GroupStats(
        categories=cats,
        n_readers=int(n_readers),
        n_slices=int(n_slices),
        n_complete=int(complete.sum()),
        fleiss_kappa=fleiss_from_counts(counts[complete]),
        n_pairable=int((graded >= 2).sum()),
        krippendorff_alpha=krippendorff_from_counts(counts),
    )
