"""Adjudications: a reviewer's decision per slice, insert-only and optimistically versioned.

A decision names the version it was based on; if someone decided in between, the caller gets a
ConflictError carrying the other decision instead of silently overwriting it. The unique constraint
on (image_id, version) makes this hold across processes and on PostgreSQL too.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.domain.connection import new_action_key
from annotator.domain.entities import Adjudication, AdjudicationStatus
from annotator.domain.errors import ConflictError, NotFound
from annotator.domain.readers import ReaderRef
from annotator.storage import audit, convert
from annotator.storage.database import Database
from annotator.storage.tables import AdjudicationRow, ImageRow


def _latest(s: Session, image_id: int) -> AdjudicationRow | None:
    return s.scalar(select(AdjudicationRow).where(AdjudicationRow.image_id == image_id)
                    .order_by(AdjudicationRow.version.desc()).limit(1))


def _state(row: AdjudicationRow | None) -> dict[str, object] | None:
    if row is None:
        return None
    return {"version": row.version, "status": row.status, "source": row.source, "x_px": row.x_px,
            "y_px": row.y_px, "grade": row.grade, "reason": row.reason}


def record(db: Database, *, image_id: int, reviewer_id: int, expected_version: int, status: AdjudicationStatus,
           source: ReaderRef | None, x_px: float | None, y_px: float | None, grade: int | None, scale_code: str,
           reason: str, key: str | None = None) -> Adjudication:
    """Store decision ``expected_version + 1``; ConflictError if the slice's latest version differs.

    ``source`` is the reader whose label was accepted, None for the reviewer's own point. ``key``: the
    decision's idempotency key (None: a fresh one); a decision repeated with it returns the first one.
    """
    key = key or new_action_key()

    def work(s: Session) -> Adjudication:
        if s.get(ImageRow, image_id) is None:
            raise NotFound(f"image id {image_id} does not exist")
        prev = _latest(s, image_id)
        have = prev.version if prev is not None else 0
        if have != expected_version:
            raise ConflictError(f"slice {image_id} was decided by someone else meanwhile (version {have}); "
                                "their decision is shown", convert.adjudication(prev) if prev else None)
        row = AdjudicationRow(image_id=image_id, reviewer_id=reviewer_id, version=have + 1, status=status.value,
                              source=convert.adjudication_source(source), x_px=x_px, y_px=y_px, grade=grade,
                              scale_code=scale_code, reason=reason, action_key=key)
        s.add(row)
        s.flush()
        audit.record(s, rater_id=reviewer_id, action=f"adjudication.{status.value}", entity="adjudication",
                     entity_id=image_id, before=_state(prev), after=_state(row))
        return convert.adjudication(row)

    def replay(s: Session) -> Adjudication | None:
        row = s.scalar(select(AdjudicationRow).where(AdjudicationRow.action_key == key))
        return convert.adjudication(row) if row is not None else None

    try:
        return db.write(work, replay=replay, key=key)
    except IntegrityError as exc:  # a concurrent writer took the same version number first
        current = latest(db, image_id)
        raise ConflictError(f"slice {image_id} was decided by someone else at the same moment; "
                            "their decision is shown", current) from exc


def by_key(db: Database, key: str) -> Adjudication | None:
    """The decision an earlier commit of the action ``key`` stored, if any."""
    with db.read() as s:
        row = s.scalar(select(AdjudicationRow).where(AdjudicationRow.action_key == key))
        return convert.adjudication(row) if row is not None else None


def latest(db: Database, image_id: int) -> Adjudication | None:
    with db.read() as s:
        row = _latest(s, image_id)
        return convert.adjudication(row) if row is not None else None


def current_all(db: Database) -> dict[int, Adjudication]:
    """image_id -> its newest adjudication (decided or reopened)."""
    with db.read() as s:
        sub = (select(AdjudicationRow.image_id, func.max(AdjudicationRow.version).label("v"))
               .group_by(AdjudicationRow.image_id).subquery())
        q = select(AdjudicationRow).join(sub, (AdjudicationRow.image_id == sub.c.image_id)
                                         & (AdjudicationRow.version == sub.c.v))
        return {r.image_id: convert.adjudication(r) for r in s.scalars(q)}


def history(db: Database, image_id: int) -> list[Adjudication]:
    with db.read() as s:
        q = select(AdjudicationRow).where(AdjudicationRow.image_id == image_id).order_by(AdjudicationRow.version)
        return [convert.adjudication(r) for r in s.scalars(q)]
