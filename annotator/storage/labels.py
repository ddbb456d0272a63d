"""Rater labels, insert-only: each action adds a version holding the full state; the newest is current."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.domain.entities import Label
from annotator.domain.errors import ConflictError, NotFound
from annotator.storage import audit, convert
from annotator.storage.database import Database
from annotator.storage.tables import AnnotationRow, ImageRow, RaterRow


def _latest_row(s: Session, image_id: int, rater_id: int) -> AnnotationRow | None:
    return s.scalar(select(AnnotationRow)
                    .where(AnnotationRow.image_id == image_id, AnnotationRow.rater_id == rater_id)
                    .order_by(AnnotationRow.version.desc()).limit(1))


def add_version(db: Database, *, image_id: int, rater_id: int, x_px: float | None, y_px: float | None,
                grade: int | None, scale_code: str, action: str,
                expected_version: int | None = None) -> Label:
    """Commit one new version (and its audit entry) in one transaction.

    ``expected_version`` (the version the caller last saw, 0 for none) turns a concurrent edit by the
    same rater elsewhere into a ConflictError instead of a silent overwrite.
    """

    def work(s: Session) -> Label:
        if s.get(ImageRow, image_id) is None:
            raise NotFound(f"image id {image_id} does not exist")
        if s.get(RaterRow, rater_id) is None:
            raise NotFound(f"rater id {rater_id} does not exist")
        prev = _latest_row(s, image_id, rater_id)
        prev_version = prev.version if prev is not None else 0
        if expected_version is not None and expected_version != prev_version:
            raise ConflictError(f"label on image {image_id} changed elsewhere (version {prev_version}, "
                                f"expected {expected_version})", convert.label(prev) if prev else None)
        row = AnnotationRow(image_id=image_id, rater_id=rater_id, version=prev_version + 1, x_px=x_px,
                            y_px=y_px, grade=grade, scale_code=scale_code, action=action)
        s.add(row)
        s.flush()
        audit.record(s, rater_id=rater_id, action=f"label.{action}", entity="annotation",
                     entity_id=f"{image_id}:{rater_id}", before=convert.label_state(prev),
                     after=convert.label_state(row))
        return convert.label(row)

    try:
        return db.write(work)
    except IntegrityError as exc:  # another writer took this version number first (PostgreSQL)
        raise ConflictError(f"label on image {image_id} was changed concurrently; reload and retry") from exc


def add_versions_bulk(db: Database, items: list[tuple[int, int, float | None, float | None, int | None]],
                      *, scale_code: str, action: str) -> int:
    """Add one version per (image_id, rater_id, x, y, grade) in one transaction (imports, simulations)."""

    def work(s: Session) -> int:
        for image_id, rater_id, x, y, grade in items:
            prev = _latest_row(s, image_id, rater_id)
            row = AnnotationRow(image_id=image_id, rater_id=rater_id, version=(prev.version if prev else 0) + 1,
                                x_px=x, y_px=y, grade=grade, scale_code=scale_code, action=action)
            s.add(row)
            s.flush()
            audit.record(s, rater_id=rater_id, action=f"label.{action}", entity="annotation",
                         entity_id=f"{image_id}:{rater_id}", before=convert.label_state(prev),
                         after=convert.label_state(row))
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
            row = AnnotationRow(image_id=image_id, rater_id=rater_id, version=version, x_px=it["x_px"],
                                y_px=it["y_px"], grade=it["grade"], scale_code=str(it["scale_code"]),
                                action="import")
            if it.get("created_at") is not None:
                row.created_at = it["created_at"]  # type: ignore[assignment]
            s.add(row)
            s.flush()
            audit.record(s, rater_id=actor_id, action="label.import", entity="annotation",
                         entity_id=f"{image_id}:{rater_id}", before=convert.label_state(prev),
                         after={**(convert.label_state(row) or {}), "source": source})
        return len(items)

    return db.write(work)
