"""Use case: reviewers resolve disagreements; the consensus label set.

A slice enters the disagreement queue when the required raters' grades differ, when their centres lie
further apart than the project's threshold (mm), when a required rater has not labelled it completely
while another has started it (a slice nobody has touched is still to label, not to review), or
(optionally) when the active model's grade differs from the raters'. A slice that has a decision stays
listed (decided, or reopened) even once its raters agree, so it can be looked at and reopened.
Labels of readers outside the required set are shown with the others but never put a slice in the queue.
Decisions are adjudications: they never edit a rater's label, they are versioned so two reviewers
cannot silently overwrite each other, and every step is audited.

Consensus rule (also in the README): a slice's consensus label is its latest adjudication if that is a
decision; otherwise, if every required rater labelled it completely with the same grade and their centres
lie within the project's threshold, that grade with the mean of their points; otherwise (disagreement,
missing rater, or reopened) the slice has none. So a slice that every required rater labelled completely
and that has no decision has a consensus label exactly when the raters' labels keep it out of the queue.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from annotator.domain.entities import (
    Adjudication,
    AdjudicationStatus,
    ChangeMark,
    ImageRef,
    Label,
    ModelKind,
    QueueStatus,
    Rater,
)
from annotator.domain.errors import ConflictError, InputError, NotFound, PermissionDenied
from annotator.domain.geometry import ImageGeometry
from annotator.domain.policy import Action, ReaderNames, is_study_reader
from annotator.domain.readers import ReaderKind, ReaderMark, ReaderRef
from annotator.domain.scales import load_scale
from annotator.services.project import policy, reader_names_for
from annotator.storage import audit, catalog, labels, models_repo, people, review
from annotator.storage.database import Database

DECIDED = AdjudicationStatus.DECIDED
REOPENED = AdjudicationStatus.REOPENED


@dataclass(frozen=True)
class QueueItem:
    image_id: int
    reasons: tuple[str, ...]
    grade_distance: int
    mm_distance: float | None
    status: QueueStatus
    adjudication_version: int
    marks: dict[ReaderRef, ReaderMark] = field(default_factory=dict)
    names: ReaderNames = field(default_factory=ReaderNames)  # how the viewer sees the raters' names

    def shown(self, ref: ReaderRef) -> str:
        """A reader as the viewer may see it: ``rater:NAME``, or its alias where names are hidden."""
        return self.names.reader(ref)

    @property
    def sort_key(self) -> tuple[float, float]:
        return (-self.grade_distance, -(self.mm_distance or 0.0))


def required_raters(db: Database) -> list[Rater]:
    """The project's required raters, else every annotator who has labelled something."""
    settings = people.get_settings(db)
    raters = people.list_raters(db)
    if settings.required_raters:
        by_name = {r.name: r for r in raters}
        missing = [n for n in settings.required_raters if n not in by_name]
        if missing:
            raise NotFound(f"required rater {missing[0]!r} does not exist")
        return [by_name[n] for n in settings.required_raters]
    counts = {lab.rater_id for lab in labels.current(db)}
    return [r for r in raters if is_study_reader(r) and r.id in counts]


def _mark(lab: Label) -> ReaderMark:
    return ReaderMark(lab.image_id, lab.x_px, lab.y_px, lab.grade, None, lab.version, lab.created_at.isoformat())


def _rater(name: str) -> ReaderRef:
    return ReaderRef(ReaderKind.RATER, name)


def _max_distance_mm(points: list[tuple[float, float]], geometry: ImageGeometry) -> float | None:
    """The largest distance in mm between any two of the points; None without usable pixel spacing."""
    if len(points) < 2 or not geometry.has_mm:
        return None
    return max(geometry.distance_mm(a, b) for a, b in itertools.combinations(points, 2))


@dataclass(frozen=True)
class _Disagreement:
    reasons: tuple[str, ...]
    grade_distance: int
    mm_distance: float | None


