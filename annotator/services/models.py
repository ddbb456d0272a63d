"""Use cases around trained models: where their files live, publishing, listing, activating, loading.

Model files live in one registry folder per project (``AppSettings.models_dir``, carried by the open
database); the database holds one row per model version with the path and SHA-256 of its weights. A
version appears in the database only after its folder is complete on disk, and a folder whose
registration fails is removed again, so the two never disagree.

Shared by the team: on PostgreSQL the weights file's bytes are also stored in the database, in the
transaction that registers the version, so a model trained on one workstation loads on every other.
Where the registered file is not on this machine (another workstation trained it, or the project was
copied with ``annotator db copy``), :func:`local_weights` writes the stored bytes into
``<models_dir>/cache/<SHA-256>.safetensors``, checks their SHA-256 against the registered one and
refuses a mismatch; a cached file is checked again on every load. ``annotator.ml`` (torch) is imported
inside functions only: importing this module stays cheap for the GUI.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotator.domain.entities import ModelKind, ModelVersion, Rater
from annotator.domain.errors import InputError, ModelIntegrityError, NotFound
from annotator.domain.policy import Action
from annotator.services.project import policy
from annotator.storage import models_repo
from annotator.storage.database import Database

if TYPE_CHECKING:
    from annotator.ml.engine import Pipeline

CARD_TEMPLATE = "model_card.md"
CACHE_DIR = "cache"  # in the models folder: weights read from the database, by SHA-256


def model_name(preset: str, kind: ModelKind, target: str, now: datetime) -> str:
    """A unique, file-system-safe folder name that says what the model is."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", target).strip("-")[:40] or "target"
    return f"{now:%Y%m%dT%H%M%SZ}-{preset}-{kind}-{slug}-{uuid.uuid4().hex[:6]}"


def render_card(card: dict[str, Any]) -> str:
    """The human-readable model card (Markdown) from the packaged template and the JSON card."""
    template = (resources.files("annotator.resources") / "models" / CARD_TEMPLATE).read_text(encoding="utf-8")
    metrics = card.get("metrics") or {}
    folds = card.get("folds") or {}
    values = {
        "name": card.get("name", ""), "kind": card.get("kind", ""), "preset": card.get("preset", ""),
        "target": card.get("target", ""), "created_at": card.get("created_at", ""),
        "seed": card.get("seed", ""), "epochs": card.get("epochs", ""),
        "device": card.get("device", "not recorded"),
        "mixed_precision": card.get("mixed_precision", "not recorded"),
        "distributed": _distributed_line(card.get("distributed")),
        "n_slices": card.get("n_training_slices", ""), "n_patients": card.get("n_patients", ""),
        "scale": card.get("scale_code", ""), "classes": card.get("class_ordinals", ""),
        "snapshot": card.get("data_snapshot_sha256", ""), "weights_sha256": card.get("weights_sha256", ""),
        "n_folds": folds.get("n_folds", "none"),
        "libraries": ", ".join(f"{k} {v}" for k, v in (card.get("library_versions") or {}).items()),
        "pooled": _metric_line(metrics.get("pooled", {})),
        "per_fold": "\n".join(f"| {i} | {_metric_line(m)} |" for i, m in enumerate(metrics.get("per_fold", [])))
        or "| - | not cross-validated |",
        "description": card.get("hyper_parameters", {}).get("description", ""),
    }
    return string.Template(template).safe_substitute(values)


def _distributed_line(d: dict[str, Any] | None) -> str:
    if not d:
        return "one"
    return (f"{d.get('world_size')} data-parallel ranks ({d.get('backend')}, batch per rank "
            f"{d.get('batch_size_per_rank')}, synchronised batch norm: {d.get('sync_batch_norm')})")


def _metric_line(m: dict[str, Any]) -> str:
    g, p = m.get("grades", {}), m.get("points", {})
    if not g and not p:
        return "n/a"
    return (f"accuracy {g.get('accuracy', 'n/a')}, F1 macro {g.get('f1_macro', 'n/a')}, "
            f"F1 weighted {g.get('f1_weighted', 'n/a')}, centre error median {p.get('median_mm', 'n/a')} mm, "
            f"95th pct {p.get('p95_mm', 'n/a')} mm (n={g.get('n', 0)})")


