"""The review screen: the disagreement queue, every reader's point and grade on the slice, and the decision.

Left, the queue from :func:`annotator.services.review.disagreement_queue` (most severe first) with
status / reason filters and its counts; centre, the slice with each reader's point in its own colour
and symbol, named in a legend (the panel is for reviewers and admins, who may see names), the active
model's point, and the reviewer's own point (a click); right, a :class:`DecisionBox`.

Every decision goes through :class:`annotator.services.review.ReviewService`: it is stored as an
adjudication (rater labels are never edited) based on the version of the slice's decisions shown on
screen. If another reviewer decided in between, the service refuses with a ConflictError; the panel
then shows their decision and stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable

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

from annotator.domain.entities import Adjudication, ImageRef, Label, QueueStatus, Rater
from annotator.domain.errors import AnnotatorError, ConflictError, InputError
from annotator.domain.readers import ReaderKind, ReaderMark, ReaderRef
from annotator.domain.scales import GradingScale
from annotator.gui import window_level
from annotator.gui.compare_pane import grade_text
from annotator.gui.errors import show_error
from annotator.gui.panel_keys import PanelKeys
from annotator.gui.pixel_loader import PixelLoader
from annotator.gui.reader_marks import ReaderMarks
from annotator.gui.review_decision import DecisionBox, ReaderRow, describe_adjudication, grade_long, unlabelled
from annotator.gui.review_queue import (
    REASONS,
    STATUS_MATCHES,
    STATUSES,
    QueueTable,
    counts_text,
    matches_reason,
    slice_name,
)
from annotator.gui.slice_view import SliceView
from annotator.gui.theme import DONE_COLOUR, MODEL_COLOUR, slice_styles
from annotator.services.project import Database, list_raters
from annotator.services.review import (
    DECIDED,
    QueueItem,
    ReviewService,
    disagreement_queue,
    queue_counts,
    queue_images,
    required_raters,
)
from annotator.services.viewing import DecodedSlice, SuggestionStatus, ViewingService, Window

PREFETCH = 2


class ReviewPanel(QWidget):
    openImage = Signal(int)  # noqa: N815 (Qt naming) - show this slice in the workstation
    adjudicated = Signal(object)  # noqa: N815 - the Adjudication just stored

    def __init__(self, db: Database, reviewer: Rater, scale: GradingScale, parent: QWidget | None = None) -> None:
        """Raises PermissionDenied for an annotator (see :func:`open_review_panel`)."""
        service = ReviewService(db, reviewer)  # refuses annotators before any widget exists
        super().__init__(parent)
        self.db, self.reviewer, self.scale, self.service = db, reviewer, scale, service
        self.viewing = ViewingService(db, reviewer)
        self.items: list[QueueItem] = []  # every status, most severe first
        self.rows: list[QueueItem] = []  # after the status and reason filters, as listed
        self.refs: dict[int, ImageRef] = {}
        self.current: QueueItem | None = None
        self.version = 0  # of the current slice's latest decision, as shown: what a decision is based on
        self.latest: Adjudication | None = None
        self.own: tuple[float | None, float | None, int | None] = (None, None, None)
        self.raters: dict[str, Rater] = {}
        self._ordinal: dict[int, int] = {}  # rater id -> position by id: the same style as in the workstation
        self.required: list[str] = []  # names of the raters every slice should have
        self.display_window: Window | None = None
        self._rid = 0
        self.loader = PixelLoader(parent=self)
        self.closed = False  # True once shut down: its loader decodes nothing more
        self.loader.ready.connect(self._on_ready)
        self.loader.failed.connect(self._on_failed)
        self._build()
        self._shortcuts()
        self.reload()

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
        self.queue.itemSelectionChanged.connect(self._on_row_selected)
        self.queue.cellDoubleClicked.connect(lambda _r, _c: self.open_in_workstation())
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
            keys.add(g.key, lambda o=g.ordinal: self.choose_grade(o))
        keys.watch()

    # ----- queue ------------------------------------------------------------------------------
    @property
    def reason_filter(self) -> str | None:
        return self.reason_box.currentData()

    def queue_image_ids(self) -> list[int]:
        return [it.image_id for it in self.rows]

    def reload(self, keep: int | None = None) -> None:
        """Query the queue again; show ``keep`` (even if filtered out), else the current row, else the first."""
        if not self._query():
            return
        current = self.current.image_id if self.current is not None else None
        ids = self.queue_image_ids()
        if keep is not None:
            self.select_image(keep)
        elif current in ids:
            self.select_image(current)  # type: ignore[arg-type]
        else:
            self.select_image(ids[0] if ids else None)

    def _query(self) -> bool:
        """Fetch the queue and list it under the filters; False (after telling the user) if it failed."""
        try:
            self.items = disagreement_queue(self.db, self.reviewer, include_model=self.include_model.isChecked(),
                                            status=None)
            self.refs = queue_images(self.db, [it.image_id for it in self.items])
            self.raters = {r.name: r for r in list_raters(self.db)}
            self._ordinal = {r.id: i for i, r in enumerate(sorted(self.raters.values(), key=lambda r: r.id))}
            self.required = [r.name for r in required_raters(self.db)]
        except AnnotatorError as exc:
            show_error(self, exc)
            return False
        wanted = STATUS_MATCHES[self.status_box.currentText()]
        by_status = [it for it in self.items if wanted is None or it.status in wanted]
        self.rows = [it for it in by_status if matches_reason(it, self.reason_filter)]
        self.counts.setText(counts_text(queue_counts(by_status), self.status_box.currentText(), len(self.rows)))
        self.queue.fill(self.rows, self.refs)
        return True

    def _on_filter(self, *args: object) -> None:
        if self.reason_filter == "model" and not self.include_model.isChecked():
            self.include_model.setChecked(True)  # reloads through its own signal
            return
        self.reload()

    def _on_row_selected(self) -> None:
        row = self.queue.selected_row()
        if row is not None:
            self._show(self.rows[row])

    def select_image(self, image_id: int | None) -> None:
        """Show this queue slice, selecting its row when the filters list it."""
        ids = self.queue_image_ids()
        if image_id in ids:
            row = ids.index(image_id)  # type: ignore[arg-type]
            self.queue.select_quietly(row)
            self._show(self.rows[row])
            return
        self.queue.select_quietly(None)
        item = next((it for it in self.items if it.image_id == image_id), None)
        self._show(item)

    def _step(self, delta: int) -> None:
        ids = self.queue_image_ids()
        if not ids:
            return
        cur = self.current.image_id if self.current is not None else None
        i = ids.index(cur) + delta if cur in ids else (0 if delta > 0 else len(ids) - 1)  # type: ignore[arg-type]
        self.select_image(ids[max(0, min(i, len(ids) - 1))])

    def next_item(self) -> None:
        self._step(1)

    def previous_item(self) -> None:
        self._step(-1)

    def open_in_workstation(self) -> None:
        if self.current is not None:
            self.openImage.emit(self.current.image_id)

    # ----- one slice --------------------------------------------------------------------------
    @property
    def showing(self) -> int | None:
        """The image id whose pixels are on screen, when it is the current slice."""
        ref = self.view.image_ref
        return ref.id if ref is not None and self.current is not None and ref.id == self.current.image_id else None

    def _show(self, item: QueueItem | None) -> None:
        same = item is not None and self.current is not None and item.image_id == self.current.image_id
        self.current = item
        if not same:
            self.own = (None, None, None)
            self.decision.reason.clear()
        self.decision.show_message("")
        if item is None:
            self.latest, self.version = None, 0
            self.view.clear("Nothing to review with these filters")
            self.title.setText("")
            self.decision.show_readers([], None)
            self.decision.show_model(None, None, "")
            self.decision.show_history([], {})
            self.decision.set_status(None)
            self._draw_marks()
            return
        names = {r.id: r.name for r in self.raters.values()}
        history = self.service.history(item.image_id)
        self.latest = history[-1] if history else None
        self.version = self.latest.version if self.latest else 0
        status = QueueStatus.of(self.latest)
        ref = self.refs[item.image_id]
        self.title.setText(f"<b>{slice_name(ref, item.image_id)}</b> (image {item.image_id}) · "
                           f"{status} · {'; '.join(item.reasons)}")
        decided = self.latest.source if self.latest and self.latest.status == DECIDED else None
        model_row = self._model_row(item)
        self.decision.show_readers(self._reader_rows(item) + ([model_row] if model_row else []), decided)
        self.decision.show_history(history, names)
        self.decision.set_status(status)
        if self.latest is not None and self.latest.version != item.adjudication_version:
            self.decision.show_message("Changed since the queue was loaded: " + describe_adjudication(
                self.latest, self.scale, self._name(self.latest.reviewer_id)), "conflict")
        self._load_pixels(ref)
        self._draw_marks()

    def _name(self, rater_id: int) -> str:
        return next((r.name for r in self.raters.values() if r.id == rater_id), f"rater #{rater_id}")

    def _reader_rows(self, item: QueueItem) -> list[ReaderRow]:
        """The raters' marks, with an empty one for each required rater who has not labelled the slice."""
        marks = {k: m for k, m in item.marks.items() if k.kind is ReaderKind.RATER}
        for name in self.required:
            marks.setdefault(ReaderRef(ReaderKind.RATER, name), ReaderMark(item.image_id, None, None, None))
        keys = sorted(marks, key=str)
        names = [k.key for k in keys]
        ordinals = [self._ordinal.get(r.id, len(self._ordinal)) if (r := self.raters.get(n)) else len(self._ordinal)
                    for n in names]
        return [ReaderRow(key, name, colour, marks[key], symbol)
                for key, name, (colour, symbol) in zip(keys, names, slice_styles(ordinals), strict=True)]

    def _model_row(self, item: QueueItem) -> ReaderRow | None:
        """The active model as one more reader to accept (its prediction on this slice), if shown."""
        sug = self.viewing.overlay(item.image_id).suggestion
        pred = sug.prediction
        if sug.status is not SuggestionStatus.SHOWN or pred is None or sug.model is None:
            return None
        mark = ReaderMark(item.image_id, pred.x_px, pred.y_px, pred.grade, pred.probabilities)
        return ReaderRow(ReaderRef(ReaderKind.MODEL, str(sug.model.id)), f"model {sug.model.id}", MODEL_COLOUR, mark)

    def _load_pixels(self, ref: ImageRef) -> None:
        if self.view.image_ref is not None and self.view.image_ref.id == ref.id:
            return  # already on screen: keep the reviewer's zoom and window
        hit = self.loader.cached(ref.id)
        if hit is not None:
            self._display(hit)
        else:
            self.view.clear("Loading…")  # no clicks on the previous slice's pixels meanwhile
            self._rid = self.loader.request(ref)
        ids = self.queue_image_ids()
        if ref.id in ids:
            i = ids.index(ref.id)
            self.loader.prefetch([self.refs[j] for j in ids[i + 1:i + 1 + PREFETCH]])

    def _display(self, decoded: DecodedSlice) -> None:
        self.display_window = decoded.default_window
        self.view.set_slice(decoded.image, decoded.pixels, self.display_window, fit=True, inverted=decoded.inverted)
        self._draw_own()

    def _drag_window(self, dx: float, dy: float) -> None:
        if self.display_window is not None and self.showing is not None:
            self.display_window = window_level.drag(self.display_window, dx, dy)
            self.view.set_window(self.display_window)

    def _on_ready(self, rid: int, decoded: DecodedSlice) -> None:
        if rid == self._rid and self.current is not None and decoded.image.id == self.current.image_id:
            self._display(decoded)

    def _on_failed(self, rid: int, image: ImageRef, exc: Exception) -> None:
        if rid == self._rid:
            self.view.clear(f"Cannot show this slice: {exc}")
            show_error(self, exc)

    # ----- marks on the slice -----------------------------------------------------------------
    def _draw_marks(self) -> None:
        """Each reader's point, the model's and the current decision's; the reviewer's own point."""
        self.marks.clear()
        item = self.current
        if item is None:
            self.view.set_marker(None, None)
            return
        for row in self._reader_rows(item):
            if unlabelled(row.mark):
                self.marks.add(None, None, f"{row.name}: not labelled", row.colour, row.symbol, no_point="")
            else:
                self.marks.add(row.mark.x_px, row.mark.y_px, f"{row.name}: {grade_text(self.scale, row.mark.grade)}",
                               row.colour, row.symbol)
        sug = self.viewing.overlay(item.image_id).suggestion
        pred = sug.prediction if sug.status is SuggestionStatus.SHOWN else None
        if pred is not None:
            self.marks.add(pred.x_px, pred.y_px, f"model: {grade_text(self.scale, pred.grade)}", MODEL_COLOUR, "x", 16)
        self.decision.show_model(sug.model.name if sug.model else None, pred, sug.status.value)
        adj = self.latest
        if adj is not None and adj.status == DECIDED:
            self.marks.add(adj.x_px, adj.y_px, f"decision ({self._name(adj.reviewer_id)}): "
                           f"{grade_text(self.scale, adj.grade)}",
                           DONE_COLOUR, "+", 20)
        self._draw_own()

    def _draw_own(self) -> None:
        x, y, grade = self.own
        self.view.set_marker(x, y, complete=grade is not None)
        self.decision.set_own(x, y, grade)

    # ----- the reviewer's actions -------------------------------------------------------------
    def set_point(self, x: float, y: float) -> None:
        if self.current is None or self.showing is None:
            return
        self.own = (x, y, self.own[2])
        self._draw_own()
        focus = QApplication.focusWidget()
        if focus is None or not (focus is self or self.isAncestorOf(focus)):
            self.setFocus(Qt.FocusReason.MouseFocusReason)  # the view takes no focus; the grade keys should work

    def choose_grade(self, ordinal: int) -> None:
        if self.current is None:
            return
        self.own = (self.own[0], self.own[1], ordinal)
        self._draw_own()

    def accept(self, reader: ReaderRef) -> Adjudication | None:
        """Adopt one reader's label; the queue reloads and moves to the next slice to decide."""
        item = self.current
        if item is None:
            return None
        seen = item.marks.get(reader)  # the rater's label as shown: refused if the rater changed it since
        return self._act(lambda: self.service.accept(item.image_id, reader, self.version, self.decision.reason.text(),
                                                     label_version=seen.version if seen is not None else None))

    def decide(self) -> Adjudication | None:
        """The reviewer's own point and grade (a reason is needed when it overrides every reader)."""
        item = self.current
        if item is None:
            return None
        x, y, grade = self.own
        if x is None or y is None or grade is None:
            missing = "click the canal centre on the slice" if x is None or y is None else "choose a grade"
            self.decision.show_message(f"Not decided: {missing} first.")
            return None
        return self._act(lambda: self.service.decide(item.image_id, x, y, grade, self.version,
                                                     self.decision.reason.text()))

    def reopen(self) -> Adjudication | None:
        """Reopen the current decision; the reason comes from the reason field and is required."""
        item = self.current
        if item is None:
            return None
        return self._act(lambda: self.service.reopen(item.image_id, self.decision.reason.text(), self.version),
                         advance=False)

    def _act(self, action: Callable[[], Adjudication], *, advance: bool = True) -> Adjudication | None:
        assert self.current is not None
        image_id = self.current.image_id
        try:
            adj = action()
        except ConflictError as exc:
            self._on_conflict(image_id, exc)
            return None
        except InputError as exc:  # a missing reason, a point outside the image: said next to the field
            self.decision.show_message(f"Not saved: {exc}")
            return None
        except AnnotatorError as exc:
            show_error(self, exc)
            return None
        before = self.queue_image_ids()
        self.own = (None, None, None)
        self.decision.reason.clear()
        self.adjudicated.emit(adj)
        if self._query():
            self.select_image(self._next_after(before, image_id) if advance else image_id)
        self.decision.show_message(f"Saved slice {image_id}: " + describe_adjudication(
            adj, self.scale, self.reviewer.name), "info")
        return adj

    def _next_after(self, before: list[int], image_id: int) -> int | None:
        """The first slice still to decide after ``image_id`` in the order as it was, else from the top."""
        items = {it.image_id: it for it in self.rows}
        after = before[before.index(image_id) + 1:] if image_id in before else []
        for i in (*after, *items):
            it = items.get(i)
            if it is not None and i != image_id and it.status is not QueueStatus.DECIDED:
                return i
        return None

    def _on_conflict(self, image_id: int, exc: ConflictError) -> None:
        """Someone decided first: show their decision, keep the reviewer's input, store nothing."""
        own, reason = self.own, self.decision.reason.text()
        self.reload(keep=image_id)
        self.own = own
        self.decision.reason.setText(reason)
        self._draw_own()
        cur = exc.current
        if isinstance(cur, Adjudication):
            text = ("Not saved — another reviewer got there first: "
                    + describe_adjudication(cur, self.scale, self._name(cur.reviewer_id))
                    + ". Their decision is shown; nothing was overwritten. Decide again only if you disagree.")
        elif isinstance(cur, Label):
            now = f"grade {grade_long(self.scale, cur.grade)}" if cur.grade is not None else "no grade"
            text = f"Not saved — {self._name(cur.rater_id)} changed their label after it was shown (now: {now}). "
            if any(it.image_id == image_id for it in self.items):
                text += "The slice is shown as it is now; accept again if it still stands."
            else:
                text += "The raters now agree, so the slice has left the queue: nothing is left to decide."
        else:
            text = f"Not saved: {exc}"
        self.decision.show_message(text, "conflict")

    # ----- closing ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop decoding, for good (call before the panel goes away; a closed panel is not reused)."""
        self.closed = True
        self.loader.shutdown()

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
