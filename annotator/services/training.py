"""Use cases: train a model on one reader's labels, cross-validate it by patient, predict every slice.

The service gathers what ``annotator.ml`` needs (pixels from the DICOM files, PixelSpacing, the
target's points and grades) and stores what comes back (a registered model version, predictions).
Training data are the slices where the target has both a point and a grade: the localizer learns the
points, the classifier the grades. torch is imported inside the functions only, so the GUI may import
this module and run training in a child process (``python -m annotator train ... --json-progress``).
Progress goes out as the typed events of :mod:`annotator.domain.events`; ``train(..., activate=True)``
is the whole train -> predict every slice -> activate workflow that the CLI and the app share.
``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) is resolved before anything is read, so a bad one
fails at once; the device used goes into the model card.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from annotator import __version__
from annotator.domain.entities import ImageRef, ModelKind, ModelVersion, Prediction, Rater
from annotator.domain.errors import Cancelled, InputError
from annotator.domain.events import (
    Done,
    Figures,
    FoldEnded,
    ModelActivated,
    ModelSaved,
    OnEvent,
    Phase,
    PhaseStarted,
    PredictionsWritten,
    StepProgress,
    no_event,
)
from annotator.domain.policy import Action
from annotator.domain.progress import ShouldStop, never_stop
from annotator.domain.readers import ReaderKind, ReaderMark, ReaderRef
from annotator.domain.scales import load_scale
from annotator.domain.studies import orientation_of
from annotator.imaging.dicom_io import as_monochrome2, load_slice
from annotator.services import cv_folds
from annotator.services import folds as fold_service
from annotator.services import models as model_service
from annotator.services import project as project_service
from annotator.services import readers as reader_service
from annotator.storage import catalog, models_repo, people
from annotator.storage.database import Database

if TYPE_CHECKING:
    from annotator.ml.config import Preset
    from annotator.ml.engine import EpochReport, Pipeline
    from annotator.ml.preprocess import Example
    from annotator.ml.runtime import Precision, Runtime

@dataclass(frozen=True, slots=True)
class TrainingSet:
    target: str
    examples: list[Example]
    images: dict[int, ImageRef]  # every slice of the project with PixelSpacing, by id
    class_ordinals: tuple[int, ...]
    scale_code: str
    snapshot_sha256: str
    skipped: int  # labelled slices left out (no PixelSpacing, grade off the scale, unreadable file)


def snapshot_hash(rows: Sequence[tuple[str, float, float, int]]) -> str:
    """SHA-256 over the sorted (SOPInstanceUID, x, y, grade) of the training labels."""
    h = hashlib.sha256()
    for sop, x, y, grade in sorted(rows):
        h.update(f"{sop},{x:.4f},{y:.4f},{grade}\n".encode())
    return h.hexdigest()


def resolve_preset(preset: str, epochs: int | None, threads: int | None = None) -> Preset:
    from annotator.ml.config import load_preset

    return load_preset(preset).with_epochs(epochs).with_threads(threads)


def resolve_device(device: str) -> tuple[Any, str]:
    """The torch device for ``--device`` (typed Any: no torch here) and how the model card names it;
    InputError if unusable."""
    from annotator.ml.device import describe_device, resolve_device

    dev = resolve_device(device)
    return dev, describe_device(dev)


def resolve_precision(precision: str, dev: Any) -> Precision:
    """``bf16`` or ``none`` for ``--precision auto|bf16|fp32`` on the torch device ``dev`` (what the model
    card records as ``mixed_precision``); InputError for bf16 where the device has none."""
    from annotator.ml.runtime import resolve_precision

    return resolve_precision(precision, dev)


def _target_marks(db: Database, target: str) -> dict[int, ReaderMark]:
    ref = ReaderRef.parse(target)
    if ref.kind is ReaderKind.MODEL:
        raise InputError(f"--target {target}: train on a rater's labels (rater:NAME) or the consensus")
    return reader_service.marks(db, ref)


def load_training_set(db: Database, target: str, preset: Preset, on_event: OnEvent = no_event,
                      should_stop: ShouldStop = never_stop) -> TrainingSet:
    """Read and prepare every slice the target labelled with a point and a grade."""
    from annotator.ml.preprocess import prepare_example

    marks = _target_marks(db, target)
    on_event(PhaseStarted(Phase.READ))
    scale_code = people.get_settings(db).scale_code
    ordinals = load_scale(scale_code).ordinals
    index = {o: i for i, o in enumerate(ordinals)}
    images = {im.id: im for im in catalog.images(db) if im.geometry.has_mm}
    todo = [m for m in marks.values() if m.grade is not None and m.x_px is not None and m.y_px is not None]
    examples: list[Example] = []
    rows: list[tuple[str, float, float, int]] = []
    skipped = 0
    for i, m in enumerate(sorted(todo, key=lambda m: m.image_id), start=1):
        if should_stop():
            raise Cancelled("training cancelled while reading images; nothing was saved")
        im = images.get(m.image_id)
        if im is None or m.grade not in index:
            skipped += 1
            continue
        assert m.x_px is not None and m.y_px is not None and m.grade is not None and im.geometry.pixel_spacing
        pixels = as_monochrome2(load_slice(im.path))  # models always see CSF bright
        examples.append(prepare_example(im.id, im.patient_key, pixels, im.geometry.pixel_spacing,
                                        (m.x_px, m.y_px), index[m.grade], preset))
        rows.append((im.sop_instance_uid, m.x_px, m.y_px, m.grade))
        if i % 25 == 0 or i == len(todo):
            on_event(StepProgress(Phase.READ, i, len(todo)))
    if len(examples) < 2:
        hint = (" (consensus = adjudicated decisions and unanimous labels of the required raters)"
                if target.strip() == "consensus" else "")
        raise InputError(f"{target} has {len(examples)} slices with a point and a grade (and PixelSpacing){hint}; "
                         "training needs at least 2")
    return TrainingSet(target, examples, images, ordinals, scale_code, snapshot_hash(rows), skipped)


def require_train(db: Database, actor: Rater | None) -> None:
    """The acting rater must have the right to train and activate; None acts as the database's owner."""
    if actor is not None:
        project_service.policy(db, actor).require(Action.TRAIN)


