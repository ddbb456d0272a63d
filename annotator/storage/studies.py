"""Reader studies: the stored definition, resolved slices, readers, per-reader plans and reads.

A study is written once, in one transaction, and never recomputed: new files arriving later change
nothing. Reads are insert-only, one per plan item; a reader always answers her current item, so the
items she has answered are a prefix of her sequence and the next one is found by one indexed count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator.domain.connection import new_action_key
from annotator.domain.errors import ConflictError, InputError, NotFound
from annotator.domain.studies import (
    Answer,
    CannotGrade,
    PlanItem,
    Read,
    ReadKind,
    ReferenceMark,
    SelectionRule,
    StudyDefinition,
    StudySummary,
    orientation_of,
)
from annotator.storage import audit
from annotator.storage.convert import aware
from annotator.storage.database import Database
from annotator.storage.tables import (
    Base,
    ImageRow,
    PatientRow,
    PlanItemRow,
    RaterRow,
    ReaderStudyReaderRow,
    ReaderStudyRow,
    ReaderStudySliceRow,
    ReadRow,
    SeriesRow,
    StudyRow,
)

_IN_LIMIT = 5000  # above this many series ids, filter in Python rather than with a long IN list


def image_ids_for_sops(db: Database, sop_uids: Sequence[str]) -> dict[str, int]:
    """SOPInstanceUID -> image id for those catalogued (the others are absent)."""
    out: dict[str, int] = {}
    with db.read() as s:
        uids = list(dict.fromkeys(sop_uids))
        for i in range(0, len(uids), _IN_LIMIT):
            chunk = uids[i:i + _IN_LIMIT]
            out.update({sop: int(iid) for sop, iid in s.execute(
                select(ImageRow.sop_instance_uid, ImageRow.id).where(ImageRow.sop_instance_uid.in_(chunk)))})
    return out


def select_image_ids(db: Database, rule: SelectionRule) -> list[int]:
    """Image ids the rule selects, in reading order (patient, study, series, slice). Description and
    modality filter series first; the level filters in SQL (indexed); orientation is computed per slice."""
    if rule.sop_uids is not None:
        raise InputError("an explicit SOP list is resolved with image_ids_for_sops")
    rx = rule.description_re
    with db.read() as s:
        series = s.execute(select(SeriesRow.id, SeriesRow.description, SeriesRow.modality)).all()
        keep = {int(sid) for sid, desc, mod in series
                if (rx is None or rx.search(desc or "")) and
                (rule.modality is None or (mod or "").strip().upper() == rule.modality.strip().upper())}
        if not keep:
            return []
        q = (select(ImageRow.id, ImageRow.series_id, ImageRow.image_orientation)
             .join(SeriesRow, ImageRow.series_id == SeriesRow.id)
             .join(StudyRow, SeriesRow.study_id == StudyRow.id)
             .join(PatientRow, StudyRow.patient_id == PatientRow.id)
             .order_by(PatientRow.patient_key, StudyRow.study_instance_uid, SeriesRow.series_number, SeriesRow.id,
                       ImageRow.slice_index))
        filter_in_python = len(keep) > _IN_LIMIT and len(keep) < len(series)
        if len(keep) < len(series) and not filter_in_python:
            q = q.where(ImageRow.series_id.in_(sorted(keep)))
        if rule.level is not None:
            q = q.where(ImageRow.level == rule.level.value)
        out = []
        for iid, sid, iop in s.execute(q):
            if filter_in_python and sid not in keep:
                continue
            if rule.orientation is not None and orientation_of(iop, rule.tolerance_deg) is not rule.orientation:
                continue
            out.append(int(iid))
        return out


def _table(cls: type[Base]) -> Table:
    table = cls.__table__
    assert isinstance(table, Table)
    return table


def create(db: Database, definition: StudyDefinition, *, scale_code: str, actor_id: int | None,
           slices: Sequence[int], calibration: Sequence[ReferenceMark], reader_ids: dict[str, int],
           plans: dict[str, list[PlanItem]],
           reads: dict[str, list[tuple[int, Answer, datetime | None]]] | None = None) -> StudySummary:
    """Store a study, its slices, readers and plans in ONE transaction (all or nothing); ``reads``
    (reader -> (seq, answer, when)) brings the reads of an imported study along."""

    def work(s: Session) -> StudySummary:
        if s.scalar(select(ReaderStudyRow.id).where(ReaderStudyRow.name == definition.name)) is not None:
            raise InputError(f"a reader study named {definition.name!r} already exists")
        row = ReaderStudyRow(name=definition.name, definition=definition.to_json(), scale_code=scale_code,
                             created_by=actor_id)
        s.add(row)
        s.flush()
        slice_rows: list[dict[str, Any]] = [
            dict(study_id=row.id, image_id=m.image_id, position=i, calibration=True, ref_x_px=m.x_px,
                 ref_y_px=m.y_px, ref_grade=m.grade) for i, m in enumerate(calibration)]
        slice_rows += [dict(study_id=row.id, image_id=iid, position=i, calibration=False, ref_x_px=None,
                            ref_y_px=None, ref_grade=None) for i, iid in enumerate(slices)]
        conn = s.connection()  # Core inserts: tens of thousands of rows without the ORM's per-row work
        if slice_rows:
            conn.execute(insert(_table(ReaderStudySliceRow)), slice_rows)
        conn.execute(insert(_table(ReaderStudyReaderRow)),
                     [dict(study_id=row.id, rater_id=rid) for rid in reader_ids.values()])
        plan_rows = [dict(study_id=row.id, rater_id=reader_ids[name], seq=it.seq, image_id=it.image_id,
                          kind=it.kind.value) for name, items in plans.items() for it in items]
        if plan_rows:
            conn.execute(insert(_table(PlanItemRow)), plan_rows)
        if reads:
            _insert_reads(s, row.id, reader_ids, reads, scale_code)
        audit.record(s, rater_id=actor_id, action="study.create", entity="reader_study", entity_id=row.id,
                     after={"name": definition.name, "slices": len(slices), "calibration": len(calibration),
                            "readers": list(reader_ids), "plan_items": len(plan_rows)})
        return StudySummary(row.id, definition.name, definition, len(slices), len(calibration), row.created_at)

    return db.write(work)


def _insert_reads(s: Session, study_id: int, reader_ids: dict[str, int],
                  reads: dict[str, list[tuple[int, Answer, datetime | None]]], scale_code: str) -> None:
    items = {(int(r), int(q)): (int(pid), int(iid)) for pid, r, q, iid in s.execute(
        select(PlanItemRow.id, PlanItemRow.rater_id, PlanItemRow.seq, PlanItemRow.image_id)
        .where(PlanItemRow.study_id == study_id))}
    rows = []
    for name, answers in reads.items():
        rid = reader_ids[name]
        for seq, a, when in answers:
            pid, iid = items[(rid, seq)]
            rows.append(dict(plan_item_id=pid, study_id=study_id, rater_id=rid, image_id=iid, x_px=a.x_px,
                             y_px=a.y_px, grade=a.grade, cannot_grade=a.cannot_grade.value if a.cannot_grade else None,
                             seconds=a.seconds, comment=a.comment, scale_code=scale_code,
                             created_at=when or datetime.now(UTC)))
    if rows:
        s.connection().execute(insert(_table(ReadRow)), rows)


def _summary(s: Session, row: ReaderStudyRow) -> StudySummary:
    counts = {bool(cal): int(n) for cal, n in s.execute(select(ReaderStudySliceRow.calibration, func.count())
                                                        .where(ReaderStudySliceRow.study_id == row.id)
                                                        .group_by(ReaderStudySliceRow.calibration))}
    return StudySummary(row.id, row.name, StudyDefinition.from_json(row.definition), int(counts.get(False, 0)),
                        int(counts.get(True, 0)), aware(row.created_at))


def by_name(db: Database, name: str) -> StudySummary:
    with db.read() as s:
        row = s.scalar(select(ReaderStudyRow).where(ReaderStudyRow.name == name))
        if row is None:
            known = ", ".join(s.scalars(select(ReaderStudyRow.name).order_by(ReaderStudyRow.name))) or "none"
            raise NotFound(f"no reader study named {name!r} (studies: {known})")
        return _summary(s, row)


def list_all(db: Database) -> list[StudySummary]:
    with db.read() as s:
        return [_summary(s, r) for r in s.scalars(select(ReaderStudyRow).order_by(ReaderStudyRow.id))]


def studies_of_reader(db: Database, rater_id: int) -> set[int]:
    with db.read() as s:
        return {int(i) for i in s.scalars(select(ReaderStudyReaderRow.study_id)
                                           .where(ReaderStudyReaderRow.rater_id == rater_id))}


def reader_names(db: Database, study_id: int) -> dict[int, str]:
    """rater id -> name of the study's readers, in the order they were named."""
    with db.read() as s:
        q = (select(RaterRow.id, RaterRow.name).join(ReaderStudyReaderRow, ReaderStudyReaderRow.rater_id == RaterRow.id)
             .where(ReaderStudyReaderRow.study_id == study_id).order_by(ReaderStudyReaderRow.id))
        return {int(i): n for i, n in s.execute(q)}


