"""Agreement figures computed from confusion matrices, vectorised over stacks of them.

Every function takes counts ``C`` of shape ``(..., q, q)`` (rows: reader a, the reference for
precision/recall; columns: reader b) and returns one value per matrix, so the point estimate and
thousands of bootstrap resamples share one code path. Each figure is tested against scikit-learn,
statsmodels or a published worked example (``tests/stats/test_stats_*.py``).

Conventions (where a figure is undefined it is NaN, like scikit-learn's ``replace_undefined_by`` /
``zero_division=np.nan``):

- per-grade precision is NaN when reader b never gave the grade, recall when reader a never did, F1
  when neither did; macro F1 averages the grades where F1 is defined (a grade nobody used does not
  count as F1 = 0), weighted F1 weights grades by reader a's counts.
- Cohen's kappa is NaN when the chance-expected disagreement is 0 (both readers gave one and the same
  grade to every slice) or there are no slices. Weights use the grade's *position* on the scale
  (0..q-1), as sklearn's ``cohen_kappa_score`` and statsmodels' ``cohens_kappa`` do.
- Kappa standard errors follow ``statsmodels.stats.inter_rater.cohens_kappa``: ``se`` is its
  ``std_kappa`` (large-sample SE without assuming kappa = 0, Fleiss, Cohen & Everitt 1969; the SE
  statsmodels uses for its confidence interval) and ``se_null`` its ``std_kappa0`` (SE under
  H0: kappa = 0, for the z test). A variance that rounds below 0 is clipped to 0.
- Gwet's AC1/AC2 (Gwet 2008; Handbook of Inter-Rater Reliability) use the full category set (q).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from annotator.stats._inputs import FloatArray, IntArray

Weighting = Literal["unweighted", "linear", "quadratic"]
WEIGHTINGS: tuple[Weighting, ...] = ("unweighted", "linear", "quadratic")


def confusion_counts(ia: IntArray, ib: IntArray, q: int) -> IntArray:
    """q x q counts of (a, b) index pairs; both arrays hold valid indices 0..q-1 only."""
    return np.bincount(ia * q + ib, minlength=q * q).reshape(q, q).astype(np.int64)


def disagreement_weights(q: int, weighting: Weighting) -> FloatArray:
    """Disagreement weights normalised to a maximum of 1 (kappa is invariant to the scale)."""
    pos = np.arange(q, dtype=np.float64)
    diff = np.abs(pos[:, None] - pos[None, :])
    if weighting == "unweighted":
        return (diff > 0).astype(np.float64)
    if weighting == "linear":
        return diff / (q - 1)
    if weighting == "quadratic":
        return diff**2 / (q - 1) ** 2
    raise ValueError(f"unknown weighting {weighting!r}")


def _div(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _parts(c: np.ndarray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    cf = np.asarray(c, dtype=np.float64)
    n = cf.sum(axis=(-2, -1))
    rows = cf.sum(axis=-1)
    cols = cf.sum(axis=-2)
    diag = np.diagonal(cf, axis1=-2, axis2=-1)
    return n, rows, cols, diag


def accuracy(c: np.ndarray) -> FloatArray:
    n, _, _, diag = _parts(c)
    return _div(diag.sum(axis=-1), n)


def precision_recall_f1(c: np.ndarray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-grade precision, recall and F1, each of shape (..., q), NaN where undefined."""
    _, rows, cols, diag = _parts(c)
    return _div(diag, cols), _div(diag, rows), _div(2.0 * diag, rows + cols)


def f1_macro_weighted(c: np.ndarray) -> tuple[FloatArray, FloatArray]:
    _, rows, cols, diag = _parts(c)
    f1 = _div(2.0 * diag, rows + cols)
    defined = ~np.isnan(f1)
    macro = _div(np.where(defined, f1, 0.0).sum(axis=-1), defined.sum(axis=-1).astype(np.float64))
    weighted = _div((np.where(defined, f1, 0.0) * rows).sum(axis=-1), rows.sum(axis=-1))
    return macro, weighted


def cohen_kappa(c: np.ndarray, weighting: Weighting = "unweighted") -> FloatArray:
    n, rows, cols, _ = _parts(c)
    w = disagreement_weights(c.shape[-1], weighting)
    observed = (w * c).sum(axis=(-2, -1))
    expected = np.einsum("ij,...i,...j->...", w, rows, cols)
    return 1.0 - _div(observed * n, expected)


