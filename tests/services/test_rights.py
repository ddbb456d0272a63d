"""Services that act ask the rule book: an acting annotator is refused (naming the act), the right role is
allowed and audited, and without an acting rater a script acts as the database's owner."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from annotator.domain.entities import ModelKind, Rater, Role
from annotator.domain.errors import PermissionDenied
from annotator.services import auth, labelsets, training
from annotator.services import models as model_service
from annotator.services import project as project_service
from annotator.services.labelling import LabelService
from annotator.storage import audit, catalog, models_repo, people
from annotator.storage.database import Database
from tests.factories import instance

TRAIN = "ann is an annotator and cannot train and activate models: only admins and reviewers may"


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    catalog.import_instances(sqlite_db, [instance(i) for i in range(3)])
    return sqlite_db


@pytest.fixture
def raters(db: Database) -> dict[str, Rater]:
    return {name: people.add_rater(db, name, role) for name, role in
            (("ann", Role.ANNOTATOR), ("rev", Role.REVIEWER), ("boss", Role.ADMIN))}


def _model(db: Database, folder: Path) -> int:
    weights = folder / "w.safetensors"
    weights.write_bytes(b"weights")
    return models_repo.register(db, name="m", preset="fast", target="rater:ann", kind=ModelKind.TRAIN,
                                weights_path=str(weights), weights_sha256=hashlib.sha256(b"weights").hexdigest(),
                                card={}).id


def _actors(db: Database, action: str) -> list[int | None]:
    return [e.rater_id for e in audit.entries(db) if e.action == action]


def test_activating_a_model_needs_the_right_to_train(db: Database, raters: dict[str, Rater], tmp_path: Path) -> None:
    model_id = _model(db, tmp_path)
    with pytest.raises(PermissionDenied, match=TRAIN):
        model_service.activate(db, model_id, actor=raters["ann"])
    assert not models_repo.get(db, model_id).active
    assert model_service.activate(db, model_id, actor=raters["rev"]).active
    assert _actors(db, "model.activate") == [raters["rev"].id]
    assert model_service.activate(db, model_id).active  # a script: the database's owner


def test_training_runs_check_the_right_before_reading_anything(db: Database, raters: dict[str, Rater],
                                                               tmp_path: Path) -> None:
    """An annotator's train, cross-validation or activate-with-predictions is refused at once: the
    target here has no labels at all, which would be the error if anything were read."""
    model_id = _model(db, tmp_path)
    with pytest.raises(PermissionDenied, match=TRAIN):
        training.train(db, "rater:ann", actor=raters["ann"])
    with pytest.raises(PermissionDenied, match=TRAIN):
        training.cross_validate(db, "rater:ann", actor=raters["ann"])
    with pytest.raises(PermissionDenied, match=TRAIN):
        training.activate_model(db, model_id, predict=True, actor=raters["ann"])
    assert models_repo.list_versions(db) == [models_repo.get(db, model_id)]  # nothing new registered
    assert not models_repo.get(db, model_id).active and models_repo.prediction_count(db, model_id) == 0


def test_activate_model_with_every_slice_predicted_needs_no_network(db: Database, raters: dict[str, Rater],
                                                                    tmp_path: Path) -> None:
    """Nothing left to predict: the activation alone, in the events' order, audited as the reviewer; the
    weights are only hashed, never loaded (these bytes are no network: loading them would fail)."""
    from annotator.domain.entities import Prediction
    from annotator.domain.events import Done, ModelActivated, Phase, PhaseStarted, PredictionsWritten

    model_id = _model(db, tmp_path)
    models_repo.write_predictions(db, model_id, [Prediction(model_id, im.id, 30.0, 30.0, 1, None)
                                                 for im in catalog.images(db)])
    events: list[object] = []
    version = training.activate_model(db, model_id, predict=True, on_event=events.append, actor=raters["rev"])
    assert version.active
    assert events == [PredictionsWritten(model_id, 0, 0), PhaseStarted(Phase.ACTIVATE), ModelActivated(model_id),
                      Done(model_id, "m", ModelKind.TRAIN, True)]
    assert _actors(db, "model.activate") == [raters["rev"].id]


def test_exporting_label_sets_needs_the_right_to_export(db: Database, raters: dict[str, Rater],
                                                        tmp_path: Path) -> None:
    LabelService(db, raters["ann"]).set_label(catalog.images(db)[0].id, 30, 30, 1)
    out = tmp_path / "labels.csv"
    with pytest.raises(PermissionDenied, match="ann is an annotator and cannot export label sets: "
                                               "only admins and reviewers may"):
        labelsets.export(db, ["rater:ann"], out, actor=raters["ann"])
    assert not out.exists()
    assert labelsets.export(db, ["rater:ann"], out, actor=raters["rev"]) == 1
    assert labelsets.export(db, ["rater:ann"], out) == 1  # a script


def test_adding_raters_and_setting_passwords_is_for_admins(db: Database, raters: dict[str, Rater]) -> None:
    for who in ("ann", "rev"):
        with pytest.raises(PermissionDenied, match=f"{who} is an? \\w+ and cannot manage raters: only admins may"):
            project_service.add_rater(db, "eve", Role.ADMIN, actor=raters[who])
        with pytest.raises(PermissionDenied, match="cannot manage raters"):
            auth.set_password(db, raters["rev"], "a long password", actor=raters[who])
    assert "eve" not in [r.name for r in people.list_raters(db)]
    assert not people.rater_by_name(db, "rev").protected
    eve = project_service.add_rater(db, "eve", Role.ANNOTATOR, actor=raters["boss"])
    assert auth.set_password(db, raters["rev"], "a long password", actor=raters["boss"]).protected
    assert _actors(db, "rater.add")[-1] == raters["boss"].id and eve.role is Role.ANNOTATOR
    assert _actors(db, "rater.password") == [raters["boss"].id]
    assert project_service.add_rater(db, "scripted", Role.REVIEWER).role is Role.REVIEWER  # the owner


def test_the_cli_checks_as_and_acts_as_the_owner_without_it(db: Database, raters: dict[str, Rater], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from annotator.cli import main

    url = db.url
    out = tmp_path / "x.csv"
    assert main(["--db", url, "raters", "add", "eve", "--as", "rev"]) == 1
    assert "rev is a reviewer and cannot manage raters: only admins may" in capsys.readouterr().err
    assert main(["--db", url, "raters", "password", "rev", "--clear", "--as", "ann"]) == 1  # before any prompt
    assert "ann is an annotator and cannot manage raters" in capsys.readouterr().err
    assert main(["--db", url, "export", "--out", str(out), "--as", "ann"]) == 1
    assert "ann is an annotator and cannot export label sets" in capsys.readouterr().err and not out.exists()
    assert main(["--db", url, "raters", "add", "eve", "--as", "boss"]) == 0
    assert main(["--db", url, "raters", "add", "scripted"]) == 0  # no --as: the database's owner
    assert main(["--db", url, "export", "--out", str(out), "--as", "rev"]) == 0 and out.exists()
    assert [e.rater_id for e in audit.entries(db) if e.action == "rater.add"][-2:] == [raters["boss"].id, None]
