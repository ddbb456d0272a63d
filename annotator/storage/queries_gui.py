"""Read-only queries the workstation needs that the other repositories lack.

Nothing here writes: the active model and its predictions are written by the ML side, studies by the
importer. Kept apart so the workstation can grow its reads without touching the shared repositories.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from annotator.domain.entities import ModelVersion, Prediction
from annotator.storage import convert
from annotator.storage.database import Database
from annotator.storage.tables import ModelVersionRow, PatientRow, PredictionRow, StudyRow


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


def active_model_version(db: Database) -> ModelVersion | None:
    """The model marked active (the newest one if, by mistake, several are), else None."""
    q = (select(ModelVersionRow).where(ModelVersionRow.active.is_(True))
         .order_by(ModelVersionRow.created_at.desc(), ModelVersionRow.id.desc()).limit(1))
    with db.read() as s:
        row = s.scalar(q)
        return convert.model_version(row) if row is not None else None


def predictions_for(db: Database, model_version_id: int, image_ids: Collection[int]) -> dict[int, Prediction]:
    """One model's predictions on some images, by image id (images it has not predicted are absent)."""
    if not image_ids:
        return {}
    q = select(PredictionRow).where(PredictionRow.model_version_id == model_version_id,
                                    PredictionRow.image_id.in_(list(image_ids)))
    with db.read() as s:
        return {r.image_id: convert.prediction(r) for r in s.scalars(q)}