@dataclass(frozen=True, slots=True)
class Published:
    version: ModelVersion
    folder: Path


def publish(db: Database, *, tensors: dict[str, Any], card: dict[str, Any], kind: ModelKind,
            actor_id: int | None = None) -> Published:
    """Write weights + card atomically into the registry, then register the version in the database."""
    from annotator.ml import registry

    now = datetime.now(UTC)
    name = model_name(str(card["preset"]), kind, str(card["target"]), now)
    card = {**card, "kind": str(kind), "created_at": now.isoformat(timespec="seconds")}
    folder = db.settings.models_dir
    staged = registry.Staged(folder, name, tensors, card)
    try:
        (staged.temp / "card.md").write_text(render_card(staged.card), encoding="utf-8")
        final = staged.publish()
    except BaseException:
        staged.discard()
        raise
    shared = db.dialect == "postgresql"  # every workstation of the team loads it from the database
    try:
        version = models_repo.register(db, name=name, preset=str(card["preset"]), target=str(card["target"]),
                                       kind=kind, weights_path=str(staged.weights_path),
                                       weights_sha256=staged.sha256, card=staged.card, actor_id=actor_id,
                                       weights_file=staged.weights_path if shared else None)
    except BaseException:
        registry.remove_published(final)
        raise
    return Published(version, final)


def list_models(db: Database) -> list[ModelVersion]:
    return models_repo.list_versions(db)


@dataclass(frozen=True, slots=True)
class ModelFigures:
    """How well a version agrees with its target, as the model table shows it.

    Out-of-fold (pooled) or held-out figures from the card; for a plain ``train`` model, which has none of
    its own, those of the cross-validation that estimates it (``estimated_by``), else ``train_accuracy``:
    its accuracy on its own training slices at the last epoch.
    """

    accuracy: float | None = None
    f1_macro: float | None = None
    median_mm: float | None = None
    p95_mm: float | None = None
    train_accuracy: float | None = None
    estimated_by: int | None = None  # id of the cross-validation the figures come from


def _card_figures(v: ModelVersion) -> ModelFigures:
    metrics = v.card.get("metrics") or {}
    block = metrics.get("pooled") or metrics.get("held_out") or {}
    grades, points = block.get("grades") or {}, block.get("points") or {}
    return ModelFigures(grades.get("accuracy"), grades.get("f1_macro"), points.get("median_mm"),
                        points.get("p95_mm"), metrics.get("last_epoch_train_accuracy"))


def estimating_cv(version: ModelVersion, versions: Sequence[ModelVersion]) -> ModelVersion | None:
    """The cross-validation whose out-of-fold figures estimate how ``version`` generalises: the newest
    ``cv`` version of the same recipe (target, preset, hyper-parameters and epochs) on the same data
    snapshot. None if there is none, or if ``version`` has no data snapshot to compare."""
    snap = version.card.get("data_snapshot_sha256")
    if not snap:
        return None
    same = [c for c in versions if c.kind is ModelKind.CV and c.id != version.id and c.target == version.target
            and c.preset == version.preset and c.card.get("data_snapshot_sha256") == snap
            and c.card.get("hyper_parameters") == version.card.get("hyper_parameters")
            and c.card.get("epochs") == version.card.get("epochs")]
    return max(same, key=lambda c: c.id) if same else None


def figures(version: ModelVersion, versions: Sequence[ModelVersion]) -> ModelFigures:
    """``version``'s own figures, or, when it has no accuracy of its own, its estimating cross-validation's
    (``versions``: the registry, in which to look for one)."""
    own = _card_figures(version)
    if own.accuracy is None:
        cv = estimating_cv(version, versions)
        if cv is not None:
            return replace(_card_figures(cv), train_accuracy=None, estimated_by=cv.id)
    return own


def get_model(db: Database, model_id: int | None) -> ModelVersion:
    """Model ``model_id``, or the active model when None."""
    if model_id is not None:
        return models_repo.get(db, model_id)
    active = models_repo.active(db)
    if active is None:
        raise NotFound("no model is active: train one (`annotator train`) and activate it "
                       "(`annotator models activate ID`), or pass --model ID")
    return active


