"""What the review screen reads and shows, as plain values and functions (no Qt): the queue as read,
the queue as listed under the filters, one slice's decisions and suggestion, and the next slice to decide.

The reads run on a worker thread (see :class:`~annotator.gui.review_presenter.ReviewPresenter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from annotator.domain.entities import Adjudication, ImageRef, QueueStatus, Rater
from annotator.domain.readers import ReaderRef
from annotator.gui.review_decision import ReaderRow
from annotator.gui.review_queue import STATUS_MATCHES, matches_reason
from annotator.services.project import Database, list_raters
from annotator.services.review import (
    DECIDED,
    QueueItem,
    ReviewService,
    disagreement_queue,
    queue_images,
    required_raters,
)
from annotator.services.viewing import Suggestion, ViewingService


@dataclass(frozen=True)
class QueueData:
    """One read of the queue and what is needed to show it (read on a worker thread)."""

    items: list[QueueItem]  # every status, most severe first
    refs: dict[int, ImageRef]
    raters: dict[str, Rater]
    required: list[str]  # names of the raters every slice should have


def fetch_queue(db: Database, reviewer: Rater, include_model: bool,
                known: Mapping[int, ImageRef] | None = None) -> QueueData:
    """The queue, its slices' catalogue records (``known`` ones are not read again: reading them means
    reading the whole catalogue), the raters and the required raters."""
    items = disagreement_queue(db, reviewer, include_model=include_model, status=None)
    have = known or {}
    missing = [it.image_id for it in items if it.image_id not in have]
    found = queue_images(db, missing) if missing else {}
    refs = {it.image_id: ref for it in items if (ref := have.get(it.image_id) or found.get(it.image_id))}
    return QueueData(items, refs, {r.name: r for r in list_raters(db)}, [r.name for r in required_raters(db)])


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
        if it is not None and i != image_id and it.status != DECIDED:
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
    names: dict[int, str] = field(default_factory=dict)

    @property
    def decided_source(self) -> ReaderRef | None:
        return self.latest.source if self.latest is not None and self.latest.status == DECIDED else None
