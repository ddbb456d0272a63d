"""``cv --jobs``: folds trained in child processes give the sequential run's weights and predictions
byte for byte on the CPU; a stop or a failed fold stops every child and publishes nothing."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from annotator.domain.errors import Cancelled, FoldFailed
from annotator.domain.events import EpochEnded, Event, FoldEnded
from annotator.services import training
from annotator.storage import models_repo
from tests.ml.ml_helpers import RATER, Project

TARGET = f"rater:{RATER}"


def _cv(project: Project, jobs: int, **kwargs: Any) -> Any:
    kwargs.setdefault("epochs", 1)
    return training.cross_validate(project.db, TARGET, n_folds=3, preset=str(project.preset_file), seed=4,
                                   device="cpu", jobs=jobs, **kwargs)


def _weights(version: Any) -> dict[str, bytes]:
    from safetensors.torch import load_file

    return {k: v.numpy().tobytes() for k, v in load_file(version.weights_path).items()}


def _oof(project: Project, version: Any) -> list[tuple[object, ...]]:
    return sorted((p.image_id, p.x_px, p.y_px, p.grade, p.probabilities, p.fold)
                  for p in models_repo.predictions(project.db, version.id))


def test_two_jobs_give_the_sequential_weights_and_predictions(project: Project) -> None:
    events: list[Event] = []
    one = _cv(project, 1)
    two = _cv(project, 2, on_event=events.append)
    a, b = _weights(one), _weights(two)
    assert sorted(a) == sorted(b) and {k.split(".")[0] for k in a} == {"fold0", "fold1", "fold2"}
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    assert _oof(project, one) == _oof(project, two) and len(_oof(project, two)) == 32
    assert one.card["metrics"] == two.card["metrics"] and two.card["jobs"] == 2
    # the children's epoch events reach the parent with their fold; each fold ends after its epochs
    assert {e.fold for e in events if isinstance(e, EpochEnded)} == {0, 1, 2}
    ended = [e for e in events if isinstance(e, FoldEnded)]
    assert sorted(e.fold for e in ended) == [0, 1, 2]
    for e in ended:
        assert max(i for i, x in enumerate(events) if isinstance(x, EpochEnded) and x.fold == e.fold) \
            < events.index(e)


def test_a_stop_ends_every_child_and_publishes_nothing(project: Project) -> None:
    events: list[Event] = []
    with pytest.raises(Cancelled, match="nothing was saved"):
        _cv(project, 2, on_event=events.append, should_stop=lambda: any(isinstance(e, EpochEnded) for e in events))
    assert models_repo.list_versions(project.db) == []
    assert not project.registry.exists() or list(project.registry.iterdir()) == []
    assert multiprocessing.active_children() == []  # the pool is terminated: no child left running


def test_a_failed_fold_fails_the_run_naming_it_and_publishes_nothing(project: Project,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One patient's slice points at a missing file: the child that predicts its fold fails."""
    real = training.load_training_set
    broken: dict[str, str] = {}

    def load(*args: Any, **kwargs: Any) -> training.TrainingSet:
        data = real(*args, **kwargs)
        im = data.images[data.examples[0].key]
        broken["patient"] = im.patient_key
        data.images[im.id] = dataclasses.replace(im, path=str(Path(im.path).with_name("missing.dcm")))
        return data

    monkeypatch.setattr(training, "load_training_set", load)
    with pytest.raises(FoldFailed, match=r"fold \d failed: .*missing\.dcm.*nothing was saved") as err:
        _cv(project, 2)
    fold = models_repo.folds(project.db, 3)[broken["patient"]]
    assert f"fold {fold} failed" in str(err.value)
    assert models_repo.list_versions(project.db) == []
    assert multiprocessing.active_children() == []


def test_a_child_that_dies_fails_the_run_and_publishes_nothing(project: Project) -> None:
    """A child killed mid-fold (out of memory, say) does not hang the run: it fails, naming a fold."""
    killed: list[int] = []

    def on_event(e: Event) -> None:
        if isinstance(e, EpochEnded) and not killed:
            child = multiprocessing.active_children()[0]
            killed.append(child.pid or 0)
            os.kill(child.pid or 0, signal.SIGKILL)

    with pytest.raises(FoldFailed, match=r"fold \d failed: BrokenProcessPool.*nothing was saved"):
        _cv(project, 2, on_event=on_event, epochs=30)
    assert killed and models_repo.list_versions(project.db) == []
    assert multiprocessing.active_children() == []


def test_default_jobs_one_per_gpu_else_cores_over_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from annotator.ml import registry
    from annotator.services import cv_folds

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(registry, "cuda_device_count", lambda: 0)
    assert [cv_folds.default_jobs(d, t) for d, t in [("auto", 1), ("cpu", 2), ("cpu", 16)]] == [8, 4, 1]
    monkeypatch.setattr(registry, "cuda_device_count", lambda: 4)
    assert [cv_folds.default_jobs(d, 1) for d in ("auto", "cuda", "cuda:2", "cpu")] == [4, 4, 1, 8]
    assert cv_folds._fold_devices("auto", 3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert cv_folds._fold_devices("cuda:1", 2) == ["cuda:1", "cuda:1"]
