"""Model versions, their predictions, and the patient-level cross-validation folds."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.orm import Session

from annotator.domain.entities import ModelKind, ModelVersion, Prediction
from annotator.domain.errors import NotFound
from annotator.storage import audit, convert
from annotator.storage.database import Database
from annotator.storage.tables import (
    FoldRow,
    ModelVersionRow,
    ModelWeightsChunkRow,
    PatientRow,
    PredictionRow,
    utcnow,
)

CHUNK_BYTES = 8 << 20  # weights are stored in 8 MiB rows: no row near PostgreSQL's 1 GB limit, little memory


def register(db: Database, *, name: str, preset: str, target: str, kind: ModelKind, weights_path: str,
             weights_sha256: str, card: dict[str, Any], actor_id: int | None = None,
             weights_file: Path | None = None) -> ModelVersion:
    """Register a version; with ``weights_file``, its bytes are stored too, in the same transaction (so a
    version other workstations can see always has its weights)."""
    def work(s: Session) -> ModelVersion:
        row = ModelVersionRow(name=name, preset=preset, target=target, kind=str(kind), weights_path=weights_path,
                              weights_sha256=weights_sha256, card=card, active=False)
        s.add(row)
        s.flush()
        if weights_file is not None:
            store_weights(s, row.id, weights_file)
        audit.record(s, rater_id=actor_id, action="model.register", entity="model_version", entity_id=row.id,
                     after={"name": name, "preset": preset, "target": target, "kind": str(kind)})
        return convert.model_version(row)

    return db.write(work)


def store_weights(s: Session | Connection, model_id: int, weights_file: Path) -> int:
    """Store a weights file's bytes for model ``model_id`` (inside the caller's transaction); the chunks."""
    n = 0
    with open(weights_file, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            s.execute(insert(ModelWeightsChunkRow).values(model_version_id=model_id, chunk=n, data=block))
            n += 1
    return n


def has_weights(db: Database, model_id: int) -> bool:
    """Does the database hold model ``model_id``'s weights?"""
    with db.read() as s:
        return s.scalar(select(ModelWeightsChunkRow.chunk).where(ModelWeightsChunkRow.model_version_id == model_id)
                        .limit(1)) is not None


def read_weights(db: Database, model_id: int, sink: Callable[[bytes], object]) -> int:
    """Hand model ``model_id``'s stored weights to ``sink`` chunk by chunk, in order, from one read
    transaction (one chunk in memory at a time); the bytes read (0: none stored)."""
    total = 0
    with db.read() as s:
        chunks = list(s.scalars(select(ModelWeightsChunkRow.chunk)
                                .where(ModelWeightsChunkRow.model_version_id == model_id)
                                .order_by(ModelWeightsChunkRow.chunk)))
        for i in chunks:
            data = s.scalar(select(ModelWeightsChunkRow.data).where(ModelWeightsChunkRow.model_version_id == model_id,
                                                                    ModelWeightsChunkRow.chunk == i))
            assert data is not None
            sink(bytes(data))
            total += len(data)
    return total


def list_versions(db: Database) -> list[ModelVersion]:
    with db.read() as s:
        return [convert.model_version(r) for r in s.scalars(select(ModelVersionRow).order_by(ModelVersionRow.id))]


def get(db: Database, model_id: int) -> ModelVersion:
    with db.read() as s:
        row = s.get(ModelVersionRow, model_id)
        if row is None:
            raise NotFound(f"model {model_id} does not exist (see `annotator models list`)")
        return convert.model_version(row)


def active(db: Database) -> ModelVersion | None:
    """The model marked active, else None; the one rule everywhere if, by a race, several are: the
    highest id (the newest registered)."""
    with db.read() as s:
        row = s.scalar(select(ModelVersionRow).where(ModelVersionRow.active.is_(True))
                       .order_by(ModelVersionRow.id.desc()).limit(1))
        return convert.model_version(row) if row is not None else None


def activate(db: Database, model_id: int, actor_id: int | None = None) -> ModelVersion:
    def work(s: Session) -> ModelVersion:
        row = s.get(ModelVersionRow, model_id)
        if row is None:
            raise NotFound(f"model {model_id} does not exist (see `annotator models list`)")
        before = s.scalar(select(ModelVersionRow.id).where(ModelVersionRow.active.is_(True)))
        s.execute(update(ModelVersionRow).where(ModelVersionRow.active.is_(True)).values(active=False))
        row.active = True
        audit.record(s, rater_id=actor_id, action="model.activate", entity="model_version", entity_id=model_id,
                     before={"active": before}, after={"active": model_id})
        s.flush()
        return convert.model_version(row)

    return db.write(work)


def write_predictions(db: Database, model_id: int, predictions: Sequence[Prediction]) -> int:
    """Replace nothing: a model version's predictions are written once, all in one transaction."""

    def work(s: Session) -> int:
        if s.get(ModelVersionRow, model_id) is None:
            raise NotFound(f"model {model_id} does not exist")
        rows = [dict(model_version_id=model_id, image_id=p.image_id, x_px=p.x_px, y_px=p.y_px, grade=p.grade,
                     probabilities=list(p.probabilities) if p.probabilities is not None else None, fold=p.fold,
                     created_at=utcnow()) for p in predictions]
        if rows:
            s.execute(insert(PredictionRow), rows)
        return len(rows)

    return db.write(work)


def predictions_by_image(db: Database, model_id: int, image_ids: Collection[int]) -> dict[int, Prediction]:
    """One model's predictions on some images, by image id (images it has not predicted are absent)."""
    if not image_ids:
        return {}
    return {p.image_id: p for p in predictions(db, model_id, list(image_ids))}


def predictions(db: Database, model_id: int, image_ids: Sequence[int] | None = None) -> list[Prediction]:
    with db.read() as s:
        q = select(PredictionRow).where(PredictionRow.model_version_id == model_id)
        if image_ids is not None:
            q = q.where(PredictionRow.image_id.in_(list(image_ids)))
        return [convert.prediction(r) for r in s.scalars(q.order_by(PredictionRow.image_id))]


def prediction_count(db: Database, model_id: int) -> int:
    """How many predictions model ``model_id`` has written (a count: no row is read)."""
    with db.read() as s:
        n = s.scalar(select(func.count()).select_from(PredictionRow)
                     .where(PredictionRow.model_version_id == model_id))
        return int(n or 0)


def folds(db: Database, n_folds: int) -> dict[str, int]:
    """patient_key -> fold for ``n_folds``-fold CV (empty if never assigned)."""
    with db.read() as s:
        q = (select(PatientRow.patient_key, FoldRow.fold).join(FoldRow, FoldRow.patient_id == PatientRow.id)
             .where(FoldRow.n_folds == n_folds))
        return {k: int(f) for k, f in s.execute(q)}


def assign_folds(db: Database, n_folds: int, assignment: dict[str, int]) -> dict[str, int]:
    """Store folds for patients that have none yet; existing assignments are never changed."""

    def work(s: Session) -> dict[str, int]:
        ids = dict(s.execute(select(PatientRow.patient_key, PatientRow.id)).all())
        have = set(s.scalars(select(FoldRow.patient_id).where(FoldRow.n_folds == n_folds)))
        for key, fold in assignment.items():
            pid = ids.get(key)
            if pid is None:
                raise NotFound(f"patient {key!r} does not exist")
            if pid not in have:
                s.add(FoldRow(patient_id=pid, n_folds=n_folds, fold=fold))
        return {}

    db.write(work)
    return folds(db, n_folds)