def _disagreement(required: Mapping[ReaderRef, ReaderMark], names: Iterable[str], geometry: ImageGeometry,
                  threshold_mm: float, shown: ReaderNames | None = None) -> _Disagreement:
    """Why the required raters' marks on one slice need a decision (no reasons: they agree); ``shown``:
    how the viewer sees the raters' names."""
    why = []
    if required:  # a slice nobody has started is still to label, not to review
        missing = [n for n in names if not ((m := required.get(_rater(n))) and m.grade is not None
                                            and m.x_px is not None)]
        if missing:
            why.append("missing " + ", ".join((shown or ReaderNames()).name(n) for n in missing))
    grades = [m.grade for m in required.values() if m.grade is not None]
    gd = (max(grades) - min(grades)) if grades else 0
    if gd:
        why.append(f"grades differ by {gd}")
    pts = [(m.x_px, m.y_px) for m in required.values() if m.x_px is not None and m.y_px is not None]
    dist = _max_distance_mm(pts, geometry)  # type: ignore[arg-type]
    if dist is not None and dist > threshold_mm:
        why.append(f"centres {dist:.1f} mm apart")
    return _Disagreement(tuple(why), gd, dist)


def disagreement_queue(db: Database, viewer: Rater, *, include_model: bool = False,
                       status: QueueStatus | str | None = QueueStatus.OPEN,
                       reason: str | None = None) -> list[QueueItem]:
    """Slices needing review, most severe first (grade distance, then mm distance), and decided ones.

    ``status`` keeps the slices in that state (a string is read as a QueueStatus); None keeps all.
    """
    if not policy(db, viewer).may_adjudicate:
        raise PermissionDenied(f"{viewer.name} is an annotator: the review queue is for reviewers and admins")
    wanted = _queue_status(status)
    shown = reader_names_for(db, viewer)
    settings = people.get_settings(db)
    required = [r.name for r in required_raters(db)]
    keys = {_rater(n) for n in required}
    names = {r.id: r.name for r in people.list_raters(db)}
    by_image: dict[int, dict[ReaderRef, ReaderMark]] = {}
    for lab in labels.current(db):  # every reader is shown; only the required ones decide the queue
        by_image.setdefault(lab.image_id, {})[_rater(names[lab.rater_id])] = _mark(lab)
    model = models_repo.active(db) if include_model else None
    preds = {p.image_id: p for p in models_repo.predictions(db, model.id)} if model else {}
    adjs = review.current_all(db)
    items = []
    for im in catalog.images_marked(db):  # a slice without a label or a decision is never queued
        marks = by_image.get(im.id, {})
        req = {k: m for k, m in marks.items() if k in keys}
        d = _disagreement(req, required, im.geometry, settings.disagreement_threshold_mm, shown)
        why, gd = list(d.reasons), d.grade_distance
        grades = [m.grade for m in req.values() if m.grade is not None]
        p = preds.get(im.id)
        if model and p is not None and p.grade is not None and grades and any(g != p.grade for g in grades):
            why.append("model disagrees")
            gd = max(gd, max(abs(g - p.grade) for g in grades))
        if p is not None and model:
            marks = {**marks, ReaderRef(ReaderKind.MODEL, str(model.id)): ReaderMark(im.id, p.x_px, p.y_px, p.grade,
                                                                                     p.probabilities)}
        adj = adjs.get(im.id)
        if not why and adj is None:
            continue  # a decided slice stays listed once its raters agree (to look at, or reopen)
        item = QueueItem(im.id, tuple(why), gd, d.mm_distance, QueueStatus.of(adj), adj.version if adj else 0,
                         marks, shown)
        if wanted is not None and item.status is not wanted:
            continue
        if reason is not None and not any(w.startswith(reason) for w in why):
            continue
        items.append(item)
    items.sort(key=lambda it: it.sort_key)
    return items


def queue_mark(db: Database) -> ChangeMark:
    """Where the project's writes stand: read it before the queue, and a later mark tells whether the
    queue read after it may have changed (:func:`decided_alone`)."""
    return audit.change_mark(db)


def decided_alone(db: Database, mark: ChangeMark, adj: Adjudication) -> ChangeMark | None:
    """The mark after ``adj`` when storing it was the only write since ``mark``: then the queue read after
    ``mark`` with this slice updated (:func:`with_decision`) is the queue now, and nothing needs reading
    again. None when anything else was written meanwhile (a label, another decision, a setting, a model)."""
    now, entries = audit.changes_since(db, mark, limit=2)
    if (now.prediction_id != mark.prediction_id or now.audit_count != mark.audit_count + 1
            or len(entries) != 1):
        return None
    e = entries[0]
    mine = (e.entity == "adjudication" and e.entity_id == str(adj.image_id) and e.rater_id == adj.reviewer_id
            and (e.after or {}).get("version") == adj.version)
    return now if mine else None


