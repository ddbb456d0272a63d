"""Patient-level cross-validation folds: assigned once per project and fold count, then reused.

Re-splitting on every retrain inflates scores and makes runs incomparable (MONAI Label #1752), so the
first ``cv`` stores a fold for every patient and later runs read it back. Patients imported later get
a fold of their own on the next run; existing assignments never change. The first assignment is
stratified by each patient's most severe labelled grade (rare grades spread over the folds first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from annotator.storage import catalog, models_repo
from annotator.storage.database import Database


def plan_folds(new_patients: Sequence[str], n_folds: int, seed: int, strata: Mapping[str, int],
               existing: Mapping[str, int]) -> dict[str, int]:
    """Folds for ``new_patients``: each goes to the currently smallest fold, rarest stratum first.

    Deterministic for a given seed and input: patients are sorted, then shuffled within each stratum by
    a generator seeded from ``seed``.
    """
    sizes = np.zeros(n_folds, dtype=np.int64)
    for f in existing.values():
        if 0 <= f < n_folds:
            sizes[f] += 1
    rng = np.random.default_rng([seed, n_folds])
    by_stratum: dict[int, list[str]] = {}
    for p in sorted(set(new_patients)):
        by_stratum.setdefault(int(strata.get(p, -1)), []).append(p)
    counts = {s: len(ps) for s, ps in by_stratum.items()}
    out: dict[str, int] = {}
    for stratum in sorted(by_stratum, key=lambda s: (counts[s] if s >= 0 else 1 << 30, -s)):
        members = by_stratum[stratum]
        for i in rng.permutation(len(members)):
            fold = int(np.argmin(sizes))
            out[members[int(i)]] = fold
            sizes[fold] += 1
    return out


def ensure_folds(db: Database, n_folds: int, seed: int, strata: Mapping[str, int]) -> dict[str, int]:
    """patient_key -> fold for every patient of the project, assigning folds to patients that have none."""
    existing = models_repo.folds(db, n_folds)
    patients = sorted({im.patient_key for im in catalog.images(db)})
    new = [p for p in patients if p not in existing]
    if not new:
        return existing
    return models_repo.assign_folds(db, n_folds, plan_folds(new, n_folds, seed, strata, existing))
