"""ORM row -> domain record conversions (the only place rows turn into domain objects)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from annotator.domain.entities import (
    OWN_SOURCE,
    Adjudication,
    AdjudicationStatus,
    AuditEntry,
    ImageRef,
    Label,
    LabelAction,
    ModelKind,
    ModelSuggestion,
    ModelVersion,
    Prediction,
    ProjectSettings,
    Rater,
    Role,
)
from annotator.domain.geometry import ImageGeometry
from annotator.domain.readers import ReaderRef
from annotator.storage.tables import (
    AdjudicationRow,
    AnnotationRow,
    AuditRow,
    ImageRow,
    ModelVersionRow,
    PredictionRow,
    ProjectSettingsRow,
    RaterRow,
)


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; every timestamp we store is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def settings(row: ProjectSettingsRow) -> ProjectSettings:
    return ProjectSettings(
        name=row.name,
        scale_code=row.scale_code,
        model_suggestion=ModelSuggestion(row.model_suggestion),
        show_other_raters_to_annotators=bool(row.show_other_raters_to_annotators),
        disagreement_threshold_mm=float(row.disagreement_threshold_mm),
        required_raters=tuple(row.required_raters or ()),
        cv_folds=int(row.cv_folds),
        hide_reader_names_from_reviewers=bool(row.hide_reader_names_from_reviewers),
    )


def rater(row: RaterRow) -> Rater:
    return Rater(id=row.id, name=row.name, role=Role(row.role), simulated=bool(row.simulated),
                 created_at=aware(row.created_at), protected=row.password_hash is not None)


def geometry(row: ImageRow) -> ImageGeometry:
    spacing = None
    if row.pixel_spacing_row is not None and row.pixel_spacing_col is not None:
        spacing = (float(row.pixel_spacing_row), float(row.pixel_spacing_col))
    ipp = tuple(float(v) for v in row.image_position) if row.image_position else None
    iop = tuple(float(v) for v in row.image_orientation) if row.image_orientation else None
    return ImageGeometry(rows=row.rows, columns=row.columns, pixel_spacing=spacing,
                         image_position=ipp,  # type: ignore[arg-type]
                         image_orientation=iop,  # type: ignore[arg-type]
                         slice_thickness=row.slice_thickness)


def image(row: ImageRow, patient_key: str = "", study_uid: str = "", series_uid: str = "") -> ImageRef:
    return ImageRef(
        id=row.id, series_id=row.series_id, sop_instance_uid=row.sop_instance_uid,
        instance_number=row.instance_number, slice_index=row.slice_index, path=row.file_path,
        sha256=row.sha256, geometry=geometry(row), window_center=row.window_center,
        window_width=row.window_width, patient_key=patient_key, study_instance_uid=study_uid,
        series_instance_uid=series_uid, level=row.level,
    )


def label(row: AnnotationRow) -> Label:
    return Label(id=row.id, image_id=row.image_id, rater_id=row.rater_id, version=row.version,
                 x_px=row.x_px, y_px=row.y_px, grade=row.grade, scale_code=row.scale_code,
                 created_at=aware(row.created_at), action=LabelAction(row.action), key=row.action_key)


def label_state(row: AnnotationRow | Label | None) -> dict[str, Any] | None:
    """A label version as the audit log records it (before / after an action)."""
    if row is None:
        return None
    return {"version": row.version, "x_px": row.x_px, "y_px": row.y_px, "grade": row.grade,
            "scale": row.scale_code}


def model_version(row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(id=row.id, name=row.name, preset=row.preset, target=row.target, kind=ModelKind(row.kind),
                        created_at=aware(row.created_at), weights_path=row.weights_path,
                        weights_sha256=row.weights_sha256, card=dict(row.card or {}), active=bool(row.active))


def prediction(row: PredictionRow) -> Prediction:
    probs = tuple(float(p) for p in row.probabilities) if row.probabilities is not None else None
    return Prediction(model_version_id=row.model_version_id, image_id=row.image_id, x_px=row.x_px,
                      y_px=row.y_px, grade=row.grade, probabilities=probs, fold=row.fold)


def adjudication_source(source: ReaderRef | None) -> str:
    """The stored spelling of an adjudication's source: ``rater:NAME``, ``model:ID`` or ``own``."""
    return OWN_SOURCE if source is None else str(source)


def adjudication(row: AdjudicationRow) -> Adjudication:
    source = None if row.source == OWN_SOURCE else ReaderRef.parse(row.source)
    return Adjudication(id=row.id, image_id=row.image_id, reviewer_id=row.reviewer_id, version=row.version,
                        status=AdjudicationStatus(row.status), source=source, x_px=row.x_px, y_px=row.y_px,
                        grade=row.grade,
                        scale_code=row.scale_code, reason=row.reason, created_at=aware(row.created_at))


def audit(row: AuditRow) -> AuditEntry:
    return AuditEntry(id=row.id, at=aware(row.at), rater_id=row.rater_id, action=row.action, entity=row.entity,
                      entity_id=row.entity_id, before=row.before, after=row.after)