def _id(actor: Rater | None) -> int | None:
    return None if actor is None else actor.id


def _library_versions() -> dict[str, str]:
    from annotator.ml.registry import library_versions

    return {"annotator": __version__, "python": platform.python_version(), "platform": sys.platform,
            **library_versions()}


def _base_card(data: TrainingSet, preset: Preset, seed: int) -> dict[str, Any]:
    return {"schema": 1, "preset": preset.name, "target": data.target, "hyper_parameters": preset.to_dict(),
            "epochs": preset.train.epochs, "seed": seed, "n_classes": len(data.class_ordinals),
            "class_ordinals": list(data.class_ordinals), "scale_code": data.scale_code,
            "data_snapshot_sha256": data.snapshot_sha256, "n_training_slices": len(data.examples),
            "n_patients": len({e.patient for e in data.examples}), "skipped_slices": data.skipped,
            "plane": _training_plane([data.images[e.key] for e in data.examples if e.key in data.images]),
            "library_versions": _library_versions()}


PLANE_TOLERANCE_DEG = 30.0  # axial slices angled along the disc (often 10-20 degrees) still count as axial


def _training_plane(images: Sequence[ImageRef]) -> str | None:
    """The plane (axial, sagittal, coronal) most of the training slices lie in, or None if unknown. A
    model that learnt from axial slices says nothing useful about a sagittal image or a localizer."""
    planes = Counter(p for im in images
                     if (p := orientation_of(im.geometry.image_orientation, PLANE_TOLERANCE_DEG)) is not None)
    return planes.most_common(1)[0][0].value if planes else None


def _in_plane(image: ImageRef, plane: str | None) -> bool:
    """May a model trained in ``plane`` predict ``image``? Yes unless the image clearly lies in another
    plane (no orientation, or an oblique one, is given the benefit of the doubt)."""
    found = orientation_of(image.geometry.image_orientation, PLANE_TOLERANCE_DEG)
    return plane is None or found is None or found.value == plane


