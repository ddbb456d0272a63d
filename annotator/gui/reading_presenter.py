"""Reading in a reader study without widgets: the reader's current item, her answer in progress, the
commit, calibration feedback, and her reading time (issue 13, points 4 to 6).

A QObject the reading window forwards input to (a click, a grade key, cannot-grade with a reason, a
comment, Enter) and whose signals it renders. Every database call goes through
:class:`~annotator.services.reading.ReadingSession` on a :class:`~annotator.gui.background.BackgroundOp`;
the pixels come through a :class:`~annotator.gui.slice_feed.SliceFeed`.

Blinding: what the presenter hands the window about an item is an :class:`ItemView` built from the
service's :class:`~annotator.domain.studies.ReadItem`, which carries no kind; every item starts from an
empty answer, so a repeat shows nothing of the first read. A calibration item's reference arrives only
in the outcome of her own stored read (the service asks the policy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from annotator.domain.entities import ImageRef, Rater
from annotator.domain.errors import InputError
from annotator.domain.scales import GradingScale, load_scale
from annotator.domain.studies import Answer, CalibrationFeedback, CalibrationScore, CannotGrade, ReadItem
from annotator.gui.background import BackgroundOp
from annotator.gui.pixel_loader import PixelLoader
from annotator.gui.reading_clock import ReadingClock
from annotator.gui.slice_feed import SliceFeed
from annotator.services.project import Database
from annotator.services.reading import AnswerOutcome, ReadingSession
from annotator.services.studies import studies_to_read
from annotator.services.viewing import DecodedSlice

REASON_NAMES = {CannotGrade.MOTION: "Motion", CannotGrade.ARTEFACT: "Artefact",
                CannotGrade.WRONG_LEVEL: "Wrong level", CannotGrade.OTHER: "Other"}


@dataclass(frozen=True, slots=True)
class ItemView:
    """One item as the reader sees it: the slice, whether it is a calibration slice, where she stands."""

    item: ReadItem
    image: ImageRef

    @property
    def progress_text(self) -> str:
        return f"{self.item.number} of {self.item.total}"


@dataclass(frozen=True, slots=True)
class Draft:
    """Her answer on the current item before the commit."""

    x_px: float | None = None
    y_px: float | None = None
    grade: int | None = None
    cannot_grade: CannotGrade | None = None
    comment: str = ""

    @property
    def complete(self) -> bool:
        return self.cannot_grade is not None or (self.grade is not None and self.x_px is not None)

    def answer(self, seconds: float | None) -> Answer:
        return Answer(self.x_px, self.y_px, None if self.cannot_grade is not None else self.grade,
                      self.cannot_grade, seconds, self.comment.strip())


@dataclass(frozen=True, slots=True)
class FeedbackView:
    """After a calibration read: the reference, her difference from it, and at the end her score."""

    feedback: CalibrationFeedback | None
    score: CalibrationScore | None
    text: str


def _grade_text(scale: GradingScale, ordinal: int | None) -> str:
    if ordinal is None:
        return "no grade"
    try:
        g = scale.grade(ordinal)
    except Exception:  # a reference on another scale: the number, not a failure
        return f"grade {ordinal}"
    return f"{g.label} ({g.name})" if g.label != g.name else g.name


def score_text(score: CalibrationScore) -> str:
    acc = "–" if score.accuracy is None else f"{score.accuracy:.0%}"
    dist = "" if score.median_distance_mm is None else f", median distance {score.median_distance_mm:.1f} mm"
    return f"Calibration score: {score.exact} of {score.graded} grades exact ({acc}){dist}"


def feedback_text(scale: GradingScale, outcome: AnswerOutcome) -> str:
    """"Reference: grade 2 (moderate) · you: +1 grade, 1.8 mm away" and, after the last one, her score."""
    lines = []
    f = outcome.feedback
    if f is not None:
        diff = ("grade not compared" if f.grade_difference is None else
                "same grade" if f.grade_difference == 0 else f"{f.grade_difference:+d} grade")
        dist = ("no distance" if f.distance_mm is None else f"{f.distance_mm:.1f} mm from the reference point")
        lines.append(f"Reference: {_grade_text(scale, f.reference.grade)}  ·  you: {diff}, {dist}")
    if outcome.calibration_score is not None:
        lines.append(score_text(outcome.calibration_score))
    lines.append("Press Enter to go on.")
    return "\n".join(lines)


def her_studies(db: Database, rater: Rater) -> list[tuple[str, int, int]]:
    """(name, items read, items in her sequence) of each study she reads in (run it on a worker)."""
    out = []
    for s in studies_to_read(db, rater):
        done, total = ReadingSession.open(db, rater, s.name).progress()
        out.append((s.name, done, total))
    return out


class ReadingPresenter(QObject):
    itemChanged = Signal(object)  # noqa: N815 (Qt naming) - ItemView, or None: every item is read
    pixelsShown = Signal(object)  # noqa: N815 - DecodedSlice of the current item
    loadFailed = Signal(object, object)  # noqa: N815 - ImageRef, exception
    draftChanged = Signal(object)  # noqa: N815 - Draft
    feedbackChanged = Signal(object)  # noqa: N815 - FeedbackView, or None (hidden)
    committed = Signal(object)  # AnswerOutcome of the read just stored
    message = Signal(str)  # a short note for the reader ("" clears)
    errorRaised = Signal(object)  # noqa: N815 - an unexpected error for the one error dialog
    busyChanged = Signal(bool)  # noqa: N815

    def __init__(self, db: Database, rater: Rater, study: str, *, clock: ReadingClock | None = None,
                 loader: PixelLoader | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.db, self.rater, self.study_name = db, rater, study
        self.clock = clock or ReadingClock()
        self.feed = SliceFeed(loader, parent=self)
        self.feed.shown.connect(self._on_pixels)
        self.feed.failed.connect(self.loadFailed)
        self.session: ReadingSession | None = None
        self.scale: GradingScale | None = None
        self.view: ItemView | None = None
        self.draft = Draft()
        self.feedback: FeedbackView | None = None
        self.finished = False
        self._pending: ItemView | None = None  # the next item, held while feedback is on screen
        self._ops = 0
        self.closed = False

    # ----- state ------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._ops > 0

    @property
    def showing(self) -> bool:
        """True when the pixels of the current item are on screen (clicks and the clock apply)."""
        return self.view is not None and self.feed.showing(self.view.image.id)

    # ----- background work --------------------------------------------------------------------
    def _run(self, work: Callable[[], object], on_success: Callable[[object], None], *, label: str) -> None:
        def done(result: object) -> None:
            if not self.closed:
                on_success(result)

        def failed(exc: Exception) -> None:
            if not self.closed:
                self.errorRaised.emit(exc)

        self._ops += 1
        if self._ops == 1:
            self.busyChanged.emit(True)
        BackgroundOp(self, work, done, failed, key="reading", label=label, on_settled=self._op_done).run()

    def _op_done(self) -> None:
        self._ops -= 1
        if self._ops == 0:
            self.busyChanged.emit(False)

    @staticmethod
    def _next_view(session: ReadingSession) -> ItemView | None:
        """Worker side: her current item with its slice (None when she has read everything)."""
        item = session.next()
        return None if item is None else ItemView(item, session.image(item))

    # ----- flow -------------------------------------------------------------------------------
    def start(self) -> None:
        """Open her reading session (refused unless she reads in this study) and show her current item."""
        def work() -> tuple[ReadingSession, GradingScale, ItemView | None]:
            session = ReadingSession.open(self.db, self.rater, self.study_name)
            return session, load_scale(session.study_scale), self._next_view(session)

        def opened(result: object) -> None:
            session, scale, view = result  # type: ignore[misc]
            self.session, self.scale = session, scale
            self._show(view)

        self._run(work, opened, label=f"Opening study {self.study_name}…")

    def _show(self, view: ItemView | None) -> None:
        self.view, self.draft, self.feedback, self._pending = view, Draft(), None, None
        self.clock.reset()
        self.feedbackChanged.emit(None)
        self.draftChanged.emit(self.draft)
        self.finished = view is None
        if view is None:
            self.feed.clear()
            self.itemChanged.emit(None)
            return
        self.itemChanged.emit(view)
        hit = self.feed.want(view.image)
        if hit is not None:
            self._on_pixels(hit)

    def _on_pixels(self, decoded: DecodedSlice) -> None:
        if self.view is None or decoded.image.id != self.view.image.id:
            return
        self.pixelsShown.emit(decoded)
        if self.feedback is None:
            self.clock.start()  # the read's time begins when its pixels are on screen

    # ----- input ------------------------------------------------------------------------------
    def _edit(self, **changes: object) -> None:
        if self.view is None or self.feedback is not None or self.busy:
            return  # nothing to answer, or the read is stored and its feedback on screen
        self.clock.activity()
        self.draft = dataclasses.replace(self.draft, **changes)  # type: ignore[arg-type]
        self.draftChanged.emit(self.draft)

    def place_point(self, x: float, y: float) -> None:
        if self.showing:
            self._edit(x_px=x, y_px=y)

    def set_grade(self, ordinal: int) -> None:
        if self.scale is not None:
            self.scale.grade(ordinal)  # an unknown grade is an InputError, not a stored read
        self._edit(grade=ordinal, cannot_grade=None)

    def set_cannot_grade(self, reason: CannotGrade | None) -> None:
        """Cannot grade for this reason (None: she can grade after all); it replaces a chosen grade."""
        self._edit(cannot_grade=reason, grade=None if reason is not None else self.draft.grade)

    def set_comment(self, text: str) -> None:
        self._edit(comment=text)

    def activity(self) -> None:
        """Mouse or key activity in the reading window (keeps the clock from counting her as idle)."""
        self.clock.activity()

    def set_active(self, active: bool) -> None:
        """The reading window went to the front or the background."""
        self.clock.set_active(active)

    def commit(self) -> None:
        """Enter: store her answer and go to the next item; with feedback on screen, go on."""
        if self.busy or self.view is None:
            return
        if self.feedback is not None:
            self._show(self._pending)
            return
        if not self.draft.complete:
            raise InputError("Click the canal centre and press a grade key, or choose Cannot grade with a reason")
        if not self.showing:
            raise InputError("The slice is still loading")
        answer = self.draft.answer(round(self.clock.stop(), 3))
        session, sop = self.session, self.view.item.sop_instance_uid
        assert session is not None

        def work() -> tuple[AnswerOutcome, ItemView | None]:
            return session.answer(sop, answer), self._next_view(session)

        self._run(work, self._answered, label="Storing your read…")

    def _answered(self, result: object) -> None:
        outcome, nxt = result  # type: ignore[misc]
        self.committed.emit(outcome)
        if outcome.calibration and self.scale is not None:
            self.feedback = FeedbackView(outcome.feedback, outcome.calibration_score,
                                         feedback_text(self.scale, outcome))
            self._pending = nxt
            self.feedbackChanged.emit(self.feedback)
            return
        self._show(nxt)

    def close(self) -> None:
        """Stop decoding and drop any answer still on its way (the stored reads stay)."""
        self.closed = True
        self.feed.shutdown()
