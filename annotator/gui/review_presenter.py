"""The review screen's workflow without widgets: the queue, the slice on screen, the reviewer's decision.

Like :class:`~annotator.gui.session.AnnotationSession` for the workstation, a QObject that the review
panel forwards input to (filters, row choice, a click, a grade key, Accept / Decide / Reopen) and whose
signals it renders. Database work (the queue, each decision with the queue after it, one slice's
decisions and suggestion) runs through :class:`~annotator.gui.background.BackgroundOp`; the pixels come
through a shared :class:`~annotator.gui.slice_feed.SliceFeed`. A reload answered after a newer one is
dropped, and so is a slice decoded or read after the reviewer moved on.

Choosing a row never waits for the database: the row is shown at once as the queue lists it (its
readers' marks; ``ItemView.loading``), its decisions and the model's suggestion follow from a worker,
and the neighbouring rows' are read ahead, so j/k through the queue usually finds them read already.
It imports no widget module (the panel does; a test checks it).

Every decision goes through :class:`annotator.services.review.ReviewService`, based on the version of
the slice's decisions shown. If another reviewer decided in between, the service refuses with a
ConflictError: the presenter then shows their decision, keeps the reviewer's input and stores nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar, cast

from PySide6.QtCore import QObject, Signal

from annotator.domain.entities import Adjudication, ImageRef, Label, QueueStatus, Rater
from annotator.domain.errors import ConflictError, InputError
from annotator.domain.readers import ReaderKind, ReaderMark, ReaderRef
from annotator.domain.scales import GradingScale
from annotator.gui.background import BackgroundOp, require_shared_database
from annotator.gui.pixel_loader import PixelLoader
from annotator.gui.review_state import (
    LOADING_SUGGESTION,
    STATUS_MATCHES,
    Details,
    ItemView,
    QueueData,
    QueueView,
    ReaderRow,
    counts_text,
    describe_adjudication,
    fetch_queue,
    grade_long,
    listed,
    next_to_decide,
    queue_after_decision,
    read_details,
    read_many_details,
    slice_name,
)
from annotator.gui.slice_feed import SliceFeed
from annotator.gui.theme import MODEL_COLOUR, slice_styles
from annotator.services.live import fingerprint
from annotator.services.project import Database
from annotator.services.review import QueueItem, ReviewService, queue_counts
from annotator.services.viewing import DecodedSlice, Suggestion, SuggestionStatus, ViewingService

__all__ = ["ItemView", "QueueData", "QueueView", "ReviewPresenter"]

PREFETCH = 2
READ_AHEAD = (1, 2, -1)  # the rows whose details are read once the current one's are known (j first)
log = logging.getLogger(__name__)
A = TypeVar("A")


class ReviewPresenter(QObject):
    queueChanged = Signal(object)  # noqa: N815 (Qt naming) - QueueView
    itemChanged = Signal(object)  # noqa: N815 - ItemView, or None: nothing to review
    ownChanged = Signal(object, object, object)  # noqa: N815 - x, y, grade of the reviewer's own decision
    reasonChanged = Signal(str)  # noqa: N815 - the reason, when the presenter sets it (cleared, kept)
    loading = Signal(object)  # ImageRef whose pixels are being decoded
    pixelsShown = Signal(object)  # noqa: N815 - DecodedSlice of the current slice
    loadFailed = Signal(object, object)  # noqa: N815 - ImageRef, exception
    message = Signal(str, str)  # text ("" clears), kind: error, conflict, info
    adjudicated = Signal(object)  # the Adjudication just stored
    errorRaised = Signal(object)  # noqa: N815 - an unexpected error for the one error dialog
    busyChanged = Signal(bool)  # noqa: N815

    def __init__(self, db: Database, reviewer: Rater, scale: GradingScale, *, loader: PixelLoader | None = None,
                 parent: QObject | None = None) -> None:
        """Raises PermissionDenied for an annotator, InputError for an in-memory database."""
        require_shared_database(db)
        self.service = ReviewService(db, reviewer)  # refuses annotators before anything exists
        super().__init__(parent)
        self.db, self.reviewer, self.scale = db, reviewer, scale
        self.viewing = ViewingService(db, reviewer)
        self.feed = SliceFeed(loader, parent=self)
        self.feed.shown.connect(self._on_pixels)
        self.feed.failed.connect(self.loadFailed)
        self.status_filter = "to decide"
        self.reason_filter: str | None = None
        self.include_model = False
        self.data = QueueData([], {}, {}, [])
        self.rows: list[QueueItem] = []
        self.view: ItemView | None = None
        self.own: tuple[float | None, float | None, int | None] = (None, None, None)
        self.reason = ""
        self._ordinal: dict[int, int] = {}
        self._ops = 0
        self._acting = False
        self._details: dict[int, Details] = {}  # by image id, read with the queue now listed (or since)
        self._generation = 0  # queue reads applied so far: details read for an older queue are not kept
        self._wanted: int | None = None  # the image whose details the screen waits for (workers read it)
        self.closed = False

    # ----- state ------------------------------------------------------------------------------
    @property
    def current(self) -> QueueItem | None:
        return self.view.item if self.view is not None else None

    @property
    def version(self) -> int:
        """Of the current slice's latest decision, as shown: what a decision is based on (while its
        decisions are being read, the version the queue row shows)."""
        view = self.view
        if view is None:
            return 0
        if view.loading:
            return view.item.adjudication_version
        return view.latest.version if view.latest is not None else 0

    @property
    def loading_details(self) -> bool:
        """True while the current slice is shown as listed and its decisions are being read."""
        return self.view is not None and self.view.loading

    @property
    def items(self) -> list[QueueItem]:
        return self.data.items

    @property
    def busy(self) -> bool:
        """True while a reload or a decision is running in the background."""
        return self._ops > 0

    @property
    def showing(self) -> bool:
        """True when the pixels of the current slice are known (clicks apply to them)."""
        cur = self.current
        return cur is not None and self.feed.showing(cur.image_id)

    def queue_image_ids(self) -> list[int]:
        return [it.image_id for it in self.rows]

    def name(self, rater_id: int) -> str:
        """A rater's name as the reviewer may see it (an alias where the project hides names)."""
        return next((self.data.names.name(r.name) for r in self.data.raters.values() if r.id == rater_id),
                    f"rater #{rater_id}")

    # ----- background work --------------------------------------------------------------------
    def _run(self, work: Callable[[], object], on_success: Callable[[object], None],
             on_failure: Callable[[Exception], None] | None = None, *, key: str | None = None,
             label: str = "Loading the review queue…", coalesce: bool = False) -> None:
        def done(result: object) -> None:
            if not self.closed:
                on_success(result)

        def failed(exc: Exception) -> None:
            if not self.closed:
                (on_failure or self.errorRaised.emit)(exc)

        self._ops += 1
        if self._ops == 1:
            self.busyChanged.emit(True)
        BackgroundOp(self, work, done, failed, key=key, label=label, on_settled=self._op_done).run(coalesce=coalesce)

    def _op_done(self) -> None:
        self._ops -= 1
        if self._ops == 0:
            self.busyChanged.emit(False)

    # ----- queue ------------------------------------------------------------------------------
    def set_filters(self, *, status: str | None = None, reason: str | None | bool = False,
                    include_model: bool | None = None) -> None:
        """Change any of the filters (``reason=False``: unchanged), then reload; the model reason needs
        the model in the queue, so choosing it includes the model."""
        if status is not None:
            if status not in STATUS_MATCHES:
                raise InputError(f"status filter {status!r}: expected one of {', '.join(STATUS_MATCHES)}")
            self.status_filter = status
        if reason is not False:
            self.reason_filter = reason if isinstance(reason, str) else None
        if include_model is not None:
            self.include_model = include_model
        if self.reason_filter == "model":
            self.include_model = True
        self.reload()

    def reload(self, keep: int | None = None) -> None:
        """Query the queue again (in the background); then show ``keep`` (even if filtered out), else the
        current slice if still listed, else the first. An older reload still running is dropped."""
        include, status, reason = self.include_model, self.status_filter, self.reason_filter
        was = self.current.image_id if self.current is not None else None

        def fetch() -> tuple[QueueData, Details | None]:
            """The queue, and the details of the slice it will most likely show (read here, not on the GUI
            thread; unused if the screen shows another slice by then)."""
            data = fetch_queue(self.db, self.reviewer, include)
            ids = [it.image_id for it in listed(data, status, reason)[1]]
            target = keep if keep is not None else was if was in ids else (ids[0] if ids else None)
            return data, (read_details(self.service, self.viewing, target) if target is not None else None)

        def shown(result: object) -> None:
            data, details = cast(tuple[QueueData, Details | None], result)
            current = self.current.image_id if self.current is not None else None
            self._apply(data, details)
            ids = self.queue_image_ids()
            if keep is not None:
                self.select_image(keep)
            elif current in ids:
                self.select_image(current)
            else:
                self.select_image(ids[0] if ids else None)

        self._run(fetch, shown, key="queue")

    def refresh(self) -> None:
        """Others committed labels or decisions: read the queue again and keep showing the current slice,
        with the reviewer's point, grade and reason, while it is in the queue under any filter (else the
        first row). Skipped while a decision is being saved (its own reload follows it), and nothing is
        read beyond the project's fingerprint when it is the one read with the queue shown (the change
        was this reviewer's own decision, already read back). One asked for while a queue read runs waits
        for it (coalesced), so a stream of colleagues' commits never queues reads ahead of a decision."""
        if self._acting or self.closed:
            return
        include, status, reason = self.include_model, self.status_filter, self.reason_filter
        was = self.current.image_id if self.current is not None else None
        known = self.data.fingerprint

        def fetch() -> tuple[QueueData, Details | None] | None:
            if self.closed:  # closed while this re-read waited for the one before it (coalesced)
                return None
            if known and fingerprint(self.db) == known:
                return None
            data = fetch_queue(self.db, self.reviewer, include)
            ids = [it.image_id for it in listed(data, status, reason)[1]]
            target = was if any(it.image_id == was for it in data.items) else (ids[0] if ids else None)
            return data, (read_details(self.service, self.viewing, target) if target is not None else None)

        def shown(result: object) -> None:
            if result is None or self._acting:
                return  # nothing new; or a decision started meanwhile (the queue it reads after is newer)
            data, details = cast(tuple[QueueData, Details | None], result)
            current = self.current.image_id if self.current is not None else None
            self._apply(data, details)
            if any(it.image_id == current for it in data.items):
                self.select_image(current)
            else:
                ids = self.queue_image_ids()
                self.select_image(ids[0] if ids else None)

        self._run(fetch, shown, key="queue", label="Updating the review queue…", coalesce=True)

    def _apply(self, data: QueueData, details: Details | None = None, *, keep_details: bool = False,
               changed: int | None = None) -> None:
        """List the queue under the filters; details read before it are dropped (they may be older),
        unless ``keep_details``: nothing but slice ``changed`` was written since they were read."""
        self.data = data
        self._generation += 1
        kept = {i: d for i, d in self._details.items() if i != changed} if keep_details else {}
        self._details = kept | ({details.image_id: details} if details is not None else {})
        self._ordinal = {r.id: i for i, r in enumerate(sorted(data.raters.values(), key=lambda r: r.id))}
        by_status, self.rows = listed(data, self.status_filter, self.reason_filter)
        counts = counts_text(queue_counts(by_status), self.status_filter, len(self.rows))
        self.queueChanged.emit(QueueView(self.rows, data.refs, counts))

    def select_image(self, image_id: int | None) -> None:
        """Show this queue slice (listed under the filters or not); None: nothing."""
        item = next((it for it in self.rows if it.image_id == image_id), None)
        if item is None:
            item = next((it for it in self.data.items if it.image_id == image_id), None)
        self._show(item)

    def select_row(self, row: int) -> None:
        if 0 <= row < len(self.rows):
            self._show(self.rows[row])

    def step(self, delta: int) -> None:
        ids = self.queue_image_ids()
        if not ids:
            return
        cur = self.current.image_id if self.current is not None else None
        i = ids.index(cur) + delta if cur in ids else (0 if delta > 0 else len(ids) - 1)
        self.select_image(ids[max(0, min(i, len(ids) - 1))])

    # ----- one slice --------------------------------------------------------------------------
    def _show(self, item: QueueItem | None) -> None:
        """Show the row at once: complete when its details are known, else as listed while they are read."""
        same = item is not None and self.current is not None and item.image_id == self.current.image_id
        if not same:
            self.own = (None, None, None)
            self._set_reason("")
        self.message.emit("", "error")
        if item is None:
            self.view = None
            self._wanted = None
            self.feed.clear()
            self.itemChanged.emit(None)
            self.ownChanged.emit(*self.own)
            return
        details = self._details.get(item.image_id)
        self.view = self._item_view(item, details)
        self._wanted = item.image_id
        self.itemChanged.emit(self.view)
        if details is None:
            self._read_details(item.image_id)
        else:
            self._tell_changed(self.view)
        if self.view.ref is not None:
            self._load_pixels(self.view.ref)
        self.ownChanged.emit(*self.own)
        if details is not None:
            self._read_ahead()

    def _tell_changed(self, view: ItemView) -> None:
        latest = view.latest
        if latest is not None and latest.version != view.item.adjudication_version:
            self.message.emit("Changed since the queue was loaded: " + describe_adjudication(
                latest, self.scale, self.name(latest.reviewer_id), self.data.names), "conflict")

    def _read_details(self, image_id: int) -> None:
        """Read the shown row's decisions and suggestion; an answer for a row already left is dropped."""
        service, viewing, generation = self.service, self.viewing, self._generation

        def read() -> Details | None:
            if self._wanted != image_id:
                return None  # moved on before a worker was free: read nothing
            return read_details(service, viewing, image_id)

        def shown(result: object) -> None:
            details = cast(Details | None, result)
            if details is None:
                return
            if generation == self._generation:
                self._details[image_id] = details
            view = self.view
            if view is None or not view.loading or view.item.image_id != image_id:
                return  # another row is shown now, or this one was shown complete meanwhile
            self.view = self._item_view(view.item, details)
            self.itemChanged.emit(self.view)
            self._tell_changed(self.view)
            self._read_ahead()

        self._run(read, shown, key="details", label="Reading the slice's decisions…")

    def _read_ahead(self) -> None:
        """Read the neighbouring rows' details, so stepping to them reads nothing while the reviewer waits."""
        ids = self.queue_image_ids()
        cur = self.current.image_id if self.current is not None else None
        if cur not in ids:
            return
        i = ids.index(cur)
        wanted = [ids[i + d] for d in READ_AHEAD if 0 <= i + d < len(ids) and ids[i + d] not in self._details]
        if not wanted:
            return
        service, viewing, generation = self.service, self.viewing, self._generation

        def read() -> list[Details]:
            return read_many_details(service, viewing, wanted)

        def keep(result: object) -> None:
            if generation == self._generation:
                for details in cast(list[Details], result):
                    self._details.setdefault(details.image_id, details)

        def failed(exc: Exception) -> None:  # the row's own read, when it is shown, reports it
            log.warning("reading ahead the review queue's details failed", exc_info=(type(exc), exc,
                                                                                      exc.__traceback__))

        self._run(read, keep, failed, key="details-ahead", label="Reading the next slices' decisions…")

    def _item_view(self, item: QueueItem, details: Details | None) -> ItemView:
        """The row as shown: with its details, or (None) as the queue lists it while they are read."""
        ref = self.data.refs.get(item.image_id)
        names = {r.id: self.data.names.name(r.name) for r in self.data.raters.values()}
        if details is None:
            title = (f"<b>{slice_name(ref, item.image_id)}</b> (image {item.image_id}) · {item.status} · "
                     f"{'; '.join(item.reasons)} · reading its decisions…")
            return ItemView(item, ref, title, item.status, self._reader_rows(item), None, LOADING_SUGGESTION, None,
                            [], names, self.data.names, loading=True)
        history = details.history
        latest = history[-1] if history else None
        status = QueueStatus.of(latest)
        title = (f"<b>{slice_name(ref, item.image_id)}</b> (image {item.image_id}) · {status} · "
                 f"{'; '.join(item.reasons)}")
        sug = details.suggestion
        return ItemView(item, ref, title, status, self._reader_rows(item), self._model_row(item, sug), sug, latest,
                        history, names, self.data.names)

    def _reader_rows(self, item: QueueItem) -> list[ReaderRow]:
        """The raters' marks, with an empty one for each required rater who has not labelled the slice."""
        marks = {k: m for k, m in item.marks.items() if k.kind is ReaderKind.RATER}
        for name in self.data.required:
            marks.setdefault(ReaderRef(ReaderKind.RATER, name), ReaderMark(item.image_id, None, None, None))
        shown = self.data.names
        keys = sorted(marks, key=lambda k: shown.name(k.key))  # in the order shown: by name, or by alias
        n = len(self._ordinal)
        ordinals = [self._ordinal.get(r.id, n) if (r := self.data.raters.get(k.key)) else n for k in keys]
        return [ReaderRow(key, shown.name(key.key), colour, marks[key], symbol)
                for key, (colour, symbol) in zip(keys, slice_styles(ordinals), strict=True)]

    @staticmethod
    def _model_row(item: QueueItem, sug: Suggestion) -> ReaderRow | None:
        """The active model as one more reader to accept (its prediction on this slice), if shown."""
        pred = sug.prediction
        if sug.status is not SuggestionStatus.SHOWN or pred is None or sug.model is None:
            return None
        mark = ReaderMark(item.image_id, pred.x_px, pred.y_px, pred.grade, pred.probabilities)
        return ReaderRow(ReaderRef(ReaderKind.MODEL, str(sug.model.id)), f"model {sug.model.id}", MODEL_COLOUR, mark)

    def _load_pixels(self, ref: ImageRef) -> None:
        if self.feed.wanted is not None and self.feed.wanted.id == ref.id and self.feed.decoded is not None:
            pass  # already on screen: the view keeps the reviewer's zoom and window
        else:
            hit = self.feed.want(ref)
            if hit is not None:
                self.pixelsShown.emit(hit)
            else:
                self.loading.emit(ref)
        ids = self.queue_image_ids()
        if ref.id in ids:
            i = ids.index(ref.id)
            refs = self.data.refs
            self.feed.prefetch([refs[j] for j in ids[i + 1:i + 1 + PREFETCH] if j in refs])

    def _on_pixels(self, decoded: DecodedSlice) -> None:
        self.pixelsShown.emit(decoded)

    # ----- the reviewer's input ---------------------------------------------------------------
    def set_point(self, x: float, y: float) -> bool:
        """The reviewer's own canal centre; ignored until the slice's pixels are shown."""
        if not self.showing:
            return False
        self.own = (x, y, self.own[2])
        self.ownChanged.emit(*self.own)
        return True

    def choose_grade(self, ordinal: int) -> None:
        if self.current is None:
            return
        self.own = (self.own[0], self.own[1], ordinal)
        self.ownChanged.emit(*self.own)

    def set_reason(self, text: str) -> None:
        self.reason = text

    def _set_reason(self, text: str) -> None:
        if text != self.reason:
            self.reason = text
            self.reasonChanged.emit(text)

    # ----- decisions --------------------------------------------------------------------------
    def accept(self, reader: ReaderRef) -> None:
        """Adopt one reader's label (as shown: refused if the rater changed it since); then the queue
        shows the decision (read again if anyone else wrote meanwhile) and moves to the next slice to decide."""
        item = self.current
        if item is None:
            return
        seen = item.marks.get(reader)
        version, reason = self.version, self.reason
        self._act(item, lambda: self.service.accept(item.image_id, reader, version, reason,
                                                    label_version=seen.version if seen is not None else None))

    def decide(self) -> None:
        """The reviewer's own point and grade (a reason is needed when it overrides every reader)."""
        item = self.current
        if item is None:
            return
        x, y, grade = self.own
        if x is None or y is None or grade is None:
            missing = "click the canal centre on the slice" if x is None or y is None else "choose a grade"
            self.message.emit(f"Not decided: {missing} first.", "error")
            return
        version, reason = self.version, self.reason
        self._act(item, lambda: self.service.decide(item.image_id, x, y, grade, version, reason))

    def reopen(self) -> None:
        """Reopen the current decision; the reason is required."""
        item = self.current
        if item is None:
            return
        version, reason = self.version, self.reason
        self._act(item, lambda: self.service.reopen(item.image_id, reason, version), advance=False)

    def _act(self, item: QueueItem, action: Callable[[], Adjudication], *, advance: bool = True) -> None:
        """Store the decision and read the queue after it, in one background job."""
        if self._acting:
            self.message.emit("Still saving the previous decision: try again in a moment.", "error")
            return
        image_id, include, before = item.image_id, self.include_model, self.queue_image_ids()
        status, reason, shown = self.status_filter, self.reason_filter, self.data

        def work() -> tuple[Adjudication, QueueData, bool, int | None, Details | None]:
            """Store, then the queue after it (the one slice updated, unless others wrote meanwhile) and
            what the screen shows of the slice it moves to."""
            adj = action()
            data, alone = queue_after_decision(self.db, self.reviewer, include, shown, adj)
            target = next_to_decide(before, image_id, listed(data, status, reason)[1]) if advance else image_id
            details = read_details(self.service, self.viewing, target) if target is not None else None
            return adj, data, alone, target, details

        def stored(result: object) -> None:
            adj, data, alone, target, details = cast(
                tuple[Adjudication, QueueData, bool, int | None, Details | None], result)
            self.own = (None, None, None)
            self._set_reason("")
            self.adjudicated.emit(adj)
            self._apply(data, details, keep_details=alone, changed=image_id)
            self.select_image(target)
            self.message.emit(f"Saved slice {image_id}: "
                              + describe_adjudication(adj, self.scale, self.reviewer.name, self.data.names), "info")

        def refused(exc: Exception) -> None:
            if isinstance(exc, ConflictError):
                self._on_conflict(image_id, exc)
            elif isinstance(exc, InputError):  # a missing reason, a point outside the image
                self.message.emit(f"Not saved: {exc}", "error")
            else:
                self.errorRaised.emit(exc)

        def settle(then: Callable[[A], None]) -> Callable[[A], None]:
            def run(arg: A) -> None:
                self._acting = False
                then(arg)
            return run

        self._acting = True
        self._run(work, settle(stored), settle(refused), label="Saving the decision…")

    def _on_conflict(self, image_id: int, exc: ConflictError) -> None:
        """Someone decided first: show their decision, keep the reviewer's input, store nothing."""
        own, reason = self.own, self.reason
        include = self.include_model

        def fetch() -> tuple[QueueData, Details]:
            """The queue as it is now and the slice's decisions (read here, not on the GUI thread)."""
            return fetch_queue(self.db, self.reviewer, include), read_details(self.service, self.viewing, image_id)

        def shown(result: object) -> None:
            data, details = cast(tuple[QueueData, Details], result)
            self._apply(data, details)
            self.select_image(image_id)
            self.own = own
            self._set_reason(reason)
            self.ownChanged.emit(*own)
            self.message.emit(self._conflict_text(image_id, exc), "conflict")

        self._run(fetch, shown, key="queue")

    def _conflict_text(self, image_id: int, exc: ConflictError) -> str:
        cur = exc.current
        if isinstance(cur, Adjudication):
            return ("Not saved — another reviewer got there first: "
                    + describe_adjudication(cur, self.scale, self.name(cur.reviewer_id), self.data.names)
                    + ". Their decision is shown; nothing was overwritten. Decide again only if you disagree.")
        if isinstance(cur, Label):
            now = f"grade {grade_long(self.scale, cur.grade)}" if cur.grade is not None else "no grade"
            text = f"Not saved — {self.name(cur.rater_id)} changed their label after it was shown (now: {now}). "
            if any(it.image_id == image_id for it in self.data.items):
                return text + "The slice is shown as it is now; accept again if it still stands."
            return text + "The raters now agree, so the slice has left the queue: nothing is left to decide."
        return f"Not saved: {exc}"

    # ----- closing ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop decoding, for good; results of background work still running are dropped."""
        self.closed = True
        self.feed.shutdown()
