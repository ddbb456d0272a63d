"""The relational schema (SQLAlchemy 2 typed ORM). ORM rows never leave ``annotator.storage``.

Labels, adjudications, reader-study reads and the audit log are insert-only: an edit adds a version,
nothing is updated or deleted. Database triggers (created by the migrations) and ORM guards below both
refuse UPDATE/DELETE on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ProjectSettingsRow(Base):
    """One row (id = 1): the project's rules, shared by every user of the database."""

    __tablename__ = "project_settings"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scale_code: Mapped[str] = mapped_column(String(40))
    model_suggestion: Mapped[str] = mapped_column(String(40))
    show_other_raters_to_annotators: Mapped[bool] = mapped_column(Boolean, default=False)
    disagreement_threshold_mm: Mapped[float] = mapped_column(Float, default=3.0)
    required_raters: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cv_folds: Mapped[int] = mapped_column(Integer, default=10)
    hide_reader_names_from_reviewers: Mapped[bool] = mapped_column(Boolean, default=False,
                                                                   server_default=false())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RaterRow(Base):
    __tablename__ = "raters"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)  # scrypt; None: no password
    # A team database: the PostgreSQL login role this rater connects as (None: signs in at the app).
    login: Mapped[str | None] = mapped_column(String(63), unique=True, index=True, nullable=True)


class PatientRow(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(200), unique=True)
    patient_name: Mapped[str] = mapped_column(String(400), default="")
    studies: Mapped[list[StudyRow]] = relationship(back_populates="patient")


class StudyRow(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_date: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(400), default="")
    patient: Mapped[PatientRow] = relationship(back_populates="studies")
    series: Mapped[list[SeriesRow]] = relationship(back_populates="study")


class SeriesRow(Base):
    __tablename__ = "series"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(400), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[int | None] = mapped_column(Integer)
    frame_of_reference_uid: Mapped[str] = mapped_column(String(64), default="")
    study: Mapped[StudyRow] = relationship(back_populates="series")


class ImageRow(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    instance_number: Mapped[int | None] = mapped_column(Integer)
    slice_index: Mapped[int] = mapped_column(Integer, default=0)
    position_along_normal: Mapped[float | None] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[int] = mapped_column(Integer)
    pixel_spacing_row: Mapped[float | None] = mapped_column(Float)
    pixel_spacing_col: Mapped[float | None] = mapped_column(Float)
    image_position: Mapped[list[Any] | None] = mapped_column(JSON)
    image_orientation: Mapped[list[Any] | None] = mapped_column(JSON)
    slice_thickness: Mapped[float | None] = mapped_column(Float)
    window_center: Mapped[float | None] = mapped_column(Float)
    window_width: Mapped[float | None] = mapped_column(Float)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64), default="")
    bits_stored: Mapped[int | None] = mapped_column(Integer)
    file_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    level: Mapped[str | None] = mapped_column(String(10), nullable=True, index=True)  # "L4-L5"; None: unknown


class AnnotationRow(Base):
    """One version of one rater's label on one image: the full state after one action."""

    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("image_id", "rater_id", "version"),
        Index("ix_annotations_rater_image", "rater_id", "image_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    version: Mapped[int] = mapped_column(Integer)
    x_px: Mapped[float | None] = mapped_column(Float)
    y_px: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[int | None] = mapped_column(Integer)
    scale_code: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40), default="set")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the idempotency key of the user action that stored it: repeating the action finds it, never a second row
    action_key: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True, index=True)


class AuditRow(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    rater_id: Mapped[int | None] = mapped_column(ForeignKey("raters.id"))
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(120))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    preset: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    weights_path: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class ModelWeightsChunkRow(Base):
    """One slice (``chunk``: 0, 1, ...) of a model version's weights file, stored in the database so every
    workstation of a team can load the model; the whole file's SHA-256 is the version's ``weights_sha256``."""

    __tablename__ = "model_weight_chunks"
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("model_version_id", "image_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    x_px: Mapped[float | None] = mapped_column(Float)
    y_px: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[int | None] = mapped_column(Integer)
    probabilities: Mapped[list[Any] | None] = mapped_column(JSON)
    fold: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AdjudicationRow(Base):
    """A reviewer's decision on one image; versions make concurrent decisions conflict, not overwrite."""

    __tablename__ = "adjudications"
    __table_args__ = (UniqueConstraint("image_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(200))
    x_px: Mapped[float | None] = mapped_column(Float)
    y_px: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[int | None] = mapped_column(Integer)
    scale_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the idempotency key of the user action that stored it: repeating the action finds it, never a second row
    action_key: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True, index=True)


class FoldRow(Base):
    """Patient-level cross-validation folds, assigned once per fold count and reused by every retrain."""

    __tablename__ = "cv_folds"
    __table_args__ = (UniqueConstraint("patient_id", "n_folds"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    n_folds: Mapped[int] = mapped_column(Integer)
    fold: Mapped[int] = mapped_column(Integer)


class ReaderStudyRow(Base):
    """A reader study: its definition (rule, readers, design, order, repeats, calibration) as JSON."""

    __tablename__ = "reader_studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    scale_code: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("raters.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReaderStudySliceRow(Base):
    """A slice the study resolved at creation; calibration slices carry the reference's mark, frozen."""

    __tablename__ = "reader_study_slices"
    __table_args__ = (UniqueConstraint("study_id", "image_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    position: Mapped[int] = mapped_column(Integer)
    calibration: Mapped[bool] = mapped_column(Boolean, default=False)
    ref_x_px: Mapped[float | None] = mapped_column(Float)
    ref_y_px: Mapped[float | None] = mapped_column(Float)
    ref_grade: Mapped[int | None] = mapped_column(Integer)


class ReaderStudyReaderRow(Base):
    __tablename__ = "reader_study_readers"
    __table_args__ = (UniqueConstraint("study_id", "rater_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))


class PlanItemRow(Base):
    """One step of one reader's sequence, computed once when the study is created."""

    __tablename__ = "reader_plan_items"
    __table_args__ = (UniqueConstraint("study_id", "rater_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    seq: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    kind: Mapped[str] = mapped_column(String(20))


class ReadRow(Base):
    """A reader's answer to one plan item: insert-only, one per item (a repeat is its own read)."""

    __tablename__ = "reads"
    __table_args__ = (Index("ix_reads_study_rater", "study_id", "rater_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_item_id: Mapped[int] = mapped_column(ForeignKey("reader_plan_items.id"), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    x_px: Mapped[float | None] = mapped_column(Float)
    y_px: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[int | None] = mapped_column(Integer)
    cannot_grade: Mapped[str | None] = mapped_column(String(20))
    seconds: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    scale_code: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the idempotency key of the user action that stored it: repeating the action finds it, never a second row
    action_key: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True, index=True)


def _refuse_change(mapper: Any, connection: Any, target: Any) -> None:
    raise RuntimeError(f"{target.__tablename__} is insert-only: add a new version instead")


for _cls in (AnnotationRow, AuditRow, AdjudicationRow, ReadRow):
    event.listen(_cls, "before_update", _refuse_change)
    event.listen(_cls, "before_delete", _refuse_change)


class ProjectSecretRow(Base):
    """One row (id = 1): the project's secret salt for de-identification, created on first use. Kept apart
    from the settings, which are shown, exported and audited; the salt never leaves the database."""

    __tablename__ = "project_secrets"
    id: Mapped[int] = mapped_column(primary_key=True)
    deid_salt: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
