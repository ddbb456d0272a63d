"""The annotation session of one signed-in rater: which slice is open, what is on it, what to do next.

A QObject without widgets: the main window forwards user intents to it (place a point, grade, undo,
go to the next slice) and subscribes to its signals. Every label action is committed at once by the
services (one new version and one audit entry per action), so closing at any moment loses nothing.
Actions are refused while the slice on screen is not the slice they would change, so a rater never
labels pixels they have not seen. Pixels come through a :class:`SliceFeed`; every read of the database
(opening a series with its overlays and the rater's label histories, a refresh, one slice's overlays,
finding the next unfinished slice) runs in the background (:class:`BackgroundOp`), and an answer made
stale meanwhile (a move, a newer read, a label action on the slice) is dropped. Undo/redo availability
is derived from the histories held, so browsing reads nothing on the GUI thread; a click or grade key
is one write transaction and no read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from annotator.domain.connection import new_action_key
from annotator.domain.entities import ImageRef, Label, Rater
from annotator.domain.errors import ConflictError, InputError, NotCommitted, NotFound
from annotator.domain.policy import Policy
from annotator.domain.scales import GradingScale
from annotator.gui import window_level
from annotator.gui.background import BackgroundOp, require_shared_database
from annotator.gui.pixel_loader import PixelLoader
from annotator.gui.slice_feed import SliceFeed
from annotator.services.labelling import LabelService, Shown, undo_redo
from annotator.services.project import Database
from annotator.services.viewing import DecodedSlice, SliceOverlays, ViewingService, Window
from annotator.services.worklist import SliceState, WorklistService, project_rules, slice_state

PREFETCH_RADIUS = 2
T = TypeVar("T")
SeriesRead = tuple[dict[int, SliceOverlays], dict[int, list[Label]]]  # overlays and own histories by image id


@dataclass(frozen=True, slots=True)
class PendingAction:
    """A label action the database did not confirm (NotCommitted), kept with its idempotency key.

    ``run`` repeats it with the same key, so it is stored once whether or not the first try was.
    """

    image: ImageRef
    what: str  # "grade 2 on slice 7", for the status bar
    run: Callable[[], Label | None]


class AnnotationSession(QObject):
    sliceChanged = Signal(object, int, int)  # ImageRef, index in series, series length
    pixelsShown = Signal(object)  # DecodedSlice of the current slice, now displayable
    overlaysChanged = Signal(object)  # SliceOverlays of the current slice
    labelCommitted = Signal(object, object)  # Label, SliceState before the action
    windowChanged = Signal(object)  # Window
    undoRedoChanged = Signal(bool, bool)
    loadFailed = Signal(object, object)  # ImageRef, exception
    errorRaised = Signal(object)  # an exception from background work (opening a series) for the error dialog
    message = Signal(str)
    pendingChanged = Signal(object)  # PendingAction not stored yet (to repeat once connected), or None

    def __init__(self, db: Database, rater: Rater, *, loader: PixelLoader | None = None,
                 parent: QObject | None = None) -> None:
        """Raises InputError for an in-memory database (background reads could not see it)."""
        require_shared_database(db)
        super().__init__(parent)
        self.db = db
        self.rater = rater
        self.labels = LabelService(db, rater)
        self.worklist = WorklistService(db, rater)
        self.viewing = ViewingService(db, rater)
        self.rules = project_rules(db)
        self.policy = Policy.of(rater, self.rules.settings)
        self.feed = SliceFeed(loader, parent=self)  # the pixels of the current slice; stale answers dropped
        self.feed.shown.connect(self._display)
        self.feed.failed.connect(self.loadFailed)
        self.loader = self.feed.loader
        self.series_id: int | None = None
        self.images: list[ImageRef] = []
        self.index = -1
        self.window: Window | None = None
        self._overlays: dict[int, SliceOverlays] = {}
        self._histories: dict[int, list[Label]] = {}  # the rater's versions by image id, oldest first
        self._undo_state: dict[int, tuple[bool, bool]] = {}  # by image id, derived from _histories
        self._writes: dict[int, int] = {}  # label actions per image id: a read started before one is stale
        self._fit_next = True
        self._moves = 0  # navigations so far: a series read in the background opens only if none came since
        self._opening = 0
        self.pending: PendingAction | None = None  # the action the database did not confirm, kept to repeat

    # ----- state -------------------------------------------------------------------------------
    @property
    def scale(self) -> GradingScale:
        return self.rules.scale

    @property
    def current(self) -> ImageRef | None:
        return self.images[self.index] if 0 <= self.index < len(self.images) else None

    @property
    def overlays(self) -> SliceOverlays | None:
        cur = self.current
        return self._overlays.get(cur.id) if cur is not None else None

    @property
    def own_label(self) -> Label | None:
        ov = self.overlays
        return ov.own if ov is not None else None

    @property
    def decoded(self) -> DecodedSlice | None:
        """The pixels of the current slice once decoded (None while loading)."""
        return self.feed.decoded

    @property
    def showing_current(self) -> bool:
        """True when the pixels on screen are those of the current slice."""
        cur = self.current
        return cur is not None and self.feed.showing(cur.id)

    def take_fit(self) -> bool:
        """Whether the views should fit the image (first slice of a series); asks once."""
        fit, self._fit_next = self._fit_next, False
        return fit

    # ----- navigation --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a series is being read in the background."""
        return self._opening > 0

    def open_series(self, series_id: int, image_id: int | None = None) -> None:
        """Read the series' slices and overlays in the background, then show ``image_id`` (else the first).

        The slice on screen stays current until then; moving elsewhere meanwhile drops the answer.
        """
        worklist, viewing, moves = self.worklist, self.viewing, self._moves

        labels = self.labels

        def read() -> tuple[list[ImageRef], SeriesRead]:
            images = worklist.series_images(series_id)
            if not images:
                raise NotFound(f"series id {series_id} has no slices")
            ids = [im.id for im in images]
            return images, (viewing.overlays(ids), labels.histories(ids))

        def opened(result: tuple[list[ImageRef], SeriesRead]) -> None:
            if moves == self._moves:
                self._opened(series_id, image_id, *result)

        self._background(read, opened, key="series", label="Opening the series…")

    def _background(self, work: Callable[[], T], on_success: Callable[[T], None], *, key: Any,
                    label: str, coalesce: bool = False) -> None:
        """Run a read through BackgroundOp; ``busy`` counts it until it is answered (or dropped)."""
        def settled() -> None:
            self._opening -= 1

        self._opening += 1
        BackgroundOp(self, work, on_success, self.errorRaised.emit, key=key, label=label,
                     on_settled=settled).run(coalesce=coalesce)

    def _opened(self, series_id: int, image_id: int | None, images: list[ImageRef], read: SeriesRead) -> None:
        self.series_id = series_id
        self.images = images
        self._overlays, self._histories = read
        self._undo_state = {i: undo_redo(h) for i, h in self._histories.items()}
        self.window = None
        self.feed.clear()
        self._fit_next = True
        index = next((i for i, im in enumerate(images) if im.id == image_id), 0)
        self._show(index)

    def go_to(self, image: ImageRef) -> None:
        if image.series_id != self.series_id:
            self.open_series(image.series_id, image.id)
            return
        index = next((i for i, im in enumerate(self.images) if im.id == image.id), None)
        if index is None:  # imported since the series was opened
            self.open_series(image.series_id, image.id)
        elif index != self.index:
            self._show(index)

    def step(self, delta: int) -> None:
        if not self.images:
            return
        index = min(max(self.index + delta, 0), len(self.images) - 1)
        if index != self.index:
            self._show(index)

    def next_unlabelled(self) -> None:
        """Go to the next slice this rater has not finished, found in the background (the whole catalogue
        in the strategy's order); say so when every slice is done. A move made meanwhile drops it."""
        cur = self.current
        worklist, after, moves = self.worklist, (cur.id if cur is not None else None), self._moves

        def found(image: ImageRef | None) -> None:
            if moves != self._moves:
                return  # the rater has moved on by hand
            now = self.current
            if image is None:
                self.message.emit("Every slice is done: nothing left to label.")
            elif now is not None and image.id == now.id:
                self.message.emit("This is the last slice you have not finished.")
            else:
                self.go_to(image)

        self._background(lambda: worklist.next_unlabelled(after), found, key="next",
                         label="Finding the next slice to label…")

    def refresh(self) -> None:
        """Re-read what others may have changed (other readers, predictions) for the open series, in the
        background; one asked for while another runs waits for it (coalesced: a stream of commits costs
        back-to-back reads at most), and a slice labelled meanwhile keeps what the screen holds (it is
        newer than the read)."""
        if not self.images:
            return
        series_id, ids = self.series_id, [im.id for im in self.images]
        viewing, labels, writes = self.viewing, self.labels, dict(self._writes)

        def read() -> SeriesRead:
            return viewing.overlays(ids), labels.histories(ids)

        def refreshed(result: SeriesRead) -> None:
            if series_id == self.series_id:
                self._take(*result, writes)

        self._background(read, refreshed, key="refresh", label="Refreshing the series…", coalesce=True)

    def _take(self, overlays: dict[int, SliceOverlays], histories: dict[int, list[Label]],
              writes: dict[int, int]) -> None:
        """Keep what was read, except for slices labelled since the read began; show the current one's."""
        for image_id, ov in overlays.items():
            if self._writes.get(image_id, 0) != writes.get(image_id, 0):
                continue
            self._overlays[image_id] = ov
            history = histories.get(image_id)
            if history is not None:
                self._histories[image_id] = history
                self._undo_state[image_id] = undo_redo(history)
        cur = self.current
        if cur is not None and cur.id in overlays:
            self._current_changed(cur.id)

    def _read_overlay(self, image_id: int) -> None:
        """Read one slice's overlays and the rater's history there (not held, or after a conflict)."""
        viewing, labels, writes = self.viewing, self.labels, dict(self._writes)

        def read() -> SeriesRead:
            return viewing.overlays([image_id]), labels.histories([image_id])

        self._background(read, lambda result: self._take(*result, writes), key=("overlay", image_id),
                         label="Reading the slice's labels…")

    def _show(self, index: int) -> None:
        """Make slice ``index`` current: pixels at once when cached, else from a worker thread."""
        self._moves += 1
        self.index = index
        image = self.images[index]
        hit = self.feed.want(image)
        ov = self._overlays.get(image.id)
        self.sliceChanged.emit(image, index, len(self.images))
        if hit is not None:
            self._display(hit)
        if ov is None:  # not read with the series: read in the background, shown when it comes
            self._read_overlay(image.id)
        else:
            self.overlaysChanged.emit(ov)
            self._emit_undo_state()
        self._prefetch(index)

    def _prefetch(self, index: int) -> None:
        order = []
        for d in range(1, PREFETCH_RADIUS + 1):
            order += [index + d, index - d]
        self.feed.prefetch(self.images[i] for i in order if 0 <= i < len(self.images))

    def _display(self, decoded: DecodedSlice) -> None:
        if self.window is None:
            self.window = decoded.default_window
            self.windowChanged.emit(self.window)
        self.pixelsShown.emit(decoded)

    # ----- window ------------------------------------------------------------------------------
    def set_window(self, window: Window) -> None:
        self.window = window
        self.windowChanged.emit(window)

    def drag_window(self, dx: float, dy: float) -> None:
        if self.window is not None:
            self.set_window(window_level.drag(self.window, dx, dy))

    def apply_preset(self, name: str) -> bool:
        if self.decoded is None or name not in self.decoded.presets:
            self.message.emit(f"No {name} window for this slice.")
            return False
        self.set_window(self.decoded.presets[name])
        return True

    # ----- labelling ---------------------------------------------------------------------------
    def _target(self) -> ImageRef:
        cur = self.current
        if cur is None:
            raise InputError("open a slice first")
        if not self.showing_current:
            raise InputError("the slice is still loading: label it once you can see it")
        return cur

    def _shown(self, image: ImageRef) -> Shown | None:
        """What this screen holds of ``image``, so a click or grade key reads nothing back (None: not known yet)."""
        ov = self._overlays.get(image.id)
        return Shown(image, ov.own, self.scale) if ov is not None else None

    # Each user action gets its idempotency key once, here; a repeat of it (retry_pending) reuses the key.
    def place_point(self, x: float, y: float) -> Label:
        image, key = self._target(), new_action_key()
        return self._stored(image, f"point on slice {self._number(image)}",
                            lambda: self.labels.set_point(image.id, x, y, shown=self._shown(image), key=key))

    def set_grade(self, ordinal: int) -> Label:
        image, key = self._target(), new_action_key()
        return self._stored(image, f"grade {self.scale.grade(ordinal).label} on slice {self._number(image)}",
                            lambda: self.labels.set_grade(image.id, ordinal, shown=self._shown(image), key=key))

    def _number(self, image: ImageRef) -> str:
        return str(image.instance_number if image.instance_number is not None else image.slice_index + 1)

    def _stored(self, image: ImageRef, what: str, action: Callable[[], Label]) -> Label:
        """An action that always stores a version (a point, a grade), through :meth:`_committed`."""
        label = self._committed(image, what, action)
        if label is None:
            raise AssertionError("a point or a grade always stores a version")
        return label

    def grade_key(self, key: str) -> Label | None:
        ordinal = self.scale.ordinal_for_key(key)
        return self.set_grade(ordinal) if ordinal is not None else None

    def undo(self) -> Label | None:
        image, key = self._target(), new_action_key()
        label = self._committed(image, f"undo on slice {self._number(image)}",
                                lambda: self.labels.undo(image.id, key=key))
        if label is None:
            self.message.emit("Nothing to undo on this slice.")
        return label

    def redo(self) -> Label | None:
        image, key = self._target(), new_action_key()
        label = self._committed(image, f"redo on slice {self._number(image)}",
                                lambda: self.labels.redo(image.id, key=key))
        if label is None:
            self.message.emit("Nothing to redo on this slice.")
        return label

    def retry_pending(self) -> Label | None:
        """Repeat the action the database did not confirm, with its key (stored once either way).

        Raises NotCommitted again (and keeps it) while the database is still unreachable."""
        pending = self.pending
        if pending is None:
            return None
        self._set_pending(None)
        return self._committed(pending.image, pending.what, pending.run)

    def _set_pending(self, pending: PendingAction | None) -> None:
        self.pending = pending
        self.pendingChanged.emit(pending)

    def _committed(self, image: ImageRef, what: str, action: Callable[[], Label | None]) -> Label | None:
        """Run one label action (already committed by the service when it returns), then update views.

        The new own label is what the service returned, so the overlays, the history and the undo state
        are derived from it instead of read back (the service itself reads the history for undo/redo).
        An action the database did not confirm is kept as :attr:`pending` (with its key) and the error
        raised for the dialog; an action while one is pending first repeats that one, so they keep order.
        """
        if self.pending is not None:
            self.retry_pending()  # raises NotCommitted while the database is unreachable: nothing new is tried
        before = self._overlays.get(image.id)
        prev_state = slice_state(before.own if before is not None else None)
        try:
            label = action()
        except NotCommitted:
            self._set_pending(PendingAction(image, what, action))
            raise
        except ConflictError as exc:
            self._on_conflict(image.id, before, exc)  # show what is stored now, then let the caller report
            raise
        if label is None:
            return None
        self._writes[image.id] = self._writes.get(image.id, 0) + 1
        history = self._histories.get(image.id)
        if history is not None:
            history.append(label)
            self._undo_state[image.id] = undo_redo(history)
        if before is None:
            self._read_overlay(image.id)
        else:
            self._overlays[image.id] = self.viewing.with_own(before, label)
            if history is None:
                self._read_overlay(image.id)
            self._current_changed(image.id)
        self.labelCommitted.emit(label, prev_state)
        return label

    def _on_conflict(self, image_id: int, before: SliceOverlays | None, exc: ConflictError) -> None:
        """The label stored elsewhere is shown at once (the error carries it), then the slice is read again."""
        self._writes[image_id] = self._writes.get(image_id, 0) + 1  # reads begun before it are stale
        self._histories.pop(image_id, None)
        self._undo_state.pop(image_id, None)
        stored = exc.current if isinstance(exc.current, Label) else None
        if before is not None:
            self._overlays[image_id] = replace(before, own=stored if stored is not None and not stored.empty
                                               else None)
            self._current_changed(image_id)
        self._read_overlay(image_id)

    def _current_changed(self, image_id: int) -> None:
        cur = self.current
        if cur is not None and cur.id == image_id and image_id in self._overlays:
            self.overlaysChanged.emit(self._overlays[image_id])
            self._emit_undo_state()

    def _emit_undo_state(self) -> None:
        """Tell whether undo/redo apply to the current slice (unknown while its history is being read)."""
        cur = self.current
        known = self._undo_state.get(cur.id) if cur is not None else None
        if known is not None:
            self.undoRedoChanged.emit(*known)

    def state_of_current(self) -> SliceState:
        return slice_state(self.own_label)

    def close(self) -> None:
        """Stop background work; nothing to save (every action is already committed)."""
        self.feed.shutdown()
