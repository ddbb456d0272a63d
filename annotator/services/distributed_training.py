"""One large training spread over the processes of a ``torchrun`` launch (``annotator train --distributed``).

Every rank opens the project, reads the same training set (a check that the ranks' label snapshots
agree comes before any training), and trains its shard of each epoch's batches with
DistributedDataParallel (:mod:`annotator.ml.distributed`, :mod:`annotator.ml.runtime`). Only rank 0
reports progress, publishes the model and registers it; the other ranks wait at a barrier until it is
registered, then leave the group and return None (their command exits 0). Predicting every slice and
activating (``--predict``/``--activate``) are rank 0's alone, after the group is gone. On the CPU the
same seed and the same number of ranks give the same weights; the model card records the world size,
the backend and the per-rank batch sizes.
"""

from __future__ import annotations

from collections.abc import Mapping

from annotator.domain.entities import ModelVersion, Rater
from annotator.domain.events import OnEvent, no_event
from annotator.domain.progress import ShouldStop, never_stop
from annotator.services import training
from annotator.storage.database import Database


def train_distributed(db: Database, target: str, *, preset: str = "fast", epochs: int | None = None, seed: int = 0,
                      threads: int | None = None, device: str = "auto", precision: str = "auto",
                      predict_all: bool = False, activate: bool = False, on_event: OnEvent = no_event,
                      should_stop: ShouldStop = never_stop, actor: Rater | None = None,
                      env: Mapping[str, str] | None = None) -> ModelVersion | None:
    """``training.train`` as one rank of a torchrun launch (``env``: its environment, default os.environ).

    Returns the registered (and, as asked, predicted and activated) version on rank 0, None elsewhere.
    InputError before anything is read when the process was not started by torchrun.
    """
    training.require_train(db, actor)  # before torch is even imported
    from annotator.ml.device import describe_device
    from annotator.ml.distributed import process_group
    from annotator.ml.engine import Pipeline

    cfg = training.resolve_preset(preset, epochs, threads)
    with process_group(device, env) as group:
        emit = on_event if group.is_main else no_event
        mixed = training.resolve_precision(precision, group.device)
        data = training.load_training_set(db, target, cfg, emit, should_stop)
        group.require_same(data.snapshot_sha256, "training labels")
        pipeline = Pipeline(cfg, len(data.class_ordinals), group.device)
        runtime = group.runtime(seed, mixed)
        fitted = training.fit_full(pipeline, data, seed, runtime, emit, should_stop)
        version = None
        if group.is_main:
            card = training.trained_card(data, cfg, seed, fitted, describe_device(group.device), mixed)
            card["distributed"] = {
                "world_size": group.world_size, "backend": group.backend, "sampler": "DistributedSampler",
                "sync_batch_norm": runtime.sync_batch_norm, "augmentation_seed": "seed * world_size + rank",
                "batch_size_per_rank": {"localizer": runtime.batch_size(cfg.localizer.batch_size),
                                        "classifier": runtime.batch_size(cfg.classifier.batch_size)}}
            version = training.publish_trained(db, pipeline, card, actor, emit)
        group.barrier()  # the others leave only once the model is registered
    if version is None:
        return None
    return training.finish_trained(db, version, pipeline, predict_all=predict_all, activate=activate,
                                   on_event=emit, should_stop=should_stop, actor=actor)
