"""Statistics in a reader study's frame: the study's first reads between readers (overall and per
level), intra-rater agreement from first vs repeat reads, reading times and cannot-grade counts.

Calibration reads are left out of everything; cannot-grade reads are counted and left out of kappa and
accuracy (they enter as missing grades), never dropped silently.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotator import stats
from annotator.domain.entities import Rater
from annotator.domain.errors import PermissionDenied
from annotator.domain.scales import load_scale
from annotator.domain.studies import CannotGrade, Read, ReadKind
from annotator.services.project import policy, reader_names_for
from annotator.services.studies import study_for
from annotator.stats._inputs import jsonable
from annotator.storage import studies as repo
from annotator.storage.database import Database

NO_LEVEL = "none"


@dataclass(frozen=True, slots=True)
class ReadingSeconds:
    reader: str
    n: int
    median: float | None
    q1: float | None
    q3: float | None


@dataclass(frozen=True, slots=True)
class StudyStats:
    study: str
    scale: str
    readers: tuple[str, ...]
    pairs: dict[tuple[str, str], stats.PairStats]  # first reads, every level
    per_level: dict[str, dict[tuple[str, str], stats.PairStats]]
    slices_per_level: dict[str, int]
    intra: dict[str, stats.PairStats]  # first vs repeat read, per reader
    reading_seconds: list[ReadingSeconds]
    cannot_grade: dict[str, dict[str, int]]

    def to_json(self) -> dict[str, Any]:
        def pair(a: str, b: str, f: stats.PairStats) -> dict[str, Any]:
            return {"a": f"rater:{a}", "b": f"rater:{b}", **_figures(f)}

        out = {"study": self.study, "scale": self.scale, "readers": [f"rater:{r}" for r in self.readers],
               "pairs": [pair(a, b, f) for (a, b), f in self.pairs.items()],
               "intra": [{"reader": f"rater:{r}", **_figures(f)} for r, f in self.intra.items()],
               "reading_seconds": [{"reader": f"rater:{s.reader}", "n": s.n, "median": s.median, "q1": s.q1,
                                    "q3": s.q3} for s in self.reading_seconds],
               "cannot_grade": {f"rater:{r}": c for r, c in self.cannot_grade.items()},
               "per_level": {lv: {"slices": self.slices_per_level.get(lv, 0),
                                  "pairs": [pair(a, b, f) for (a, b), f in ps.items()]}
                             for lv, ps in self.per_level.items()}}
        encoded: dict[str, Any] = jsonable(out)
        return encoded


def _figures(f: stats.PairStats) -> dict[str, Any]:
    d = f.distance
    return {"n": f.n, "accuracy": f.accuracy, "kappa": f.kappa.value, "kappa_linear": f.kappa_linear.value,
            "kappa_quadratic": f.kappa_quadratic.value, "ac1": f.ac1,
            "click_distance_median_mm": d.median_mm if d is not None else None,
            "n_clicked": d.n_clicked if d is not None else 0}


def _pair(ra: dict[int, Read], rb: dict[int, Read], ids: list[int], cats: tuple[int, ...],
          spacing: dict[int, tuple[float | None, float | None, str | None]]) -> stats.PairStats:
    def grades(r: dict[int, Read]) -> list[int]:
        return [g if (g := r[i].grade) is not None else stats.MISSING for i in ids]

    def points(r: dict[int, Read]) -> np.ndarray:
        return np.array([(r[i].x_px if r[i].x_px is not None else np.nan,
                          r[i].y_px if r[i].y_px is not None else np.nan) for i in ids], dtype=float).reshape(-1, 2)

    sp = np.array([(spacing[i][0] if spacing[i][0] is not None else np.nan,
                    spacing[i][1] if spacing[i][1] is not None else np.nan) for i in ids], dtype=float).reshape(-1, 2)
    return stats.pairwise(grades(ra), grades(rb), cats, points_a=points(ra), points_b=points(rb), pixel_spacing=sp)


def study_stats(db: Database, viewer: Rater, name: str) -> StudyStats:
    """The study's statistics (reviewers and admins: they describe every reader's work), readers named as
    the viewer may see them."""
    study = study_for(db, viewer, name)
    if not policy(db, viewer).may_see_study_progress:
        raise PermissionDenied(f"{viewer.name} reads in study {name!r} and cannot see its statistics: "
                               "only reviewers and admins may")
    cats = load_scale(repo.scale_code(db, study.id)).ordinals
    shown = reader_names_for(db, viewer)  # every figure is keyed by the name the viewer may see
    names = {rid: shown.name(n) for rid, n in repo.reader_names(db, study.id).items()}
    readers = tuple(names.values())
    facts = repo.slice_facts(db, study.id)
    reads = [r for r in repo.reads(db, study.id) if r.kind is not ReadKind.CALIBRATION]
    first = {n: {r.image_id: r for r in reads if r.rater_id == rid and r.kind is ReadKind.FIRST}
             for rid, n in names.items()}
    repeat = {n: {r.image_id: r for r in reads if r.rater_id == rid and r.kind is ReadKind.REPEAT}
              for rid, n in names.items()}
    cal = set(repo.reference_marks(db, study.id))
    counts = Counter(lv or NO_LEVEL for i, (_, _, lv) in facts.items() if i not in cal)
    levels = sorted(counts)
    pairs: dict[tuple[str, str], stats.PairStats] = {}
    per_level: dict[str, dict[tuple[str, str], stats.PairStats]] = {}
    for a, b in itertools.combinations(readers, 2):
        both = sorted(set(first[a]) & set(first[b]))
        pairs[(a, b)] = _pair(first[a], first[b], both, cats, facts)
        for lv in levels:
            ids = [i for i in both if (facts[i][2] or NO_LEVEL) == lv]
            per_level.setdefault(lv, {})[(a, b)] = _pair(first[a], first[b], ids, cats, facts)
    intra = {n: _pair(first[n], repeat[n], sorted(set(repeat[n]) & set(first[n])), cats, facts) for n in readers}
    seconds = []
    for rid, n in names.items():
        secs = np.array([r.seconds for r in reads if r.rater_id == rid and r.seconds is not None], dtype=float)
        q1, med, q3 = (float(v) for v in np.percentile(secs, [25, 50, 75])) if secs.size else (None, None, None)
        seconds.append(ReadingSeconds(n, int(secs.size), med, q1, q3))
    cannot = {n: {c.value: 0 for c in CannotGrade} | dict(Counter(
        r.cannot_grade.value for r in reads if r.rater_id == rid and r.cannot_grade is not None))
        for rid, n in names.items()}
    return StudyStats(study.name, repo.scale_code(db, study.id), readers, pairs, per_level, dict(counts), intra,
                      seconds, cannot)
