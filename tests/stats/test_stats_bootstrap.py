"""Patient-level bootstrap: the vectorised stack against a per-resample loop over sklearn (1e-9)."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from annotator.domain.errors import InputError
from annotator.stats import METRICS, MISSING, bootstrap_difference, bootstrap_pair, pairwise
from annotator.stats import bootstrap as bs

TOL = 1e-9
LEE = [0, 1, 2, 3]


def _study(seed: int, n_patients: int = 30, agree: tuple[float, float] = (0.7, 0.85)) -> dict[str, Any]:
    """Patients with 1-4 slices; expert1, expert2 and a model reading them with some missing grades."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, size=n_patients)
    pid = np.repeat(np.array([f"P{i:03d}" for i in range(n_patients)]), sizes)
    n = pid.size
    truth = rng.choice(4, size=n, p=[0.6, 0.25, 0.1, 0.05])

    def reader(p_agree: float) -> np.ndarray:
        out = np.where(rng.random(n) < p_agree, truth, np.clip(truth + rng.choice([-1, 1], size=n), 0, 3))
        return np.where(rng.random(n) < 0.05, MISSING, out)

    return {"pid": pid, "e1": reader(0.8), "e2": reader(agree[0]), "m1": reader(agree[1])}


def _gwet_ac1(ya: np.ndarray, yb: np.ndarray, q: int) -> float:
    pa = float(np.mean(ya == yb))
    pi = np.array([(np.sum(ya == k) + np.sum(yb == k)) / (2 * ya.size) for k in range(q)])
    pe = float(np.sum(pi * (1 - pi)) / (q - 1))
    return (pa - pe) / (1 - pe)


def _loop_metrics(ya: np.ndarray, yb: np.ndarray) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "accuracy": float(skm.accuracy_score(ya, yb)),
            "f1_macro": float(skm.f1_score(ya, yb, labels=LEE, average="macro", zero_division=np.nan)),
            "f1_weighted": float(skm.f1_score(ya, yb, labels=LEE, average="weighted", zero_division=np.nan)),
            "kappa": float(skm.cohen_kappa_score(ya, yb, labels=LEE)),
            "kappa_linear": float(skm.cohen_kappa_score(ya, yb, labels=LEE, weights="linear")),
            "kappa_quadratic": float(skm.cohen_kappa_score(ya, yb, labels=LEE, weights="quadratic")),
            "ac1": _gwet_ac1(ya, yb, 4),
        }