def activate(db: Database, model_id: int, actor: Rater | None = None) -> ModelVersion:
    """Make a trained model the one whose suggestions annotators may see (a cv model cannot be).

    ``actor``: the rater acting, who needs the right to train and activate (PermissionDenied otherwise),
    audited as such; None: whoever holds the database (a script), as its owner."""
    if actor is not None:
        policy(db, actor).require(Action.TRAIN)
    version = models_repo.get(db, model_id)
    if version.kind is not ModelKind.TRAIN:
        raise InputError(f"model {model_id} is a {version.kind} model (out-of-fold predictions only); "
                         "activate a model made by `annotator train`")
    check_files(db, version)
    return models_repo.activate(db, model_id, None if actor is None else actor.id)


def has_predictions(db: Database, model_id: int) -> bool:
    """Has model ``model_id`` written any prediction (one count, no prediction read)?"""
    return models_repo.prediction_count(db, model_id) > 0


def check_files(db: Database, version: ModelVersion) -> Path:
    """The local weights file of ``version``, checked (see :func:`local_weights`); ModelIntegrityError
    when there is none to be had.

    Hashes with hashlib rather than through ``annotator.ml.registry`` (which imports torch): the GUI
    activates models through this function and must never load torch."""
    return local_weights(db, version)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cached_weights_path(db: Database, version: ModelVersion) -> Path:
    """Where this workstation keeps a copy of weights it read from the database (named by their hash)."""
    return db.settings.models_dir / CACHE_DIR / f"{version.weights_sha256}.safetensors"


def local_weights(db: Database, version: ModelVersion) -> Path:
    """A file on this machine holding ``version``'s weights whose SHA-256 matches the registered one.

    The registered file if it is here and intact; else the cached copy if intact; else the bytes stored
    in the database, written to the cache, hashed on the way and refused (nothing kept) on a mismatch.
    """
    path = Path(version.weights_path)
    here = path.is_file()
    if here and _sha256(path) == version.weights_sha256:
        return path
    cached = cached_weights_path(db, version)
    if cached.is_file() and _sha256(cached) == version.weights_sha256:
        return cached
    if not models_repo.has_weights(db, version.id):
        if here:
            raise ModelIntegrityError(f"model {version.id}: weights file {path} has SHA-256 {_sha256(path)}, "
                                      f"registered {version.weights_sha256}, and the database holds no copy")
        raise ModelIntegrityError(f"model {version.id}: weights file {path} is missing on this computer and the "
                                  "database holds no copy (it was trained on another computer of a SQLite "
                                  "project: copy its folder here, or share the project on PostgreSQL)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    temp = cached.with_name(f".tmp-{uuid.uuid4().hex}-{cached.name}")
    digest = hashlib.sha256()
    try:
        with open(temp, "wb") as fh:
            def sink(block: bytes) -> None:
                digest.update(block)
                fh.write(block)

            models_repo.read_weights(db, version.id, sink)
            fh.flush()
            os.fsync(fh.fileno())
        if digest.hexdigest() != version.weights_sha256:
            raise ModelIntegrityError(
                f"model {version.id}: the weights stored in the database have SHA-256 {digest.hexdigest()}, "
                f"registered {version.weights_sha256}: they were changed or damaged, and are not loaded")
        os.replace(temp, cached)
    finally:
        temp.unlink(missing_ok=True)
    return cached


def load_pipeline(db: Database, version: ModelVersion, fold: int | None = None) -> Pipeline:
    """The version's pipeline with its weights, after checking their SHA-256 (never unpickles); from the
    database where this computer has no file of them (:func:`local_weights`)."""
    from annotator.ml import registry
    from annotator.ml.config import Preset
    from annotator.ml.engine import Pipeline

    card = version.card
    try:
        preset = Preset.from_dict(card["hyper_parameters"], f"model {version.id} card")
        n_classes = int(card["n_classes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelIntegrityError(f"model {version.id}: the card is malformed ({exc})") from None
    tensors = registry.load_weights(local_weights(db, version), version.weights_sha256)
    pipeline = Pipeline(preset, n_classes)
    pipeline.load_tensors(tensors, prefix="" if fold is None else f"fold{fold}.")
    return pipeline