def train(db: Database, target: str, *, preset: str = "fast", epochs: int | None = None, seed: int = 0,
          threads: int | None = None, device: str = "auto", precision: str = "auto", predict_all: bool = False,
          activate: bool = False, on_event: OnEvent = no_event, should_stop: ShouldStop = never_stop,
          actor: Rater | None = None) -> ModelVersion:
    """Train one model on all of the target's labelled slices and register it (kind ``train``).

    ``precision``: ``auto`` trains with bf16 autocast on a CUDA GPU that supports it and in float32
    elsewhere (the CPU path is unchanged), ``fp32`` always in float32, ``bf16`` or an InputError.

    With ``predict_all``, then predict every slice with it. With ``activate``, predict every slice and
    then make it the active model, in that order, so the moment it is active its predictions are there.
    A stop or an error after registration leaves the registered model inactive; the Cancelled message
    says so. ``actor``: the rater starting the run, who needs the right to train (checked before anything
    is read) and is audited; None: the database's owner (a script).
    """
    require_train(db, actor)  # before torch is even imported
    from annotator.ml.engine import Pipeline
    from annotator.ml.runtime import Runtime

    dev, dev_name = resolve_device(device)
    mixed = resolve_precision(precision, dev)
    cfg = resolve_preset(preset, epochs, threads)
    data = load_training_set(db, target, cfg, on_event, should_stop)
    pipeline = Pipeline(cfg, len(data.class_ordinals), dev)
    fitted = fit_full(pipeline, data, seed, Runtime(dev, mixed), on_event, should_stop)
    card = trained_card(data, cfg, seed, fitted, dev_name, mixed)
    version = publish_trained(db, pipeline, card, actor, on_event)
    return finish_trained(db, version, pipeline, predict_all=predict_all, activate=activate, on_event=on_event,
                          should_stop=should_stop, actor=actor)


@dataclass(frozen=True, slots=True)
class Fitted:
    seconds: float
    last_train_accuracy: float | None


def fit_full(pipeline: Pipeline, data: TrainingSet, seed: int, runtime: Runtime, on_event: OnEvent,
             should_stop: ShouldStop) -> Fitted:
    """Fit ``pipeline`` on every example of ``data`` with ``runtime`` (precision; this rank's shard),
    reporting each epoch; Cancelled (nothing saved) on a stop."""
    t0 = time.perf_counter()
    last: list[EpochReport] = []

    def on_epoch(r: EpochReport) -> None:
        last[:] = [r]
        on_event(cv_folds.epoch_event(r))

    on_event(PhaseStarted(Phase.TRAIN))
    pipeline.fit(data.examples, seed=seed, on_epoch=on_epoch, should_stop=should_stop, runtime=runtime)
    if should_stop():
        raise Cancelled("training cancelled; nothing was saved")
    return Fitted(time.perf_counter() - t0, last[0].train_accuracy if last else None)


def trained_card(data: TrainingSet, cfg: Preset, seed: int, fitted: Fitted, dev_name: str,
                 mixed_precision: str) -> dict[str, Any]:
    card = _base_card(data, cfg, seed)
    card["training_seconds"] = round(fitted.seconds, 1)
    card["device"] = dev_name
    card["mixed_precision"] = mixed_precision
    card["folds"] = None
    card["metrics"] = {"held_out": None, "last_epoch_train_accuracy": None if fitted.last_train_accuracy is None
                       else round(fitted.last_train_accuracy, 4)}
    return card


def publish_trained(db: Database, pipeline: Pipeline, card: dict[str, Any], actor: Rater | None,
                    on_event: OnEvent) -> ModelVersion:
    published = model_service.publish(db, tensors=pipeline.state_tensors(), card=card, kind=ModelKind.TRAIN,
                                      actor_id=_id(actor))
    version = published.version
    on_event(ModelSaved(version.id, version.name, version.kind))
    return version


