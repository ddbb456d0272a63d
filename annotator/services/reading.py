"""Use case: a reader works through her sequence in a reader study (the CLI and the GUI's presenter).

What a reader is shown never says whether an item is a first or a repeat read, and a repeat shows
nothing of the first; a calibration slice is flagged, and its reference appears only once her own read
of it is stored. Each answer is one committed read; a repeat read never changes the first read.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from annotator.domain.entities import ImageRef, Rater
from annotator.domain.errors import InputError, PermissionDenied
from annotator.domain.policy import Policy
from annotator.domain.scales import load_scale
from annotator.domain.studies import (
    Answer,
    CalibrationFeedback,
    CalibrationScore,
    ReadItem,
    ReadKind,
    ReferenceMark,
    StudySummary,
)
from annotator.services.project import policy
from annotator.services.studies import study_for
from annotator.storage import catalog
from annotator.storage import studies as repo
from annotator.storage.database import Database


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """What a reader learns after answering: where she stands, and on a calibration slice the feedback
    (and, after the last one, her calibration score). Nothing says whether the item was a repeat."""

    number: int
    total: int
    calibration: bool
    feedback: CalibrationFeedback | None = None
    calibration_score: CalibrationScore | None = None

    @property
    def finished(self) -> bool:
        return self.number >= self.total

    def to_json(self, study: str) -> dict[str, object]:
        doc: dict[str, object] = {"study": study, "number": self.number, "total": self.total,
                                  "calibration": self.calibration, "finished": self.finished}
        if self.feedback is not None:
            f = self.feedback
            doc["reference"] = {"x_px": f.reference.x_px, "y_px": f.reference.y_px, "grade": f.reference.grade,
                                "distance_mm": f.distance_mm, "grade_difference": f.grade_difference}
        if self.calibration_score is not None:
            c = self.calibration_score
            doc["calibration_score"] = {"n": c.n, "graded": c.graded, "exact": c.exact, "accuracy": c.accuracy,
                                        "mean_abs_grade_difference": c.mean_abs_grade_difference,
                                        "median_distance_mm": c.median_distance_mm}
        return doc


def _feedback(db: Database, ref: ReferenceMark, x: float | None, y: float | None,
              grade: int | None) -> CalibrationFeedback:
    distance = None
    if x is not None and y is not None and ref.x_px is not None and ref.y_px is not None:
        g = catalog.image_by_id(db, ref.image_id).geometry
        distance = g.distance_mm((x, y), (ref.x_px, ref.y_px)) if g.has_mm else None
    diff = grade - ref.grade if grade is not None and ref.grade is not None else None
    return CalibrationFeedback(ref, distance, diff)


@dataclass
class ReadingSession:
    """One reader in one study. Build with :meth:`open`, which checks she is one of its readers."""

    db: Database
    rater: Rater
    study: StudySummary
    rules: Policy

    @classmethod
    def open(cls, db: Database, rater: Rater, study_name: str) -> ReadingSession:
        study = study_for(db, rater, study_name)
        rules = policy(db, rater)
        if not rules.may_read_in_study(assigned=study.id in repo.studies_of_reader(db, rater.id)):
            raise PermissionDenied(f"{rater.name} is not a reader of study {study_name!r}")
        return cls(db, rater, study, rules)

    def next(self) -> ReadItem | None:
        """Her current item, or None when she has read everything. The item carries no kind."""
        found = repo.current_item(self.db, self.study.id, self.rater.id)
        if found is None:
            return None
        item, sop, total = found
        return ReadItem(self.study.name, sop, item.image_id, item.kind is ReadKind.CALIBRATION, item.seq, total)

    def read_through(self, answer_for: Callable[[ReadItem], Answer], limit: int | None = None) -> int:
        """Answer her items in order with ``answer_for`` (a simulated reader, a script), each answer its own
        committed read, up to ``limit`` items; the number answered. The callback sees only what a reader
        sees: it learns that an item is a repeat only by remembering the slice, as a person would."""
        n = 0
        while (limit is None or n < limit) and (item := self.next()) is not None:
            self.answer(item.sop_instance_uid, answer_for(item))
            n += 1
        return n

    def image(self, item: ReadItem) -> ImageRef:
        """The catalogued slice of one of her items (where its pixels are, its geometry and level)."""
        return catalog.image_by_id(self.db, item.image_id)

    def progress(self) -> tuple[int, int]:
        """(items answered, items in her sequence)."""
        total = repo.plan_length(self.db, self.study.id, self.rater.id)
        found = repo.current_item(self.db, self.study.id, self.rater.id)
        return (total if found is None else found[0].seq - 1), total

    def answer(self, sop_uid: str, answer: Answer) -> AnswerOutcome:
        """Record her answer to the current item, which must be the slice ``sop_uid``."""
        current = self.next()
        if current is None:
            raise InputError(f"{self.rater.name} has read every slice of study {self.study.name!r}")
        if current.sop_instance_uid != sop_uid:
            raise InputError(f"SOPInstanceUID {sop_uid} is not your current slice (item {current.number} is "
                             f"{current.sop_instance_uid}): answer the slice `read next` shows")
        image = catalog.image_by_id(self.db, current.image_id)
        if answer.x_px is not None and answer.y_px is not None and \
                not image.geometry.contains(answer.x_px, answer.y_px):
            raise InputError(f"point ({answer.x_px:.1f}, {answer.y_px:.1f}) lies outside the "
                             f"{image.geometry.columns}x{image.geometry.rows} image")
        scale = load_scale(self.study_scale)
        if answer.grade is not None:
            scale.grade(answer.grade)
        repo.record_read(self.db, self.study.id, self.rater.id, sop_uid, answer, scale_code=scale.code)
        if not current.calibration:
            return AnswerOutcome(current.number, current.total, False)
        feedback = self.feedback(current.image_id)
        return AnswerOutcome(current.number, current.total, True, feedback, self.calibration_score())

    @property
    def study_scale(self) -> str:
        return repo.scale_code(self.db, self.study.id)

    def feedback(self, image_id: int) -> CalibrationFeedback | None:
        """The reference on a calibration slice with her difference from it, once her read is stored."""
        own = {r.image_id: r for r in repo.reads(self.db, self.study.id, [self.rater.id])
               if r.kind is ReadKind.CALIBRATION}
        ref = repo.reference_marks(self.db, self.study.id).get(image_id)
        if ref is None or not self.rules.may_see_calibration_reference(own_read_done=image_id in own):
            return None
        read = own[image_id]
        return _feedback(self.db, ref, read.x_px, read.y_px, read.grade)

    def calibration_score(self) -> CalibrationScore | None:
        """Her calibration score once every calibration slice is read; None before (or with none)."""
        return calibration_score(self.db, self.study.id, self.rater.id)


def calibration_score(db: Database, study_id: int, rater_id: int) -> CalibrationScore | None:
    """A reader's calibration score once she has read every calibration slice; None before (or with none)."""
    refs = repo.reference_marks(db, study_id)
    own = [r for r in repo.reads(db, study_id, [rater_id]) if r.kind is ReadKind.CALIBRATION]
    if not refs or len(own) < len(refs):
        return None
    fb = [_feedback(db, refs[r.image_id], r.x_px, r.y_px, r.grade) for r in own]
    diffs = [f.grade_difference for f in fb if f.grade_difference is not None]
    dists = [f.distance_mm for f in fb if f.distance_mm is not None]
    return CalibrationScore(n=len(own), graded=len(diffs), exact=sum(d == 0 for d in diffs),
                            mean_abs_grade_difference=statistics.fmean(abs(d) for d in diffs) if diffs else None,
                            median_distance_mm=statistics.median(dists) if dists else None)
