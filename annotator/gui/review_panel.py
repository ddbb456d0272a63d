"""The review screen: the disagreement queue, every reader's point and grade on the slice, and the decision.

Left, the queue from :func:`annotator.services.review.disagreement_queue` (most severe first) with
status / reason filters and its counts; centre, the slice with each reader's point in its own colour
and symbol, named in a legend (by name, or as "Reader A", "Reader B", … where the project hides reader
names from reviewers: the presenter names them as the policy says), the active
model's point, and the reviewer's own point (a click); right, a :class:`DecisionBox`.

The rules live in :class:`~annotator.gui.review_presenter.ReviewPresenter`: this panel lays out the
widgets, forwards input to it and renders what it emits. The queue and each decision are read and
stored in the background, so the screen never waits for the database.
"""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import Rater
from annotator.domain.errors import AnnotatorError
from annotator.domain.readers import ReaderRef
from annotator.domain.scales import GradingScale
from annotator.gui import window_level
from annotator.gui.compare_pane import grade_text
from annotator.gui.errors import show_error
from annotator.gui.panel_keys import PanelKeys
from annotator.gui.reader_marks import Mark, ReaderMarks
from annotator.gui.review_decision import DecisionBox, unlabelled
from annotator.gui.review_presenter import ItemView, QueueView, ReviewPresenter
from annotator.gui.review_queue import REASONS, STATUSES, QueueTable
from annotator.gui.slice_view import SliceView
from annotator.gui.theme import DONE_COLOUR, MODEL_COLOUR
from annotator.services.project import Database
from annotator.services.review import DECIDED, QueueItem
from annotator.services.viewing import DecodedSlice, SuggestionStatus, Window