def slices(db: Database, study_id: int, *, calibration: bool) -> list[tuple[int, str]]:
    """(image id, SOPInstanceUID) of the study's slices (or its calibration slices) in their stored order."""
    with db.read() as s:
        return [(int(i), sop) for i, sop in s.execute(
            select(ReaderStudySliceRow.image_id, ImageRow.sop_instance_uid)
            .join(ImageRow, ImageRow.id == ReaderStudySliceRow.image_id)
            .where(ReaderStudySliceRow.study_id == study_id, ReaderStudySliceRow.calibration.is_(calibration))
            .order_by(ReaderStudySliceRow.position))]


def reference_marks(db: Database, study_id: int) -> dict[int, ReferenceMark]:
    with db.read() as s:
        q = select(ReaderStudySliceRow).where(ReaderStudySliceRow.study_id == study_id,
                                              ReaderStudySliceRow.calibration.is_(True))
        return {r.image_id: ReferenceMark(r.image_id, r.ref_x_px, r.ref_y_px, r.ref_grade) for r in s.scalars(q)}


def plan(db: Database, study_id: int, rater_id: int) -> list[PlanItem]:
    with db.read() as s:
        q = (select(PlanItemRow.seq, PlanItemRow.image_id, PlanItemRow.kind)
             .where(PlanItemRow.study_id == study_id, PlanItemRow.rater_id == rater_id).order_by(PlanItemRow.seq))
        return [PlanItem(int(seq), int(iid), ReadKind(kind)) for seq, iid, kind in s.execute(q)]


