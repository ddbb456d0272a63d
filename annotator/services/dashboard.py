"""Use case: the admin's dashboard of a reader study, one row per reader (widget-free; the GUI lays it
out and plots ``seconds_in_order``; ``write_csv`` is its CSV export). Reviewers and admins only."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from annotator.domain.entities import Rater
from annotator.domain.errors import InputError
from annotator.domain.studies import CalibrationScore, ReadKind
from annotator.services.labelsets import _atomic_write
from annotator.services.project import reader_names_for
from annotator.services.reading import calibration_score
from annotator.services.studies import show_study
from annotator.services.study_stats import study_stats
from annotator.storage import studies as repo
from annotator.storage.database import Database

CSV_COLUMNS = ("reader", "assigned", "done", "repeats_planned", "repeats_done", "cannot_grade",
               "calibration_accuracy", "median_seconds", "intra_kappa", "intra_n", "reference", "kappa_vs_reference")


@dataclass(frozen=True, slots=True)
class DashboardRow:
    reader: str
    assigned: int
    done: int
    repeats_planned: int
    repeats_done: int
    cannot_grade: int
    calibration: CalibrationScore | None
    median_seconds: float | None
    intra_kappa: float | None  # unweighted, first vs repeat
    intra_n: int
    kappa_vs_reference: float | None  # unweighted, first reads against the reference reader's
    seconds_in_order: tuple[float | None, ...]  # each study read's seconds in her reading order


def _value(x: float) -> float | None:
    return None if x != x else x  # NaN (undefined kappa) -> None


def study_dashboard(db: Database, viewer: Rater, name: str, reference: str | None = None) -> list[DashboardRow]:
    """Per reader: progress, cannot-grade, calibration score, median reading time, intra-rater kappa and
    kappa against ``reference`` (a reader of the study, by the name or alias the viewer sees)."""
    report = show_study(db, viewer, name)  # checks the viewer may see the study's progress
    figures = study_stats(db, viewer, name)
    if reference is not None and reference not in figures.readers:
        raise InputError(f"reference {reference!r} is not a reader of study {name!r} "
                         f"(readers: {', '.join(figures.readers)})")
    shown = reader_names_for(db, viewer)  # rows, like the figures, name readers as the viewer may see them
    ids = {shown.name(n): i for i, n in repo.reader_names(db, report.study.id).items()}
    reads = repo.reads(db, report.study.id)
    rows = []
    for p in report.readers:
        intra = figures.intra[p.reader]
        pair = figures.pairs.get((p.reader, reference or "")) or figures.pairs.get((reference or "", p.reader))
        rows.append(DashboardRow(
            p.reader, p.assigned, p.done, p.repeats_planned, p.repeats_done, p.cannot_grade,
            calibration_score(db, report.study.id, ids[p.reader]), report.median_seconds[p.reader],
            _value(intra.kappa.value) if intra.n else None, intra.n,
            _value(pair.kappa.value) if pair is not None and pair.n else None,
            tuple(r.seconds for r in reads if r.rater_id == ids[p.reader] and r.kind is not ReadKind.CALIBRATION)))
    return rows


def write_csv(rows: list[DashboardRow], out: Path, reference: str | None = None) -> None:
    """The dashboard table as CSV (the figures, not the per-read times), written atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        cells = (r.reader, r.assigned, r.done, r.repeats_planned, r.repeats_done, r.cannot_grade,
                 r.calibration.accuracy if r.calibration else None, r.median_seconds, r.intra_kappa, r.intra_n,
                 reference, r.kappa_vs_reference)
        w.writerow(["" if c is None else c for c in cells])
    _atomic_write(out, buf.getvalue())