def finish_trained(db: Database, version: ModelVersion, pipeline: Pipeline, *, predict_all: bool, activate: bool,
                   on_event: OnEvent, should_stop: ShouldStop, actor: Rater | None) -> ModelVersion:
    """After a training is registered: predict every slice and activate, as asked; then ``Done``."""
    if predict_all or activate:
        try:
            _predict_all(db, version, pipeline, on_event, should_stop)
        except Cancelled:
            raise Cancelled(f"prediction cancelled; model {version.id} is saved but has no predictions and "
                            "is not active") from None
    if activate:
        if should_stop():
            raise Cancelled(f"cancelled before activation; model {version.id} is saved with its predictions "
                            "but is not active")
        version = _activate(db, version, actor, on_event)
    on_event(Done(version.id, version.name, version.kind, version.active))
    return version


def _unpredicted(db: Database, version: ModelVersion) -> tuple[list[ImageRef], int, int]:
    """The slices with PixelSpacing, in the plane the model learnt from, that have no prediction of
    ``version`` yet; how many without PixelSpacing (which no model can predict) have none either; and
    how many lie in another plane (a sagittal image or localizer for an axial model)."""
    done = {p.image_id for p in models_repo.predictions(db, version.id)}
    waiting = [im for im in catalog.images(db) if im.id not in done]
    plane = version.card.get("plane")
    todo = [im for im in waiting if im.geometry.has_mm and _in_plane(im, plane)]
    no_mm = sum(1 for im in waiting if not im.geometry.has_mm)
    return todo, no_mm, len(waiting) - len(todo) - no_mm


def _predict_all(db: Database, version: ModelVersion, pipeline: Pipeline, on_event: OnEvent,
                 should_stop: ShouldStop) -> tuple[int, int]:
    """Predict every slice with PixelSpacing that has no prediction of ``version`` yet, and store them.

    Returns (predictions written, slices skipped for lack of PixelSpacing).
    """
    todo, skipped, other_plane = _unpredicted(db, version)
    return _predict_images(db, version, pipeline, todo, skipped, other_plane, on_event, should_stop)


def _predict_images(db: Database, version: ModelVersion, pipeline: Pipeline, todo: Sequence[ImageRef],
                    skipped: int, other_plane: int, on_event: OnEvent, should_stop: ShouldStop) -> tuple[int, int]:
    ordinals = [int(o) for o in version.card["class_ordinals"]]
    preds = cv_folds.predictions(pipeline, todo, ordinals, None, on_event, should_stop)
    n = models_repo.write_predictions(db, version.id, [_with_model(p, version.id) for p in preds])
    on_event(PredictionsWritten(version.id, n, skipped, other_plane))
    return n, skipped


def predict(db: Database, model_id: int | None = None, *, device: str = "auto", on_event: OnEvent = no_event,
            should_stop: ShouldStop = never_stop) -> tuple[ModelVersion, int, int]:
    """Write the model's prediction for every slice that has none from it yet.

    Returns (model, predictions written, slices skipped for lack of PixelSpacing).
    """
    dev, _ = resolve_device(device)
    version = model_service.get_model(db, model_id)
    if version.kind is not ModelKind.TRAIN:
        raise InputError(f"model {version.id} is a {version.kind} model: its predictions are the out-of-fold "
                         "ones stored by `annotator cv`; predict with a model from `annotator train`")
    pipeline = model_service.load_pipeline(db, version).to(dev)  # weights are read to the CPU, then moved
    n, skipped = _predict_all(db, version, pipeline, on_event, should_stop)
    on_event(Done(version.id, version.name, version.kind, version.active))
    return version, n, skipped