def _done(s: Session, study_id: int, rater_id: int) -> int:
    return s.scalar(select(func.count(ReadRow.id)).where(ReadRow.study_id == study_id,
                                                         ReadRow.rater_id == rater_id)) or 0


def _item(s: Session, study_id: int, rater_id: int, seq: int) -> tuple[PlanItemRow, str] | None:
    hit = s.execute(select(PlanItemRow, ImageRow.sop_instance_uid).join(ImageRow, ImageRow.id == PlanItemRow.image_id)
                    .where(PlanItemRow.study_id == study_id, PlanItemRow.rater_id == rater_id,
                           PlanItemRow.seq == seq)).first()
    return None if hit is None else (hit[0], hit[1])


def current_item(db: Database, study_id: int, rater_id: int) -> tuple[PlanItem, str, int] | None:
    """(the reader's current plan item, its SOPInstanceUID, her plan's length); None when she is done."""
    with db.read() as s:
        total = s.scalar(select(func.count(PlanItemRow.id)).where(PlanItemRow.study_id == study_id,
                                                                  PlanItemRow.rater_id == rater_id)) or 0
        hit = _item(s, study_id, rater_id, _done(s, study_id, rater_id) + 1)
        if hit is None:
            return None
        row, sop = hit
        return PlanItem(row.seq, row.image_id, ReadKind(row.kind)), sop, int(total)


def plan_length(db: Database, study_id: int, rater_id: int) -> int:
    with db.read() as s:
        return s.scalar(select(func.count(PlanItemRow.id)).where(PlanItemRow.study_id == study_id,
                                                                 PlanItemRow.rater_id == rater_id)) or 0


def _read(row: ReadRow, seq: int, kind: str) -> Read:
    return Read(id=row.id, study_id=row.study_id, rater_id=row.rater_id, image_id=row.image_id, seq=seq,
                kind=ReadKind(kind), x_px=row.x_px, y_px=row.y_px, grade=row.grade,
                cannot_grade=CannotGrade(row.cannot_grade) if row.cannot_grade else None, seconds=row.seconds,
                comment=row.comment or "", scale_code=row.scale_code, created_at=aware(row.created_at))


