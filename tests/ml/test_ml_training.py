"""Training, cross-validation and prediction through the service layer on a tiny phantom project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator.domain.entities import ModelKind, Role
from annotator.domain.errors import Cancelled, InputError, ModelIntegrityError, NotFound
from annotator.domain.events import (
    Done,
    EpochEnded,
    Event,
    Figures,
    FoldEnded,
    ModelActivated,
    ModelSaved,
    Phase,
    PhaseStarted,
    PredictionsWritten,
    StepProgress,
)
from annotator.imaging.phantom_dicom import read_truth
from annotator.services import models as model_service
from annotator.services import readers as reader_service
from annotator.services import training
from annotator.storage import catalog, labels, models_repo, people
from tests.ml.ml_helpers import RATER, Project, tiny_preset_dict

TARGET = f"rater:{RATER}"


def test_cv_beats_chance_and_stores_out_of_fold_predictions(project: Project) -> None:
    events: list[Event] = []
    version = training.cross_validate(project.db, TARGET, n_folds=2, preset=str(project.preset_file), epochs=12,
                                      seed=1, on_event=events.append)
    assert version.kind == "cv" and version.target == TARGET
    pooled = version.card["metrics"]["pooled"]
    # stages 0 and 3 in equal shares: chance is 50%
    assert pooled["grades"]["accuracy"] >= 0.8, pooled
    assert pooled["points"]["median_mm"] < 5.0, pooled
    assert len(version.card["metrics"]["per_fold"]) == 2
    preds = models_repo.predictions(project.db, version.id)
    images = catalog.images(project.db)
    assert len(preds) == len(images)
    assert all(p.model_version_id == version.id and p.fold in (0, 1) for p in preds)
    folds = models_repo.folds(project.db, 2)
    by_id = {im.id: im for im in images}
    assert all(folds[by_id[p.image_id].patient_key] == p.fold for p in preds)
    # the cv model is a reader for the agreement report
    marks = reader_service.marks(project.db, f"model:{version.id}")
    assert len(marks) == len(images)
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert {e.fold for e in epochs} == {0, 1} and all(e.val_accuracy is not None for e in epochs)
    folds = [e for e in events if isinstance(e, FoldEnded)]
    assert [(e.fold, e.folds) for e in folds] == [(0, 2), (1, 2)]
    assert [e.figures for e in folds] == [Figures.from_card(m) for m in version.card["metrics"]["per_fold"]]
    assert {e.fold for e in events if isinstance(e, PhaseStarted) and e.phase is Phase.TRAIN} == {0, 1}
    assert events[-3:] == [ModelSaved(version.id, version.name, ModelKind.CV),
                           PredictionsWritten(version.id, len(images), 0),
                           Done(version.id, version.name, ModelKind.CV, False, Figures.from_card(pooled))]
    # a cv model cannot be activated or used by predict
    with pytest.raises(InputError, match="cv model"):
        model_service.activate(project.db, version.id)
    with pytest.raises(InputError, match="out-of-fold"):
        training.predict(project.db, version.id)


def test_train_predict_carry_model_id_and_card(project: Project) -> None:
    version = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=2, seed=0)
    assert version.kind == "train" and not version.active
    with pytest.raises(NotFound, match="no model is active"):
        training.predict(project.db)
    model_service.activate(project.db, version.id)
    got, n, skipped = training.predict(project.db)
    assert got.id == version.id and n == len(catalog.images(project.db)) and skipped == 0
    preds = models_repo.predictions(project.db, version.id)
    assert len(preds) == n and all(p.model_version_id == version.id for p in preds)
    assert all(p.grade in (0, 1, 2, 3) and p.probabilities and len(p.probabilities) == 4 for p in preds)
    assert training.predict(project.db, version.id)[1] == 0  # nothing left to predict
    # card on disk == card in the database; hashes and provenance are there
    folder = Path(version.weights_path).parent
    assert folder.parent == project.registry
    card = json.loads((folder / "card.json").read_text())
    assert card == version.card
    assert card["weights_sha256"] == version.weights_sha256
    from annotator.ml.registry import sha256_file

    assert sha256_file(version.weights_path) == version.weights_sha256
    truth = read_truth(project.dicom)
    expected = training.snapshot_hash([(t.sop_instance_uid, t.x_px, t.y_px, t.stage) for t in truth])
    assert card["data_snapshot_sha256"] == expected
    assert {"torch", "torchvision", "safetensors", "numpy", "annotator"} <= set(card["library_versions"])
    assert card["hyper_parameters"]["train"]["epochs"] == 2 and card["seed"] == 0
    assert (folder / "card.md").read_text().startswith(f"# Model card: {version.name}")
    assert not [p for p in project.registry.iterdir() if p.name.startswith(".tmp-")]


def test_train_with_activate_predicts_every_slice_then_activates(project: Project) -> None:
    """The app's and the CLI's one workflow: train, predict every slice, activate (audited), in that order."""
    reviewer = people.add_rater(project.db, "rev", Role.REVIEWER)
    events: list[Event] = []
    active_when_predicted: list[object] = []

    def on_event(e: Event) -> None:
        events.append(e)
        if isinstance(e, PredictionsWritten):  # predictions are stored before the model becomes active
            active_when_predicted.append(model_service.get_model(project.db, e.model_id).active)

    version = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=1, seed=0, activate=True,
                             on_event=on_event, actor=reviewer)
    images = catalog.images(project.db)
    assert version.active and model_service.get_model(project.db, None).id == version.id
    assert sorted(p.image_id for p in models_repo.predictions(project.db, version.id)) == sorted(im.id for im in images)
    assert active_when_predicted == [False]
    milestones = [e for e in events if not isinstance(e, (StepProgress, EpochEnded))]
    assert milestones == [PhaseStarted(Phase.READ), PhaseStarted(Phase.TRAIN),
                          ModelSaved(version.id, version.name, ModelKind.TRAIN), PhaseStarted(Phase.PREDICT),
                          PredictionsWritten(version.id, len(images), 0), PhaseStarted(Phase.ACTIVATE),
                          ModelActivated(version.id), Done(version.id, version.name, ModelKind.TRAIN, True)]
    assert [e for e in events if isinstance(e, StepProgress) and e.phase is Phase.PREDICT][-1] == \
        StepProgress(Phase.PREDICT, len(images), len(images))
    from annotator.storage import audit

    activations = [e for e in audit.entries(project.db, entity="model_version") if e.action == "model.activate"]
    assert [(e.entity_id, e.rater_id) for e in activations] == [(str(version.id), reviewer.id)]


def test_train_with_predict_all_writes_predictions_and_activates_nothing(project: Project) -> None:
    events: list[Event] = []
    version = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=1, predict_all=True,
                             on_event=events.append)
    n = len(catalog.images(project.db))
    assert not version.active and models_repo.active(project.db) is None
    assert len(models_repo.predictions(project.db, version.id)) == n
    assert PredictionsWritten(version.id, n, 0) in events and not any(isinstance(e, ModelActivated) for e in events)
    assert events[-1] == Done(version.id, version.name, ModelKind.TRAIN, False)


def test_a_stop_while_predicting_leaves_the_new_model_saved_and_inactive(project: Project) -> None:
    events: list[Event] = []
    stop = lambda: any(isinstance(e, PhaseStarted) and e.phase is Phase.PREDICT for e in events)  # noqa: E731
    with pytest.raises(Cancelled, match="prediction cancelled; model .* is saved but has no predictions and is "
                                        "not active"):
        training.train(project.db, TARGET, preset=str(project.preset_file), epochs=1, activate=True,
                       on_event=events.append, should_stop=stop)
    [version] = models_repo.list_versions(project.db)
    assert not version.active and models_repo.predictions(project.db, version.id) == []
    assert ModelSaved(version.id, version.name, ModelKind.TRAIN) in events
    assert not any(isinstance(e, (ModelActivated, Done)) for e in events)


def test_tampered_weights_are_refused(project: Project) -> None:
    version = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=1, seed=0)
    path = Path(version.weights_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as err:
        training.predict(project.db, version.id)
    message = str(err.value)
    assert str(path) in message and version.weights_sha256 in message
    from annotator.ml.registry import sha256_file

    assert sha256_file(path) in message
    with pytest.raises(ModelIntegrityError):
        model_service.activate(project.db, version.id)
    assert models_repo.predictions(project.db, version.id) == []


def test_same_seed_same_weights(project: Project) -> None:
    a = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=2, seed=7)
    b = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=2, seed=7)
    c = training.train(project.db, TARGET, preset=str(project.preset_file), epochs=2, seed=8)
    assert a.weights_sha256 == b.weights_sha256
    assert c.weights_sha256 != a.weights_sha256
    assert a.name != b.name and Path(a.weights_path).parent != Path(b.weights_path).parent


def test_target_resolution(project: Project) -> None:
    with pytest.raises(InputError, match="rater:NAME"):
        training.train(project.db, "model:1", preset=str(project.preset_file), epochs=1)
    with pytest.raises(NotFound):
        training.train(project.db, "rater:nobody", preset=str(project.preset_file), epochs=1)
    assert models_repo.list_versions(project.db) == []
    # one annotator: the consensus is that annotator's labels (review service rule)
    version = training.train(project.db, "consensus", preset=str(project.preset_file), epochs=1)
    assert version.target == "consensus" and version.card["n_training_slices"] == 32
    # a second annotator who disagrees everywhere: no consensus label until a reviewer decides
    other = people.add_rater(project.db, "expert2", Role.ANNOTATOR)
    items = [(m.image_id, other.id, m.x_px, m.y_px, 3 - int(m.grade or 0))
             for m in reader_service.marks(project.db, TARGET).values()]
    labels.add_versions_bulk(project.db, items, scale_code="lee", action="set")
    with pytest.raises(InputError, match="consensus has 0 slices"):
        training.train(project.db, "consensus", preset=str(project.preset_file), epochs=1)


def test_paper_preset_runs_end_to_end(project: Project, tmp_path: Path) -> None:
    """Faster R-CNN + VGG-11-BN on tiny inputs: trains, registers, reloads and predicts."""
    paper = tiny_preset_dict("paper", localizer={"mm_per_px": 4.0, "batch_size": 4},
                             classifier={"batch_size": 8})
    path = tmp_path / "tiny-paper.json"
    path.write_text(json.dumps(paper), encoding="utf-8")
    version = training.train(project.db, TARGET, preset=str(path), epochs=1, seed=0)
    assert version.card["hyper_parameters"]["localizer"]["arch"] == "fasterrcnn_mobilenet_v3_large_fpn"
    assert version.card["hyper_parameters"]["classifier"]["arch"] == "vgg11_bn"
    _, n, _ = training.predict(project.db, version.id)
    preds = models_repo.predictions(project.db, version.id)
    assert n == len(catalog.images(project.db)) == len(preds)
    for p in preds:
        assert p.x_px is not None and p.y_px is not None and p.grade in (0, 1, 2, 3)