class ReviewPanel(QWidget):
    openImage = Signal(int)  # noqa: N815 (Qt naming) - show this slice in the workstation
    adjudicated = Signal(object)  # noqa: N815 - the Adjudication just stored

    def __init__(self, db: Database, reviewer: Rater, scale: GradingScale, parent: QWidget | None = None) -> None:
        """Raises PermissionDenied for an annotator (see :func:`open_review_panel`)."""
        presenter = ReviewPresenter(db, reviewer, scale)  # refuses annotators before any widget exists
        super().__init__(parent)
        presenter.setParent(self)
        self.presenter = presenter
        self.db, self.reviewer, self.scale = db, reviewer, scale
        self.display_window: Window | None = None
        self.loader = presenter.feed.loader
        self._build()
        self._shortcuts()
        self._connect()
        self.reload()

    # ----- the presenter's state, as the screen shows it ----------------------------------------
    @property
    def current(self) -> QueueItem | None:
        return self.presenter.current

    @property
    def own(self) -> tuple[float | None, float | None, int | None]:
        return self.presenter.own

    @property
    def version(self) -> int:
        return self.presenter.version

    @property
    def items(self) -> list[QueueItem]:
        return self.presenter.items

    @property
    def rows(self) -> list[QueueItem]:
        return self.presenter.rows

    @property
    def closed(self) -> bool:
        return self.presenter.closed

    @property
    def reason_filter(self) -> str | None:
        return self.reason_box.currentData()

    def queue_image_ids(self) -> list[int]:
        return self.presenter.queue_image_ids()

    # ----- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        self.status_box = QComboBox()
        self.status_box.addItems(list(STATUSES))
        self.reason_box = QComboBox()
        for text, prefix in REASONS:
            self.reason_box.addItem(text, prefix)
        self.include_model = QCheckBox("Include model")
        self.include_model.setToolTip("Also list slices where the active model's grade differs from the raters'")
        for signal in (self.status_box.currentIndexChanged, self.reason_box.currentIndexChanged,
                       self.include_model.toggled):
            signal.connect(self._on_filter)
        self.counts = QLabel()
        self.counts.setObjectName("reviewCounts")
        self.queue = QueueTable()
        self.queue.rowSelected.connect(self._on_row_selected)
        self.queue.doubleClicked.connect(lambda _index: self.open_in_workstation())
        self.open_button = QPushButton("Open in workstation")
        self.open_button.setToolTip("Show this slice in the main window (or double-click a row)")
        self.open_button.clicked.connect(lambda _c=False: self.open_in_workstation())
        filters = QHBoxLayout()
        for w in (self.status_box, self.reason_box, self.include_model):
            filters.addWidget(w)
        left = QWidget()
        lcol = QVBoxLayout(left)
        lcol.setContentsMargins(0, 0, 0, 0)
        lcol.addLayout(filters)
        lcol.addWidget(self.counts)
        lcol.addWidget(self.queue, 1)
        lcol.addWidget(self.open_button)

        self.title = QLabel()
        self.title.setObjectName("reviewTitle")
        self.title.setWordWrap(True)
        self.view = SliceView(editable=True)
        self.view.canalClicked.connect(self.set_point)
        self.view.markerMoved.connect(self.set_point)
        self.view.windowDragged.connect(self._drag_window)
        self.marks = ReaderMarks(self.view)
        centre = QWidget()
        ccol = QVBoxLayout(centre)
        ccol.setContentsMargins(0, 0, 0, 0)
        ccol.addWidget(self.title)
        ccol.addWidget(self.view, 1)

        self.decision = DecisionBox(self.scale)
        self.decision.acceptRequested.connect(self.accept)
        self.decision.gradeChosen.connect(self.choose_grade)
        self.decision.decideRequested.connect(self.decide)
        self.decision.reopenRequested.connect(self.reopen)
        self.decision.reason.textChanged.connect(self.presenter.set_reason)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.decision)
        split = QSplitter(Qt.Orientation.Horizontal)
        for pane in (left, centre, scroll):
            split.addWidget(pane)
        split.setStretchFactor(1, 1)
        split.setSizes([400, 640, 540])
        layout = QVBoxLayout(self)
        layout.addWidget(split)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def _shortcuts(self) -> None:
        """J/K or PgDown/PgUp: next/previous slice; the scale's grade keys; Ctrl+Enter: decide."""
        keys = PanelKeys(self)
        taken = {g.key.upper() for g in self.scale.grades}
        for key, fn in (("J", self.next_item), ("PgDown", self.next_item), ("K", self.previous_item),
                        ("PgUp", self.previous_item), ("Ctrl+Return", self.decide), ("Ctrl+Enter", self.decide)):
            if key not in taken:
                keys.add(key, fn)
        for g in self.scale.grades:
            keys.add(g.key, partial(self.choose_grade, g.ordinal))
        keys.watch()

    def _connect(self) -> None:
        p = self.presenter
        p.queueChanged.connect(self._on_queue)
        p.itemChanged.connect(self._on_item)
        p.ownChanged.connect(self._on_own)
        p.reasonChanged.connect(self._on_reason)
        p.loading.connect(lambda _ref: self.view.clear("Loading…"))  # no clicks on the previous slice meanwhile
        p.pixelsShown.connect(self._display)
        p.loadFailed.connect(self._on_failed)
        p.message.connect(self.decision.show_message)
        p.adjudicated.connect(self.adjudicated)
        p.errorRaised.connect(lambda exc: show_error(self, exc))

    # ----- input -> presenter -----------------------------------------------------------------
    def reload(self, keep: int | None = None) -> None:
        """Query the queue again in the background (see :meth:`ReviewPresenter.reload`)."""
        self.presenter.reload(keep)

    def _on_filter(self, *args: object) -> None:
        if self.reason_filter == "model" and not self.include_model.isChecked():
            self.include_model.setChecked(True)  # reloads through its own signal
            return
        self.presenter.set_filters(status=self.status_box.currentText(), reason=self.reason_filter,
                                   include_model=self.include_model.isChecked())

    def _on_row_selected(self) -> None:
        row = self.queue.selected_row()
        if row is not None:
            self.presenter.select_row(row)

    def select_image(self, image_id: int | None) -> None:
        self.presenter.select_image(image_id)

    def next_item(self) -> None:
        self.presenter.step(1)

    def previous_item(self) -> None:
        self.presenter.step(-1)

    def open_in_workstation(self) -> None:
        if self.current is not None:
            self.openImage.emit(self.current.image_id)

    def set_point(self, x: float, y: float) -> None:
        if self.showing is None or not self.presenter.set_point(x, y):
            return
        focus = QApplication.focusWidget()
        if focus is None or not (focus is self or self.isAncestorOf(focus)):
            self.setFocus(Qt.FocusReason.MouseFocusReason)  # the view takes no focus; the grade keys should work

    def choose_grade(self, ordinal: int) -> None:
        self.presenter.choose_grade(ordinal)

    def accept(self, reader: ReaderRef) -> None:
        self.presenter.accept(reader)

    def decide(self) -> None:
        self.presenter.decide()

    def reopen(self) -> None:
        self.presenter.reopen()

    # ----- presenter -> widgets ---------------------------------------------------------------
    @property
    def showing(self) -> int | None:
        """The image id whose pixels are on screen, when it is the current slice."""
        ref = self.view.image_ref
        return ref.id if ref is not None and self.current is not None and ref.id == self.current.image_id else None

    def _on_queue(self, queue: QueueView) -> None:
        self.counts.setText(queue.counts)
        self.queue.fill(queue.rows, queue.refs)

    def _on_item(self, item: ItemView | None) -> None:
        ids = self.queue_image_ids()
        self.queue.select_quietly(ids.index(item.item.image_id) if item is not None and item.item.image_id in ids
                                  else None)
        if item is None:
            self.view.clear("Nothing to review with these filters")
            self.title.setText("")
            self.decision.show_readers([], None)
            self.decision.show_model(None, None, "")
            self.decision.show_history([], {})
            self.decision.set_status(None)
            self.marks.clear()
            return
        self.title.setText(item.title)
        self.decision.show_readers(item.readers + ([item.model] if item.model else []), item.decided_source)
        self.decision.show_history(item.history, item.names, item.readers_shown)
        self.decision.set_status(item.status)
        self._draw_marks(item)

    def _draw_marks(self, view: ItemView) -> None:
        """Each reader's point, the model's and the current decision's."""
        marks = []
        for row in view.readers:
            if unlabelled(row.mark):
                marks.append(Mark(None, None, f"{row.name}: not labelled", row.colour, row.symbol, no_point=""))
            else:
                marks.append(Mark(row.mark.x_px, row.mark.y_px,
                                  f"{row.name}: {grade_text(self.scale, row.mark.grade)}", row.colour, row.symbol))
        sug = view.suggestion
        pred = sug.prediction if sug.status is SuggestionStatus.SHOWN else None
        if pred is not None:
            marks.append(Mark(pred.x_px, pred.y_px, f"model: {grade_text(self.scale, pred.grade)}", MODEL_COLOUR,
                              "x", 16))
        self.decision.show_model(sug.model.name if sug.model else None, pred, sug.status.value)
        adj = view.latest
        if adj is not None and adj.status == DECIDED:
            marks.append(Mark(adj.x_px, adj.y_px, f"decision ({self.presenter.name(adj.reviewer_id)}): "
                              f"{grade_text(self.scale, adj.grade)}", DONE_COLOUR, "+", 20))
        self.marks.show(marks)

    def _on_own(self, x: float | None, y: float | None, grade: int | None) -> None:
        self.view.set_marker(x, y, complete=grade is not None)
        self.decision.set_own(x, y, grade)

    def _on_reason(self, text: str) -> None:
        if self.decision.reason.text() != text:
            self.decision.reason.setText(text)

    def _display(self, decoded: DecodedSlice) -> None:
        self.display_window = decoded.default_window
        self.view.set_slice(decoded.image, decoded.pixels, self.display_window, fit=True, inverted=decoded.inverted)
        self._on_own(*self.own)

    def _drag_window(self, dx: float, dy: float) -> None:
        if self.display_window is not None and self.showing is not None:
            self.display_window = window_level.drag(self.display_window, dx, dy)
            self.view.set_window(self.display_window)

    def _on_failed(self, image: object, exc: Exception) -> None:
        self.view.clear(f"Cannot show this slice: {exc}")
        show_error(self, exc)

    # ----- closing ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop decoding, for good (call before the panel goes away; a closed panel is not reused)."""
        self.presenter.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)


def open_review_panel(db: Database, rater: Rater, scale: GradingScale,
                      parent: QWidget | None = None) -> ReviewPanel | None:
    """The panel, or None after telling the user why not (an annotator may not review)."""
    try:
        return ReviewPanel(db, rater, scale, parent)
    except AnnotatorError as exc:
        show_error(parent, exc)
        return None