def with_decision(item: QueueItem, adj: Adjudication) -> QueueItem:
    """The queue item after decision (or reopening) ``adj`` of its slice: its raters' marks and reasons
    are unchanged, so it keeps its place in the queue."""
    return dataclasses.replace(item, status=QueueStatus.of(adj), adjudication_version=adj.version)


def _queue_status(status: QueueStatus | str | None) -> QueueStatus | None:
    if status is None or isinstance(status, QueueStatus):
        return status
    try:
        return QueueStatus(status)
    except ValueError:
        raise InputError(f"queue status {status!r} must be one of: {', '.join(QueueStatus)}") from None


def queue_counts(items: list[QueueItem]) -> dict[str, int]:
    out: dict[str, int] = {"total": len(items)}
    for it in items:
        for w in it.reasons:
            key = w.split(" ")[0] if not w.startswith("grades") else "grades differ"
            key = {"missing": "missing rater", "centres": "centres apart", "model": "model disagrees"}.get(key, key)
            out[key] = out.get(key, 0) + 1
    return out


def queue_images(db: Database, image_ids: Iterable[int]) -> dict[int, ImageRef]:
    """The catalogue records (patient, slice position, file) of queue items, so a screen can show and load them."""
    return catalog.images_by_id(db, image_ids)


@dataclass
class ReviewService:
    db: Database
    reviewer: Rater
    names: ReaderNames = field(init=False, default_factory=ReaderNames)  # how she sees the raters' names

    def __post_init__(self) -> None:
        policy(self.db, self.reviewer).require(Action.ADJUDICATE)
        self.names = reader_names_for(self.db, self.reviewer)

    def _marks(self, image_id: int) -> dict[ReaderRef, ReaderMark]:
        names = {r.id: r.name for r in people.list_raters(self.db)}
        return {_rater(names[lab.rater_id]): _mark(lab) for lab in labels.current(self.db, image_ids=[image_id])}

    def _record(self, image_id: int, expected_version: int, status: AdjudicationStatus, source: ReaderRef | None,
                x: float | None, y: float | None, grade: int | None, reason: str, key: str | None) -> Adjudication:
        return review.record(self.db, image_id=image_id, reviewer_id=self.reviewer.id,
                             expected_version=expected_version, status=status, source=source, x_px=x, y_px=y,
                             grade=grade, scale_code=people.get_settings(self.db).scale_code, reason=reason.strip(),
                             key=key)

    def _earlier(self, key: str | None) -> Adjudication | None:
        """The decision stored by an earlier try of the action ``key`` (a repeat after NotCommitted)."""
        return review.by_key(self.db, key) if key is not None else None

    def accept(self, image_id: int, reader: ReaderRef | str, expected_version: int, reason: str = "",
               label_version: int | None = None, *, key: str | None = None) -> Adjudication:
        """Adopt one reader's label (point and grade) as the decision.

        ``reader`` is a rater or a model (that model's prediction); text (``rater:NAME``, ``model:ID``,
        or the alias a reviewer sees where names are hidden, from a command line) is resolved with the
        reviewer's ``ReaderNames``; a cross-validation's out-of-fold
        predictions cannot be accepted (InputError). Accepting a model whose
        grade no rater gave overrides every rater, so it needs a reason like an own decision.
        ``label_version`` is the version of the rater's label the reviewer saw: if the rater has changed
        it since, nothing is stored and a ConflictError carries the label as it is now (a screen passes
        it, so a reviewer never adopts a label they have not seen). ``key``: the decision's idempotency key;
        repeated with it, a decision that had been stored is returned (likewise for decide and reopen).
        """
        if (earlier := self._earlier(key)) is not None:
            return earlier
        ref = self.names.resolve(reader) if isinstance(reader, str) else reader
        marks = self._marks(image_id)
        if ref.kind is ReaderKind.MODEL:
            mark = self._model_mark(image_id, int(ref.key))
            rater_grades = {m.grade for m in marks.values() if m.grade is not None}
            if mark is not None and mark.grade not in rater_grades and not reason.strip():
                raise InputError("a reason is required when the decision overrides every reader's grade")
        else:
            mark = marks.get(ref)
            if ref.kind is ReaderKind.RATER and label_version is not None and (mark is None
                                                                              or mark.version != label_version):
                rater = people.rater_by_name(self.db, ref.key)  # NotFound names it
                now = labels.current(self.db, rater_ids=[rater.id], image_ids=[image_id], include_empty=True)
                raise ConflictError(
                    f"{self.names.name(rater.name)} changed their label on slice {image_id} after you saw it "
                    f"(you saw version {label_version}, now version {now[0].version if now else 'none'}); "
                    "look at it again before accepting", now[0] if now else None)
        if mark is None or mark.grade is None:
            raise InputError(f"{self.names.reader(ref)} has no graded label on this slice to accept")
        return self._record(image_id, expected_version, DECIDED, ref, mark.x_px, mark.y_px, mark.grade, reason, key)

    def _model_mark(self, image_id: int, model_id: int) -> ReaderMark | None:
        version = models_repo.get(self.db, model_id)  # NotFound names the id
        if version.kind is not ModelKind.TRAIN:  # a cv model's predictions are its folds' held-out estimates
            raise InputError(f"model {model_id} is a {version.kind} model: its predictions are out-of-fold "
                             "estimates of how a model generalises, not a reader whose label may become the "
                             "decision; accept a model made by `annotator train`")
        preds = models_repo.predictions(self.db, model_id, [image_id])
        if not preds:
            return None
        p = preds[0]
        return ReaderMark(image_id, p.x_px, p.y_px, p.grade, p.probabilities)

    def decide(self, image_id: int, x: float, y: float, grade: int, expected_version: int,
               reason: str = "", *, key: str | None = None) -> Adjudication:
        """Set the reviewer's own point and grade; overriding every reader's grade needs a reason."""
        if (earlier := self._earlier(key)) is not None:
            return earlier
        load_scale(people.get_settings(self.db).scale_code).grade(grade)
        if not catalog.image_by_id(self.db, image_id).geometry.contains(x, y):
            raise InputError(f"point ({x:.1f}, {y:.1f}) lies outside the image")
        grades = {m.grade for m in self._marks(image_id).values() if m.grade is not None}
        if grade not in grades and not reason.strip():
            raise InputError("a reason is required when the decision overrides every reader's grade")
        return self._record(image_id, expected_version, DECIDED, None, x, y, grade, reason, key)

    def reopen(self, image_id: int, reason: str, expected_version: int, *, key: str | None = None) -> Adjudication:
        if (earlier := self._earlier(key)) is not None:
            return earlier
        if not reason.strip():
            raise InputError("a reason is required to reopen a decision")
        current = review.latest(self.db, image_id)
        if current is None or current.status is not DECIDED:
            raise InputError("only a decided slice can be reopened")
        return self._record(image_id, expected_version, REOPENED, current.source, None, None, None, reason, key)

    def history(self, image_id: int) -> list[Adjudication]:
        return review.history(self.db, image_id)