def activate_model(db: Database, model_id: int, *, predict: bool = False, device: str = "auto",
                   on_event: OnEvent = no_event, should_stop: ShouldStop = never_stop,
                   actor: Rater | None = None) -> ModelVersion:
    """Make model ``model_id`` the active one; with ``predict``, first predict every slice it has no
    prediction for, so the moment it is active its predictions are there (the order of
    ``train(activate=True)``). torch is loaded only when some slice lacks a prediction.

    ``actor``: the rater doing it, who needs the right to train and activate (checked before anything
    is predicted) and is audited; None: the database's owner (a script). A stop before activation leaves
    the model inactive, with whatever predictions were written; the Cancelled message says so.
    """
    require_train(db, actor)
    version = model_service.get_model(db, model_id)
    if version.kind is not ModelKind.TRAIN:
        raise InputError(f"model {version.id} is a {version.kind} model (out-of-fold predictions only); "
                         "activate a model made by `annotator train`")
    if predict:
        todo, skipped, other_plane = _unpredicted(db, version)
        if todo:
            dev, _ = resolve_device(device)
            pipeline = model_service.load_pipeline(db, version).to(dev)
            try:
                _predict_images(db, version, pipeline, todo, skipped, other_plane, on_event, should_stop)
            except Cancelled:
                raise Cancelled(f"prediction cancelled; model {version.id} has no new predictions and is not "
                                "active") from None
        else:
            on_event(PredictionsWritten(version.id, 0, skipped, other_plane))
        if should_stop():
            raise Cancelled(f"cancelled before activation; model {version.id} has its predictions but is not "
                            "active")
    version = _activate(db, version, actor, on_event)
    on_event(Done(version.id, version.name, version.kind, version.active))
    return version


def _activate(db: Database, version: ModelVersion, actor: Rater | None, on_event: OnEvent) -> ModelVersion:
    """The last step of both workflows (train --activate, models activate --predict), with its events."""
    on_event(PhaseStarted(Phase.ACTIVATE))
    activated = model_service.activate(db, version.id, actor)
    on_event(ModelActivated(activated.id))
    return activated


def _with_model(p: Prediction, model_id: int) -> Prediction:
    return Prediction(model_id, p.image_id, p.x_px, p.y_px, p.grade, p.probabilities, p.fold)


def _figures(examples: Sequence[Example], preds: dict[int, Prediction], ordinals: Sequence[int]
             ) -> dict[str, Any]:
    from annotator.ml import metrics

    have = [e for e in examples if e.key in preds]
    ref = [int(ordinals[e.grade]) for e in have]
    got = [int(preds[e.key].grade or 0) for e in have]
    err = metrics.centre_errors_mm([e.point for e in have],
                                   [(preds[e.key].x_px or 0.0, preds[e.key].y_px or 0.0) for e in have],
                                   [e.spacing for e in have])
    return {"grades": metrics.grade_metrics(ref, got, ordinals), "points": metrics.point_metrics(err)}


