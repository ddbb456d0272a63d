"""Gwet's AC1 / AC2 (quadratic) for two raters: worked examples and an independent re-implementation."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.stats import MISSING, pairwise
from annotator.stats.agreement import gwet_ac


def _raw_from_table(table: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Expand a contingency table (rows: rater A, columns: rater B) into two rating vectors."""
    a: list[int] = []
    b: list[int] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i] * count
            b += [j] * count
    return np.array(a), np.array(b)


# Gwet, K.L. (2014) Handbook of Inter-Rater Reliability, 4th ed., Advanced Analytics: 100 pregnant
# women classified by two abstractors as Ectopic / AIU / NIU (dataset ``cont3x3abstractors`` of
# Gwet's irrCAC R package). irrCAC ``gwet.ac1.table`` reports AC1 = 0.849 (unweighted) and 0.940 with
# quadratic weights; the same figures are asserted in the Python port's test suite
# (afergadis/irrCAC, test/unit/irrCAC/table/test_gwet.py).
ABSTRACTORS = [[13, 0, 0], [0, 20, 7], [0, 4, 56]]
# irrCAC dataset ``cont4x4diagnosis`` (223 psychiatric patients, clinical vs research diagnosis);
# irrCAC reports AC1 = 0.456 and quadratic-weighted AC2 = 0.299 (same test file).
DIAGNOSIS = [[40, 4, 4, 17], [6, 25, 2, 13], [4, 1, 21, 12], [15, 5, 9, 45]]


@pytest.mark.parametrize(
    "table,ac1,ac2",
    [(ABSTRACTORS, 0.849, 0.940), (DIAGNOSIS, 0.456, 0.299)],
    ids=["cont3x3abstractors", "cont4x4diagnosis"],
)
def test_published_worked_examples(table: list[list[int]], ac1: float, ac2: float) -> None:
    """Published to three decimals (Gwet 2014 Handbook data; irrCAC gwet.ac1.table output)."""
    a, b = _raw_from_table(table)
    s = pairwise(a, b, list(range(len(table))))
    assert round(s.ac1, 3) == ac1
    assert round(s.ac2, 3) == ac2


def test_abstractors_by_hand() -> None:
    """Hand calculation from Gwet's formula: pa = 0.89, pi = (0.13, 0.255, 0.615), pe = 0.269925."""
    pe = (0.13 * 0.87 + 0.255 * 0.745 + 0.615 * 0.385) / 2
    assert pe == pytest.approx(0.269925)
    expected = (0.89 - pe) / (1 - pe)
    assert float(gwet_ac(np.array(ABSTRACTORS))) == pytest.approx(expected, abs=1e-12)
    # AC2, quadratic weights 1 - (k-l)^2/(q-1)^2: pa = 0.89 + 0.75 * 0.11, T_w = 6, pe = 6/6 * sum pi(1-pi)
    pe2 = 6 / 6 * (2 * pe)
    expected2 = (0.89 + 0.75 * 0.11 - pe2) / (1 - pe2)
    assert float(gwet_ac(np.array(ABSTRACTORS), "quadratic")) == pytest.approx(expected2, abs=1e-12)


def _ac_reference(a: list[int], b: list[int], q: int, quadratic: bool) -> float:
    """Gwet (2008) / Handbook, straight from the formula with plain Python loops."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x != MISSING and y != MISSING]
    n = len(pairs)

    def weight(k: int, m: int) -> float:
        if not quadratic:
            return 1.0 if k == m else 0.0
        return 1.0 - (k - m) ** 2 / (q - 1) ** 2

    pa = sum(weight(x, y) for x, y in pairs) / n
    pi = [(sum(1 for x, _ in pairs if x == k) + sum(1 for _, y in pairs if y == k)) / (2 * n) for k in range(q)]
    t_w = sum(weight(k, m) for k in range(q) for m in range(q))
    pe = t_w / (q * (q - 1)) * sum(p * (1 - p) for p in pi)
    return (pa - pe) / (1 - pe)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("q", [3, 4, 5])
def test_matches_independent_implementation_on_random_data(seed: int, q: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    p = rng.dirichlet(np.full(q, 0.7))
    a = rng.choice(q, size=n, p=p)
    b = np.where(rng.random(n) < 0.6, a, rng.choice(q, size=n, p=p))
    a[rng.random(n) < 0.1] = MISSING
    if not ((a != MISSING) & (b != MISSING)).any():
        a[0], b[0] = 0, 0
    s = pairwise(a, b, list(range(q)))
    assert s.ac1 == pytest.approx(_ac_reference(list(a), list(b), q, False), abs=1e-12)
    assert s.ac2 == pytest.approx(_ac_reference(list(a), list(b), q, True), abs=1e-12)


def test_symmetric_in_the_two_raters_and_high_under_skew() -> None:
    rng = np.random.default_rng(9)
    a = rng.choice(4, size=500, p=[0.9, 0.06, 0.03, 0.01])
    b = np.where(rng.random(500) < 0.9, a, 0)
    s, t = pairwise(a, b, [0, 1, 2, 3]), pairwise(b, a, [0, 1, 2, 3])
    assert s.ac1 == pytest.approx(t.ac1, abs=1e-15) and s.ac2 == pytest.approx(t.ac2, abs=1e-15)
    assert s.ac1 > s.kappa.value  # the prevalence paradox AC1 was built for


def test_vectorised_over_a_stack() -> None:
    tables = np.array([ABSTRACTORS, [[5, 1, 0], [2, 3, 1], [0, 0, 9]], np.zeros((3, 3), dtype=int).tolist()])
    out = gwet_ac(tables)
    assert out.shape == (3,)
    assert out[0] == pytest.approx(float(gwet_ac(np.array(ABSTRACTORS))))
    assert np.isnan(out[2])
