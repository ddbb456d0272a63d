"""Plain records that cross layers. Storage returns these; ORM rows never leave storage."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from annotator.domain.geometry import ImageGeometry
from annotator.domain.readers import ReaderRef


class Role(enum.StrEnum):
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class ModelSuggestion(enum.StrEnum):
    """When an annotator may see the active model's suggestion (project blinding policy)."""

    HIDDEN = "hidden"
    AFTER_OWN_GRADE = "after_own_grade"
    ALWAYS = "always"


class ImportStatus(enum.StrEnum):
    IMPORTED = "imported"
    RELINKED = "relinked"
    SKIPPED = "skipped"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    name: str = "default"
    scale_code: str = "lee"
    model_suggestion: ModelSuggestion = ModelSuggestion.HIDDEN
    show_other_raters_to_annotators: bool = False
    disagreement_threshold_mm: float = 3.0
    required_raters: tuple[str, ...] = ()
    cv_folds: int = 10
    hide_reader_names_from_reviewers: bool = False  # reviewers see "Reader A, B, …" (blind adjudication)


PROJECT_SWITCHES: dict[str, str] = {"hide-reader-names": "hide_reader_names_from_reviewers"}
"""On/off project settings by the name ``annotator settings set`` gives them -> ProjectSettings field."""


@dataclass(frozen=True, slots=True)
class Rater:
    id: int
    name: str
    role: Role
    simulated: bool = False
    created_at: datetime | None = None
    protected: bool = False  # signing in as this rater needs a password


@dataclass(frozen=True, slots=True)
class DicomInstance:
    """What the importer reads from one DICOM file, before it has a database id."""

    path: str
    sha256: str
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    patient_name: str
    transfer_syntax_uid: str
    geometry: ImageGeometry
    modality: str = ""
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    frame_of_reference_uid: str = ""
    window_center: float | None = None
    window_width: float | None = None
    bits_stored: int | None = None
    photometric: str = ""
    number_of_frames: int = 1
    warnings: tuple[str, ...] = ()  # values dropped as impossible, e.g. "mm unavailable: PixelSpacing ..."


@dataclass(frozen=True, slots=True)
class Series:
    id: int
    study_id: int
    series_instance_uid: str
    description: str
    modality: str
    n_images: int
    patient_key: str
    study_instance_uid: str
    series_number: int | None = None


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One slice as the application knows it: where its pixels are and how they map to mm."""

    id: int
    series_id: int
    sop_instance_uid: str
    instance_number: int | None
    slice_index: int  # order along the slice normal within the series, 0-based
    path: str
    sha256: str
    geometry: ImageGeometry
    window_center: float | None = None
    window_width: float | None = None
    patient_key: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    level: str | None = None  # vertebral level ("L4-L5", a VertebralLevel value); None: not known


class LabelAction(enum.StrEnum):
    """What made a label version (stored as its ``action`` string; the values never change)."""

    SET = "set"  # a whole label at once (CLI, batch reads)
    POINT = "point"  # the canal centre placed or moved, the grade kept
    GRADE = "grade"  # the grade chosen, the point kept
    CLEAR = "clear"  # an empty version
    UNDO = "undo"  # restores the state before the latest action not yet undone
    REDO = "redo"  # re-applies the latest undone action
    IMPORT = "import"  # from a label-set file
    SIMULATED = "simulated"  # a simulated expert's read (demo, benchmarks)


@dataclass(frozen=True, slots=True)
class Label:
    """One version of one rater's label on one slice: the full state after an action."""

    id: int
    image_id: int
    rater_id: int
    version: int
    x_px: float | None
    y_px: float | None
    grade: int | None
    scale_code: str
    created_at: datetime
    action: LabelAction = LabelAction.SET
    key: str | None = None  # the idempotency key of the action that stored it (None: stored without one)

    @property
    def has_point(self) -> bool:
        return self.x_px is not None and self.y_px is not None

    @property
    def has_grade(self) -> bool:
        return self.grade is not None

    @property
    def complete(self) -> bool:
        return self.has_point and self.has_grade

    @property
    def empty(self) -> bool:
        return not self.has_point and not self.has_grade


class ModelKind(enum.StrEnum):
    """What a model version is: trained on all of its target's labels (predicts, may be activated), or a
    cross-validation whose only predictions are the out-of-fold ones. The values are the stored strings."""

    TRAIN = "train"
    CV = "cv"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    id: int
    name: str
    preset: str
    target: str
    kind: ModelKind
    created_at: datetime
    weights_path: str
    weights_sha256: str
    card: dict[str, Any] = field(default_factory=dict)
    active: bool = False


@dataclass(frozen=True, slots=True)
class Prediction:
    model_version_id: int
    image_id: int
    x_px: float | None
    y_px: float | None
    grade: int | None
    probabilities: tuple[float, ...] | None
    fold: int | None = None


class AdjudicationStatus(enum.StrEnum):
    """What an adjudication did to its slice (stored as its value)."""

    DECIDED = "decided"
    REOPENED = "reopened"


class QueueStatus(enum.StrEnum):
    """Where a slice of the review queue stands: never decided, decided, or reopened since."""

    OPEN = "open"
    DECIDED = "decided"
    REOPENED = "reopened"

    @classmethod
    def of(cls, latest: Adjudication | None) -> QueueStatus:
        return cls.OPEN if latest is None else cls(latest.status.value)


OWN_SOURCE = "own"
"""How storage, the audit log and the CLI spell the source of a reviewer's own decision."""


@dataclass(frozen=True, slots=True)
class Adjudication:
    id: int
    image_id: int
    reviewer_id: int
    version: int
    status: AdjudicationStatus
    source: ReaderRef | None  # the reader whose label was accepted; None: the reviewer's own point
    x_px: float | None
    y_px: float | None
    grade: int | None
    scale_code: str
    reason: str
    created_at: datetime

    @property
    def source_text(self) -> str:
        """``rater:NAME``, ``model:ID`` or ``own``: the stored and printed form of the source."""
        return OWN_SOURCE if self.source is None else str(self.source)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    rater_id: int | None
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ChangeMark:
    """Where the project's writes stood at one moment: every write that changes labels, decisions, raters,
    settings, images or models adds an audit entry; predictions (written in bulk, unaudited) have ids of
    their own. Two marks are equal exactly when nothing was written between them."""

    audit_id: int  # the newest audit entry's id (0: none)
    audit_count: int  # how many entries there are (a late commit with a lower id still shows here)
    prediction_id: int  # the newest prediction's id (0: none)


@dataclass(frozen=True, slots=True)
class ImportResult:
    path: str
    status: ImportStatus
    reason: str = ""
    sop_instance_uid: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "status": self.status.value, "reason": self.reason,
                "sop_instance_uid": self.sop_instance_uid}


@dataclass(frozen=True, slots=True)
class ProjectCounts:
    patients: int
    studies: int
    series: int
    images: int
    labels_per_rater: dict[str, int]
