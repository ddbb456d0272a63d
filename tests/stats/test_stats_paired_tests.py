"""McNemar and Stuart-Maxwell against statsmodels directly."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import SquareTable, mcnemar

from annotator.stats import MISSING, mcnemar_vs_reference, stuart_maxwell
from annotator.stats.paired_tests import EXACT_BELOW

LEE = [0, 1, 2, 3]


def _three_readers(seed: int, n: int, p1: float, p2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.choice(4, size=n, p=[0.7, 0.2, 0.07, 0.03])
    r1 = np.where(rng.random(n) < p1, ref, rng.choice(4, size=n))
    r2 = np.where(rng.random(n) < p2, ref, rng.choice(4, size=n))
    r2[rng.random(n) < 0.05] = MISSING
    return ref, r1, r2


@pytest.mark.parametrize("seed,n", [(0, 40), (1, 300), (2, 542), (3, 15)])
@pytest.mark.parametrize("exact", [None, True, False])
def test_mcnemar_matches_statsmodels(seed: int, n: int, exact: bool | None) -> None:
    ref, r1, r2 = _three_readers(seed, n, 0.8, 0.7)
    res = mcnemar_vs_reference(ref, r1, r2, LEE, exact=exact)
    use = r2 != MISSING
    c1, c2 = r1[use] == ref[use], r2[use] == ref[use]
    table = np.array([[np.sum(c1 & c2), np.sum(c1 & ~c2)], [np.sum(~c1 & c2), np.sum(~c1 & ~c2)]])
    assert np.array_equal(np.array(res.table), table) and res.n == int(use.sum())
    use_exact = bool(table[0, 1] + table[1, 0] < EXACT_BELOW) if exact is None else exact
    ref_res = mcnemar(table, exact=use_exact, correction=True)
    assert res.exact is use_exact
    assert res.statistic == pytest.approx(float(ref_res.statistic), abs=1e-12)
    assert res.p_value == pytest.approx(float(ref_res.pvalue), abs=1e-12)
    assert res.accuracy_1 == pytest.approx(c1.mean()) and res.accuracy_2 == pytest.approx(c2.mean())
    js = res.as_dict()
    assert js == json.loads(json.dumps(js, allow_nan=False))


def test_mcnemar_no_discordance() -> None:
    ref = np.array([0, 1, 2, 3, 0])
    res = mcnemar_vs_reference(ref, ref, ref, LEE)
    assert res.exact and res.n_discordant == 0 and res.p_value == 1.0


def _random_table_readers(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.choice(4, size=n, p=[0.5, 0.25, 0.15, 0.1])
    b = np.where(rng.random(n) < 0.6, a, rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1]))
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_stuart_maxwell_matches_statsmodels(seed: int) -> None:
    a, b = _random_table_readers(seed, 400)
    res = stuart_maxwell(a, b, LEE)
    table = np.zeros((4, 4))
    np.add.at(table, (a, b), 1)
    ref = SquareTable(table, shift_zeros=False).homogeneity()
    assert res.categories_used == (0, 1, 2, 3) and res.df == ref.df == 3
    assert res.statistic == pytest.approx(float(ref.statistic), abs=1e-9)
    assert res.p_value == pytest.approx(float(ref.pvalue), abs=1e-9)


def test_grade_without_disagreement_is_left_out() -> None:
    a, b = _random_table_readers(5, 300)
    to = np.array([0, 2, 3, 3])  # grades 0, 2, 3 only ...
    a1, b1 = np.append(to[a], [1, 1]), np.append(to[b], [1, 1])  # ... and grade 1 where both agree
    res = stuart_maxwell(a1, b1, LEE)
    table = np.zeros((4, 4))
    np.add.at(table, (a1, b1), 1)
    keep = [0, 2, 3]
    ref = SquareTable(table[np.ix_(keep, keep)], shift_zeros=False).homogeneity()
    assert res.categories_used == (0, 2, 3) and res.df == 2 and res.n == 302
    assert res.statistic == pytest.approx(float(ref.statistic), abs=1e-9)
    assert res.p_value == pytest.approx(float(ref.pvalue), abs=1e-9)
    with warnings.catch_warnings():  # statsmodels on the full table cannot invert the covariance
        warnings.simplefilter("ignore")
        full = SquareTable(table, shift_zeros=False).homogeneity()
    assert np.isnan(full.statistic)


def test_disconnected_disagreements_sum_of_mcnemar_like_terms() -> None:
    """Disagreements only 0<->1 and 2<->3: the statistic splits into two uncorrected McNemar chi^2."""
    a = np.array([0] * 20 + [1] * 15 + [0] * 6 + [1] * 2 + [2] * 10 + [3] * 5 + [2] * 1 + [3] * 7)
    b = np.array([0] * 20 + [1] * 15 + [1] * 6 + [0] * 2 + [2] * 10 + [3] * 5 + [3] * 1 + [2] * 7)
    res = stuart_maxwell(a, b, LEE)
    expected = (6 - 2) ** 2 / (6 + 2) + (1 - 7) ** 2 / (1 + 7)
    assert res.df == 2 and res.statistic == pytest.approx(expected, abs=1e-9)


def test_perfect_agreement_and_missing_grades() -> None:
    a = np.array([0, 1, 2, 2, MISSING])
    res = stuart_maxwell(a, np.array([0, 1, 2, 2, 3]), LEE)
    assert (res.n, res.statistic, res.df, res.p_value, res.categories_used) == (4, 0.0, 0, 1.0, ())
    assert res.as_dict()["categories_used"] == []
