"""Use case: the study's agreement table for any set of readers (raters, models, consensus).

Pairs come in the study's order: rater-rater pairs, then each model beside the rater it was trained
on, then the rest. Each pair gets its figures and patient-bootstrap CIs; each model gets the paired
difference "its rater vs another rater" against "its rater vs the model" (the study's comparison),
McNemar against that rater, and every rater pair a Stuart-Maxwell test of marginal homogeneity.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotator import stats
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import GradingScale, load_scale
from annotator.services import readers as reader_service
from annotator.storage import catalog, models_repo, people
from annotator.storage.database import Database

TABLE_METRICS = ("accuracy", "f1_macro", "f1_weighted", "kappa_quadratic", "ac1")


@dataclass
class ReaderData:
    """Grades and points of several readers aligned on the project's slices."""

    readers: list[ReaderRef]
    image_ids: np.ndarray
    patient_keys: np.ndarray
    spacing: np.ndarray  # (n, 2) row, column mm; NaN where unavailable
    grades: dict[str, np.ndarray] = field(default_factory=dict)  # -1 missing
    points: dict[str, np.ndarray] = field(default_factory=dict)  # (n, 2) x, y px; NaN missing

    def click_distances_mm(self, a: str, b: str) -> np.ndarray:
        """Per-slice distance in mm between two readers' clicks (``stats.click_offsets``' rule: slices
        without both clicks or without usable pixel spacing are left out)."""
        return stats.click_offsets(self.points[a], self.points[b], self.spacing).distance_mm


def load_reader_data(db: Database, readers: Sequence[ReaderRef]) -> ReaderData:
    images = catalog.images(db)
    ids = np.array([im.id for im in images], dtype=np.int64)
    index = {im_id: i for i, im_id in enumerate(ids.tolist())}
    spacing = np.array([im.geometry.pixel_spacing or (np.nan, np.nan) for im in images], dtype=float).reshape(-1, 2)
    data = ReaderData(list(readers), ids, np.array([im.patient_key for im in images], dtype=object), spacing)
    for ref in readers:
        g = np.full(len(ids), stats.MISSING, dtype=np.int64)
        p = np.full((len(ids), 2), np.nan)
        for im_id, m in reader_service.marks(db, ref).items():
            i = index.get(im_id)
            if i is None:
                continue
            if m.grade is not None:
                g[i] = m.grade
            if m.x_px is not None and m.y_px is not None:
                p[i] = (m.x_px, m.y_px)
        data.grades[str(ref)] = g
        data.points[str(ref)] = p
    return data


def default_readers(db: Database) -> list[ReaderRef]:
    """Every reader that graded at least one slice."""
    return [r for r in reader_service.all_readers(db)
            if any(m.grade is not None for m in reader_service.marks(db, r).values())]


def _model_targets(db: Database, readers: Sequence[ReaderRef]) -> dict[str, str]:
    """model reader -> the reader it was trained on (from the model card's target)."""
    out = {}
    for r in readers:
        if r.kind is ReaderKind.MODEL:
            out[str(r)] = models_repo.get(db, int(r.key)).target
    return out


def ordered_pairs(readers: Sequence[ReaderRef], targets: dict[str, str]) -> list[tuple[str, str]]:
    names = [str(r) for r in readers]
    raters = [n for n in names if n.startswith("rater:")]
    pairs = list(itertools.combinations(raters, 2))
    for model, target in targets.items():
        if target in names:
            pairs.append((target, model))
    for a, b in itertools.combinations(names, 2):
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))
    return pairs


