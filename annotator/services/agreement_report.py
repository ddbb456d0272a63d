"""The agreement report as typed records, and its one JSON encoding and Markdown rendering.

``annotator.services.agreement.agreement_report`` builds an :class:`AgreementReport`; the CLI prints
``report_json`` (keys documented in the README) or ``as_markdown``; the agreement screen reads the
records directly. Figures are the statistics layer's own frozen dataclasses; an undefined figure is NaN
in the records and ``null`` in the JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from annotator import stats
from annotator.domain.errors import NotFound
from annotator.domain.policy import ReaderNames
from annotator.domain.readers import ReaderRef
from annotator.stats._inputs import jsonable

Pair = tuple[ReaderRef, ReaderRef]


@dataclass(frozen=True, slots=True)
class PairRow:
    """Two readers on the slices both graded: every ``stats.pairwise`` figure (click distances in mm
    included) and the patient-bootstrap CIs, keyed by ``stats.METRICS`` (empty without resamples)."""

    a: ReaderRef
    b: ReaderRef
    figures: stats.PairStats
    ci: Mapping[str, stats.Interval] = field(default_factory=dict)

    @property
    def pair(self) -> Pair:
        return self.a, self.b

    @property
    def distance(self) -> stats.DistanceStats | None:
        return self.figures.distance


@dataclass(frozen=True, slots=True)
class Comparison:
    """The study's comparison for one model: its rater against another rater (``pair_1``) beside its
    rater against the model (``pair_2``): paired-bootstrap differences, and McNemar with the model's
    rater as the reference."""

    pair_1: Pair
    pair_2: Pair
    difference: stats.BootstrapDifference
    mcnemar: stats.McNemarResult

    @property
    def reference(self) -> ReaderRef:
        return self.pair_1[0]


@dataclass(frozen=True, slots=True)
class Homogeneity:
    """Stuart-Maxwell test of marginal homogeneity for one pair of raters."""

    a: ReaderRef
    b: ReaderRef
    test: stats.StuartMaxwellResult


@dataclass(frozen=True, slots=True)
class GroupAgreement:
    """Fleiss' kappa and Krippendorff's alpha over every reader (``figures`` None with fewer than two)."""

    readers: tuple[ReaderRef, ...]
    figures: stats.GroupStats | None


@dataclass(frozen=True, slots=True)
class BootstrapSettings:
    resamples: int
    seed: int
    unit: str = "patient"


@dataclass(frozen=True, slots=True)
class AgreementReport:
    scale: str
    n_slices: int
    bootstrap: BootstrapSettings
    pairs: tuple[PairRow, ...]
    comparisons: tuple[Comparison, ...]
    stuart_maxwell: tuple[Homogeneity, ...]
    group: GroupAgreement

    def pair(self, a: ReaderRef, b: ReaderRef) -> PairRow:
        """The row of readers a and b (in either order)."""
        for row in self.pairs:
            if row.pair in ((a, b), (b, a)):
                return row
        raise NotFound(f"the agreement report has no pair {a}–{b}")


# ----- JSON -------------------------------------------------------------------------------------


def _pair_json(row: PairRow, shown: Callable[[ReaderRef], str]) -> dict[str, Any]:
    f, d = row.figures, row.figures.distance
    return {
        "a": shown(row.a), "b": shown(row.b), "n": f.n, "accuracy": f.accuracy, "f1_macro": f.f1_macro,
        "f1_weighted": f.f1_weighted, "kappa": f.kappa.value, "kappa_linear": f.kappa_linear.value,
        "kappa_quadratic": f.kappa_quadratic.value, "ac1": f.ac1, "ac2": f.ac2,
        "kappa_se": {"unweighted": f.kappa.se, "linear": f.kappa_linear.se, "quadratic": f.kappa_quadratic.se},
        "distance_mm": {"n": d.n if d else 0, "median": d.median_mm if d else None,
                        "p95": d.p95_mm if d else None, "mean": d.mean_mm if d else None},
        "bland_altman_mm": {"x": d.x, "y": d.y} if d else None,
        "confusion": f.confusion, "precision": f.precision, "recall": f.recall,
        "ci": {k: [iv.low, iv.high] for k, iv in row.ci.items()},
    }


def _comparison_json(c: Comparison, shown: Callable[[ReaderRef], str]) -> dict[str, Any]:
    mc = c.mcnemar
    return {
        "pair_1": [shown(r) for r in c.pair_1], "pair_2": [shown(r) for r in c.pair_2],
        "tests": {k: {"difference": t.difference, "ci": [t.low, t.high], "p_value": t.p_value}
                  for k, t in c.difference.tests.items()},
        "mcnemar": {"reference": shown(c.reference), "p_value": mc.p_value, "statistic": mc.statistic,
                    "exact": mc.exact, "accuracy_1": mc.accuracy_1, "accuracy_2": mc.accuracy_2},
    }


def report_json(report: AgreementReport, names: ReaderNames | None = None) -> dict[str, Any]:
    """The report as JSON types (keys in the README; NaN -> null): what ``agreement --json`` prints;
    ``names``: how the viewer sees the raters (aliases where the project hides names from her)."""
    shown = (names or ReaderNames()).reader
    g = report.group.figures
    out = {
        "scale": report.scale, "n_slices": report.n_slices,
        "bootstrap": {"resamples": report.bootstrap.resamples, "seed": report.bootstrap.seed,
                      "unit": report.bootstrap.unit},
        "pairs": [_pair_json(p, shown) for p in report.pairs],
        "comparisons": [_comparison_json(c, shown) for c in report.comparisons],
        "stuart_maxwell": [{"a": shown(h.a), "b": shown(h.b), "statistic": h.test.statistic, "df": h.test.df,
                            "p_value": h.test.p_value} for h in report.stuart_maxwell],
        "group": {"readers": [shown(r) for r in report.group.readers],
                  "fleiss_kappa": g.fleiss_kappa if g else None,
                  "krippendorff_alpha": g.krippendorff_alpha if g else None,
                  "n_complete": g.n_complete if g else 0},
    }
    encoded: dict[str, Any] = jsonable(out)
    return encoded


# ----- Markdown ---------------------------------------------------------------------------------


def fmt(v: float | None, pct: bool = False) -> str:
    """A figure as the table shows it: 72.4% or 0.818; an undefined one as an en dash."""
    if v is None or math.isnan(v):
        return "–"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def fmt_ci(row: PairRow, metric: str, pct: bool) -> str:
    """' (62.5%–82.1%)' for a metric with a defined CI, else ''."""
    iv = row.ci.get(metric)
    if iv is None or math.isnan(iv.low):
        return ""
    return f" ({fmt(iv.low, pct)}–{fmt(iv.high, pct)})"


def _interval(low: float, high: float) -> str:
    """'2.5%–7.1%', or an en dash when there is no interval (no resamples, or undefined)."""
    return "–" if math.isnan(low) or math.isnan(high) else f"{fmt(low, True)}–{fmt(high, True)}"


def distance_median(row: PairRow) -> float | None:
    return row.distance.median_mm if row.distance else None


def as_markdown(report: AgreementReport, names: ReaderNames | None = None) -> str:
    """The study's table as Markdown: one row per pair, 95% patient-bootstrap CIs in brackets; ``names``:
    how the viewer sees the raters."""
    shown = (names or ReaderNames()).reader
    head = ["reader a", "reader b", "n", "accuracy", "F1 macro", "F1 weighted", "κ quadratic", "AC1",
            "distance median mm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report.pairs:
        f = r.figures
        lines.append("| " + " | ".join([
            shown(r.a), shown(r.b), str(f.n), fmt(f.accuracy, True) + fmt_ci(r, "accuracy", True),
            fmt(f.f1_macro, True) + fmt_ci(r, "f1_macro", True),
            fmt(f.f1_weighted, True) + fmt_ci(r, "f1_weighted", True),
            fmt(f.kappa_quadratic.value) + fmt_ci(r, "kappa_quadratic", False), fmt(f.ac1),
            fmt(distance_median(r)),
        ]) + " |")
    if report.comparisons:
        lines += ["", "| comparison | Δ accuracy (95% CI) | p | Δ F1 macro | p | McNemar p |",
                  "|---|---|---|---|---|---|"]
        for c in report.comparisons:
            acc, f1 = c.difference.tests["accuracy"], c.difference.tests["f1_macro"]
            lines.append(
                f"| {shown(c.pair_1[0])}–{shown(c.pair_1[1])} vs {shown(c.pair_2[0])}–{shown(c.pair_2[1])} | "
                f"{fmt(acc.difference, True)} ({_interval(acc.low, acc.high)}) | "
                f"{fmt(acc.p_value)} | {fmt(f1.difference, True)} | {fmt(f1.p_value)} | "
                f"{fmt(c.mcnemar.p_value)} |")
    g = report.group
    lines += ["", f"Group of {len(g.readers)} readers: Fleiss κ {fmt(g.figures.fleiss_kappa if g.figures else None)}, "
              f"Krippendorff α (ordinal) {fmt(g.figures.krippendorff_alpha if g.figures else None)}; "
              f"scale {report.scale}; CIs: {report.bootstrap.resamples} patient-bootstrap resamples, "
              f"seed {report.bootstrap.seed}."]
    return "\n".join(lines)
