"""The vertebral level of each slice (``images.level``): set by the import rule or by hand, audited."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from annotator.domain.errors import NotFound
from annotator.domain.studies import VertebralLevel
from annotator.storage import audit
from annotator.storage.database import Database
from annotator.storage.tables import ImageRow, SeriesRow

_CHUNK = 5000


def series_slices(db: Database, series_uid: str) -> list[tuple[int, VertebralLevel | None]]:
    """(image id, level) of every slice of a series, in the worklist's slice order."""
    with db.read() as s:
        sid = s.scalar(select(SeriesRow.id).where(SeriesRow.series_instance_uid == series_uid))
        if sid is None:
            raise NotFound(f"no imported series has SeriesInstanceUID {series_uid}")
        q = select(ImageRow.id, ImageRow.level).where(ImageRow.series_id == sid).order_by(ImageRow.slice_index)
        return [(int(i), VertebralLevel(lv) if lv else None) for i, lv in s.execute(q)]


def set_level(db: Database, image_ids: Sequence[int], level: VertebralLevel | None, *, actor_id: int | None,
              source: str) -> int:
    """Set (or clear) the level of some slices in one transaction, with one audit entry naming each
    slice's level before; the number of slices whose level changed."""

    def work(s: Session) -> int:
        before: dict[str, str | None] = {}
        for i in range(0, len(image_ids), _CHUNK):
            chunk = list(image_ids[i:i + _CHUNK])
            before.update({str(iid): lv for iid, lv in s.execute(
                select(ImageRow.id, ImageRow.level).where(ImageRow.id.in_(chunk)))})
        missing = [str(i) for i in image_ids if str(i) not in before]
        if missing:
            raise NotFound(f"image ids {', '.join(missing[:5])} do not exist")
        value = level.value if level else None
        changed = [int(k) for k, v in before.items() if v != value]
        for i in range(0, len(changed), _CHUNK):
            s.execute(update(ImageRow).where(ImageRow.id.in_(changed[i:i + _CHUNK])).values(level=value))
        if changed:
            audit.record(s, rater_id=actor_id, action="image.level", entity="images", entity_id=source[:120],
                         before={"levels": {str(k): before[str(k)] for k in changed}}, after={"level": value})
        return len(changed)

    return db.write(work)


def apply_rule(db: Database, sop_uids: Sequence[str], rule: Callable[[str], VertebralLevel | None]) -> int:
    """Set the level of the given (newly imported) slices from their SeriesDescription by ``rule``; slices
    it finds no level for are left as they are. The number of slices given a level."""
    by_level: dict[VertebralLevel, list[int]] = {}
    with db.read() as s:
        for i in range(0, len(sop_uids), _CHUNK):
            chunk = list(sop_uids[i:i + _CHUNK])
            q = (select(ImageRow.id, SeriesRow.description).join(SeriesRow, ImageRow.series_id == SeriesRow.id)
                 .where(ImageRow.sop_instance_uid.in_(chunk), ImageRow.level.is_(None)))
            for iid, desc in s.execute(q):
                found = rule(desc or "")
                if found is not None:
                    by_level.setdefault(found, []).append(int(iid))
    return sum(set_level(db, ids, lv, actor_id=None, source="import rule: SeriesDescription")
               for lv, ids in by_level.items())


def counts(db: Database) -> dict[str, int]:
    """Slices per level (``none`` for slices without one)."""
    with db.read() as s:
        return {lv or "none": int(n) for lv, n in s.execute(select(ImageRow.level, func.count(ImageRow.id))
                                                            .group_by(ImageRow.level).order_by(ImageRow.level))}
