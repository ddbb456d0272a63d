"""Fixtures for the ML tests: a tiny, easy phantom project (see ml_helpers for the tiny preset)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotator.imaging.phantom_dicom import generate_dataset
from annotator.services.importing import import_paths
from annotator.storage.database import open_database
from tests.ml.ml_helpers import Project, label_from_truth, tiny_preset_dict


@pytest.fixture(scope="session")
def easy_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 patients, one 128-px slice each, stages 0 and 3 only (an easy, balanced task)."""
    out = tmp_path_factory.mktemp("easy-phantom")
    generate_dataset(out, 32, seed=3, matrix=128, slices_per_patient=1, prevalence=(0.5, 0.0, 0.0, 0.5))
    return out


@pytest.fixture
def project(tmp_path: Path, easy_phantom: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.delenv("ANNOTATOR_MODELS_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'project.db'}"
    db = open_database(url)
    import_paths(db, [easy_phantom])
    label_from_truth(db, easy_phantom)
    preset_file = tmp_path / "tiny.json"
    preset_file.write_text(json.dumps(tiny_preset_dict()), encoding="utf-8")
    yield Project(db, url, tmp_path, easy_phantom, preset_file)
    db.close()
