"""Cross-validation never trains a fold on its own held-out patients.

The shared ML fixture has one slice per patient, where a slice-level split and a patient-level split
look the same; this project has several slices per patient, so a fold that leaked a held-out patient's
other slices into its training set would be caught. With ``jobs=2`` the folds train in child processes,
where no spy reaches: each child reports the patients it trained on, and the parent's record is checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from annotator.imaging.phantom_dicom import generate_dataset
from annotator.ml.engine import Pipeline
from annotator.services import cv_folds, training
from annotator.services.importing import import_paths
from annotator.storage import catalog, models_repo
from annotator.storage.database import Database, open_database
from tests.ml.ml_helpers import RATER, label_from_truth, tiny_preset_dict

N_FOLDS = 3


@pytest.fixture
def multi_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, Path]]:
    monkeypatch.delenv("ANNOTATOR_MODELS_DIR", raising=False)
    dicom = tmp_path / "dicom"
    generate_dataset(dicom, 9, seed=11, matrix=96, slices_per_patient=3, prevalence=(0.5, 0.0, 0.0, 0.5))
    db = open_database(f"sqlite:///{tmp_path / 'project.db'}")
    import_paths(db, [dicom])
    label_from_truth(db, dicom)
    preset = tmp_path / "tiny.json"
    preset.write_text(json.dumps(tiny_preset_dict()), encoding="utf-8")
    yield db, preset
    db.close()


@pytest.mark.parametrize("jobs", [1, 2])
def test_no_fold_trains_on_its_held_out_patients(multi_slice: tuple[Database, Path], monkeypatch: pytest.MonkeyPatch,
                                                 jobs: int) -> None:
    db, preset = multi_slice
    images = catalog.images(db)
    patient_of = {im.id: im.patient_key for im in images}
    assert len(images) >= 2 * len(set(patient_of.values())), "the fixture must hold several slices per patient"

    fits: list[dict[str, Any]] = []
    real_fit = Pipeline.fit

    def spy(self: Pipeline, train: Any, *args: Any, **kwargs: Any) -> Any:
        val = kwargs.get("val") or []
        fits.append({"fold": kwargs.get("fold"), "train": {e.patient for e in train},
                     "train_slices": len(train), "held": {e.patient for e in val}})
        return real_fit(self, train, *args, **kwargs)

    real_parallel = cv_folds.run_parallel

    def parallel_spy(jobs: Any, *args: Any) -> Any:
        results = real_parallel(jobs, *args)
        held = {j.fold: {e.patient for e in j.held} for j in jobs}
        fits.extend({"fold": r.fold, "train": set(r.train_patients), "held": held[r.fold]} for r in results)
        return results

    monkeypatch.setattr(Pipeline, "fit", spy)  # in this process (jobs=1) only
    monkeypatch.setattr(cv_folds, "run_parallel", parallel_spy)
    version = training.cross_validate(db, f"rater:{RATER}", n_folds=N_FOLDS, preset=str(preset), epochs=1, seed=2,
                                      device="cpu", jobs=jobs)
    assert version.card["jobs"] == jobs

    assignment = models_repo.folds(db, N_FOLDS)
    everyone = set(patient_of.values())
    assert sorted(f["fold"] for f in fits) == list(range(N_FOLDS))
    for f in fits:
        held = {p for p, k in assignment.items() if k == f["fold"]}
        assert f["held"] == held and held
        assert not f["train"] & held, f"fold {f['fold']} trained on held-out patients {f['train'] & held}"
        assert f["train"] == everyone - held
    assert set().union(*(f["held"] for f in fits)) == everyone

    # every out-of-fold prediction comes from the fold that held its patient out
    preds = models_repo.predictions(db, version.id)
    assert {p.image_id for p in preds} == set(patient_of)
    assert all(p.fold == assignment[patient_of[p.image_id]] for p in preds)
