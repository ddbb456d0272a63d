"""What the review screen reads and shows, as plain values and functions (no Qt): the queue as read,
the queue as listed under the filters, one slice's decisions and suggestion, and the next slice to decide,
with the words the screen uses for them (status filters, counts, a decision in one line).

The reads run on a worker thread (see :class:`~annotator.gui.review_presenter.ReviewPresenter`). The
widget modules (``review_queue``, ``review_decision``) import from here, never the reverse, so the
presenter loads no widget module (tests/gui/test_review_presenter.py checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from annotator.domain.entities import (
    OWN_SOURCE,
    Adjudication,
    AdjudicationStatus,
    ChangeMark,
    ImageRef,
    QueueStatus,
    Rater,
)
from annotator.domain.policy import ReaderNames
from annotator.domain.readers import ReaderMark, ReaderRef
from annotator.domain.scales import GradingScale
from annotator.services.live import fingerprint
from annotator.services.project import Database, list_raters, reader_names_for
from annotator.services.review import (
    DECIDED,
    QueueItem,
    ReviewService,
    decided_alone,
    disagreement_queue,
    queue_images,
    queue_mark,
    required_raters,
    with_decision,
)
from annotator.services.viewing import Suggestion, SuggestionStatus, ViewingService

STATUSES = ("to decide", "open", "reopened", "decided", "all")
STATUS_MATCHES: dict[str, frozenset[QueueStatus] | None] = {  # "to decide": never decided, or reopened since
    "to decide": frozenset({QueueStatus.OPEN, QueueStatus.REOPENED}), "open": frozenset({QueueStatus.OPEN}),
    "reopened": frozenset({QueueStatus.REOPENED}), "decided": frozenset({QueueStatus.DECIDED}), "all": None}
COUNT_KEYS = ("grades differ", "centres apart", "missing rater", "model disagrees")


def counts_text(counts: dict[str, int], status: str, shown: int | None = None) -> str:
    """'23 open · 12 grades differ · 8 centres apart · 3 missing rater' (from ``queue_counts``)."""
    parts = [f"{counts.get('total', 0)} {'in queue' if status == 'all' else status}"]
    parts += [f"{counts[k]} {k}" for k in COUNT_KEYS if counts.get(k)]
    text = " · ".join(parts)
    return text if shown is None or shown == counts.get("total", 0) else f"{text} — {shown} shown"


def matches_reason(item: QueueItem, reason: str | None) -> bool:
    """The service's reason filter: one of the item's reasons starts with the prefix."""
    return reason is None or any(w.startswith(reason) for w in item.reasons)


def slice_name(ref: ImageRef | None, image_id: int) -> str:
    if ref is None:
        return f"image {image_id}"
    level = f" · {ref.level}" if ref.level is not None else ""  # an exam has a stack per disc level
    return f"{ref.patient_key}{level} · slice {ref.slice_index + 1}"



@dataclass(frozen=True, slots=True)
class ReaderRow:
    """One reader of the slice as the box lists it."""

    key: ReaderRef  # what ReviewService.accept takes
    name: str
    colour: str
    mark: ReaderMark
    symbol: str = "o"


def grade_long(scale: GradingScale, grade: int | None) -> str:
    """'2 Moderate' (label and name) or 'no grade'."""
    if grade is None:
        return "no grade"
    try:
        g = scale.grade(grade)
    except Exception:  # a grade from another scale
        return str(grade)
    return g.label if g.label == g.name else f"{g.label} {g.name}"


def source_text(adj: Adjudication, names: ReaderNames) -> str:
    """Whose label a decision adopted, as the viewer may see it (``own``, ``model:3``, ``Reader A``…)."""
    return OWN_SOURCE if adj.source is None else names.reader(adj.source)


def describe_adjudication(adj: Adjudication, scale: GradingScale, reviewer_name: str,
                          names: ReaderNames | None = None) -> str:
    """One line: who decided what, when (the conflict message and the status line use it); ``names``: how
    the viewer sees the readers' names."""
    when = adj.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if adj.status is not AdjudicationStatus.DECIDED:
        text = f"{reviewer_name} reopened it (version {adj.version}, {when})"
    else:
        source = "their own point" if adj.source is None else (names or ReaderNames()).reader(adj.source)
        text = (f"{reviewer_name} decided grade {grade_long(scale, adj.grade)} from {source} "
                f"(version {adj.version}, {when})")
    return text + (f": “{adj.reason}”" if adj.reason else "")




@dataclass(frozen=True)
class QueueData:
    """One read of the queue and what is needed to show it (read on a worker thread)."""

    items: list[QueueItem]  # every status, most severe first
    refs: dict[int, ImageRef]
    raters: dict[str, Rater]
    required: list[str]  # names of the raters every slice should have
    names: ReaderNames = field(default_factory=ReaderNames)  # how the reviewer sees the raters' names
    fingerprint: tuple[object, ...] = ()  # the project's, read just before the queue (services.live)
    mark: ChangeMark | None = None  # the project's writes as they stood before this read
    include_model: bool = False  # read with the model's disagreements


