"""Use case: the study's agreement table for any set of readers (raters, models, consensus).

Pairs come in the study's order: rater-rater pairs, then each model beside the rater it was trained
on, then the rest. Each pair gets its figures and patient-bootstrap CIs; each model gets the paired
difference "its rater vs another rater" against "its rater vs the model" (the study's comparison),
McNemar against that rater, and every rater pair a Stuart-Maxwell test of marginal homogeneity.
The report is typed (``annotator.services.agreement_report``); readers are ``ReaderRef`` throughout,
and text (``rater:NAME``) is parsed only where it comes in.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from annotator import stats
from annotator.domain.errors import InputError
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import GradingScale, load_scale
from annotator.services import readers as reader_service
from annotator.services.agreement_report import (
    AgreementReport,
    BootstrapSettings,
    Comparison,
    GroupAgreement,
    Homogeneity,
    PairRow,
    as_markdown,
    report_json,
)
from annotator.storage import catalog, models_repo, people
from annotator.storage.database import Database

__all__ = ["AgreementReport", "Comparison", "GroupAgreement", "Homogeneity", "PairRow", "ReaderData",
           "agreement_report", "as_markdown", "default_readers", "load_reader_data", "ordered_pairs",
           "report_json"]

@dataclass
class ReaderData:
    """Grades and points of several readers aligned on the project's slices."""

    readers: list[ReaderRef]
    image_ids: np.ndarray
    patient_keys: np.ndarray
    spacing: np.ndarray  # (n, 2) row, column mm; NaN where unavailable
    grades: dict[ReaderRef, np.ndarray] = field(default_factory=dict)  # -1 missing
    points: dict[ReaderRef, np.ndarray] = field(default_factory=dict)  # (n, 2) x, y px; NaN missing

    def click_distances_mm(self, a: ReaderRef, b: ReaderRef) -> np.ndarray:
        """Per-slice distance in mm between two readers' clicks (``stats.click_offsets``' rule: slices
        without both clicks or without usable pixel spacing are left out)."""
        return stats.click_offsets(self.points[a], self.points[b], self.spacing).distance_mm

    def slices_graded(self, a: ReaderRef, grade_a: int, b: ReaderRef, grade_b: int) -> np.ndarray:
        """Positions of the slices reader a graded ``grade_a`` and reader b ``grade_b`` (one confusion cell)."""
        return np.flatnonzero((self.grades[a] == grade_a) & (self.grades[b] == grade_b))


def _refs(readers: Sequence[ReaderRef | str]) -> list[ReaderRef]:
    return [ReaderRef.parse(r) if isinstance(r, str) else r for r in readers]


def load_reader_data(db: Database, readers: Sequence[ReaderRef | str]) -> ReaderData:
    """The readers' grades and points on every slice (text readers are parsed with ``ReaderRef.parse``)."""
    refs = _refs(readers)
    images = catalog.images(db)
    ids = np.array([im.id for im in images], dtype=np.int64)
    index = {im_id: i for i, im_id in enumerate(ids.tolist())}
    spacing = np.array([im.geometry.pixel_spacing or (np.nan, np.nan) for im in images], dtype=float).reshape(-1, 2)
    data = ReaderData(refs, ids, np.array([im.patient_key for im in images], dtype=object), spacing)
    for ref in refs:
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
        data.grades[ref] = g
        data.points[ref] = p
    return data


def default_readers(db: Database) -> list[ReaderRef]:
    """Every reader that graded at least one slice."""
    return [r for r in reader_service.all_readers(db)
            if any(m.grade is not None for m in reader_service.marks(db, r).values())]


def _model_targets(db: Database, readers: Sequence[ReaderRef]) -> dict[ReaderRef, ReaderRef]:
    """model reader -> the reader it was trained on (the model card's target, stored as text)."""
    out = {}
    for r in readers:
        if r.kind is ReaderKind.MODEL:
            target = models_repo.get(db, int(r.key)).target
            try:
                out[r] = ReaderRef.parse(target)
            except InputError as exc:
                raise InputError(f"model {r.key}: its target {target!r} is not a reader ({exc})") from exc
    return out


def ordered_pairs(readers: Sequence[ReaderRef],
                  targets: dict[ReaderRef, ReaderRef]) -> list[tuple[ReaderRef, ReaderRef]]:
    raters = [r for r in readers if r.kind is ReaderKind.RATER]
    pairs = list(itertools.combinations(raters, 2))
    for model, target in targets.items():
        if target in readers:
            pairs.append((target, model))
    for a, b in itertools.combinations(readers, 2):
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))
    return pairs


def _pair_row(d: ReaderData, a: ReaderRef, b: ReaderRef, scale: GradingScale, n_boot: int, seed: int) -> PairRow:
    ps = stats.pairwise(d.grades[a], d.grades[b], scale, points_a=d.points[a], points_b=d.points[b],
                        pixel_spacing=d.spacing)
    ci: Mapping[str, stats.Interval] = {}
    if ps.n >= 2 and n_boot > 0:
        ci = stats.bootstrap_pair(d.grades[a], d.grades[b], scale, d.patient_keys, n_resamples=n_boot,
                                  seed=seed).intervals
    return PairRow(a, b, ps, ci)


def agreement_report(db: Database, readers: Sequence[ReaderRef | str] | None = None, *, n_boot: int = 2000,
                     seed: int = 0, data: ReaderData | None = None) -> AgreementReport:
    """The study's agreement report (text readers are parsed with ``ReaderRef.parse``; None: every
    reader that graded a slice); ``data``: the readers' data already loaded for them."""
    refs = _refs(readers) if readers else default_readers(db)
    scale = load_scale(people.get_settings(db).scale_code)
    d = data if data is not None else load_reader_data(db, refs)
    targets = _model_targets(db, refs)
    pairs = tuple(_pair_row(d, a, b, scale, n_boot, seed) for a, b in ordered_pairs(refs, targets))
    comparisons = []
    for model, target in targets.items():
        if target not in refs:
            continue
        for other in refs:
            if other in (model, target) or other.kind is not ReaderKind.RATER:
                continue
            diff = stats.bootstrap_difference(d.grades[target], d.grades[other], d.grades[target], d.grades[model],
                                              scale, d.patient_keys, n_resamples=n_boot, seed=seed)
            mc = stats.mcnemar_vs_reference(d.grades[target], d.grades[other], d.grades[model], scale)
            comparisons.append(Comparison((target, other), (target, model), diff, mc))
    raters = [r for r in refs if r.kind is ReaderKind.RATER]
    homogeneity = tuple(Homogeneity(a, b, stats.stuart_maxwell(d.grades[a], d.grades[b], scale))
                        for a, b in itertools.combinations(raters, 2))
    grp = stats.group(np.column_stack([d.grades[r] for r in refs]), scale) if len(refs) >= 2 else None
    return AgreementReport(scale=scale.code, n_slices=int(len(d.image_ids)),
                           bootstrap=BootstrapSettings(n_boot, seed), pairs=pairs,
                           comparisons=tuple(comparisons), stuart_maxwell=homogeneity,
                           group=GroupAgreement(tuple(refs), grp))


def agreement_report_and_data(db: Database, readers: Sequence[ReaderRef | str] | None = None, *,
                              n_boot: int = 2000, seed: int = 0) -> tuple[AgreementReport, ReaderData]:
    """The report and the reader data it was computed from, loaded once (the agreement screen lists the
    slices behind a confusion cell from the same data as the figures)."""
    refs = _refs(readers) if readers else default_readers(db)
    data = load_reader_data(db, refs)
    return agreement_report(db, refs, n_boot=n_boot, seed=seed, data=data), data
