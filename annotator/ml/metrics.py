"""Figures of merit for a model against a reference reader (numpy + scikit-learn, no torch).

Grades: accuracy, macro and weighted F1 (the skewed prevalence makes them differ), the confusion
matrix. Points: the Euclidean distance in mm (PixelSpacing is row, column), median and 95th percentile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def grade_metrics(reference: Sequence[int], predicted: Sequence[int], labels: Sequence[int]) -> dict[str, object]:
    if len(reference) == 0:
        return {"n": 0}
    ref = np.asarray(reference)
    pred = np.asarray(predicted)
    present = sorted(set(ref.tolist()) | set(pred.tolist()))  # F1 over grades that occur (sklearn's default)
    return {
        "n": int(len(ref)),
        "accuracy": round(float(accuracy_score(ref, pred)), 4),
        "f1_macro": round(float(f1_score(ref, pred, labels=present, average="macro", zero_division=0)), 4),
        "f1_weighted": round(float(f1_score(ref, pred, labels=present, average="weighted", zero_division=0)), 4),
        "confusion": confusion_matrix(ref, pred, labels=list(labels)).tolist(),
    }


def centre_errors_mm(reference: Sequence[tuple[float, float]], predicted: Sequence[tuple[float, float]],
                     spacings: Sequence[tuple[float, float]]) -> np.ndarray:
    """Distances in mm between (x, y) pixel points; spacing is (row, column) mm."""
    r = np.asarray(reference, dtype=np.float64).reshape(-1, 2)
    p = np.asarray(predicted, dtype=np.float64).reshape(-1, 2)
    sp = np.asarray(spacings, dtype=np.float64).reshape(-1, 2)
    return np.hypot((p[:, 0] - r[:, 0]) * sp[:, 1], (p[:, 1] - r[:, 1]) * sp[:, 0])


def point_metrics(errors_mm: np.ndarray) -> dict[str, object]:
    if errors_mm.size == 0:
        return {"n": 0}
    return {"n": int(errors_mm.size), "median_mm": round(float(np.median(errors_mm)), 4),
            "p95_mm": round(float(np.percentile(errors_mm, 95)), 4),
            "max_mm": round(float(errors_mm.max()), 4)}
