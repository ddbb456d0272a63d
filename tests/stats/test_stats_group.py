"""Fleiss' kappa and ordinal Krippendorff's alpha against statsmodels / krippendorff (1e-9)."""

from __future__ import annotations

import json
import math
import warnings

import krippendorff
import numpy as np
import pytest
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from annotator.domain.errors import InputError
from annotator.stats import group
from annotator.stats.group import fleiss_from_counts

TOL = 1e-9
LEE = [0, 1, 2, 3]


def _matrix(seed: int, n: int, readers: int, p: list[float], missing: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.choice(len(p), size=n, p=p)
    noise = rng.choice(len(p), size=(n, readers), p=p)
    x = np.where(rng.random((n, readers)) < 0.7, truth[:, None], noise).astype(float)
    x[rng.random((n, readers)) < missing] = np.nan
    return x


def _fleiss_ref(x: np.ndarray) -> float:
    complete = x[~np.isnan(x).any(axis=1)].astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fleiss_kappa(aggregate_raters(complete)[0]))


def _alpha_ref(x: np.ndarray, cats: list[int]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(krippendorff.alpha(reliability_data=x.T, level_of_measurement="ordinal", value_domain=cats))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("readers", [2, 3, 5])
@pytest.mark.parametrize(
    "p", [[0.76, 0.17, 0.05, 0.02], [0.25, 0.25, 0.25, 0.25], [0.5, 0.0, 0.3, 0.2]], ids=["skew", "flat", "gap"]
)
def test_random_matrices_match_libraries(seed: int, readers: int, p: list[float]) -> None:
    x = _matrix(seed, 250, readers, p, missing=0.15)
    g = group(x, LEE)
    assert g.n_complete == int((~np.isnan(x).any(axis=1)).sum())
    assert g.n_pairable == int(((~np.isnan(x)).sum(axis=1) >= 2).sum())
    assert g.fleiss_kappa == pytest.approx(_fleiss_ref(x), abs=TOL)
    assert g.krippendorff_alpha == pytest.approx(_alpha_ref(x, LEE), abs=TOL)


def test_krippendorff_2011_published_example() -> None:
    """Krippendorff (2011) "Computing Krippendorff's alpha-reliability", 4 observers x 12 units,
    values 1..5 with missing data: alpha_ordinal = 0.815 (also the krippendorff package's doctest)."""
    nan = np.nan
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    )
    g = group(data.T, [1, 2, 3, 4, 5])
    assert round(g.krippendorff_alpha, 3) == 0.815
    assert g.krippendorff_alpha == pytest.approx(_alpha_ref(data.T, [1, 2, 3, 4, 5]), abs=TOL)
    assert g.n_pairable == 11 and g.n_complete == 8


def test_fleiss_wikipedia_example() -> None:
    """The worked example of the Wikipedia article on Fleiss' kappa (10 subjects, 14 raters): 0.210."""
    counts = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert round(fleiss_from_counts(counts), 3) == 0.210
    assert fleiss_from_counts(counts) == pytest.approx(fleiss_kappa(counts), abs=TOL)


def test_non_contiguous_ordinals_and_absent_grade() -> None:
    x = _matrix(7, 120, 4, [0.6, 0.3, 0.1], missing=0.1)
    ords = np.array([2, 5, 9])
    y = np.where(np.isnan(x), np.nan, ords[np.nan_to_num(x).astype(int)])
    g = group(y, [2, 5, 9, 12])  # grade 12 never used
    assert g.krippendorff_alpha == pytest.approx(_alpha_ref(y, [2, 5, 9, 12]), abs=TOL)
    assert g.fleiss_kappa == pytest.approx(_fleiss_ref(y), abs=TOL)


def test_all_same_grade_and_no_pairable_units_are_nan() -> None:
    same = np.zeros((10, 3))
    g = group(same, LEE)
    assert math.isnan(g.fleiss_kappa) and math.isnan(g.krippendorff_alpha)
    assert math.isnan(_fleiss_ref(same)) and math.isnan(_alpha_ref(same, LEE))
    lonely = np.array([[0, np.nan], [np.nan, 1]])
    g2 = group(lonely, LEE)
    assert (g2.n_complete, g2.n_pairable) == (0, 0)
    assert math.isnan(g2.fleiss_kappa) and math.isnan(g2.krippendorff_alpha)
    with pytest.raises(ValueError):  # the library refuses; we report NaN
        krippendorff.alpha(reliability_data=lonely.T, level_of_measurement="ordinal", value_domain=LEE)
    d = g2.as_dict()
    assert d["fleiss_kappa"] is None and d == json.loads(json.dumps(d, allow_nan=False))


def test_integer_matrix_with_missing_marker() -> None:
    x = _matrix(3, 80, 3, [0.5, 0.3, 0.2, 0.0], missing=0.2)
    xi = np.where(np.isnan(x), -1, np.nan_to_num(x)).astype(int)
    assert group(xi, LEE) == group(x, LEE)


def test_bad_matrices() -> None:
    with pytest.raises(InputError, match="two readers"):
        group(np.zeros((5, 1)), LEE)
    with pytest.raises(InputError, match="2-D"):
        group(np.zeros(5), LEE)
    with pytest.raises(InputError, match="grade 7"):
        group(np.array([[0, 7], [1, 1]]), LEE)
