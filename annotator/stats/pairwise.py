"""Agreement of two readers on the slices both graded, and the distance between their canal clicks.

Inputs are arrays aligned by slice. Grades follow ``annotator.stats._inputs`` (missing = -1, NaN or
masked). Points are ``(n, 2)`` arrays of ``(x, y)`` = (column, row) in pixels, NaN where the reader did
not click. Pixel spacing is ``(n, 2)`` of ``(row mm, column mm)`` as DICOM PixelSpacing orders it, NaN
(or <= 0, or infinite) where unavailable: those slices are counted and left out of every mm figure;
nothing assumes 1 mm. The distance figures use every slice where both readers clicked, whether or not
both graded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from annotator.domain.errors import InputError
from annotator.stats import agreement as ag
from annotator.stats._inputs import (
    Categories,
    FloatArray,
    Grades,
    IntArray,
    as_categories,
    encode_1d,
    jsonable,
    same_length,
)

Z95 = float(sps.norm.isf(0.025))


@dataclass(frozen=True, slots=True)
class KappaStat:
    """Cohen's kappa with statsmodels' SEs; ci_* = kappa -/+ 1.96 se (statsmodels kappa_low/kappa_upp)."""

    value: float
    se: float
    se_null: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True, slots=True)
class BlandAltman:
    """Differences b - a along one image axis, in mm; limits = bias -/+ 1.96 sd (sd with ddof=1)."""

    n: int
    bias: float
    sd: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class ClickOffsets:
    """Per-slice offsets in mm from reader a's click to reader b's, on the slices that have both clicks
    and a usable pixel spacing (``slices``: their positions in the input arrays, ascending).

    ``dx_mm`` runs along the columns (x, scaled by the column spacing), ``dy_mm`` along the rows (y,
    scaled by the row spacing). ``n_clicked``: slices where both clicked, with or without spacing.
    """

    slices: IntArray
    dx_mm: FloatArray
    dy_mm: FloatArray
    n_clicked: int

    @property
    def distance_mm(self) -> FloatArray:
        """Euclidean distance between the two clicks, one per measured slice."""
        return np.hypot(self.dx_mm, self.dy_mm)

    @property
    def n_without_spacing(self) -> int:
        return self.n_clicked - int(self.slices.size)


@dataclass(frozen=True, slots=True)
class DistanceStats:
    """Euclidean distance between the two readers' clicks in mm.

    ``n_clicked``: slices where both clicked; ``n_without_spacing``: of those, slices with no usable
    pixel spacing (excluded); ``n = n_clicked - n_without_spacing`` slices enter the mm figures.
    ``x`` is the column (left-right in the image) axis, ``y`` the row axis.
    """

    n_clicked: int
    n_without_spacing: int
    n: int
    median_mm: float
    p95_mm: float
    mean_mm: float
    x: BlandAltman
    y: BlandAltman

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(self)
        return out


@dataclass(frozen=True, slots=True)
class PairStats:
    """Agreement of reader a (rows; the reference for precision/recall) and reader b (columns).

    ``n_slices``: length of the input; ``n``: slices both readers graded (every grade figure uses
    these). ``confusion[i][j]`` counts slices a graded ``categories[i]`` and b ``categories[j]``.
    Per-grade dicts are keyed by ordinal. Undefined figures are NaN (see ``annotator.stats.agreement``).
    """

    categories: tuple[int, ...]
    n_slices: int
    n: int
    accuracy: float
    f1_macro: float
    f1_weighted: float
    precision: dict[int, float]
    recall: dict[int, float]
    f1: dict[int, float]
    confusion: tuple[tuple[int, ...], ...]
    kappa: KappaStat
    kappa_linear: KappaStat
    kappa_quadratic: KappaStat
    ac1: float
    ac2: float
    distance: DistanceStats | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN -> None, ordinal keys -> strings."""
        out: dict[str, Any] = jsonable(self)
        return out


def _kappa_stats(c: np.ndarray) -> tuple[KappaStat, KappaStat, KappaStat]:
    out = []
    for weighting in ag.WEIGHTINGS:
        value = float(ag.cohen_kappa(c, weighting))
        se, se0 = (float(v) for v in ag.kappa_se(c, weighting))
        out.append(KappaStat(value, se, se0, value - Z95 * se, value + Z95 * se))
    return out[0], out[1], out[2]


def _points(arr: npt.ArrayLike, n: int, name: str) -> FloatArray:
    p = np.asarray(arr, dtype=np.float64)
    if p.shape != (n, 2):
        raise InputError(f"{name}: expected shape ({n}, 2), got {p.shape}")
    return p


