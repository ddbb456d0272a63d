"""Model-version rules of the service layer: the stored kind, and which cross-validation estimates a model."""

from __future__ import annotations

import sqlite3

from annotator.domain.entities import ModelKind
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
