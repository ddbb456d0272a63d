"""The DICOM catalogue: patients, studies, series and images (pixels stay in the user's files)."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from annotator.domain.entities import DicomInstance, ImageRef, ImportResult, ImportStatus, ProjectCounts, Series
from annotator.domain.errors import NotFound
from annotator.domain.geometry import ImageGeometry, usable_geometry
from annotator.storage import audit, convert
from annotator.storage.database import Database
from annotator.storage.tables import (
    AdjudicationRow,
    AnnotationRow,
    ImageRow,
    PatientRow,
    RaterRow,
    SeriesRow,
    StudyRow,
    utcnow,
)


class PixelMatch(enum.Enum):
    """How a new file's decoded pixels compare with the file already imported under its SOPInstanceUID."""

    SAME = "same"
    DIFFERENT = "different"
    UNREADABLE = "unreadable"  # one of the two files cannot be decoded (or changed since it was read)


# (stored file path, its SHA-256 at import, the new instance) -> how their decoded pixels compare.
ComparePixels = Callable[[str, str, DicomInstance], PixelMatch]


def patient_key(inst: DicomInstance) -> str:
    return inst.patient_id.strip() or f"(no PatientID) {inst.study_instance_uid}"


class _Batch:
    """Lookups cached for one import transaction."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.patients: dict[str, PatientRow] = {}
        self.studies: dict[str, StudyRow] = {}
        self.series: dict[str, SeriesRow] = {}
        self.touched_series: set[int] = set()

    def patient(self, inst: DicomInstance) -> PatientRow:
        key = patient_key(inst)
        row = self.patients.get(key) or self.s.scalar(select(PatientRow).where(PatientRow.patient_key == key))
        if row is None:
            row = PatientRow(patient_key=key, patient_name=inst.patient_name)
            self.s.add(row)
            self.s.flush()
        self.patients[key] = row
        return row

    def study(self, inst: DicomInstance) -> StudyRow:
        uid = inst.study_instance_uid
        row = self.studies.get(uid) or self.s.scalar(select(StudyRow).where(StudyRow.study_instance_uid == uid))
        if row is None:
            row = StudyRow(patient_id=self.patient(inst).id, study_instance_uid=uid, study_date=inst.study_date,
                           description=inst.study_description)
            self.s.add(row)
            self.s.flush()
        self.studies[uid] = row
        return row

    def series_row(self, inst: DicomInstance) -> SeriesRow:
        uid = inst.series_instance_uid
        row = self.series.get(uid) or self.s.scalar(select(SeriesRow).where(SeriesRow.series_instance_uid == uid))
        if row is None:
            row = SeriesRow(study_id=self.study(inst).id, series_instance_uid=uid,
                            description=inst.series_description, modality=inst.modality,
                            series_number=inst.series_number, frame_of_reference_uid=inst.frame_of_reference_uid)
            self.s.add(row)
            self.s.flush()
        self.series[uid] = row
        return row


def _position(g: ImageGeometry) -> float | None:
    if g.image_position is None or g.image_orientation is None:
        return None
    try:
        return g.position_along_normal()
    except Exception:
        return None


def _image_values(series_id: int, inst: DicomInstance) -> dict[str, object]:
    g, _ = usable_geometry(inst.geometry)  # nothing impossible is stored as usable, whoever built inst
    return dict(
        series_id=series_id, sop_instance_uid=inst.sop_instance_uid, sop_class_uid=inst.sop_class_uid,
        instance_number=inst.instance_number, slice_index=0, position_along_normal=_position(g),
        rows=g.rows, columns=g.columns,
        pixel_spacing_row=g.pixel_spacing[0] if g.pixel_spacing else None,
        pixel_spacing_col=g.pixel_spacing[1] if g.pixel_spacing else None,
        image_position=list(g.image_position) if g.image_position else None,
        image_orientation=list(g.image_orientation) if g.image_orientation else None,
        slice_thickness=g.slice_thickness, window_center=inst.window_center, window_width=inst.window_width,
        transfer_syntax_uid=inst.transfer_syntax_uid, bits_stored=inst.bits_stored,
        file_path=inst.path, sha256=inst.sha256, imported_at=utcnow(),
    )


def _add_image(b: _Batch, inst: DicomInstance) -> None:
    series = b.series_row(inst)
    b.s.add(ImageRow(**_image_values(series.id, inst)))
    b.touched_series.add(series.id)


def _imported(inst: DicomInstance) -> ImportResult:
    """Imported; the reason carries the warnings (values dropped as impossible), if any."""
    warnings = (*inst.warnings, *(w for w in usable_geometry(inst.geometry)[1] if w not in inst.warnings))
    return ImportResult(inst.path, ImportStatus.IMPORTED, "; ".join(warnings), inst.sop_instance_uid)


def _import_one(b: _Batch, inst: DicomInstance, compare: ComparePixels | None) -> ImportResult:
    existing = b.s.scalar(select(ImageRow).where(ImageRow.sop_instance_uid == inst.sop_instance_uid))
    if existing is None:
        _add_image(b, inst)
        return _imported(inst)
    same_path = os.path.realpath(existing.file_path) == os.path.realpath(inst.path)
    if same_path:
        return ImportResult(inst.path, ImportStatus.SKIPPED, "already imported", inst.sop_instance_uid)
    if existing.sha256 != inst.sha256:
        return _other_bytes(existing, inst, compare)
    if os.path.exists(existing.file_path):
        return ImportResult(inst.path, ImportStatus.SKIPPED, f"duplicate of {existing.file_path}",
                            inst.sop_instance_uid)
    old = existing.file_path
    existing.file_path = inst.path
    audit.record(b.s, rater_id=None, action="image.relink", entity="image", entity_id=existing.id,
                 before={"file_path": old}, after={"file_path": inst.path})
    return ImportResult(inst.path, ImportStatus.RELINKED, f"moved from {old}", inst.sop_instance_uid)


def _other_bytes(existing: ImageRow, inst: DicomInstance, compare: ComparePixels | None) -> ImportResult:
    """A known SOPInstanceUID in a file with other bytes: the same instance re-encoded, or a conflict.

    Only here are pixels decoded (both files), so an import of new files never pays for it."""
    old = existing.file_path
    conflict = f"SOPInstanceUID already imported from {old} with different content"
    match = compare(old, existing.sha256, inst) if compare is not None else None
    if match is PixelMatch.SAME:
        return ImportResult(inst.path, ImportStatus.SKIPPED,
                            f"same instance as {old}: identical decoded pixels, other encoding", inst.sop_instance_uid)
    if match is PixelMatch.DIFFERENT:
        conflict += " (decoded pixels differ)"
    elif match is PixelMatch.UNREADABLE:
        conflict += " (the decoded pixels of both files could not be compared)"
    return ImportResult(inst.path, ImportStatus.REJECTED, conflict, inst.sop_instance_uid)


def _resequence(s: Session, series_ids: Iterable[int]) -> None:
    """Order each series along the slice normal (then instance number, then UID), never by file name."""
    changes = []
    for sid in series_ids:
        rows = sorted(s.execute(select(ImageRow.id, ImageRow.slice_index, ImageRow.position_along_normal,
                                       ImageRow.instance_number, ImageRow.sop_instance_uid)
                                .where(ImageRow.series_id == sid)).all(),
                      key=lambda r: (r.position_along_normal is None,
                                     r.position_along_normal if r.position_along_normal is not None else 0.0,
                                     r.instance_number if r.instance_number is not None else 0,
                                     r.sop_instance_uid))
        changes += [{"row_id": r.id, "new_index": i} for i, r in enumerate(rows) if r.slice_index != i]
    if changes:
        table = cast(Table, ImageRow.__table__)
        s.flush()
        s.connection().execute(update(table).where(table.c.id == bindparam("row_id"))
                               .values(slice_index=bindparam("new_index")), changes)
        s.expire_all()


def _fast_batch(s: Session, instances: Sequence[DicomInstance]) -> list[ImportResult] | None:
    """The common case (only new, distinct SOP instances) as one multi-row insert; None if not that case."""
    uids = [i.sop_instance_uid for i in instances]
    if len(set(uids)) != len(uids):
        return None
    if s.scalar(select(func.count(ImageRow.id)).where(ImageRow.sop_instance_uid.in_(uids))):
        return None
    b = _Batch(s)
    rows = []
    for inst in instances:
        series = b.series_row(inst)
        b.touched_series.add(series.id)
        rows.append(_image_values(series.id, inst))
    s.execute(insert(ImageRow), rows)
    _resequence(s, b.touched_series)
    return [_imported(i) for i in instances]


def import_instances(db: Database, instances: Sequence[DicomInstance],
                     compare_pixels: ComparePixels | None = None) -> list[ImportResult]:
    """Add a batch in one transaction: a multi-row insert when every file is new, else file by file,
    each in its own savepoint, so a file the database refuses leaves no rows and the others go in.

    A file whose SOPInstanceUID is known but whose bytes differ is skipped when ``compare_pixels``
    finds the same decoded pixels (the instance in another transfer syntax), else rejected."""

    def work(s: Session) -> list[ImportResult]:
        if instances:
            sp = s.begin_nested()
            try:
                fast = _fast_batch(s, instances)
            except Exception:
                fast = None
            if fast is not None:
                sp.commit()
                _audit_import(s, fast)
                return fast
            sp.rollback()
        b = _Batch(s)
        results = []
        for inst in instances:
            sp = s.begin_nested()
            try:
                results.append(_import_one(b, inst, compare_pixels))
                s.flush()
                sp.commit()
            except Exception as exc:  # a constraint this file breaks: reject it, keep the others
                sp.rollback()
                b.patients.clear()
                b.studies.clear()
                b.series.clear()
                reason = (str(getattr(exc, "orig", exc) or exc).strip().splitlines() or [type(exc).__name__])[0]
                results.append(ImportResult(inst.path, ImportStatus.REJECTED, f"database refused it: {reason}",
                                            inst.sop_instance_uid))
        _resequence(s, b.touched_series)
        _audit_import(s, results)
        return results

    return db.write(work)


def _audit_import(s: Session, results: Sequence[ImportResult]) -> None:
    n = sum(r.status is ImportStatus.IMPORTED for r in results)
    if n:
        audit.record(s, rater_id=None, action="import", entity="images", entity_id="batch",
                     after={"imported": n})


def _series_query() -> object:
    return (select(SeriesRow, StudyRow.study_instance_uid, PatientRow.patient_key, func.count(ImageRow.id))
            .join(StudyRow, SeriesRow.study_id == StudyRow.id)
            .join(PatientRow, StudyRow.patient_id == PatientRow.id)
            .outerjoin(ImageRow, ImageRow.series_id == SeriesRow.id)
            .group_by(SeriesRow.id, StudyRow.study_instance_uid, PatientRow.patient_key)
            .order_by(PatientRow.patient_key, StudyRow.study_instance_uid, SeriesRow.series_number, SeriesRow.id))


def list_series(db: Database) -> list[Series]:
    with db.read() as s:
        out = []
        for row, study_uid, pkey, n in s.execute(_series_query()):  # type: ignore[call-overload]
            out.append(Series(id=row.id, study_id=row.study_id, series_instance_uid=row.series_instance_uid,
                              description=row.description, modality=row.modality, n_images=int(n),
                              patient_key=pkey, study_instance_uid=study_uid, series_number=row.series_number))
        return out


@dataclass(frozen=True, slots=True)
class StudySummary:
    """What a worklist shows for one study."""

    id: int
    study_instance_uid: str
    patient_key: str
    study_date: str
    description: str


def study_summaries(db: Database) -> dict[int, StudySummary]:
    """Every study by id, with its patient key, date and description."""
    q = (select(StudyRow.id, StudyRow.study_instance_uid, PatientRow.patient_key, StudyRow.study_date,
                StudyRow.description)
         .join(PatientRow, StudyRow.patient_id == PatientRow.id))
    with db.read() as s:
        return {int(r[0]): StudySummary(int(r[0]), r[1], r[2], r[3] or "", r[4] or "") for r in s.execute(q)}


def _image_query() -> object:
    return (select(ImageRow, PatientRow.patient_key, StudyRow.study_instance_uid, SeriesRow.series_instance_uid)
            .join(SeriesRow, ImageRow.series_id == SeriesRow.id)
            .join(StudyRow, SeriesRow.study_id == StudyRow.id)
            .join(PatientRow, StudyRow.patient_id == PatientRow.id))


IDS_PER_QUERY = 2000  # image ids bound in one IN list (SQLite and psycopg cap the parameters of a statement)


def _in_catalogue_order(q: object) -> object:
    return q.order_by(PatientRow.patient_key, StudyRow.study_instance_uid,  # type: ignore[attr-defined]
                      SeriesRow.series_number, SeriesRow.id, ImageRow.slice_index)


def _read_images(db: Database, q: object) -> list[ImageRef]:
    with db.read() as s:
        return [convert.image(r, pk, st, se) for r, pk, st, se in s.execute(q)]  # type: ignore[call-overload]


def images(db: Database, series_id: int | None = None) -> list[ImageRef]:
    """Images of one series (or all), in slice order."""
    q = _image_query()
    if series_id is not None:
        q = q.where(ImageRow.series_id == series_id)  # type: ignore[attr-defined]
    return _read_images(db, _in_catalogue_order(q))


def images_marked(db: Database) -> list[ImageRef]:
    """The slices a rater labelled (any version, an emptied label too) or a reviewer decided, in catalogue
    order: all the review queue and the consensus look at. An exam's other series and levels, often most
    of the catalogue, are not read."""
    marked = select(AnnotationRow.image_id).union(select(AdjudicationRow.image_id)).subquery()
    q = _image_query().where(ImageRow.id.in_(select(marked.c.image_id)))  # type: ignore[attr-defined]
    return _read_images(db, _in_catalogue_order(q))


def images_by_id(db: Database, image_ids: Iterable[int]) -> dict[int, ImageRef]:
    """The catalogue records of these slices, by id (ids not in the catalogue are absent)."""
    ids = sorted(set(image_ids))
    out: dict[int, ImageRef] = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start:start + IDS_PER_QUERY]
        out.update((im.id, im) for im in _read_images(db, _image_query().where(  # type: ignore[attr-defined]
            ImageRow.id.in_(chunk))))
    return out


def image_by_id(db: Database, image_id: int) -> ImageRef:
    with db.read() as s:
        hit = s.execute(_image_query().where(ImageRow.id == image_id)).first()  # type: ignore[attr-defined]
        if hit is None:
            raise NotFound(f"image id {image_id} does not exist")
        return convert.image(*hit)


def image_by_sop(db: Database, sop_uid: str) -> ImageRef:
    with db.read() as s:
        hit = s.execute(_image_query().where(ImageRow.sop_instance_uid == sop_uid)).first()  # type: ignore[attr-defined]
        if hit is None:
            raise NotFound(f"no imported slice has SOPInstanceUID {sop_uid}")
        return convert.image(*hit)


def counts(db: Database) -> ProjectCounts:
    with db.read() as s:
        latest = (select(AnnotationRow.rater_id, AnnotationRow.image_id, func.max(AnnotationRow.version).label("v"))
                  .group_by(AnnotationRow.rater_id, AnnotationRow.image_id).subquery())
        current = (select(RaterRow.name, func.count())
                   .join(latest, latest.c.rater_id == RaterRow.id)
                   .join(AnnotationRow, (AnnotationRow.rater_id == latest.c.rater_id)
                         & (AnnotationRow.image_id == latest.c.image_id) & (AnnotationRow.version == latest.c.v))
                   .where((AnnotationRow.grade.is_not(None)) | (AnnotationRow.x_px.is_not(None)))
                   .group_by(RaterRow.name))
        per_rater = {name: 0 for name in s.scalars(select(RaterRow.name).order_by(RaterRow.id))}
        per_rater.update({name: int(n) for name, n in s.execute(current)})
        return ProjectCounts(
            patients=s.scalar(select(func.count(PatientRow.id))) or 0,
            studies=s.scalar(select(func.count(StudyRow.id))) or 0,
            series=s.scalar(select(func.count(SeriesRow.id))) or 0,
            images=s.scalar(select(func.count(ImageRow.id))) or 0,
            labels_per_rater=per_rater,
        )