def _pair_row(d: ReaderData, a: str, b: str, scale: GradingScale, n_boot: int, seed: int) -> dict[str, Any]:
    ps = stats.pairwise(d.grades[a], d.grades[b], scale, points_a=d.points[a], points_b=d.points[b],
                        pixel_spacing=d.spacing)
    full = ps.as_dict()
    row: dict[str, Any] = {
        "a": a, "b": b, "n": ps.n, "accuracy": ps.accuracy, "f1_macro": ps.f1_macro,
        "f1_weighted": ps.f1_weighted, "kappa": ps.kappa.value, "kappa_linear": ps.kappa_linear.value,
        "kappa_quadratic": ps.kappa_quadratic.value, "ac1": ps.ac1, "ac2": ps.ac2,
        "kappa_se": {"unweighted": ps.kappa.se, "linear": ps.kappa_linear.se, "quadratic": ps.kappa_quadratic.se},
        "distance_mm": {"n": ps.distance.n if ps.distance else 0,
                        "median": ps.distance.median_mm if ps.distance else None,
                        "p95": ps.distance.p95_mm if ps.distance else None,
                        "mean": ps.distance.mean_mm if ps.distance else None},
        "bland_altman_mm": full["distance"] and {"x": full["distance"]["x"], "y": full["distance"]["y"]},
        "confusion": [list(r) for r in ps.confusion], "precision": full["precision"], "recall": full["recall"],
    }
    if ps.n >= 2 and n_boot > 0:
        bp = stats.bootstrap_pair(d.grades[a], d.grades[b], scale, d.patient_keys, n_resamples=n_boot, seed=seed)
        row["ci"] = {k: [iv.low, iv.high] for k, iv in bp.intervals.items()}
    else:
        row["ci"] = {}
    return _nan_to_none(row)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def agreement_report(db: Database, readers: Sequence[ReaderRef | str] | None = None, *, n_boot: int = 2000,
                     seed: int = 0) -> dict[str, Any]:
    refs = [ReaderRef.parse(r) if isinstance(r, str) else r for r in (readers or default_readers(db))]
    scale = load_scale(people.get_settings(db).scale_code)
    d = load_reader_data(db, refs)
    targets = _model_targets(db, refs)
    names = [str(r) for r in refs]
    pairs = [_pair_row(d, a, b, scale, n_boot, seed) for a, b in ordered_pairs(refs, targets)]
    comparisons = []
    for model, target in targets.items():
        if target not in names:
            continue
        for other in names:
            if other in (model, target) or not other.startswith("rater:"):
                continue
            diff = stats.bootstrap_difference(d.grades[target], d.grades[other], d.grades[target], d.grades[model],
                                              scale, d.patient_keys, n_resamples=max(n_boot, 1), seed=seed)
            mc = stats.mcnemar_vs_reference(d.grades[target], d.grades[other], d.grades[model], scale)
            comparisons.append(_nan_to_none({
                "pair_1": [target, other], "pair_2": [target, model],
                "tests": {k: {"difference": t.difference, "ci": [t.low, t.high], "p_value": t.p_value}
                          for k, t in diff.tests.items()},
                "mcnemar": {"reference": target, "p_value": mc.p_value, "statistic": mc.statistic,
                            "exact": mc.exact, "accuracy_1": mc.accuracy_1, "accuracy_2": mc.accuracy_2},
            }))
    homogeneity = []
    for a, b in itertools.combinations([n for n in names if n.startswith("rater:")], 2):
        sm = stats.stuart_maxwell(d.grades[a], d.grades[b], scale)
        homogeneity.append(_nan_to_none({"a": a, "b": b, "statistic": sm.statistic, "df": sm.df,
                                         "p_value": sm.p_value}))
    grp = stats.group(np.column_stack([d.grades[n] for n in names]), scale) if len(names) >= 2 else None
    return {
        "scale": scale.code, "n_slices": int(len(d.image_ids)), "bootstrap": {"resamples": n_boot, "seed": seed,
                                                                              "unit": "patient"},
        "pairs": pairs, "comparisons": comparisons, "stuart_maxwell": homogeneity,
        "group": _nan_to_none({"readers": names, "fleiss_kappa": grp.fleiss_kappa if grp else None,
                               "krippendorff_alpha": grp.krippendorff_alpha if grp else None,
                               "n_complete": grp.n_complete if grp else 0}),
    }


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _ci(row: dict[str, Any], key: str, pct: bool) -> str:
    ci = row["ci"].get(key)
    if not ci or ci[0] is None:
        return ""
    return f" ({_fmt(ci[0], pct)}–{_fmt(ci[1], pct)})"


def as_markdown(report: dict[str, Any]) -> str:
    """The study's table as Markdown: one row per pair, 95% patient-bootstrap CIs in brackets."""
    head = ["reader a", "reader b", "n", "accuracy", "F1 macro", "F1 weighted", "κ quadratic", "AC1",
            "distance median mm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["pairs"]:
        lines.append("| " + " | ".join([
            r["a"], r["b"], str(r["n"]), _fmt(r["accuracy"], True) + _ci(r, "accuracy", True),
            _fmt(r["f1_macro"], True) + _ci(r, "f1_macro", True),
            _fmt(r["f1_weighted"], True) + _ci(r, "f1_weighted", True),
            _fmt(r["kappa_quadratic"]) + _ci(r, "kappa_quadratic", False), _fmt(r["ac1"]),
            _fmt(r["distance_mm"]["median"]),
        ]) + " |")
    if report["comparisons"]:
        lines += ["", "| comparison | Δ accuracy (95% CI) | p | Δ F1 macro | p | McNemar p |",
                  "|---|---|---|---|---|---|"]
        for c in report["comparisons"]:
            acc, f1 = c["tests"]["accuracy"], c["tests"]["f1_macro"]
            lines.append(
                f"| {c['pair_1'][0]}–{c['pair_1'][1]} vs {c['pair_2'][0]}–{c['pair_2'][1]} | "
                f"{_fmt(acc['difference'], True)} ({_fmt(acc['ci'][0], True)}–{_fmt(acc['ci'][1], True)}) | "
                f"{_fmt(acc['p_value'])} | {_fmt(f1['difference'], True)} | {_fmt(f1['p_value'])} | "
                f"{_fmt(c['mcnemar']['p_value'])} |")
    g = report["group"]
    lines += ["", f"Group of {len(g['readers'])} readers: Fleiss κ {_fmt(g['fleiss_kappa'])}, "
              f"Krippendorff α (ordinal) {_fmt(g['krippendorff_alpha'])}; scale {report['scale']}; "
              f"CIs: {report['bootstrap']['resamples']} patient-bootstrap resamples, "
              f"seed {report['bootstrap']['seed']}."]
    return "\n".join(lines)