def _bland_altman(diff: FloatArray) -> BlandAltman:
    n = int(diff.size)
    if n == 0:
        return BlandAltman(0, float("nan"), float("nan"), float("nan"), float("nan"))
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if n > 1 else float("nan")
    return BlandAltman(n, bias, sd, bias - Z95 * sd, bias + Z95 * sd)


def click_offsets(
    points_a: npt.ArrayLike, points_b: npt.ArrayLike, pixel_spacing: npt.ArrayLike | None = None
) -> ClickOffsets:
    """The rule for click distances in mm (see the module docstring for array layouts): a slice counts
    when both readers clicked and its spacing is finite and positive on both axes; nothing assumes 1 mm."""
    pa = np.asarray(points_a, dtype=np.float64)
    if pa.ndim != 2 or pa.shape[1] != 2:
        raise InputError(f"points_a: expected shape (n, 2), got {pa.shape}")
    n_all = pa.shape[0]
    pb = _points(points_b, n_all, "points_b")
    no_spacing = np.full((n_all, 2), np.nan)
    sp = no_spacing if pixel_spacing is None else _points(pixel_spacing, n_all, "pixel_spacing")
    clicked = ~(np.isnan(pa).any(axis=1) | np.isnan(pb).any(axis=1))
    with np.errstate(invalid="ignore"):
        has_mm = np.isfinite(sp).all(axis=1) & (sp > 0).all(axis=1)
    use = clicked & has_mm
    dx = (pb[use, 0] - pa[use, 0]) * sp[use, 1]  # columns differ -> column spacing
    dy = (pb[use, 1] - pa[use, 1]) * sp[use, 0]  # rows differ -> row spacing
    return ClickOffsets(np.flatnonzero(use).astype(np.int64), dx, dy, int(clicked.sum()))


def distance_stats(
    points_a: npt.ArrayLike, points_b: npt.ArrayLike, pixel_spacing: npt.ArrayLike | None = None
) -> DistanceStats:
    """Click distance in mm between two readers: summary figures of ``click_offsets``."""
    off = click_offsets(points_a, points_b, pixel_spacing)
    dx, dy, dist = off.dx_mm, off.dy_mm, off.distance_mm
    n = int(off.slices.size)
    nan = float("nan")
    return DistanceStats(
        n_clicked=off.n_clicked,
        n_without_spacing=off.n_without_spacing,
        n=n,
        median_mm=float(np.median(dist)) if n else nan,
        p95_mm=float(np.percentile(dist, 95)) if n else nan,
        mean_mm=float(dist.mean()) if n else nan,
        x=_bland_altman(dx),
        y=_bland_altman(dy),
    )


def pairwise(
    a: Grades,
    b: Grades,
    categories: Categories,
    *,
    points_a: npt.ArrayLike | None = None,
    points_b: npt.ArrayLike | None = None,
    pixel_spacing: npt.ArrayLike | None = None,
) -> PairStats:
    """All two-reader figures on the slices both graded (plus click distances when points are given)."""
    cats = as_categories(categories)
    ia = encode_1d(a, cats, "a")
    ib = encode_1d(b, cats, "b")
    n_slices = same_length(a=ia, b=ib)
    both = (ia >= 0) & (ib >= 0)
    q = len(cats)
    c = ag.confusion_counts(ia[both], ib[both], q)
    precision, recall, f1 = ag.precision_recall_f1(c)
    macro, weighted = ag.f1_macro_weighted(c)
    kappa, kappa_lin, kappa_quad = _kappa_stats(c)
    distance = None
    if points_a is not None or points_b is not None:
        if points_a is None or points_b is None:
            raise InputError("points_a and points_b must be given together")
        n_points = len(np.asarray(points_a))
        if n_points != n_slices:
            raise InputError(f"points are not aligned with grades: {n_points} points, {n_slices} slices")
        distance = distance_stats(points_a, points_b, pixel_spacing)
    return PairStats(
        categories=cats,
        n_slices=n_slices,
        n=int(both.sum()),
        accuracy=float(ag.accuracy(c)),
        f1_macro=float(macro),
        f1_weighted=float(weighted),
        precision={k: float(v) for k, v in zip(cats, precision, strict=True)},
        recall={k: float(v) for k, v in zip(cats, recall, strict=True)},
        f1={k: float(v) for k, v in zip(cats, f1, strict=True)},
        confusion=tuple(tuple(int(v) for v in row) for row in c),
        kappa=kappa,
        kappa_linear=kappa_lin,
        kappa_quadratic=kappa_quad,
        ac1=float(ag.gwet_ac(c, "unweighted")),
        ac2=float(ag.gwet_ac(c, "quadratic")),
        distance=distance,
    )
