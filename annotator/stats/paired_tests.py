"""Paired significance tests: McNemar (two readers right/wrong against a reference) and
Stuart-Maxwell marginal homogeneity (do two readers use the grades equally often?).

Both wrap statsmodels (``statsmodels.stats.contingency_tables``). Slices enter when every grade the
test needs is present.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps
from scipy.sparse.csgraph import connected_components
from statsmodels.stats.contingency_tables import SquareTable, mcnemar

from annotator.stats import agreement as ag
from annotator.stats._inputs import Categories, Grades, as_categories, encode_1d, jsonable, same_length

EXACT_BELOW = 25
"""McNemar uses the exact binomial test when fewer discordant slices than this (else chi^2, corrected)."""


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """``table = ((both right, only 1 right), (only 2 right, both wrong))`` on ``n`` slices.

    ``statistic`` is min(b, c) for the exact test, the continuity-corrected chi^2 otherwise
    (statsmodels' convention).
    """

    n: int
    table: tuple[tuple[int, int], tuple[int, int]]
    n_discordant: int
    accuracy_1: float
    accuracy_2: float
    exact: bool
    statistic: float
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(self)
        return out


@dataclass(frozen=True, slots=True)
class StuartMaxwellResult:
    """Stuart-Maxwell chi^2 of marginal homogeneity on ``n`` slices.

    ``categories_used``: grades involved in at least one disagreement; a grade on which the readers
    never disagree adds nothing to the test and would make its covariance matrix singular, so it is
    left out (df = len(categories_used) - 1). With no disagreement at all: statistic 0, df 0, p 1.
    """

    n: int
    categories_used: tuple[int, ...]
    statistic: float
    df: int
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(self)
        return out


def mcnemar_vs_reference(
    reference: Grades,
    reader_1: Grades,
    reader_2: Grades,
    categories: Categories,
    *,
    exact: bool | None = None,
) -> McNemarResult:
    """McNemar test of reader 1 vs reader 2 being right (= the reference's grade) on the same slices.

    ``exact=None`` picks the exact binomial test when there are fewer than ``EXACT_BELOW`` discordant
    slices, the continuity-corrected chi^2 otherwise.
    """
    cats = as_categories(categories)
    r = encode_1d(reference, cats, "reference")
    x = encode_1d(reader_1, cats, "reader_1")
    y = encode_1d(reader_2, cats, "reader_2")
    same_length(reference=r, reader_1=x, reader_2=y)
    use = (r >= 0) & (x >= 0) & (y >= 0)
    right1 = x[use] == r[use]
    right2 = y[use] == r[use]
    both = int((right1 & right2).sum())
    only1 = int((right1 & ~right2).sum())
    only2 = int((~right1 & right2).sum())
    neither = int((~right1 & ~right2).sum())
    n = int(use.sum())
    discordant = only1 + only2
    use_exact = discordant < EXACT_BELOW if exact is None else exact
    table = ((both, only1), (only2, neither))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = mcnemar(np.array(table), exact=use_exact, correction=True)
    nan = float("nan")
    return McNemarResult(
        n=n,
        table=table,
        n_discordant=discordant,
        accuracy_1=(both + only1) / n if n else nan,
        accuracy_2=(both + only2) / n if n else nan,
        exact=use_exact,
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
    )


def _pinv_homogeneity(table: npt.NDArray[np.float64]) -> tuple[float, int]:
    """Stuart-Maxwell with a pseudo-inverse: the same statistic where the discordance graph is
    connected; needed when disagreements split the grades into separate groups."""
    n = table.sum()
    p = table / n
    d = p.sum(axis=0) - p.sum(axis=1)
    v = -(p + p.T)
    np.fill_diagonal(v, p.sum(axis=0) + p.sum(axis=1) - 2 * np.diag(p))
    rank = int(np.linalg.matrix_rank(v))
    return float(n * d @ np.linalg.pinv(v) @ d), rank


def stuart_maxwell(a: Grades, b: Grades, categories: Categories) -> StuartMaxwellResult:
    """Stuart-Maxwell test that readers a and b have the same grade distribution (statsmodels
    ``SquareTable(table, shift_zeros=False).homogeneity()`` on the grades with disagreements)."""
    cats = as_categories(categories)
    ia = encode_1d(a, cats, "a")
    ib = encode_1d(b, cats, "b")
    same_length(a=ia, b=ib)
    both = (ia >= 0) & (ib >= 0)
    c = ag.confusion_counts(ia[both], ib[both], len(cats))
    n = int(both.sum())
    off = c - np.diag(np.diag(c))
    involved = (off.sum(axis=0) + off.sum(axis=1)) > 0
    used = tuple(k for k, keep in zip(cats, involved, strict=True) if keep)
    if len(used) < 2:
        return StuartMaxwellResult(n, used, 0.0, 0, 1.0)
    reduced = c[np.ix_(involved, involved)].astype(np.float64)
    n_groups, _ = connected_components(off[np.ix_(involved, involved)] + off[np.ix_(involved, involved)].T)
    if n_groups == 1:
        res = SquareTable(reduced, shift_zeros=False).homogeneity()
        statistic, df, p_value = float(res.statistic), int(res.df), float(res.pvalue)
    else:
        statistic, df = _pinv_homogeneity(reduced)
        p_value = float(sps.chi2.sf(statistic, df))
    return StuartMaxwellResult(n, used, statistic, df, p_value)
