"""A model predicts the slices in the plane it learnt from: an axial model leaves an exam's localizer and
sagittal images alone (its grade on them would mean nothing), and says how many it left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator.domain.events import PredictionsWritten
from annotator.domain.studies import Orientation, orientation_of
from annotator.imaging.phantom_dicom import generate_dataset
from annotator.services import training
from annotator.services.importing import import_paths
from annotator.storage import catalog, models_repo
from annotator.storage.database import open_database
from tests.ml.ml_helpers import RATER, label_from_truth, tiny_preset_dict


def test_an_axial_model_predicts_axial_slices_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANNOTATOR_MODELS_DIR", raising=False)
    dicom = tmp_path / "dicom"
    generate_dataset(dicom, 2, seed=5, matrix=96, exam=True)
    db = open_database(f"sqlite:///{tmp_path / 'project.db'}")
    try:
        import_paths(db, [dicom])
        label_from_truth(db, dicom)  # the truth covers the axial slices only
        preset = tmp_path / "tiny.json"
        preset.write_text(json.dumps(tiny_preset_dict()), encoding="utf-8")
        events: list[object] = []
        version = training.train(db, f"rater:{RATER}", preset=str(preset), epochs=1, seed=0, activate=True,
                                 on_event=events.append)
        assert version.card["plane"] == "axial" and version.active
        images = catalog.images(db)
        axial = {im.id for im in images if orientation_of(im.geometry.image_orientation, 30.0) is Orientation.AXIAL}
        assert 0 < len(axial) < len(images)  # the exam has localizer and sagittal images besides
        assert {p.image_id for p in models_repo.predictions(db, version.id)} == axial
        [written] = [e for e in events if isinstance(e, PredictionsWritten)]
        assert (written.written, written.other_plane) == (len(axial), len(images) - len(axial))
        cv = training.cross_validate(db, f"rater:{RATER}", n_folds=2, preset=str(preset), epochs=1, seed=0)
        assert {p.image_id for p in models_repo.predictions(db, cv.id)} == axial  # out-of-fold: axial too
    finally:
        db.close()
