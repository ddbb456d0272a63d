"""Model-version rules of the service layer: the stored kind, and which cross-validation estimates a model."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

from annotator.domain.entities import ModelKind, ModelVersion
from annotator.services.models import ModelFigures, estimating_cv, figures
from annotator.storage import models_repo


def test_model_kind_is_an_enum_stored_as_the_same_strings(sqlite_db) -> None:  # type: ignore[no-untyped-def]
    trained = models_repo.register(sqlite_db, name="t", preset="fast", target="rater:a", kind=ModelKind.TRAIN,
                                   weights_path="/w", weights_sha256="0" * 64, card={})
    cv = models_repo.register(sqlite_db, name="c", preset="fast", target="rater:a", kind=ModelKind.CV,
                              weights_path="/w", weights_sha256="0" * 64, card={})
    assert trained.kind is ModelKind.TRAIN and cv.kind is ModelKind.CV
    assert [v.kind for v in models_repo.list_versions(sqlite_db)] == [ModelKind.TRAIN, ModelKind.CV]
    path = sqlite_db.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:  # the column still holds the strings older versions wrote
        stored = raw.execute("SELECT id, kind FROM model_versions ORDER BY id").fetchall()
    assert stored == [(trained.id, "train"), (cv.id, "cv")]
    assert {ModelKind(s) for _, s in stored} == {ModelKind.TRAIN, ModelKind.CV}


POOLED = {"grades": {"accuracy": 0.8, "f1_macro": 0.6, "n": 30}, "points": {"median_mm": 0.9, "p95_mm": 2.0}}
TRAINED = {"held_out": None, "last_epoch_train_accuracy": 0.97}
HYPER = {"train": {"epochs": 30}, "classifier": {"width": 16}}


def _version(i: int, kind: ModelKind, metrics: dict[str, Any], **card: Any) -> ModelVersion:
    target = card.pop("target", "rater:a")
    preset = card.pop("preset", "fast")
    full = {"data_snapshot_sha256": "s1", "epochs": 30, "hyper_parameters": HYPER, "metrics": metrics, **card}
    return ModelVersion(i, f"m{i}", preset, target, kind, datetime(2026, 11, 30, tzinfo=UTC), "/w", "0" * 64, full)


def test_a_trained_model_is_estimated_by_the_newest_cv_of_its_recipe_and_data() -> None:
    trained = _version(1, ModelKind.TRAIN, TRAINED)
    older, newer = _version(2, ModelKind.CV, {"pooled": POOLED}), _version(5, ModelKind.CV, {"pooled": POOLED})
    assert estimating_cv(trained, [trained, older, newer]) == newer
    assert estimating_cv(trained, [trained, older]) == older
    assert figures(trained, [trained, older, newer]) == ModelFigures(0.8, 0.6, 0.9, 2.0, None, estimated_by=5)


@pytest.mark.parametrize("differs", [
    {"target": "rater:b"}, {"preset": "paper"}, {"data_snapshot_sha256": "s2"}, {"epochs": 5},
    {"hyper_parameters": {**HYPER, "classifier": {"width": 32}}},
], ids=lambda d: next(iter(d)))
def test_a_cv_of_another_recipe_or_data_estimates_nothing(differs: dict[str, Any]) -> None:
    trained = _version(1, ModelKind.TRAIN, TRAINED)
    other = _version(2, ModelKind.CV, {"pooled": POOLED}, **differs)
    assert estimating_cv(trained, [trained, other]) is None
    # no estimate: the model shows its accuracy on its own training slices, nothing else
    assert figures(trained, [trained, other]) == ModelFigures(train_accuracy=0.97)


def test_only_a_cv_estimates_and_a_model_with_figures_of_its_own_keeps_them() -> None:
    trained = _version(1, ModelKind.TRAIN, TRAINED)
    another_train = _version(2, ModelKind.TRAIN, {"pooled": POOLED})  # same recipe, but not a cross-validation
    assert estimating_cv(trained, [trained, another_train]) is None
    held_out = {"held_out": {"grades": {"accuracy": 0.7, "f1_macro": 0.5}, "points": {"median_mm": 1.1}}}
    evaluated = _version(3, ModelKind.TRAIN, held_out)
    cv = _version(4, ModelKind.CV, {"pooled": POOLED})
    assert figures(evaluated, [evaluated, cv]) == ModelFigures(0.7, 0.5, 1.1, None)
    assert figures(cv, [trained, cv]) == ModelFigures(0.8, 0.6, 0.9, 2.0)  # a cv shows its own pooled figures


def test_without_a_data_snapshot_nothing_is_comparable() -> None:
    trained = _version(1, ModelKind.TRAIN, TRAINED, data_snapshot_sha256=None)
    cv = _version(2, ModelKind.CV, {"pooled": POOLED}, data_snapshot_sha256=None)
    assert estimating_cv(trained, [trained, cv]) is None
