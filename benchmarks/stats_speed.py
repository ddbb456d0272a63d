"""Speed of the agreement statistics against the issue's targets; prints one line per figure.

Targets: 100,000 slices x 5 readers, all 10 pairwise statistics (with click distances) plus the group
statistics (Fleiss, Krippendorff) in <= 1 s; 2,000 patient-bootstrap resamples of one pair over 542
slices in <= 5 s. Exit status 1 when a target is missed.

    python benchmarks/stats_speed.py [--repeat 3] [--json report.json] [--with-libraries]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from annotator.stats import MISSING, bootstrap_difference, bootstrap_pair, group, pairwise

CATEGORIES = [0, 1, 2, 3]
PREVALENCE = [0.76, 0.17, 0.05, 0.02]


def simulated_readers(n: int, readers: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(4, size=n, p=PREVALENCE)
    grades = np.empty((n, readers), dtype=np.int64)
    for r in range(readers):
        slip = np.clip(truth + rng.choice([-1, 1], size=n), 0, 3)
        grades[:, r] = np.where(rng.random(n) < 0.8, truth, slip)
    grades[rng.random((n, readers)) < 0.03] = MISSING
    centre = rng.uniform(200, 300, size=(n, 2))
    points = centre[:, None, :] + rng.normal(0, 3, size=(n, readers, 2))
    points[rng.random((n, readers)) < 0.03] = np.nan
    spacing = np.tile(rng.uniform(0.3, 0.8, size=(n, 1)), (1, 2))
    spacing[rng.random(n) < 0.01] = np.nan
    patients = np.arange(n) // 3
    return {"grades": grades, "points": points, "spacing": spacing, "patients": patients}


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def all_pairs_and_group(data: dict[str, np.ndarray]) -> None:
    g, p, s = data["grades"], data["points"], data["spacing"]
    for i, j in itertools.combinations(range(g.shape[1]), 2):
        pairwise(g[:, i], g[:, j], CATEGORIES, points_a=p[:, i], points_b=p[:, j], pixel_spacing=s)
    group(g, CATEGORIES)


def library_figures(data: dict[str, np.ndarray], repeat: int) -> dict[str, float]:
    """The same work done by calling the reference libraries (for comparison only)."""
    import krippendorff
    from sklearn import metrics as skm
    from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

    g = data["grades"]

    def pairs() -> None:
        for i, j in itertools.combinations(range(g.shape[1]), 2):
            m = (g[:, i] >= 0) & (g[:, j] >= 0)
            a, b = g[m, i], g[m, j]
            skm.accuracy_score(a, b)
            for avg in ("macro", "weighted", None):
                skm.f1_score(a, b, labels=CATEGORIES, average=avg, zero_division=np.nan)
            skm.precision_score(a, b, labels=CATEGORIES, average=None, zero_division=np.nan)
            skm.recall_score(a, b, labels=CATEGORIES, average=None, zero_division=np.nan)
            cm = skm.confusion_matrix(a, b, labels=CATEGORIES)
            for w in (None, "linear", "quadratic"):
                skm.cohen_kappa_score(a, b, labels=CATEGORIES, weights=w)
                cohens_kappa(cm, wt=w)

    def grp() -> None:
        complete = g[(g >= 0).all(axis=1)]
        fleiss_kappa(aggregate_raters(complete)[0])
        x = np.where(g >= 0, g, np.nan).astype(float).T
        krippendorff.alpha(reliability_data=x, level_of_measurement="ordinal", value_domain=CATEGORIES)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "libraries_10_pairs_s": best_of(repeat, pairs),
            "libraries_group_s": best_of(repeat, grp),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--with-libraries", action="store_true", help="time sklearn/statsmodels/krippendorff too")
    args = parser.parse_args(argv)

    big = simulated_readers(100_000, 5)
    small = simulated_readers(542, 3, seed=1)
    small["patients"] = np.arange(542)  # the study: one image per patient
    g = small["grades"]

    figures: dict[str, float] = {}
    all_pairs_and_group(big)  # warm-up (imports, caches)
    figures["100k_x5_pairs_and_group_s"] = best_of(args.repeat, lambda: all_pairs_and_group(big))
    figures["100k_x5_group_only_s"] = best_of(args.repeat, lambda: group(big["grades"], CATEGORIES))
    figures["bootstrap_pair_542_x2000_s"] = best_of(
        args.repeat, lambda: bootstrap_pair(g[:, 0], g[:, 1], CATEGORIES, small["patients"], n_resamples=2000)
    )
    figures["bootstrap_difference_542_x2000_s"] = best_of(
        args.repeat,
        lambda: bootstrap_difference(
            g[:, 0], g[:, 1], g[:, 0], g[:, 2], CATEGORIES, small["patients"], n_resamples=2000
        ),
    )
    figures["bootstrap_pair_100k_3per_patient_x2000_s"] = best_of(
        1, lambda: bootstrap_pair(big["grades"][:, 0], big["grades"][:, 1], CATEGORIES, big["patients"])
    )
    if args.with_libraries:
        figures.update(library_figures(big, args.repeat))

    targets = {"100k_x5_pairs_and_group_s": 1.0, "bootstrap_pair_542_x2000_s": 5.0}
    ok = True
    for name, value in figures.items():
        target = targets.get(name)
        verdict = ""
        if target is not None:
            passed = value <= target
            ok &= passed
            verdict = f"  target <= {target:g} s: {'PASS' if passed else 'FAIL'}"
        print(f"{name:45s} {value:8.3f} s{verdict}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"figures": figures, "targets": targets, "passed": ok}, fh, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
