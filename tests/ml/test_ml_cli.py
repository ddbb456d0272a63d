"""The ML commands as the GUI runs them: a child process with --json-progress, stopped by SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from annotator.domain.entities import ModelKind, Role
from annotator.domain.events import (
    Done,
    EpochEnded,
    Failed,
    ModelActivated,
    ModelSaved,
    PredictionsWritten,
    decode,
)
from annotator.storage import audit, catalog, models_repo, people
from tests.ml.ml_helpers import RATER, Project, cli_env


def _cmd(project: Project, *args: str) -> list[str]:
    return [sys.executable, "-m", "annotator", "--db", project.url, *args]


def test_train_json_progress_then_models_and_predict(project: Project) -> None:
    proc = subprocess.run(_cmd(project, "train", "--target", f"rater:{RATER}", "--preset", str(project.preset_file),
                               "--epochs", "2", "--seed", "3", "--json-progress"),
                          capture_output=True, text=True, timeout=120, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is one JSON object
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e in epochs:
        assert {"fold", "epoch", "epochs", "loss", "val_accuracy"} <= set(e) and e["epochs"] == 2
        assert e["fold"] is None and e["val_accuracy"] is None and e["loss"] > 0
    done = events[-1]
    assert done["event"] == "done"
    model_id = done["model_id"]
    typed = [decode(line) for line in proc.stdout.splitlines()]  # the GUI's reader takes every line
    assert [e.epoch for e in typed if isinstance(e, EpochEnded)] == [1, 2]
    assert typed[-1] == Done(model_id, typed[-1].name, ModelKind.TRAIN, False)  # type: ignore[union-attr]
    assert not any(isinstance(e, (PredictionsWritten, ModelActivated)) for e in typed)  # no --activate

    listing = subprocess.run(_cmd(project, "models", "list", "--json"), capture_output=True, text=True,
                             timeout=60, env=cli_env())
    rows = json.loads(listing.stdout)
    assert [(r["id"], r["kind"], r["target"], r["active"]) for r in rows] == [(model_id, "train", f"rater:{RATER}",
                                                                                False)]
    act = subprocess.run(_cmd(project, "models", "activate", str(model_id)), capture_output=True, text=True,
                         timeout=60, env=cli_env())
    assert act.returncode == 0 and f"model {model_id}" in act.stdout
    pred = subprocess.run(_cmd(project, "predict"), capture_output=True, text=True, timeout=120, env=cli_env())
    assert pred.returncode == 0, pred.stderr
    assert "wrote 32 predictions" in pred.stdout
    assert {p.model_version_id for p in models_repo.predictions(project.db, model_id)} == {model_id}


def test_train_activate_is_one_command_that_predicts_then_activates(project: Project) -> None:
    rev = people.add_rater(project.db, "rev", Role.REVIEWER)
    proc = subprocess.run(_cmd(project, "train", "--target", f"rater:{RATER}", "--preset", str(project.preset_file),
                               "--epochs", "1", "--activate", "--as", "rev", "--json-progress"),
                          capture_output=True, text=True, timeout=120, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    events = [decode(line) for line in proc.stdout.splitlines()]
    [saved] = [e for e in events if isinstance(e, ModelSaved)]
    model_id, n = saved.model_id, len(catalog.images(project.db))
    assert [e for e in events if isinstance(e, (ModelSaved, PredictionsWritten, ModelActivated, Done))] == [
        saved, PredictionsWritten(model_id, n, 0), ModelActivated(model_id),
        Done(model_id, saved.name, ModelKind.TRAIN, True)]
    assert models_repo.active(project.db).id == model_id  # type: ignore[union-attr]
    assert len(models_repo.predictions(project.db, model_id)) == n
    activations = [e for e in audit.entries(project.db, entity="model_version") if e.action == "model.activate"]
    assert [(e.entity_id, e.rater_id) for e in activations] == [(str(model_id), rev.id)]
    # without --json-progress the same command says so in one line
    proc = subprocess.run(_cmd(project, "train", "--target", f"rater:{RATER}", "--preset", str(project.preset_file),
                               "--epochs", "1", "--activate"), capture_output=True, text=True, timeout=120,
                          env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("predicted every slice, active")
    assert models_repo.active(project.db).id == model_id + 1  # type: ignore[union-attr]


def test_sigterm_cancels_cleanly(project: Project) -> None:
    """SIGTERM mid-training: non-zero exit with one clear line, no model row, no folder, no temp files."""
    proc = subprocess.Popen(_cmd(project, "train", "--target", f"rater:{RATER}", "--preset", str(project.preset_file),
                                 "--epochs", "500", "--json-progress"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line or json.loads(line)["event"] == "epoch":
            break
    assert line and json.loads(line)["event"] == "epoch", "training never reported an epoch"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "annotator: error: training cancelled; nothing was saved" in err
    assert '"done"' not in out
    assert decode(out.strip().splitlines()[-1]) == Failed("training cancelled; nothing was saved", cancelled=True)
    assert models_repo.list_versions(project.db) == []
    registry = project.registry
    assert not registry.exists() or list(registry.iterdir()) == []


def test_cv_jobs_runs_folds_in_children_and_sigterm_stops_them_all(project: Project) -> None:
    """`cv --jobs 2`: the children's epochs reach --json-progress with their fold; one cv model. Then a
    SIGTERM mid-way: every child stops, nothing is published."""
    base = ["cv", "--target", f"rater:{RATER}", "--preset", str(project.preset_file), "--folds", "2", "--jobs", "2",
            "--json-progress"]
    proc = subprocess.run(_cmd(project, *base, "--epochs", "1"), capture_output=True, text=True, timeout=120,
                          env=cli_env())
    assert proc.returncode == 0, proc.stderr
    typed = [decode(line) for line in proc.stdout.splitlines()]
    assert {e.fold for e in typed if isinstance(e, EpochEnded)} == {0, 1}
    done = typed[-1]
    assert isinstance(done, Done) and done.kind == ModelKind.CV
    [version] = models_repo.list_versions(project.db)
    assert version.card["jobs"] == 2 and len(models_repo.predictions(project.db, version.id)) == 32

    live = subprocess.Popen(_cmd(project, *base, "--epochs", "500"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env())
    assert live.stdout is not None
    deadline = time.monotonic() + 120
    line = ""
    while time.monotonic() < deadline:
        line = live.stdout.readline()
        if not line or json.loads(line)["event"] == "epoch":
            break
    assert line and json.loads(line)["event"] == "epoch", "cv never reported an epoch"
    live.send_signal(signal.SIGTERM)
    out, err = live.communicate(timeout=60)
    assert live.returncode == 1, (out, err)
    assert "annotator: error: cross-validation cancelled; nothing was saved" in err
    assert models_repo.list_versions(project.db) == [version]


def test_cli_errors_are_one_line(project: Project) -> None:
    proc = subprocess.run(_cmd(project, "predict"), capture_output=True, text=True, timeout=60, env=cli_env())
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "no model is active" in proc.stderr
    proc = subprocess.run(_cmd(project, "train", "--target", "rater:nobody", "--preset", "nonexistent"),
                          capture_output=True, text=True, timeout=60, env=cli_env())
    assert proc.returncode == 1 and "preset 'nonexistent' is unknown" in proc.stderr


def test_train_as_an_unknown_rater_is_one_clear_line_and_publishes_nothing(project: Project) -> None:
    proc = subprocess.run(_cmd(project, "train", "--target", f"rater:{RATER}", "--as", "nobody", "--epochs", "1"),
                          capture_output=True, text=True, timeout=120, env=cli_env())
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "annotator: error: rater 'nobody' does not exist " \
                                                   "(see `annotator raters list`)"
    assert models_repo.list_versions(project.db) == []


def test_train_as_an_annotator_is_refused_by_the_policy(project: Project) -> None:
    """`--as NAME` is who starts the run; the rule book says annotators do not train."""
    people.add_rater(project.db, "ann", Role.ANNOTATOR)
    proc = subprocess.run(_cmd(project, "train", "--target", f"rater:{RATER}", "--as", "ann", "--epochs", "1"),
                          capture_output=True, text=True, timeout=120, env=cli_env())
    assert proc.returncode != 0
    assert "ann is an annotator and cannot train and activate models" in proc.stderr
    assert models_repo.list_versions(project.db) == []


def test_models_activate_as_an_annotator_is_refused(project: Project) -> None:
    people.add_rater(project.db, "ann", Role.ANNOTATOR)
    trained = subprocess.run(_cmd(project, "train", "--target", f"rater:{RATER}", "--preset", str(project.preset_file),
                                  "--epochs", "1"), capture_output=True, text=True, timeout=120, env=cli_env())
    assert trained.returncode == 0, trained.stderr
    [version] = models_repo.list_versions(project.db)
    refused = subprocess.run(_cmd(project, "models", "activate", str(version.id), "--as", "ann"),
                             capture_output=True, text=True, timeout=120, env=cli_env())
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("annotator: error: ann is an annotator and cannot train and activate models: "
                                      "only admins and reviewers may")
    assert not models_repo.get(project.db, version.id).active


def test_models_activate_predict_predicts_then_activates_as_the_rater_named(project: Project) -> None:
    """`models activate ID --predict`: the training panel's one child for an older version without
    predictions. `--as` an annotator is refused before anything is predicted."""
    rev = people.add_rater(project.db, "rev", Role.REVIEWER)
    people.add_rater(project.db, "ann", Role.ANNOTATOR)
    trained = subprocess.run(_cmd(project, "train", "--target", f"rater:{RATER}", "--preset", str(project.preset_file),
                                  "--epochs", "1"), capture_output=True, text=True, timeout=120, env=cli_env())
    assert trained.returncode == 0, trained.stderr
    [version] = models_repo.list_versions(project.db)
    assert models_repo.predictions(project.db, version.id) == []

    refused = subprocess.run(_cmd(project, "models", "activate", str(version.id), "--predict", "--as", "ann"),
                             capture_output=True, text=True, timeout=120, env=cli_env())
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("annotator: error: ann is an annotator and cannot train and activate models: "
                                      "only admins and reviewers may")
    assert not models_repo.get(project.db, version.id).active
    assert models_repo.predictions(project.db, version.id) == []

    proc = subprocess.run(_cmd(project, "models", "activate", str(version.id), "--predict", "--json-progress",
                               "--as", "rev"), capture_output=True, text=True, timeout=120, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    events = [decode(line) for line in proc.stdout.splitlines()]
    n = len(catalog.images(project.db))
    assert [e for e in events if isinstance(e, (PredictionsWritten, ModelActivated, Done))] == [
        PredictionsWritten(version.id, n, 0), ModelActivated(version.id),
        Done(version.id, version.name, ModelKind.TRAIN, True)]
    assert models_repo.active(project.db).id == version.id  # type: ignore[union-attr]
    assert models_repo.prediction_count(project.db, version.id) == n
    activations = [e for e in audit.entries(project.db, entity="model_version") if e.action == "model.activate"]
    assert [(e.entity_id, e.rater_id) for e in activations] == [(str(version.id), rev.id)]
