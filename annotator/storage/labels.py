"""Rater labels, insert-only: each action adds a version holding the full state; the newest is current."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.domain.connection import new_action_key
from annotator.domain.entities import Label, LabelAction
from annotator.domain.errors import AnnotatorError, ConflictError, InputError, NotFound
from annotator.storage import audit, convert
from annotator.storage.database import Database
from annotator.storage.tables import AnnotationRow, ImageRow, RaterRow


def _latest_row(s: Session, image_id: int, rater_id: int) -> AnnotationRow | None:
    return s.scalar(select(AnnotationRow)
                    .where(AnnotationRow.image_id == image_id, AnnotationRow.rater_id == rater_id)
                    .order_by(AnnotationRow.version.desc()).limit(1))


def _append(s: Session, *, image_id: int, rater_id: int, version: int, x_px: float | None, y_px: float | None,
            grade: int | None, scale_code: str, action: LabelAction, before: AnnotationRow | Label | None,
            actor_id: int | None, source: str | None = None, created_at: datetime | None = None,
            key: str | None = None) -> AnnotationRow:
    """THE way a label version is written: the row and its audit entry, in the caller's transaction."""
    row = AnnotationRow(image_id=image_id, rater_id=rater_id, version=version, x_px=x_px, y_px=y_px, grade=grade,
                        scale_code=scale_code, action=LabelAction(action).value, action_key=key)
    if created_at is not None:
        row.created_at = created_at
    s.add(row)
    s.flush()  # the unique (image, rater, version) key refuses a version someone else took
    after = convert.label_state(row)
    if key is not None and after is not None:
        after["key"] = key
    audit.record(s, rater_id=actor_id, action=f"label.{row.action}", entity="annotation",
                 entity_id=f"{image_id}:{rater_id}", before=convert.label_state(before),
                 after={**(after or {}), "source": source} if source is not None else after)
    return row


def _by_key(s: Session, key: str) -> Label | None:
    """The version an earlier commit of the action ``key`` stored (None: that action stored none)."""
    row = s.scalar(select(AnnotationRow).where(AnnotationRow.action_key == key))
    return convert.label(row) if row is not None else None


def by_key(db: Database, key: str) -> Label | None:
    with db.read() as s:
        return _by_key(s, key)


def _refused(db: Database, image_id: int, rater_id: int) -> AnnotatorError:
    """Why a version could not be inserted, read after the failed transaction (the rare path)."""
    with db.read() as s:
        if s.get(ImageRow, image_id) is None:
            return NotFound(f"image id {image_id} does not exist")
        if s.get(RaterRow, rater_id) is None:
            return NotFound(f"rater id {rater_id} does not exist")
        now = _latest_row(s, image_id, rater_id)
        return ConflictError(f"label on image {image_id} was changed elsewhere (now version "
                             f"{now.version if now else 0}); reload and retry", convert.label(now) if now else None)


def add_version(db: Database, *, image_id: int, rater_id: int, x_px: float | None, y_px: float | None,
                grade: int | None, scale_code: str, action: LabelAction | str,
                expected_version: int | None = None, key: str | None = None) -> Label:
    """Commit one new version (and its audit entry) in one transaction, after the newest one stored.

    ``expected_version`` (the version the caller last saw, 0 for none) turns a concurrent edit by the
    same rater elsewhere into a ConflictError instead of a silent overwrite. ``key``: the action's
    idempotency key (None: a fresh one, so a commit whose outcome the connection lost is still retried
    safely); an action repeated with it returns the version its first commit stored.
    """
    action = LabelAction(action)
    key = key or new_action_key()

    def work(s: Session) -> Label:
        prev = _latest_row(s, image_id, rater_id)
        prev_version = prev.version if prev is not None else 0
        if expected_version is not None and expected_version != prev_version:
            raise ConflictError(f"label on image {image_id} changed elsewhere (version {prev_version}, "
                                f"expected {expected_version})", convert.label(prev) if prev else None)
        return convert.label(_append(s, image_id=image_id, rater_id=rater_id, version=prev_version + 1, x_px=x_px,
                                     y_px=y_px, grade=grade, scale_code=scale_code, action=action, before=prev,
                                     actor_id=rater_id, key=key))

    try:
        return db.write(work, replay=lambda s: _by_key(s, key), key=key)
    except IntegrityError as exc:  # a missing image or rater, or another writer took this version first
        raise _refused(db, image_id, rater_id) from exc