def kappa_se(c: np.ndarray, weighting: Weighting = "unweighted") -> tuple[FloatArray, FloatArray]:
    """(se, se_null) of Cohen's kappa: statsmodels' ``std_kappa`` and ``std_kappa0``, vectorised."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _kappa_se(c, weighting)


def _kappa_se(c: np.ndarray, weighting: Weighting) -> tuple[FloatArray, FloatArray]:
    n, rows, cols, _ = _parts(c)
    p = _div(np.asarray(c, dtype=np.float64), n[..., None, None])
    fr = _div(rows, n[..., None])  # reader a marginal (statsmodels freq_row)
    fc = _div(cols, n[..., None])  # reader b marginal (statsmodels freq_col)
    kappa = cohen_kappa(c, weighting)[..., None]
    q = c.shape[-1]
    if weighting == "unweighted":
        pe = (fr * fc).sum(axis=-1)
        pdiag = np.diagonal(p, axis1=-2, axis2=-1)
        term_a = (pdiag * (1 - (fr + fc) * (1 - kappa)) ** 2).sum(axis=-1)
        off = 1.0 - np.eye(q)
        term_b = (off * p * (fc[..., :, None] + fr[..., None, :]) ** 2).sum(axis=(-2, -1))
        term_b = (1 - kappa[..., 0]) ** 2 * term_b
        term_c = (kappa[..., 0] - pe * (1 - kappa[..., 0])) ** 2
        var = (term_a + term_b - term_c) / (1 - pe) ** 2 / n
        var0 = (pe + pe**2 - (fc * fr * (fc + fr)).sum(axis=-1)) / ((1 - pe) ** 2 * n)
    else:
        w = 1.0 - disagreement_weights(q, weighting)
        w_row = np.einsum("ij,...j->...i", w, fc)
        w_col = np.einsum("ij,...i->...j", w, fr)
        agree_wexp = np.einsum("ij,...i,...j->...", w, fr, fc)
        centred = w - (w_col[..., None, :] + w_row[..., :, None]) * (1 - kappa[..., None])
        fac = 1.0 / ((1 - agree_wexp) ** 2 * n)
        k0 = kappa[..., 0]
        var = ((p * centred**2).sum(axis=(-2, -1)) - (k0 - agree_wexp * (1 - k0)) ** 2) * fac
        expected = fr[..., :, None] * fc[..., None, :]
        spread = (w - (w_col[..., None, :] + w_row[..., :, None])) ** 2
        var0 = ((expected * spread).sum(axis=(-2, -1)) - agree_wexp**2) * fac
    return np.sqrt(np.maximum(var, 0.0)), np.sqrt(np.maximum(var0, 0.0))


def gwet_ac(c: np.ndarray, weighting: Literal["unweighted", "quadratic"] = "unweighted") -> FloatArray:
    """Gwet's AC1 (unweighted) or AC2 (quadratic weights) for two raters.

    pa = sum_kl w_kl p_kl, pi_k = (p_k. + p_.k) / 2, pe = T_w / (q (q - 1)) * sum_k pi_k (1 - pi_k) with
    agreement weights w_kl = 1 - (k - l)^2 / (q - 1)^2 and T_w = sum_kl w_kl (T_w = q unweighted).
    """
    n, rows, cols, _ = _parts(c)
    q = c.shape[-1]
    w = 1.0 - disagreement_weights(q, "unweighted" if weighting == "unweighted" else "quadratic")
    pa = _div((w * c).sum(axis=(-2, -1)), n)
    pi = _div(rows + cols, 2.0 * n[..., None])
    pe = w.sum() / (q * (q - 1)) * (pi * (1 - pi)).sum(axis=-1)
    return _div(pa - pe, 1.0 - pe)


def summary(c: np.ndarray) -> dict[str, FloatArray]:
    """The scalar figures the bootstrap resamples, each of shape c.shape[:-2]."""
    macro, weighted = f1_macro_weighted(c)
    return {
        "accuracy": accuracy(c),
        "f1_macro": macro,
        "f1_weighted": weighted,
        "kappa": cohen_kappa(c, "unweighted"),
        "kappa_linear": cohen_kappa(c, "linear"),
        "kappa_quadratic": cohen_kappa(c, "quadratic"),
        "ac1": gwet_ac(c, "unweighted"),
        "ac2": gwet_ac(c, "quadratic"),
    }