def record_read(db: Database, study_id: int, rater_id: int, sop_uid: str, answer: Answer, *,
                scale_code: str, key: str | None = None) -> Read:
    """Store the answer to the reader's CURRENT item, which must show ``sop_uid``: one transaction, one
    read and its audit entry. A second answer to the same item (another window) is a ConflictError.
    ``key``: the answer's idempotency key (None: a fresh one); an answer repeated with it returns the
    read its first commit stored."""
    key = key or new_action_key()

    def work(s: Session) -> Read:
        hit = _item(s, study_id, rater_id, _done(s, study_id, rater_id) + 1)
        if hit is None:
            raise InputError("every slice of this study is read already: nothing to answer")
        item, current_sop = hit
        if current_sop != sop_uid:
            raise InputError(f"SOPInstanceUID {sop_uid} is not your current slice (item {item.seq} is "
                             f"{current_sop}): answer the slice `read next` shows")
        row = ReadRow(plan_item_id=item.id, study_id=study_id, rater_id=rater_id, image_id=item.image_id,
                      x_px=answer.x_px, y_px=answer.y_px, grade=answer.grade,
                      cannot_grade=answer.cannot_grade.value if answer.cannot_grade else None,
                      seconds=answer.seconds, comment=answer.comment, scale_code=scale_code, action_key=key)
        s.add(row)
        s.flush()
        audit.record(s, rater_id=rater_id, action="read.answer", entity="read", entity_id=row.id,
                     after={"study_id": study_id, "seq": item.seq, "image_id": item.image_id, "x_px": answer.x_px,
                            "y_px": answer.y_px, "grade": answer.grade, "cannot_grade": row.cannot_grade,
                            "seconds": answer.seconds, "comment": answer.comment})
        return _read(row, item.seq, item.kind)

    def replay(s: Session) -> Read | None:
        hit = s.execute(select(ReadRow, PlanItemRow.seq, PlanItemRow.kind)
                        .join(PlanItemRow, PlanItemRow.id == ReadRow.plan_item_id)
                        .where(ReadRow.action_key == key)).first()
        return None if hit is None else _read(hit[0], hit[1], hit[2])

    try:
        return db.write(work, replay=replay, key=key)
    except IntegrityError as exc:
        raise ConflictError(f"SOPInstanceUID {sop_uid} was answered elsewhere meanwhile; ask `read next` again") \
            from exc


def reads(db: Database, study_id: int, rater_ids: Iterable[int] | None = None) -> list[Read]:
    """The study's reads (calibration, first and repeat), by reader and sequence."""
    with db.read() as s:
        q = (select(ReadRow, PlanItemRow.seq, PlanItemRow.kind)
             .join(PlanItemRow, PlanItemRow.id == ReadRow.plan_item_id)
             .where(ReadRow.study_id == study_id).order_by(ReadRow.rater_id, PlanItemRow.seq))
        if rater_ids is not None:
            q = q.where(ReadRow.rater_id.in_(list(rater_ids)))
        return [_read(r, seq, kind) for r, seq, kind in s.execute(q)]


def plan_counts(db: Database, study_id: int) -> dict[tuple[int, ReadKind], tuple[int, int]]:
    """(rater id, kind) -> (planned, done)."""
    with db.read() as s:
        planned = s.execute(select(PlanItemRow.rater_id, PlanItemRow.kind, func.count())
                            .where(PlanItemRow.study_id == study_id).group_by(PlanItemRow.rater_id, PlanItemRow.kind))
        done = dict(((int(r), k), int(n)) for r, k, n in s.execute(
            select(PlanItemRow.rater_id, PlanItemRow.kind, func.count())
            .join(ReadRow, ReadRow.plan_item_id == PlanItemRow.id)
            .where(PlanItemRow.study_id == study_id).group_by(PlanItemRow.rater_id, PlanItemRow.kind)))
        return {(int(r), ReadKind(k)): (int(n), done.get((int(r), k), 0)) for r, k, n in planned}


def scale_code(db: Database, study_id: int) -> str:
    """The grading scale the study was created with (its reads are graded on it)."""
    with db.read() as s:
        code = s.scalar(select(ReaderStudyRow.scale_code).where(ReaderStudyRow.id == study_id))
        if code is None:
            raise NotFound(f"reader study id {study_id} does not exist")
        return str(code)


def slice_facts(db: Database, study_id: int) -> dict[int, tuple[float | None, float | None, str | None]]:
    """image id -> (row spacing mm, column spacing mm, level) of every slice of the study."""
    with db.read() as s:
        q = (select(ImageRow.id, ImageRow.pixel_spacing_row, ImageRow.pixel_spacing_col, ImageRow.level)
             .join(ReaderStudySliceRow, ReaderStudySliceRow.image_id == ImageRow.id)
             .where(ReaderStudySliceRow.study_id == study_id))
        return {int(i): (r, c, lv) for i, r, c, lv in s.execute(q)}