def consensus_marks(db: Database) -> dict[int, ReaderMark]:
    """The consensus label set (rule in the module docstring)."""
    raters = required_raters(db)
    names = {r.id: r.name for r in raters}
    threshold = people.get_settings(db).disagreement_threshold_mm
    adjs = review.current_all(db)
    out: dict[int, ReaderMark] = {}
    by_image: dict[int, list[Label]] = {}
    for lab in labels.current(db, rater_ids=[r.id for r in raters]):
        by_image.setdefault(lab.image_id, []).append(lab)
    for im in catalog.images_marked(db):  # a consensus needs labels or a decision
        adj = adjs.get(im.id)
        if adj is not None:
            if adj.status is DECIDED:
                out[im.id] = ReaderMark(im.id, adj.x_px, adj.y_px, adj.grade, None, adj.version,
                                        adj.created_at.isoformat())
            continue
        labs = by_image.get(im.id, [])
        if not raters or len(labs) != len(raters) or not all(lab.complete for lab in labs):
            continue
        marks = {_rater(names[lab.rater_id]): _mark(lab) for lab in labs}
        if not _disagreement(marks, [], im.geometry, threshold).reasons:  # same grade, close
            xs = [lab.x_px for lab in labs if lab.x_px is not None]
            ys = [lab.y_px for lab in labs if lab.y_px is not None]
            out[im.id] = ReaderMark(im.id, sum(xs) / len(xs), sum(ys) / len(ys), labs[0].grade, None, None,
                                    max(lab.created_at for lab in labs).isoformat())
    return out
