"""The append-only audit log: who did what, when, with the state before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotator.domain.entities import AuditEntry, ChangeMark
from annotator.storage import convert
from annotator.storage.database import Database
from annotator.storage.tables import AuditRow, PredictionRow


def record(session: Session, *, rater_id: int | None, action: str, entity: str, entity_id: str | int,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Add one audit entry inside the caller's transaction, so it commits with the change it describes."""
    session.add(AuditRow(rater_id=rater_id, action=action, entity=entity, entity_id=str(entity_id),
                         before=before, after=after))


def entries(db: Database, *, entity: str | None = None, entity_id: str | None = None,
            limit: int | None = None) -> list[AuditEntry]:
    with db.read() as s:
        q = select(AuditRow).order_by(AuditRow.id)
        if entity is not None:
            q = q.where(AuditRow.entity == entity)
        if entity_id is not None:
            q = q.where(AuditRow.entity_id == entity_id)
        if limit is not None:
            q = q.limit(limit)
        return [convert.audit(r) for r in s.scalars(q)]


def _mark(s: Session) -> ChangeMark:
    newest, count = s.execute(select(func.max(AuditRow.id), func.count(AuditRow.id))).one()
    prediction = s.scalar(select(func.max(PredictionRow.id)))
    return ChangeMark(int(newest or 0), int(count or 0), int(prediction or 0))


def change_mark(db: Database) -> ChangeMark:
    """Where the writes stand now (three aggregates, no row read)."""
    with db.read() as s:
        return _mark(s)


def changes_since(db: Database, mark: ChangeMark, *, limit: int = 8) -> tuple[ChangeMark, list[AuditEntry]]:
    """The mark now and (up to ``limit`` of) the audit entries newer than ``mark``, in one transaction."""
    with db.read() as s:
        rows = s.scalars(select(AuditRow).where(AuditRow.id > mark.audit_id).order_by(AuditRow.id).limit(limit))
        return _mark(s), [convert.audit(r) for r in rows]