def add_version_after(db: Database, shown: Label | None, *, image_id: int, rater_id: int, x_px: float | None,
                      y_px: float | None, grade: int | None, scale_code: str, action: LabelAction,
                      key: str | None = None) -> Label:
    """Commit the version that follows ``shown``, the newest version the caller holds (None: it holds none).

    The write path of an interactive action: one write transaction that reads nothing when ``shown`` is
    given (the unique version key refuses a version someone else took, which becomes a ConflictError);
    with ``shown`` None the newest stored version is read inside the same transaction, and a non-empty
    one (a label the caller never saw) is a ConflictError too. ``key``: as for :func:`add_version`.
    """
    action = LabelAction(action)
    key = key or new_action_key()
    if shown is not None and (shown.image_id, shown.rater_id) != (image_id, rater_id):
        raise InputError(f"label version {shown.version} is rater {shown.rater_id}'s on image {shown.image_id}, "
                         f"not rater {rater_id}'s on image {image_id}")

    def work(s: Session) -> Label:
        before: AnnotationRow | Label | None = shown
        if shown is None:
            before = _latest_row(s, image_id, rater_id)
            if before is not None and not (stored := convert.label(before)).empty:
                raise ConflictError(f"image {image_id} was labelled elsewhere meanwhile (version {before.version}); "
                                    "reload and retry", stored)
        version = before.version + 1 if before is not None else 1
        return convert.label(_append(s, image_id=image_id, rater_id=rater_id, version=version, x_px=x_px, y_px=y_px,
                                     grade=grade, scale_code=scale_code, action=action, before=before,
                                     actor_id=rater_id, key=key))

    try:
        return db.write(work, replay=lambda s: _by_key(s, key), key=key)
    except IntegrityError as exc:
        raise _refused(db, image_id, rater_id) from exc


LabelItem = tuple[int, int, float | None, float | None, int | None]


def add_versions_bulk(db: Database, items: list[LabelItem], *, scale_code: str, action: LabelAction | str) -> int:
    """Add one version per (image_id, rater_id, x, y, grade) in one transaction (imports, simulations)."""
    action = LabelAction(action)

    def work(s: Session) -> int:
        for image_id, rater_id, x, y, grade in items:
            prev = _latest_row(s, image_id, rater_id)
            _append(s, image_id=image_id, rater_id=rater_id, version=(prev.version if prev else 0) + 1, x_px=x,
                    y_px=y, grade=grade, scale_code=scale_code, action=action, before=prev, actor_id=rater_id)
        return len(items)

    return db.write(work)


def current(db: Database, *, rater_ids: Collection[int] | None = None,
            image_ids: Collection[int] | None = None, include_empty: bool = False) -> list[Label]:
    """The newest version of each (image, rater) label, optionally restricted to some raters/images."""
    latest = select(AnnotationRow.image_id, AnnotationRow.rater_id,
                    func.max(AnnotationRow.version).label("v")).group_by(AnnotationRow.image_id,
                                                                         AnnotationRow.rater_id)
    if rater_ids is not None:
        latest = latest.where(AnnotationRow.rater_id.in_(list(rater_ids)))
    if image_ids is not None:
        latest = latest.where(AnnotationRow.image_id.in_(list(image_ids)))
    sub = latest.subquery()
    q = (select(AnnotationRow).join(sub, (AnnotationRow.image_id == sub.c.image_id)
                                    & (AnnotationRow.rater_id == sub.c.rater_id)
                                    & (AnnotationRow.version == sub.c.v))
         .order_by(AnnotationRow.image_id, AnnotationRow.rater_id))
    with db.read() as s:
        out = [convert.label(r) for r in s.scalars(q)]
    return out if include_empty else [lab for lab in out if not lab.empty]


def history(db: Database, image_id: int, rater_id: int) -> list[Label]:
    with db.read() as s:
        q = (select(AnnotationRow).where(AnnotationRow.image_id == image_id, AnnotationRow.rater_id == rater_id)
             .order_by(AnnotationRow.version))
        return [convert.label(r) for r in s.scalars(q)]


def histories(db: Database, image_ids: Collection[int], rater_id: int) -> dict[int, list[Label]]:
    """Every given slice's history of one rater, oldest first, in one query (slices without one: [])."""
    ids = list(image_ids)
    out: dict[int, list[Label]] = {i: [] for i in ids}
    if not ids:
        return out
    with db.read() as s:
        q = (select(AnnotationRow).where(AnnotationRow.image_id.in_(ids), AnnotationRow.rater_id == rater_id)
             .order_by(AnnotationRow.image_id, AnnotationRow.version))
        for r in s.scalars(q):
            out[r.image_id].append(convert.label(r))
    return out


def count_versions(db: Database) -> int:
    with db.read() as s:
        return s.scalar(select(func.count(AnnotationRow.id))) or 0


def import_versions(db: Database, items: list[dict[str, object]], *, actor_id: int | None, source: str) -> int:
    """Add imported labels in ONE transaction (all or nothing).

    Each item: image_id, rater_id, x_px, y_px, grade, scale_code, and optionally version and
    created_at from the file, kept so a label set survives an export/import round trip; a version never
    goes below the newest one already stored for that (image, rater).
    """

    def work(s: Session) -> int:
        for it in items:
            image_id, rater_id = int(it["image_id"]), int(it["rater_id"])  # type: ignore[call-overload]
            prev = _latest_row(s, image_id, rater_id)
            version = max((prev.version if prev else 0) + 1, int(it.get("version") or 1))  # type: ignore[call-overload]
            _append(s, image_id=image_id, rater_id=rater_id, version=version, x_px=it["x_px"],  # type: ignore[arg-type]
                    y_px=it["y_px"], grade=it["grade"], scale_code=str(it["scale_code"]),  # type: ignore[arg-type]
                    action=LabelAction.IMPORT, before=prev, actor_id=actor_id, source=source,
                    created_at=it.get("created_at"))  # type: ignore[arg-type]
        return len(items)

    return db.write(work)