def cross_validate(db: Database, target: str, *, n_folds: int | None = None, preset: str = "fast",
                   epochs: int | None = None, seed: int = 0, threads: int | None = None, device: str = "auto",
                   precision: str = "auto", jobs: int | None = 1, on_event: OnEvent = no_event,
                   should_stop: ShouldStop = never_stop, actor: Rater | None = None) -> ModelVersion:
    """Patient-level k-fold CV on the project's stored folds; one ``cv`` model holds every fold.

    Every slice of the held-out patients gets an out-of-fold prediction (with its fold), so the CV
    model is a reader (``model:ID``) for the agreement report; the card holds per-fold and pooled
    figures against the target. ``jobs``: folds trained at once, each in its own child process
    (:mod:`annotator.services.cv_folds`); 1 trains them one after another in this process; None: one per
    GPU, else the CPU cores over the preset's threads. On the CPU the weights and predictions do not
    depend on ``jobs``. ``precision`` as for ``train`` (every fold alike). Nothing is published unless
    every fold ends.
    """
    require_train(db, actor)  # before torch is even imported
    dev, dev_name = resolve_device(device)
    mixed = resolve_precision(precision, dev)
    n_folds = n_folds if n_folds is not None else people.get_settings(db).cv_folds
    if n_folds < 2:
        raise InputError(f"--folds must be >= 2, got {n_folds}")
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {jobs}")
    cfg = resolve_preset(preset, epochs, threads)
    jobs = jobs if jobs is not None else cv_folds.default_jobs(device, cfg.train.threads)
    data = load_training_set(db, target, cfg, on_event, should_stop)
    strata = _patient_strata(data.examples)
    assignment = fold_service.ensure_folds(db, n_folds, seed, strata)
    t0 = time.perf_counter()
    plane = _training_plane([data.images[e.key] for e in data.examples if e.key in data.images])
    fold_jobs: list[cv_folds.FoldJob] = []
    for k in range(n_folds):
        train = [e for e in data.examples if assignment[e.patient] != k]
        held = [e for e in data.examples if assignment[e.patient] == k]
        images = [im for im in data.images.values() if assignment.get(im.patient_key) == k and _in_plane(im, plane)]
        if not images:
            continue
        if len(train) < 2:
            raise InputError(f"fold {k}: fewer than 2 labelled training slices outside the fold")
        fold_jobs.append(cv_folds.FoldJob(k, cfg, len(data.class_ordinals), data.class_ordinals, seed + k, train,
                                          held, sorted(images, key=lambda im: im.id), mixed))
    held_of = {job.fold: job.held for job in fold_jobs}
    per_fold: dict[int, dict[str, Any]] = {k: {"fold": k, "grades": {"n": 0}, "points": {"n": 0}}
                                           for k in range(n_folds)}

    def fold_ended(r: cv_folds.FoldResult) -> None:
        n_train = len(data.examples) - len(held_of[r.fold])
        per_fold[r.fold] = {"fold": r.fold, "n_train": n_train,
                            **_figures(held_of[r.fold], {p.image_id: p for p in r.predictions}, data.class_ordinals)}
        on_event(FoldEnded(r.fold, n_folds, n_train, Figures.from_card(per_fold[r.fold])))

    if jobs > 1 and len(fold_jobs) > 1:
        results = cv_folds.run_parallel(fold_jobs, jobs, device, on_event, should_stop, fold_ended)
    else:
        results = []
        for job in fold_jobs:
            results.append(cv_folds.run_fold(job, dev, on_event, should_stop))
            fold_ended(results[-1])
    if should_stop():
        raise Cancelled("cross-validation cancelled; nothing was saved")
    tensors: dict[str, Any] = {}
    oof: list[Prediction] = []
    for r in sorted(results, key=lambda r: r.fold):
        tensors.update(r.tensors)
        oof.extend(r.predictions)
    card = _base_card(data, cfg, seed)
    card["training_seconds"] = round(time.perf_counter() - t0, 1)
    card["device"] = dev_name
    card["mixed_precision"] = mixed
    card["jobs"] = min(jobs, max(1, len(fold_jobs)))
    card["folds"] = {"n_folds": n_folds, "unit": "patient", "seed_per_fold": "seed + fold",
                     "assignment_sha256": hashlib.sha256(repr(sorted(assignment.items())).encode()).hexdigest(),
                     "patients_per_fold": [sum(1 for f in assignment.values() if f == k) for k in range(n_folds)]}
    card["metrics"] = {"pooled": _figures(data.examples, {p.image_id: p for p in oof}, data.class_ordinals),
                       "per_fold": [per_fold[k] for k in range(n_folds)]}
    published = model_service.publish(db, tensors=tensors, card=card, kind=ModelKind.CV, actor_id=_id(actor))
    version = published.version
    on_event(ModelSaved(version.id, version.name, version.kind))
    n = models_repo.write_predictions(db, version.id, [_with_model(p, version.id) for p in oof])
    on_event(PredictionsWritten(version.id, n, 0))
    on_event(Done(version.id, version.name, version.kind, version.active,
                  Figures.from_card(card["metrics"]["pooled"])))
    return version


def _patient_strata(examples: Sequence[Example]) -> dict[str, int]:
    """Each patient's most severe labelled grade: the stratum used when folds are first assigned."""
    out: dict[str, int] = {}
    for e in examples:
        out[e.patient] = max(out.get(e.patient, -1), e.grade)
    return out
