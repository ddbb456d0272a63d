"""Models shared by the team: on PostgreSQL a model trained on one workstation predicts on another that
has none of its files, from weights stored in the database and checked by their SHA-256 on load."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from annotator.domain.errors import ModelIntegrityError
from annotator.domain.settings import AppSettings
from annotator.imaging.phantom_dicom import generate_dataset
from annotator.services import models as model_service
from annotator.services import training
from annotator.services.importing import import_paths
from annotator.storage import models_repo
from annotator.storage.database import Database, open_database
from tests.ml.ml_helpers import RATER, label_from_truth, tiny_preset_dict

TARGET = f"rater:{RATER}"


def _workstation(url: str, folder: Path) -> Database:
    """The project as one computer opens it: its own models folder."""
    return open_database(AppSettings(database_url=url, database_file=None, models_dir=folder / "models",
                                     user_data_dir=folder))


def _corrupt_chunk(pg_server, db: Database, model_id: int) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(f"host={pg_server.sock} user=postgres dbname={db.engine.url.database}",
                         autocommit=True) as conn:
        conn.execute("UPDATE model_weight_chunks SET data = overlay(data placing '\\xff'::bytea from 100) "
                     "WHERE model_version_id = %s AND chunk = 0", (model_id,))


@pytest.mark.postgres
def test_a_model_trained_on_one_workstation_predicts_on_another(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = pg_server.create_database()
    dicom = tmp_path / "dicom"
    generate_dataset(dicom, 12, seed=3, matrix=128, slices_per_patient=1, prevalence=(0.5, 0.0, 0.0, 0.5))
    preset = tmp_path / "tiny.json"
    preset.write_text(json.dumps(tiny_preset_dict()), encoding="utf-8")
    a = _workstation(url, tmp_path / "a")
    b = _workstation(url, tmp_path / "b")
    try:
        import_paths(a, [dicom])
        label_from_truth(a, dicom)
        version = training.train(a, TARGET, preset=str(preset), epochs=1, seed=0)
        assert Path(version.weights_path).is_relative_to(tmp_path / "a")
        assert models_repo.has_weights(a, version.id), "on PostgreSQL the weights are stored with the version"

        # workstation b has no file of it (both run on this one computer here: a's folder is moved away)
        original = Path(version.weights_path).read_bytes()
        (tmp_path / "a" / "models").rename(tmp_path / "a" / "elsewhere")
        assert not Path(version.weights_path).exists() and not (tmp_path / "b" / "models").exists()
        model_service.activate(b, version.id)
        cached = model_service.cached_weights_path(b, version)
        assert cached.is_relative_to(tmp_path / "b") and cached.read_bytes() == original
        _, written, _ = training.predict(b, version.id)
        assert written == 12 and len(models_repo.predictions(a, version.id)) == 12

        # a damaged cached copy is replaced from the database
        cached.write_bytes(b"not the weights")
        assert model_service.local_weights(b, version) == cached
        assert cached.read_bytes() == original

        # damaged bytes in the database are refused, with both hashes, and nothing is kept
        cached.unlink()
        _corrupt_chunk(pg_server, a, version.id)
        with pytest.raises(ModelIntegrityError, match="stored in the database have SHA-256 [0-9a-f]{64}, "
                                                      f"registered {version.weights_sha256}"):
            model_service.load_pipeline(b, version)
        assert not cached.exists() and list(cached.parent.iterdir()) == []
        # ...while the workstation that has the intact file still loads it
        (tmp_path / "a" / "elsewhere").rename(tmp_path / "a" / "models")
        assert model_service.local_weights(a, version) == Path(version.weights_path)
    finally:
        a.close()
        b.close()


def test_on_sqlite_the_weights_stay_in_the_models_folder(sqlite_db: Database, tmp_path: Path) -> None:
    import torch

    db = open_database(replace(sqlite_db.settings, models_dir=tmp_path / "registry"))
    try:
        published = model_service.publish(db, tensors={"w": torch.arange(4.0)}, card={"preset": "fast", "target": "t"},
                                          kind="train")
        assert not models_repo.has_weights(db, published.version.id)
        assert model_service.local_weights(db, published.version) == Path(published.version.weights_path)
        Path(published.version.weights_path).unlink()
        with pytest.raises(ModelIntegrityError, match="missing on this computer and the database holds no copy"):
            model_service.local_weights(db, published.version)
    finally:
        db.close()