def _loop_bootstrap(grades: list[np.ndarray], pid: np.ndarray, seed: int, n_resamples: int) -> list[dict]:
    """Reference: draw the same patient indices, then one explicit resample at a time."""
    usable = np.logical_and.reduce([g != MISSING for g in grades])
    pids = pid[usable]
    patients = np.unique(pids)
    slices_of = [np.flatnonzero(pids == p) for p in patients]
    kept = [g[usable] for g in grades]
    out: list[dict] = [{k: [] for k in METRICS if k != "ac2"} for _ in range(len(grades) // 2)]
    rng = np.random.default_rng(seed)
    for chunk in bs.resample_index_chunks(rng, len(patients), n_resamples):
        for row in chunk:
            take = np.concatenate([slices_of[i] for i in row])
            for pair, store in enumerate(out):
                m = _loop_metrics(kept[2 * pair][take], kept[2 * pair + 1][take])
                for k, v in m.items():
                    store[k].append(v)
    return [{k: np.array(v) for k, v in store.items()} for store in out]


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    low, high = np.quantile(v, [0.025, 0.975])
    return float(low), float(high)


@pytest.mark.parametrize("chunk_cells", [None, 70])
def test_pair_intervals_match_loop_over_sklearn(chunk_cells: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if chunk_cells is not None:  # force several chunks of resamples
        monkeypatch.setattr(bs, "_CHUNK_CELLS", chunk_cells)
    d = _study(1)
    res = bootstrap_pair(d["e1"], d["e2"], LEE, d["pid"], n_resamples=60, seed=11)
    (ref,) = _loop_bootstrap([d["e1"], d["e2"]], d["pid"], 11, 60)
    point = pairwise(d["e1"], d["e2"], LEE)
    assert res.n == point.n and res.n_resamples == 60 and res.seed == 11
    for k, values in ref.items():
        low, high = _percentiles(values)
        iv = res.intervals[k]
        assert iv.low == pytest.approx(low, abs=TOL) and iv.high == pytest.approx(high, abs=TOL), k
        assert iv.n_undefined == int(np.isnan(values).sum())
    assert res.intervals["accuracy"].estimate == point.accuracy
    assert res.intervals["kappa_quadratic"].estimate == point.kappa_quadratic.value
    assert res.intervals["ac2"].estimate == point.ac2
    assert set(res.intervals) == set(METRICS)


def test_difference_matches_loop_and_p_value_formula() -> None:
    d = _study(2, n_patients=25)
    res = bootstrap_difference(d["e1"], d["e2"], d["e1"], d["m1"], LEE, d["pid"], n_resamples=50, seed=5)
    ref1, ref2 = _loop_bootstrap([d["e1"], d["e2"], d["e1"], d["m1"]], d["pid"], 5, 50)
    all_four = (d["e1"] != MISSING) & (d["e2"] != MISSING) & (d["m1"] != MISSING)
    p1 = pairwise(np.where(all_four, d["e1"], MISSING), d["e2"], LEE)
    p2 = pairwise(np.where(all_four, d["e1"], MISSING), d["m1"], LEE)
    assert res.n == int(all_four.sum())
    for k in ref1:
        diff = ref1[k] - ref2[k]
        low, high = _percentiles(diff)
        valid = diff[~np.isnan(diff)]
        p = min(1.0, 2 * (1 + min(np.sum(valid <= 0), np.sum(valid >= 0))) / (valid.size + 1))
        t = res.tests[k]
        assert (t.low, t.high) == (pytest.approx(low, abs=TOL), pytest.approx(high, abs=TOL)), k
        assert t.p_value == pytest.approx(p, abs=1e-12)
    assert res.tests["accuracy"].estimate_1 == p1.accuracy and res.tests["accuracy"].estimate_2 == p2.accuracy
    assert res.tests["kappa"].difference == pytest.approx(p1.kappa.value - p2.kappa.value, abs=1e-15)


def test_identical_pairs_differ_by_exactly_zero() -> None:
    d = _study(3)
    res = bootstrap_difference(d["e1"], d["e2"], d["e1"], d["e2"], LEE, d["pid"], n_resamples=200)
    for t in res.tests.values():
        assert t.difference == 0.0 and t.low == 0.0 and t.high == 0.0 and t.p_value == 1.0


def test_clear_difference_is_significant() -> None:
    d = _study(4, n_patients=150, agree=(0.4, 0.95))
    res = bootstrap_difference(d["e1"], d["e2"], d["e1"], d["m1"], LEE, d["pid"], n_resamples=2000)
    acc = res.tests["accuracy"]
    assert acc.difference < 0 and acc.high < 0 and acc.p_value == pytest.approx(2 / 2001)


def test_same_seed_same_result_and_generator_accepted() -> None:
    d = _study(5)
    r1 = bootstrap_pair(d["e1"], d["m1"], LEE, d["pid"], n_resamples=300, seed=1)
    r2 = bootstrap_pair(d["e1"], d["m1"], LEE, d["pid"], n_resamples=300, seed=1)
    r3 = bootstrap_pair(d["e1"], d["m1"], LEE, d["pid"], n_resamples=300, seed=2)
    r4 = bootstrap_pair(d["e1"], d["m1"], LEE, d["pid"], n_resamples=300, seed=np.random.default_rng(1))
    assert r1 == r2 and r1 != r3
    assert r4.intervals == r1.intervals and r4.seed is None


def test_resampling_patients_widens_intervals_for_clustered_slices() -> None:
    """Ten identical slices per patient: a slice bootstrap would pretend to have 10x the data."""
    rng = np.random.default_rng(6)
    a = rng.choice(4, size=60, p=[0.6, 0.25, 0.1, 0.05])
    b = np.where(rng.random(60) < 0.7, a, rng.choice(4, size=60))
    a10, b10, pid = np.repeat(a, 10), np.repeat(b, 10), np.repeat(np.arange(60), 10)
    by_patient = bootstrap_pair(a10, b10, LEE, pid, n_resamples=1000).intervals["accuracy"]
    by_slice = bootstrap_pair(a10, b10, LEE, None, n_resamples=1000).intervals["accuracy"]
    assert (by_patient.high - by_patient.low) > 2 * (by_slice.high - by_slice.low)
    per_patient = bootstrap_pair(a, b, LEE, np.arange(60), n_resamples=1000).intervals["accuracy"]
    assert by_patient.low == pytest.approx(per_patient.low) and by_patient.high == pytest.approx(per_patient.high)


def test_undefined_resamples_are_counted_and_excluded() -> None:
    a = np.array([0] * 9 + [1])
    res = bootstrap_pair(a, a, LEE, n_resamples=500, seed=0)
    k = res.intervals["kappa"]
    assert 0 < k.n_undefined < 500  # resamples without the single grade-1 slice
    assert k.low == 1.0 and k.high == 1.0
    assert res.intervals["accuracy"].n_undefined == 0


def test_as_dict_and_degenerate_inputs() -> None:
    d = _study(7)
    res = bootstrap_pair(d["e1"], d["e2"], LEE, d["pid"], n_resamples=50)
    js = res.as_dict()
    assert js == json.loads(json.dumps(js, allow_nan=False)) and js["intervals"]["accuracy"]["low"] is not None
    empty = bootstrap_pair([MISSING, 0], [1, MISSING], LEE, ["x", "y"], n_resamples=10)
    assert empty.n == 0 and empty.n_patients == 0 and math.isnan(empty.intervals["accuracy"].low)
    assert empty.as_dict()["intervals"]["kappa"]["high"] is None
    diff = bootstrap_difference([MISSING], [0], [0], [0], LEE, n_resamples=10)
    assert diff.n == 0 and math.isnan(diff.tests["accuracy"].p_value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"patient_ids": ["a"]}, "patient_ids"),
        ({"patient_ids": [None, "a", "b"]}, "missing id"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        bootstrap_pair([0, 1, 2], [0, 1, 1], LEE, **kwargs)
