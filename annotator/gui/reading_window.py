"""The reading window of a reader study: one slice at a time, in the reader's own order.

It lays out the slice, the grade buttons, Cannot grade with its reasons, a comment, and the feedback
after a calibration read, and forwards every input to a :class:`ReadingPresenter`; it holds no rule.
Keys: the scale's grade keys, X (cannot grade: choose the reason), Enter (commit / go on). Mouse and
key activity and the window's focus are handed to the presenter's reading clock.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import Rater
from annotator.domain.errors import AnnotatorError
from annotator.domain.scales import GradingScale
from annotator.domain.studies import CannotGrade
from annotator.gui import readout
from annotator.gui.errors import show_error
from annotator.gui.grade_panel import grade_button
from annotator.gui.panel_keys import PanelKeys
from annotator.gui.pixel_loader import PixelLoader
from annotator.gui.reader_marks import ReaderMarks
from annotator.gui.reading_clock import ReadingClock
from annotator.gui.reading_presenter import REASON_NAMES, Draft, FeedbackView, ItemView, ReadingPresenter
from annotator.gui.slice_view import SliceView
from annotator.gui.theme import DONE_COLOUR, MODEL_COLOUR
from annotator.services.project import Database
from annotator.services.viewing import DecodedSlice

ACTIVITY_EVENTS = frozenset({QEvent.Type.MouseMove, QEvent.Type.MouseButtonPress, QEvent.Type.KeyPress,
                             QEvent.Type.Wheel})
REFERENCE_COLOUR = MODEL_COLOUR
CANNOT_GRADE_KEY = "X"


class ReadingWindow(QWidget):
    readCommitted = Signal(object)  # noqa: N815 (Qt naming) - AnswerOutcome

    def __init__(self, db: Database, rater: Rater, study: str, *, clock: ReadingClock | None = None,
                 loader: PixelLoader | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setWindowTitle(f"Reading — {study} — {rater.name}")
        self.presenter = ReadingPresenter(db, rater, study, clock=clock, loader=loader, parent=self)
        self.view = SliceView(editable=True)
        self.reference = ReaderMarks(self.view)
        self.study_label = QLabel(f"<b>{study}</b>")
        self.progress = QLabel("")
        self.progress.setObjectName("readingProgress")
        self.badge = QLabel("")
        self.badge.setObjectName("calibrationBadge")
        self.badge.setStyleSheet(f"QLabel#calibrationBadge {{ color: {MODEL_COLOUR}; font-weight: bold; }}")
        self.grade_row = QHBoxLayout()
        self.buttons: dict[int, QPushButton] = {}
        self.cannot = QPushButton(f"Cannot grade… ({CANNOT_GRADE_KEY})")
        self.cannot.setCheckable(True)
        self.cannot.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cannot.clicked.connect(lambda _c=False: self.ask_reason())
        self.reason_menu = QMenu(self)
        for reason, name in REASON_NAMES.items():
            self.reason_menu.addAction(f"&{name}", lambda r=reason: self._guarded(
                lambda: self.presenter.set_cannot_grade(r)))
        self.reason_menu.addSeparator()
        self.reason_menu.addAction("I &can grade it", lambda: self._guarded(
            lambda: self.presenter.set_cannot_grade(None)))
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment (optional)")
        self.comment.textEdited.connect(lambda t: self._guarded(lambda: self.presenter.set_comment(t)))
        self.commit_button = QPushButton("Commit ▶ (Enter)")
        self.commit_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.commit_button.clicked.connect(lambda _c=False: self.commit())
        self.state = QLabel("")
        self.state.setObjectName("answerState")
        self.feedback = QLabel("")
        self.feedback.setObjectName("calibrationFeedback")
        self.feedback.setWordWrap(True)
        self.feedback.setStyleSheet(f"QLabel#calibrationFeedback {{ color: {REFERENCE_COLOUR}; font-weight: bold; }}")
        self.feedback.hide()
        self._layout()
        self._connect()
        self.resize(1100, 900)

    def _layout(self) -> None:
        top = QHBoxLayout()
        for w in (self.study_label, self.badge):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.progress)
        answer = QHBoxLayout()
        answer.addWidget(self.cannot)
        answer.addWidget(self.comment, 1)
        answer.addWidget(self.commit_button)
        col = QVBoxLayout(self)
        col.setContentsMargins(6, 6, 6, 6)
        col.addLayout(top)
        col.addWidget(self.view, 1)
        col.addWidget(self.feedback)
        col.addLayout(self.grade_row)
        col.addLayout(answer)
        col.addWidget(self.state)

    def _connect(self) -> None:
        p = self.presenter
        p.itemChanged.connect(self._on_item)
        p.pixelsShown.connect(self._on_pixels)
        p.draftChanged.connect(self._on_draft)
        p.feedbackChanged.connect(self._on_feedback)
        p.committed.connect(self.readCommitted)
        p.loadFailed.connect(self._on_load_failed)
        p.errorRaised.connect(lambda exc: show_error(self, exc))
        self.view.canalClicked.connect(lambda x, y: self._guarded(lambda: p.place_point(x, y)))
        self.view.markerMoved.connect(lambda x, y: self._guarded(lambda: p.place_point(x, y)))

    def start(self) -> None:
        self.view.clear("Opening the study…")
        self.presenter.start()

    def _guarded(self, fn):  # type: ignore[no-untyped-def]
        try:
            return fn()
        except AnnotatorError as exc:
            show_error(self, exc)
            return None

    def _grades(self, scale: GradingScale) -> None:
        """The scale's grade buttons and keys, once the study's scale is known."""
        keys = PanelKeys(self)
        for g in scale.grades:
            b = grade_button(g, lambda o: self._guarded(lambda: self.presenter.set_grade(o)))
            b.setMinimumHeight(34)
            self.buttons[g.ordinal] = b
            self.grade_row.addWidget(b)
            keys.add(g.key, lambda o=g.ordinal: self._guarded(lambda: self.presenter.set_grade(o)))
        keys.add(CANNOT_GRADE_KEY, self.ask_reason)
        for key in ("Return", "Enter"):
            keys.add(key, self.commit)
        keys.watch()
        for w in (self, *self.findChildren(QWidget)):
            w.installEventFilter(self)

    # ----- input ------------------------------------------------------------------------------
    def commit(self) -> None:
        self._guarded(self.presenter.commit)

    def ask_reason(self) -> None:
        """Cannot grade: pick the reason from a menu (keyboard: the underlined letter)."""
        self.cannot.setChecked(self.presenter.draft.cannot_grade is not None)
        if self.presenter.view is not None and self.presenter.feedback is None:
            self.reason_menu.popup(self.cannot.mapToGlobal(self.cannot.rect().bottomLeft()))

    def choose_reason(self, reason: CannotGrade | None) -> None:
        self._guarded(lambda: self.presenter.set_cannot_grade(reason))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        if event.type() in ACTIVITY_EVENTS:
            self.presenter.activity()
        return False

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.ActivationChange:
            self.presenter.set_active(self.isActiveWindow())
        super().changeEvent(event)

    # ----- presenter -> widgets ---------------------------------------------------------------
    def _on_item(self, view: ItemView | None) -> None:
        if self.presenter.scale is not None and not self.buttons:
            self._grades(self.presenter.scale)
        self.reference.clear()
        self.comment.clear()
        if view is None:
            self.progress.setText("")
            self.badge.setText("")
            self.view.clear("You have read every slice of this study. Thank you.")
            self.view.set_corner_text("top_left", "")
            self._enable(False)
            return
        self._enable(True)
        self.progress.setText(view.progress_text)
        self.badge.setText("Calibration slice: the reference appears after you commit" if view.item.calibration
                           else "")
        self.view.set_corner_text("top_left", readout.level_text(view.image))
        if not self.presenter.showing:
            self.view.clear("Loading…")

    def _enable(self, on: bool) -> None:
        for w in (*self.buttons.values(), self.cannot, self.comment, self.commit_button):
            w.setEnabled(on)

    def _on_pixels(self, decoded: DecodedSlice) -> None:
        self.view.set_slice(decoded.image, decoded.pixels, decoded.default_window, fit=True,
                            inverted=decoded.inverted)
        self._on_draft(self.presenter.draft)

    def _on_draft(self, draft: Draft) -> None:
        for ordinal, b in self.buttons.items():
            b.setChecked(draft.grade == ordinal)
        self.cannot.setChecked(draft.cannot_grade is not None)
        self.cannot.setText(f"Cannot grade: {REASON_NAMES[draft.cannot_grade]}" if draft.cannot_grade is not None
                            else f"Cannot grade… ({CANNOT_GRADE_KEY})")
        if self.comment.text() != draft.comment:
            self.comment.setText(draft.comment)
        showing = self.presenter.showing
        self.view.set_marker(draft.x_px if showing else None, draft.y_px if showing else None,
                             complete=draft.complete)
        self.state.setStyleSheet("")
        self.state.setText(self._state_text(draft))

    def _state_text(self, draft: Draft) -> str:
        if draft.cannot_grade is not None:
            return f"Cannot grade ({REASON_NAMES[draft.cannot_grade].lower()}): press Enter to commit"
        point = "centre placed" if draft.x_px is not None else "click the canal centre"
        grade = "grade chosen" if draft.grade is not None else "press a grade key"
        ready = "  ·  press Enter to commit" if draft.complete else ""
        return f"{point}  ·  {grade}{ready}"

    def _on_feedback(self, fb: FeedbackView | None) -> None:
        self.reference.clear()
        if fb is None:
            self.feedback.hide()
            self.feedback.setText("")
            return
        self.feedback.setText(fb.text)
        self.feedback.show()
        self.badge.setText("Calibration slice: your read is stored; the reference is shown")
        ref = fb.feedback.reference if fb.feedback is not None else None
        if ref is not None:
            self.reference.add(ref.x_px, ref.y_px, "Reference", REFERENCE_COLOUR, "x", size=18)
        self.state.setStyleSheet(f"color: {DONE_COLOUR};")
        self.state.setText("Read stored.")

    def _on_load_failed(self, image: object, exc: Exception) -> None:
        self.view.clear("Cannot show this slice")
        show_error(self, exc)

    def shutdown(self) -> None:
        self.presenter.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)
