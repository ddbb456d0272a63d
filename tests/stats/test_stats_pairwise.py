"""Two-reader figures against scikit-learn and statsmodels (to 1e-9), edge cases, distances, JSON."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from statsmodels.stats.inter_rater import cohens_kappa

from annotator.domain.errors import InputError
from annotator.domain.scales import load_scale
from annotator.stats import MISSING, PairStats, click_offsets, distance_stats, pairwise

TOL = 1e-9
LEE = [0, 1, 2, 3]
SKEWED = [0.76, 0.17, 0.05, 0.02]  # Schizas A/B/C/D prevalence in the 2024 follow-up study


def _readers(seed: int, p: list[float], n: int = 400, agree: float = 0.75, missing: float = 0.05) -> Any:
    rng = np.random.default_rng(seed)
    q = len(p)
    a = rng.choice(q, size=n, p=p)
    top = max(i for i, v in enumerate(p) if v > 0)
    other = np.clip(a + rng.choice([-1, 1], size=n), 0, top)
    b = np.where(rng.random(n) < agree, a, np.where(rng.random(n) < 0.5, other, rng.choice(q, size=n, p=p)))
    a = np.where(rng.random(n) < missing, MISSING, a)
    b = np.where(rng.random(n) < missing, MISSING, b)
    return a, b


def _close(x: float, y: float) -> None:
    assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= TOL, (x, y)


def _check_against_libraries(s: PairStats, a: np.ndarray, b: np.ndarray, labels: list[int]) -> None:
    both = (a != MISSING) & (b != MISSING)
    ya, yb = a[both], b[both]
    assert s.n == int(both.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cm = skm.confusion_matrix(ya, yb, labels=labels)
        assert np.array_equal(np.array(s.confusion), cm)
        _close(s.accuracy, skm.accuracy_score(ya, yb))
        for avg, ours in (("macro", s.f1_macro), ("weighted", s.f1_weighted)):
            _close(ours, float(skm.f1_score(ya, yb, labels=labels, average=avg, zero_division=np.nan)))
        prec = skm.precision_score(ya, yb, labels=labels, average=None, zero_division=np.nan)
        rec = skm.recall_score(ya, yb, labels=labels, average=None, zero_division=np.nan)
        f1 = skm.f1_score(ya, yb, labels=labels, average=None, zero_division=np.nan)
        for i, k in enumerate(labels):
            _close(s.precision[k], float(prec[i]))
            _close(s.recall[k], float(rec[i]))
            _close(s.f1[k], float(f1[i]))
        for weights, stat in ((None, s.kappa), ("linear", s.kappa_linear), ("quadratic", s.kappa_quadratic)):
            _close(stat.value, float(skm.cohen_kappa_score(ya, yb, labels=labels, weights=weights)))
            ref = cohens_kappa(cm, wt=weights)
            _close(stat.value, float(ref.kappa))
            _close(stat.se, float(ref.std_kappa))
            _close(stat.se_null, float(ref.std_kappa0))
            _close(stat.ci_low, float(ref.kappa_low))
            _close(stat.ci_high, float(ref.kappa_upp))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(
    "prevalence",
    [SKEWED, [0.25, 0.25, 0.25, 0.25], [0.6, 0.3, 0.1, 0.0], [0.97, 0.01, 0.01, 0.01]],
    ids=["skewed", "uniform", "grade3-absent", "extreme"],
)
def test_random_data_matches_sklearn_and_statsmodels(seed: int, prevalence: list[float]) -> None:
    a, b = _readers(seed, prevalence)
    _check_against_libraries(pairwise(a, b, LEE), a, b, LEE)


@pytest.mark.parametrize("seed", [10, 11])
def test_three_grade_scale_and_non_contiguous_ordinals(seed: int) -> None:
    a, b = _readers(seed, [0.7, 0.2, 0.1])
    _check_against_libraries(pairwise(a, b, load_scale("rsna")), a, b, [0, 1, 2])
    ords = np.array([1, 3, 5])
    a5 = np.where(a == MISSING, MISSING, ords[np.clip(a, 0, 2)])
    b5 = np.where(b == MISSING, MISSING, ords[np.clip(b, 0, 2)])
    s = pairwise(a5, b5, [1, 3, 5])
    _check_against_libraries(s, a5, b5, [1, 3, 5])
    assert s.kappa_quadratic.value == pytest.approx(pairwise(a, b, [0, 1, 2]).kappa_quadratic.value, abs=TOL)


def test_all_one_grade_kappa_undefined_like_sklearn() -> None:
    a = np.zeros(20, dtype=int)
    s = pairwise(a, a, LEE)
    assert s.n == 20 and s.accuracy == 1.0 and s.f1_macro == 1.0 and s.f1_weighted == 1.0
    assert s.precision[0] == 1.0 and math.isnan(s.precision[1]) and math.isnan(s.recall[3])
    for stat in (s.kappa, s.kappa_linear, s.kappa_quadratic):
        assert math.isnan(stat.value) and math.isnan(stat.se)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(skm.cohen_kappa_score(a, a, labels=LEE))
    assert s.ac1 == 1.0 and s.ac2 == 1.0  # Gwet's coefficients stay defined (the kappa paradox)
    _check_against_libraries(s, a, a, LEE)


def test_readers_with_disjoint_grades() -> None:
    a, b = np.zeros(10, dtype=int), np.ones(10, dtype=int)
    s = pairwise(a, b, LEE)
    assert s.accuracy == 0.0 and s.kappa.value == 0.0 and s.f1_macro == 0.0
    _check_against_libraries(s, a, b, LEE)


def test_one_grade_absent_keeps_full_confusion_matrix() -> None:
    a = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    b = np.array([0, 1, 1, 1, 2, 0, 0, 2])
    s = pairwise(a, b, LEE)
    assert len(s.confusion) == 4 and s.confusion[3] == (0, 0, 0, 0)
    assert math.isnan(s.f1[3]) and set(s.precision) == {0, 1, 2, 3}
    _check_against_libraries(s, a, b, LEE)
    # the absent grade still counts in Gwet's chance agreement (q = 4, not 3)
    three = pairwise(a, b, [0, 1, 2])
    assert s.ac1 != pytest.approx(three.ac1) and s.ac2 != pytest.approx(three.ac2)
    # a grade absent from the middle of the scale still spaces the weighted-kappa positions
    a2, b2 = np.where(a >= 1, a + 1, a), np.where(b >= 1, b + 1, b)  # grades 0, 2, 3 only
    full, reduced = pairwise(a2, b2, LEE), pairwise(a2, b2, [0, 2, 3])
    _check_against_libraries(full, a2, b2, LEE)
    assert full.kappa_linear.value != pytest.approx(reduced.kappa_linear.value)
    assert full.kappa.value == pytest.approx(reduced.kappa.value, abs=TOL)


@pytest.mark.parametrize("a,b", [([0, 1], [0, 2]), ([2, 3], [2, 3]), ([0, 3], [3, 0])])
def test_two_slices_only(a: list[int], b: list[int]) -> None:
    s = pairwise(a, b, LEE)
    assert s.n == 2
    _check_against_libraries(s, np.array(a), np.array(b), LEE)


def test_missing_markers_are_equivalent() -> None:
    a, b = _readers(5, SKEWED, n=200, missing=0.2)
    ref = pairwise(a, b, LEE).as_dict()
    af = np.where(a == MISSING, np.nan, a.astype(float))
    am = np.ma.masked_array(np.where(a == MISSING, 0, a), mask=a == MISSING)
    ao = np.array([None if v == MISSING else int(v) for v in a], dtype=object)
    ao_nan = np.array([np.nan if v == MISSING else int(v) for v in a], dtype=object)
    for variant in (af, am, ao, ao_nan, list(af), [None if v == MISSING else int(v) for v in a]):
        assert pairwise(variant, b, LEE).as_dict() == ref
    assert ref["n"] == int(((a != MISSING) & (b != MISSING)).sum())
    assert ref["n_slices"] == 200


def test_no_common_slices_gives_nan_not_error() -> None:
    s = pairwise([0, MISSING, 1], [MISSING, 2, MISSING], LEE)
    assert s.n == 0 and s.n_slices == 3
    assert all(math.isnan(v) for v in (s.accuracy, s.f1_macro, s.kappa.value, s.ac1, s.ac2))
    assert sum(map(sum, s.confusion)) == 0


@pytest.mark.parametrize(
    "a,b,cats,match",
    [
        ([0, 4], [0, 1], LEE, "grade 4"),
        ([0, -3], [0, 1], LEE, "grade -3"),
        ([0, 1.5], [0, 1], LEE, "1.5"),
        ([0, None, 1.5], [0, 1, 1], LEE, "1.5"),
        (["0", "A"], [0, 1], LEE, "integers"),
        (np.array(["0", "1"]), [0, 1], LEE, "dtype"),
        ([0, 1, 2], [0, 1], LEE, "aligned"),
        ([0, 1], [0, 1], [0], "two grades"),
        ([0, 1], [0, 1], [0, 1, 1], "duplicated"),
        ([0, 1], [0, 1], [-1, 0], "negative"),
        ([[0, 1]], [[0, 1]], LEE, "1-D"),
    ],
)
def test_bad_input_raises_input_error(a: Any, b: Any, cats: list[int], match: str) -> None:
    with pytest.raises(InputError, match=match):
        pairwise(a, b, cats)


def test_as_dict_is_json_ready() -> None:
    a = np.array([0, 0, 1, 2, MISSING])
    b = np.array([0, 1, 1, 2, 0])
    pts = np.array([[10, 10], [20, 20], [np.nan, np.nan], [5, 5], [1, 1]], dtype=float)
    s = pairwise(a, b, LEE, points_a=pts, points_b=pts + 1, pixel_spacing=np.full((5, 2), 0.5))
    d = s.as_dict()
    assert d["precision"]["3"] is None  # NaN -> None, ordinal keys -> str
    assert d == json.loads(json.dumps(d, allow_nan=False))
    assert d["kappa"].keys() == {"value", "se", "se_null", "ci_low", "ci_high"}
    assert d["distance"]["n"] == 4
    with pytest.raises(AttributeError):
        s.n = 3  # type: ignore[misc]


# ---------------------------------------------------------------- distances in mm


def test_distance_uses_row_column_spacing_order() -> None:
    pa = np.array([[100.0, 100.0], [100.0, 100.0]])
    pb = np.array([[110.0, 100.0], [100.0, 110.0]])  # +10 px in x (column), then +10 px in y (row)
    spacing = np.array([[0.5, 0.8], [0.5, 0.8]])  # (row mm, column mm)
    d = distance_stats(pa, pb, spacing)
    assert d.n == 2 and d.mean_mm == pytest.approx((8.0 + 5.0) / 2)
    assert d.x.bias == pytest.approx(4.0) and d.y.bias == pytest.approx(2.5)


def test_click_offsets_against_a_hand_computation_with_anisotropic_spacing() -> None:
    pa = np.array([[10.0, 20.0], [50.0, 50.0], [5.0, 5.0], [np.nan, np.nan], [1.0, 1.0], [7.0, 7.0]])
    pb = np.array([[13.0, 24.0], [60.0, 50.0], [5.0, 9.0], [2.0, 2.0], [4.0, 5.0], [8.0, 8.0]])
    spacing = np.array([[0.5, 0.6],  # (row mm, column mm): 3 columns * 0.6 = 1.8, 4 rows * 0.5 = 2.0
                        [0.9, 0.3],  # 10 columns * 0.3 = 3.0 (9.0 if the axes were swapped)
                        [0.9, 0.3],  # 4 rows * 0.9 = 3.6 (1.2 if swapped)
                        [0.5, 0.5],  # reader a did not click
                        [np.nan, np.nan],  # mm unavailable
                        [np.inf, 0.5]])  # absurd spacing: unavailable, never an infinite distance
    off = click_offsets(pa, pb, spacing)
    assert off.slices.tolist() == [0, 1, 2]
    assert off.dx_mm.tolist() == pytest.approx([1.8, 3.0, 0.0])
    assert off.dy_mm.tolist() == pytest.approx([2.0, 0.0, 3.6])
    assert off.distance_mm.tolist() == pytest.approx([math.sqrt(1.8**2 + 2.0**2), 3.0, 3.6])
    assert (off.n_clicked, off.n_without_spacing) == (5, 2)
    d = distance_stats(pa, pb, spacing)  # the summary figures are of the same offsets
    assert (d.n, d.n_clicked, d.n_without_spacing) == (3, 5, 2)
    assert d.median_mm == pytest.approx(3.0) and d.mean_mm == pytest.approx((math.hypot(1.8, 2.0) + 6.6) / 3)


def test_distance_figures_and_bland_altman_against_numpy() -> None:
    rng = np.random.default_rng(3)
    n = 300
    pa = rng.uniform(100, 300, size=(n, 2))
    pb = pa + rng.normal([0.5, -1.0], [2.0, 3.0], size=(n, 2))
    spacing = np.tile(rng.uniform(0.3, 0.8, size=(n, 1)), (1, 2))
    spacing[:, 0] *= 1.1
    pa[:10] = np.nan  # reader a did not click
    pb[10:15, 0] = np.nan  # reader b did not click
    spacing[15:40] = np.nan  # mm unavailable
    spacing[40:45, 1] = 0.0  # invalid spacing counts as unavailable
    d = distance_stats(pa, pb, spacing)
    use = np.arange(n) >= 45
    dx = (pb[use, 0] - pa[use, 0]) * spacing[use, 1]
    dy = (pb[use, 1] - pa[use, 1]) * spacing[use, 0]
    dist = np.sqrt(dx**2 + dy**2)
    assert (d.n_clicked, d.n_without_spacing, d.n) == (n - 15, 30, n - 45)
    _close(d.median_mm, float(np.median(dist)))
    _close(d.p95_mm, float(np.percentile(dist, 95)))
    _close(d.mean_mm, float(dist.mean()))
    for ba, diff in ((d.x, dx), (d.y, dy)):
        sd = float(np.std(diff, ddof=1))
        assert ba.n == use.sum()
        _close(ba.bias, float(diff.mean()))
        _close(ba.sd, sd)
        _close(ba.lower, float(diff.mean()) - 1.959963984540054 * sd)
        _close(ba.upper, float(diff.mean()) + 1.959963984540054 * sd)


def test_distance_without_spacing_reports_mm_unavailable() -> None:
    pts = np.array([[1.0, 2.0], [3.0, 4.0]])
    d = distance_stats(pts, pts + 1)
    assert (d.n_clicked, d.n_without_spacing, d.n) == (2, 2, 0)
    assert math.isnan(d.median_mm) and d.x.n == 0 and d.as_dict()["median_mm"] is None


def test_pairwise_points_must_align() -> None:
    with pytest.raises(InputError, match="aligned"):
        pairwise([0, 1], [0, 1], LEE, points_a=np.zeros((3, 2)), points_b=np.zeros((3, 2)))
    with pytest.raises(InputError, match="together"):
        pairwise([0, 1], [0, 1], LEE, points_a=np.zeros((2, 2)))