def fetch_queue(db: Database, reviewer: Rater, include_model: bool,
                known: Mapping[int, ImageRef] | None = None) -> QueueData:
    """The queue, its slices' catalogue records (``known`` ones are not read again: reading them means
    reading the whole catalogue), the raters and the required raters."""
    seen = fingerprint(db)  # first: whatever is committed after it makes the next fingerprint differ
    mark = queue_mark(db)  # before the read: a write during it shows as a change later (read again, safely)
    items = disagreement_queue(db, reviewer, include_model=include_model, status=None)
    have = known or {}
    missing = [it.image_id for it in items if it.image_id not in have]
    found = queue_images(db, missing) if missing else {}
    refs = {it.image_id: ref for it in items if (ref := have.get(it.image_id) or found.get(it.image_id))}
    return QueueData(items, refs, {r.name: r for r in list_raters(db)}, [r.name for r in required_raters(db)],
                     reader_names_for(db, reviewer), seen, mark, include_model)


def queue_after_decision(db: Database, reviewer: Rater, include_model: bool, data: QueueData,
                         adj: Adjudication) -> tuple[QueueData, bool]:
    """The queue after the reviewer stored ``adj``, and whether it is ``data`` with only that slice updated.

    It is when nothing else was written since ``data`` was read: reading the whole queue again costs the
    worker about a second of Python on the demo (5,000 slices), whose garbage collections hold the GIL
    for 100-300 ms at a time and so stall the GUI thread. Otherwise the queue is read again.
    """
    if (data.mark is not None and data.include_model == include_model
            and any(it.image_id == adj.image_id for it in data.items)):
        seen = fingerprint(db)  # before the check: a write after it makes the next fingerprint differ
        mark = decided_alone(db, data.mark, adj)
        if mark is not None:
            items = [with_decision(it, adj) if it.image_id == adj.image_id else it for it in data.items]
            return replace(data, items=items, mark=mark, fingerprint=seen), True
    return fetch_queue(db, reviewer, include_model, data.refs), False


def listed(data: QueueData, status: str, reason: str | None) -> tuple[list[QueueItem], list[QueueItem]]:
    """(items of the status, items listed under both filters)."""
    wanted = STATUS_MATCHES[status]
    by_status = [it for it in data.items if wanted is None or it.status in wanted]
    return by_status, [it for it in by_status if matches_reason(it, reason)]


def next_to_decide(before: list[int], image_id: int, rows: list[QueueItem]) -> int | None:
    """The first slice still to decide after ``image_id`` in the order as it was, else from the top."""
    items = {it.image_id: it for it in rows}
    after = before[before.index(image_id) + 1:] if image_id in before else []
    for i in (*after, *items):
        it = items.get(i)
        if it is not None and i != image_id and it.status != QueueStatus.DECIDED:
            return i
    return None


@dataclass(frozen=True)
class Details:
    """What the screen reads about one slice besides the queue: its decisions and the model's suggestion."""

    image_id: int
    history: list[Adjudication]
    suggestion: Suggestion


def read_details(service: ReviewService, viewing: ViewingService, image_id: int) -> Details:
    return Details(image_id, service.history(image_id), viewing.overlay(image_id).suggestion)


def read_many_details(service: ReviewService, viewing: ViewingService, image_ids: list[int]) -> list[Details]:
    """Several slices' details, the suggestions in one overlays read (for reading rows ahead)."""
    overlays = viewing.overlays(image_ids)
    return [Details(i, service.history(i), overlays[i].suggestion) for i in image_ids]


LOADING_SUGGESTION = Suggestion(SuggestionStatus.NOT_PREDICTED)  # shown only while ``ItemView.loading``


@dataclass(frozen=True)
class QueueView:
    """The queue as listed under the filters."""

    rows: list[QueueItem]
    refs: dict[int, ImageRef]
    counts: str


@dataclass(frozen=True)
class ItemView:
    """One slice of the queue as the screen shows it."""

    item: QueueItem
    ref: ImageRef | None
    title: str
    status: QueueStatus
    readers: list[ReaderRow]  # the raters, one row each (required ones even when unlabelled)
    model: ReaderRow | None  # the active model as one more reader, when it may be shown
    suggestion: Suggestion
    latest: Adjudication | None
    history: list[Adjudication]
    names: dict[int, str] = field(default_factory=dict)  # rater id -> the name the reviewer sees
    readers_shown: ReaderNames = field(default_factory=ReaderNames)
    loading: bool = False  # the row as the queue lists it; its decisions and suggestion are being read

    @property
    def decided_source(self) -> ReaderRef | None:
        return self.latest.source if self.latest is not None and self.latest.status == DECIDED else None
