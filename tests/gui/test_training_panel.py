"""The training panel: one real ``annotator train`` child process, cancel, activate, no torch in the GUI.

Training runs on the 3-slice fixture series with the real ``fast`` preset and a couple of epochs; most
of each child's few seconds is importing torch. Signals are waited on, never slept on.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox

from annotator.domain.entities import ModelKind, Prediction, Role
from annotator.domain.events import Done, EpochEnded, ModelSaved, Phase, StepProgress, encode
from annotator.gui.cli_process import CliProcess, LineBuffer
from annotator.gui.training_panel import NOT_ALLOWED, TrainingPanel
from annotator.services import models as model_service
from annotator.services import project as project_service
from annotator.services.labelling import LabelService
from annotator.services.worklist import WorklistService
from annotator.storage import audit, models_repo

ROOT = Path(__file__).resolve().parents[2]
RUN_MS = 90_000  # a generous ceiling: each child takes a few seconds (mostly importing torch)


@pytest.fixture(autouse=True)
def _project_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model files go next to the test's database (``<db>.models``), for the child and this process alike."""
    monkeypatch.delenv("ANNOTATOR_MODELS_DIR", raising=False)


def _label_all(project) -> list[int]:  # type: ignore[no-untyped-def]
    ids = [im.id for im in WorklistService(project.db, project.alice).series_images(1)]
    for image_id, grade in zip(ids, (0, 1, 3), strict=True):
        LabelService(project.db, project.alice).set_label(image_id, 60, 64, grade)
    return ids


def _panel(qtbot, project, rater) -> TrainingPanel:  # type: ignore[no-untyped-def]
    panel = TrainingPanel(project.db, project.url, rater)
    qtbot.addWidget(panel)
    panel.resize(1000, 800)
    panel.show()
    qtbot.waitExposed(panel)
    _settled(qtbot, panel)
    return panel


def _settled(qtbot, panel: TrainingPanel) -> None:  # type: ignore[no-untyped-def]
    """Wait until the panel's background reload of targets and models has landed."""
    qtbot.waitUntil(lambda: not panel.loading, timeout=5000)


def _registry(project) -> Path:  # type: ignore[no-untyped-def]
    return project.db.settings.models_dir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start_long_run(qtbot, panel: TrainingPanel) -> int:  # type: ignore[no-untyped-def]
    panel.set_target("rater:alice")
    panel.epochs_spin.setValue(100_000)
    panel.start_button.click()
    assert panel.run is not None
    pid = panel.run.pid()
    qtbot.waitUntil(lambda: len(panel.plot.loss_x) >= 1, timeout=RUN_MS)  # the child is inside the training loop
    return pid


def test_start_trains_predicts_activates_and_lists_the_model(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label_all(project)
    panel = _panel(qtbot, project, project.rev)
    assert panel.table.rowCount() == 0
    assert not panel.cancel_button.isEnabled()
    bar: list[tuple[int, int, str]] = []
    panel.progress.valueChanged.connect(lambda v: bar.append((v, panel.progress.maximum(), panel.progress.format())))
    activated: list[int] = []
    panel.modelActivated.connect(activated.append)
    outcome: list[str] = []
    panel.runFinished.connect(outcome.append)
    children: list[str] = []  # every child the panel starts
    start_child = panel._start_child
    panel._start_child = lambda stage, args: (children.append(" ".join(args)), start_child(stage, args))[1]

    panel.set_target("rater:alice")
    panel.epochs_spin.setValue(2)
    with qtbot.waitSignals([panel.modelsChanged, panel.predictionsWritten, panel.modelActivated,
                            panel.runFinished], timeout=RUN_MS):
        panel.start_button.click()
        assert panel.is_running() and panel.cancel_button.isEnabled() and not panel.start_button.isEnabled()

    assert outcome == ["done"], panel.log.toPlainText()
    _settled(qtbot, panel)
    assert len(children) == 1 and children[0].startswith("train ") and "--activate" in children[0].split()
    versions = models_repo.list_versions(project.db)
    assert len(versions) == 1
    v = versions[0]
    assert (v.kind, v.target, v.preset, v.active) == ("train", "rater:alice", "fast", True)
    assert activated == [v.id]
    # the bar went through the epochs to their end, and through prediction of all three slices
    assert (2, 2, "epoch 2/2") in bar and (1, 2, "epoch 1/2") in bar
    assert (3, 3, "predicting %v/%m") in bar
    assert panel.progress.value() == panel.progress.maximum()
    x, y = panel.plot.loss_curve.getData()
    assert list(x) == [1.0, 2.0] and len(y) == 2 and all(v > 0 for v in y)
    # the table gained the row, marked active; predictions of the new model are in the database
    assert panel.table.rowCount() == 1 and panel.model_ids() == [v.id]
    row = [panel.table.item(0, c).text() for c in range(panel.table.columnCount())]
    assert row[:5] == [str(v.id), "●", "train", "fast", "rater:alice"]
    assert row[11] == v.card["data_snapshot_sha256"][:10]
    assert sorted(p.image_id for p in models_repo.predictions(project.db, v.id)) == sorted(ids)
    entries = audit.entries(project.db, entity="model_version")
    activation = [e for e in entries if e.action == "model.activate"]
    assert [e.rater_id for e in activation] == [project.rev.id]
    # the child registered the model in the name of the signed-in reviewer (`train --as rev`)
    assert [e.rater_id for e in entries if e.action == "model.register"] == [project.rev.id]
    assert "predictions written" in panel.status.text() and "active" in panel.status.text()
    assert panel.start_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_cancel_terminates_the_child_and_publishes_nothing(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    _label_all(project)
    panel = _panel(qtbot, project, project.rev)
    pid = _start_long_run(qtbot, panel)
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS) as finished:
        panel.cancel_button.click()
        assert not panel.cancel_button.isEnabled()
    assert finished.args == ["cancelled"]
    _settled(qtbot, panel)
    assert "cancelled, nothing published" in panel.status.text()
    # SIGTERM reached the CLI's handler (a clean stop, not a kill), and the process is gone
    assert "training cancelled; nothing was saved" in panel.log.toPlainText()
    assert not _alive(pid)
    assert models_repo.list_versions(project.db) == [] and panel.table.rowCount() == 0
    registry = _registry(project)
    assert not registry.exists() or list(registry.iterdir()) == []
    assert panel.start_button.isEnabled()


def test_closing_the_window_stops_a_running_child(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    _label_all(project)
    host = QMainWindow()
    qtbot.addWidget(host)
    panel = TrainingPanel(project.db, project.url, project.rev)
    dock = QDockWidget("Training", host)
    dock.setWidget(panel)
    host.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    host.show()
    qtbot.waitExposed(host)
    older = _fake_model(project, "train")
    panel.reload_models()
    _settled(qtbot, panel)
    pid = _start_long_run(qtbot, panel)
    panel.select_model(older)
    assert not panel.activate_button.isEnabled()  # no activation while a child runs
    assert not panel.activate(older) and "Wait until the run ends" in panel.status.text()
    assert not models_repo.get(project.db, older).active
    with qtbot.waitSignal(panel.runFinished, timeout=10_000) as finished:  # close waits for the child
        host.close()
    assert finished.args == ["cancelled"] and not panel.is_running()
    assert not _alive(pid)
    assert [v.id for v in models_repo.list_versions(project.db)] == [older]


def _fake_model(project, kind: str, *, predicted: bool = True, target: str = "rater:alice") -> int:  # type: ignore[no-untyped-def]
    """A registered version with a real weights file (activation checks its SHA-256), no torch needed."""
    folder = _registry(project) / f"fake-{kind}-{len(models_repo.list_versions(project.db))}"
    folder.mkdir(parents=True)
    weights = folder / "model.safetensors"
    weights.write_bytes(os.urandom(64))
    card = {"preset": "fast", "target": target, "data_snapshot_sha256": "ab" * 32, "n_training_slices": 3,
            "metrics": {"pooled": {"grades": {"accuracy": 0.75, "f1_macro": 0.5, "n": 3},
                                   "points": {"median_mm": 1.25, "p95_mm": 2.5, "n": 3}}}}
    v = models_repo.register(project.db, name=folder.name, preset="fast", target=target, kind=kind,
                             weights_path=str(weights), weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest(),
                             card=card)
    if predicted:
        ids = [im.id for im in WorklistService(project.db, project.alice).series_images(1)]
        models_repo.write_predictions(project.db, v.id, [Prediction(v.id, i, 60.0, 64.0, 1, None) for i in ids])
    return v.id


def test_activate_marks_the_version_active_and_emits(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    first, second, cv = _fake_model(project, "train"), _fake_model(project, "train"), _fake_model(project, "cv")
    panel = _panel(qtbot, project, project.rev)
    assert panel.model_ids() == [cv, second, first]  # newest first
    row = [panel.table.item(2, c).text() for c in range(panel.table.columnCount())]
    assert row[7:] == ["75.0%", "50.0%", "1.25", "2.50", "ababababab"]
    panel.select_model(cv)
    assert not panel.activate_button.isEnabled()  # a cv model only holds out-of-fold predictions

    panel.select_model(first)
    assert panel.activate_button.isEnabled()
    activated: list[int] = []
    panel.modelActivated.connect(activated.append)
    with qtbot.waitSignals([panel.modelActivated, panel.modelsChanged], timeout=2000):
        panel.activate_button.click()
    assert activated == [first]
    _settled(qtbot, panel)
    assert model_service.get_model(project.db, None).id == first
    assert [panel.table.item(r, 1).text() for r in range(3)] == ["", "", "●"]
    assert not panel.is_running()  # it has predictions already: no child to start
    assert not panel.activate_button.isEnabled()  # already active

    with qtbot.waitSignal(panel.modelActivated, timeout=2000) as sig:
        panel.activate(second)
    assert sig.args == [second]
    assert [(v.id, v.active) for v in models_repo.list_versions(project.db)] == [(first, False), (second, True),
                                                                                 (cv, False)]
    actors = [e.rater_id for e in audit.entries(project.db, entity="model_version") if e.action == "model.activate"]
    assert actors == [project.rev.id, project.rev.id]


def test_activating_a_version_without_predictions_runs_one_child_that_predicts_then_activates(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    """The service's order (predict, then activate) in one ``models activate ID --predict`` child, in the
    name of the signed-in reviewer; the panel only renders its events."""
    ids = _label_all(project)
    trained = subprocess.run([sys.executable, "-m", "annotator", "--db", project.url, "train", "--target",
                              "rater:alice", "--epochs", "1"], cwd=ROOT, capture_output=True, text=True,
                             timeout=RUN_MS / 1000)
    assert trained.returncode == 0, trained.stderr
    [v] = models_repo.list_versions(project.db)
    assert not model_service.has_predictions(project.db, v.id)
    panel = _panel(qtbot, project, project.rev)
    children: list[tuple[str, list[str]]] = []
    start_child = panel._start_child
    panel._start_child = lambda stage, args: (children.append((stage, list(args))), start_child(stage, args))[1]
    order: list[str] = []
    panel.predictionsWritten.connect(lambda _id: order.append("predicted"))
    panel.modelActivated.connect(lambda _id: order.append("activated"))
    with qtbot.waitSignals([panel.predictionsWritten, panel.modelActivated, panel.runFinished], timeout=RUN_MS):
        assert panel.activate(v.id)
    assert children == [("activate", ["models", "activate", str(v.id), "--predict", "--json-progress", "--as=rev"])]
    assert order == ["predicted", "activated"]
    assert models_repo.get(project.db, v.id).active
    assert sorted(p.image_id for p in models_repo.predictions(project.db, v.id)) == sorted(ids)
    activations = [e for e in audit.entries(project.db, entity="model_version") if e.action == "model.activate"]
    assert [e.rater_id for e in activations] == [project.rev.id]
    assert panel.status.text() == f"Model {v.id}: predictions written; it is now the active model."


def test_a_reload_reads_off_the_gui_thread_with_one_rule_book(qtbot, project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Targets and models load in one background operation; the rule book is built once per reload, not
    once per row of the model table."""
    import threading

    from annotator.gui import training_panel

    _label_all(project)
    ids = [_fake_model(project, "train", target=t) for t in ("rater:alice", "rater:bob", "consensus")]
    panel = _panel(qtbot, project, project.rev)
    calls: list[tuple[str, bool]] = []
    real = {name: getattr(training_panel.project_service, name) for name in ("policy", "status")}
    for name, fn in real.items():
        def spy(*args, _name=name, _fn=fn):  # type: ignore[no-untyped-def]
            calls.append((_name, threading.current_thread() is threading.main_thread()))
            return _fn(*args)
        monkeypatch.setattr(training_panel.project_service, name, spy)
    panel.refresh()
    assert panel.loading
    _settled(qtbot, panel)
    assert sorted(calls) == [("policy", False), ("status", False)]  # once each, on a worker
    assert sorted(panel.model_ids()) == sorted(ids)
    assert panel.folds_spin.value() == project_service.policy(project.db, project.rev).settings.cv_folds
    assert [panel.target_combo.itemData(i) for i in range(panel.target_combo.count())] == ["rater:alice",
                                                                                           "consensus"]


def test_annotators_get_a_read_only_panel(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    _label_all(project)
    first = _fake_model(project, "train")
    panel = _panel(qtbot, project, project.alice)
    assert panel.permission_label.isVisible() and panel.permission_label.text() == NOT_ALLOWED
    assert not panel.start_button.isEnabled() and panel.target_combo.count() == 0
    panel.select_model(first)
    assert not panel.activate_button.isEnabled()
    assert not panel.activate(first) and model_service.get_model(project.db, first).active is False
    panel.start()
    assert not panel.is_running()


def test_a_blinded_annotator_sees_no_figures_of_models_built_on_other_readers(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    from annotator.gui.model_table import BLINDED
    from annotator.storage import people

    own, bobs, consensus = (_fake_model(project, "train", target=t) for t in ("rater:alice", "rater:bob", "consensus"))
    panel = _panel(qtbot, project, project.alice)
    rows = {int(panel.table.row_texts(r)[0]): panel.table.row_texts(r) for r in range(panel.table.rowCount())}
    target, slices, acc, f1, med, p95 = 4, 6, 7, 8, 9, 10
    assert (rows[own][target], rows[own][slices], rows[own][acc]) == ("rater:alice", "3", "75.0%")  # her own labels
    for other in (bobs, consensus):
        assert rows[other][target] == BLINDED
        assert [rows[other][c] for c in (slices, acc, f1, med, p95)] == ["–"] * 5
        r = panel.model_ids().index(other)
        assert "bob" not in panel.table.item(r, 0).toolTip() and "consensus" not in panel.table.item(r, 0).toolTip()
    reviewer = _panel(qtbot, project, project.rev)
    assert reviewer.table.row_texts(reviewer.model_ids().index(bobs))[target] == "rater:bob"
    people.update_settings(project.db, None, show_other_raters_to_annotators=True)  # an unblinded project
    panel.refresh()
    _settled(qtbot, panel)
    assert panel.table.row_texts(panel.model_ids().index(bobs))[acc] == "75.0%"


def test_a_failing_child_shows_its_error_and_frees_start(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    image_id = WorklistService(project.db, project.alice).series_images(1)[0].id
    LabelService(project.db, project.alice).set_label(image_id, 60, 64, 2)  # one slice: too few to train on
    panel = _panel(qtbot, project, project.rev)
    panel.set_target("rater:alice")
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS) as finished:
        panel.start_button.click()
    assert finished.args == ["failed"]
    status = panel.status.text()
    assert status.startswith("Training failed: rater:alice has 1 slices") and "training needs at least 2" in status
    assert "annotator: error: rater:alice has 1 slices" in panel.log.toPlainText()
    assert "color" in panel.status.styleSheet()
    assert panel.progress.format() == "failed"
    assert panel.start_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert models_repo.list_versions(project.db) == []


def test_line_buffer_emits_complete_lines_only() -> None:
    buf = LineBuffer()
    assert buf.feed(b'{"event": "ep') == []
    assert buf.feed(b'och"}\n{"event"') == ['{"event": "epoch"}']
    assert buf.feed(b': "done"}\r\n\n') == ['{"event": "done"}', ""]
    assert buf.feed("é".encode()[:1]) == [] and buf.feed("é".encode()[1:] + b"\n") == ["é"]
    assert buf.feed(b"tail") == [] and buf.flush() == ["tail"] and buf.flush() == []


GUI_SCRIPT = textwrap.dedent("""
    import json, sys
    from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from annotator.gui.main_window import MainWindow
    from annotator.services import models as model_service, project as project_service

    url, ini = sys.argv[1], sys.argv[2]
    db = project_service.open_project(url)
    rev = next(r for r in project_service.list_raters(db) if r.name == "rev")
    window = MainWindow(db, rev, QSettings(ini, QSettings.Format.IniFormat))
    window.show()
    window.training_action.trigger()  # Review > Training and model versions…
    panel = window.training_dock.widget()
    while panel.loading:  # the targets and models load in the background
        app.processEvents()
    panel.set_target("rater:alice")
    panel.epochs_spin.setValue(1)
    outcome, activated = [], []
    loop = QEventLoop()
    panel.modelActivated.connect(activated.append)
    panel.runFinished.connect(lambda o: (outcome.append(o), loop.quit()))
    QTimer.singleShot(int(sys.argv[3]), loop.quit)
    panel.start_button.click()
    loop.exec()
    active = model_service.get_model(db, None) if activated else None
    for _ in range(50):  # let the window pick up the new active model's prediction for the open slice
        app.processEvents()
    while panel.loading:
        app.processEvents()
    shown = window.compare.info.text()
    window.close()
    print(json.dumps({"outcome": outcome, "activated": activated, "active": active.id if active else None,
                      "shown": active is not None and active.name in shown, "models": panel.model_ids(),
                      "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")
                                       or m.startswith("annotator.ml") or m == "annotator.services.training")}))
""")


def test_the_gui_process_never_imports_torch(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real MainWindow with the panel trains, predicts and activates; torch stays in the children."""
    _label_all(project)
    script = tmp_path / "gui_train.py"
    script.write_text(GUI_SCRIPT, encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, str(script), project.url, str(tmp_path / "user.ini"), str(RUN_MS)],
                          cwd=ROOT, capture_output=True, text=True, timeout=RUN_MS / 1000 + 60, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outcome"] == ["done"], proc.stderr
    assert len(result["models"]) == 1 and result["activated"] == result["models"] == [result["active"]]
    assert models_repo.predictions(project.db, result["active"])  # the auto-predict child wrote them
    assert result["loaded"] == []
    assert result["shown"], "the workstation does not show the new active model's prediction"


def test_activating_tampered_weights_is_refused_with_the_error(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    model_id = _fake_model(project, "train")
    Path(models_repo.get(project.db, model_id).weights_path).write_bytes(b"not the registered weights")
    panel = _panel(qtbot, project, project.rev)
    assert panel.activate(model_id)  # started: the weights are hashed off the GUI thread
    assert not panel.activate_button.isEnabled()  # no second activation meanwhile
    qtbot.waitUntil(lambda: f"Cannot activate model {model_id}" in panel.status.text(), timeout=5000)
    assert "SHA-256" in panel.status.text()
    assert model_service.get_model(project.db, model_id).active is False
    boxes = [b for b in panel.findChildren(QMessageBox) if b.objectName() == "annotator-error"]
    assert len(boxes) == 1 and "SHA-256" in boxes[0].text()
    boxes[0].close()


def test_cross_validation_curves_are_one_segment_per_fold(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    """Progress events of a 2-fold CV: the folds' curves are not joined, each fold is marked."""
    import math

    panel = _panel(qtbot, project, project.rev)
    panel.folds_spin.setValue(2)
    panel.stage = "cv"
    for fold in (0, 1):
        for epoch in (1, 2, 3):
            panel._on_event(EpochEnded(fold, epoch, 3, 1.0 / epoch, 0.1, 0.5, 0.25 * epoch, 0.1))
    x, y = panel.plot.loss_curve.getData()
    assert list(x) == [1, 2, 3, 3.5, 4, 5, 6]
    assert math.isnan(y[3]) and not any(math.isnan(v) for i, v in enumerate(y) if i != 3)
    assert [line.value() for line in panel.plot.fold_lines] == [0.5, 3.5]
    assert panel.progress.value() == 6 and "fold 2/2" in panel.progress.format()
    panel.stage = None
    panel.plot.clear_curves()
    assert panel.plot.fold_lines == [] and len(panel.plot.loss_curve.getData()[0] or []) == 0


def test_the_child_command_line_keeps_names_that_start_with_a_dash(qtbot, project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from annotator.cli import build_parser

    _label_all(project)
    dash = project_service.add_rater(project.db, "-x", Role.REVIEWER)
    panel = _panel(qtbot, project, dash)
    started: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(panel, "_start_child", lambda stage, args: started.append((stage, args)))
    panel.set_target("rater:alice")
    panel.start_button.click()
    [(stage, args)] = started
    parsed = build_parser().parse_args(args)  # what the child's CLI will see
    assert (stage, parsed.as_rater, parsed.target, parsed.preset) == ("train", "-x", "rater:alice", "fast")
    assert parsed.activate and parsed.json_progress  # one child trains, predicts and activates
    started.clear()
    panel.activate_check.setChecked(False)
    panel.start_button.click()
    unticked = build_parser().parse_args(started[0][1])
    assert unticked.predict and not unticked.activate  # it still predicts every slice, but activates nothing


def test_garbled_and_unknown_lines_are_reported_and_the_run_goes_on(qtbot, project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A child writing lines that are not events: each is logged with the reason, the valid events around
    them are rendered, and the run ends normally."""
    _label_all(project)
    panel = _panel(qtbot, project, project.rev)
    lines = ["not json at all", '{"event": "celebrate"}', '{"event": "epoch", "epoch": "one"}', "[1, 2]",
             encode(StepProgress(Phase.READ, 2, 4)), encode(ModelSaved(41, "m41", ModelKind.TRAIN)),
             encode(Done(41, "m41", ModelKind.TRAIN, False))]
    script = "import sys\nfor line in sys.argv[1:]:\n    print(line, flush=True)\n"
    real_start = CliProcess.start

    def fake_child(run: CliProcess) -> None:  # the same QProcess plumbing, a child that writes ``lines``
        run.process.setArguments(["-c", script, *lines])
        real_start(run)

    monkeypatch.setattr(CliProcess, "start", fake_child)
    steps: list[str] = []
    panel.progress.valueChanged.connect(lambda v: steps.append(panel.progress.format()))
    panel.set_target("rater:alice")
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS) as finished:
        panel.start_button.click()
    assert finished.args == ["done"]
    log = panel.log.toPlainText()
    ignored = [ln for ln in log.splitlines() if ln.startswith("(ignored) ")]
    assert len(ignored) == 4
    assert "'not json at all' is not JSON" in ignored[0]
    assert "unknown event 'celebrate'" in ignored[1]
    assert """'{"event": "epoch", "epoch": "one"}': field 'fold' is missing""" in ignored[2]
    assert "'[1, 2]' is not a JSON object" in ignored[3]
    assert "reading images %v/%m" in steps and panel.trained_id == 41
    assert panel.status.text() == "Model 41 trained and saved (not active: activate it below)."


def test_a_trained_version_shows_the_figures_of_its_cross_validation(qtbot) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from annotator.domain.entities import ModelVersion
    from annotator.gui.model_table import ModelTable

    pooled = {"grades": {"accuracy": 0.8, "f1_macro": 0.6}, "points": {"median_mm": 0.9, "p95_mm": 2.0}}

    def version(i: int, kind: str, snap: str, metrics: dict, target: str = "rater:a", epochs: int = 30) -> ModelVersion:  # type: ignore[type-arg]
        return ModelVersion(i, f"m{i}", "fast", target, ModelKind(kind), datetime(2026, 11, 27, tzinfo=UTC), "/w",
                            "0" * 64,
                            {"data_snapshot_sha256": snap, "metrics": metrics, "epochs": epochs})

    trained = {"held_out": None, "last_epoch_train_accuracy": 0.97}
    table = ModelTable()
    qtbot.addWidget(table)
    table.set_models([version(1, "train", "s1", trained), version(2, "cv", "s1", {"pooled": pooled}),
                      version(3, "train", "s2", trained),  # labels changed since: no estimate for it
                      version(4, "cv", "s2", {"pooled": pooled}, target="rater:b"),  # another target
                      version(5, "cv", "s2", {"pooled": pooled}, epochs=5)],  # another number of epochs
                     lambda _v: True)  # a viewer with every right (a reviewer)
    rows = {int(table.row_texts(r)[0]): table.row_texts(r) for r in range(table.rowCount())}
    assert rows[1][7:11] == ["≈ 80.0%", "≈ 60.0%", "≈ 0.90", "≈ 2.00"]
    assert "cross-validation 2" in table.item(table.model_ids().index(1), 7).toolTip()
    assert rows[3][7:11] == ["train 97.0%", "–", "–", "–"]
    assert rows[2][7:11] == ["80.0%", "60.0%", "0.90", "2.00"]


def test_parallel_folds_are_passed_to_the_child_and_auto_leaves_the_choice_to_it(qtbot, project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from annotator.cli import build_parser

    _label_all(project)
    panel = _panel(qtbot, project, project.rev)
    started: list[list[str]] = []
    monkeypatch.setattr(panel, "_start_child", lambda stage, args: started.append(args))
    panel.set_target("rater:alice")
    assert not panel.jobs_spin.isEnabled()  # only cross-validation trains several folds
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("cv"))
    assert panel.jobs_spin.isEnabled() and panel.jobs_spin.text() == "auto"
    panel.start_button.click()
    assert build_parser().parse_args(started[-1]).jobs is None  # auto: the CLI's default (GPUs, else cores)
    panel.jobs_spin.setValue(2)
    panel.folds_spin.setValue(4)
    panel.start_button.click()
    parsed = build_parser().parse_args(started[-1])
    assert (parsed.command, parsed.jobs, parsed.folds) == ("cv", 2, 4)


def test_folds_trained_at_once_each_get_their_own_curve(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    """Two folds reporting interleaved epochs (cv --jobs 2): each fold's points stay in its own segment, in
    epoch order, the progress bar counts every epoch, and the status names the folds still training."""
    import math

    panel = _panel(qtbot, project, project.rev)
    panel.folds_spin.setValue(3)
    panel.stage = "cv"
    order = [(1, 1), (0, 1), (0, 2), (1, 2), (1, 3), (0, 3), (2, 1)]
    for fold, epoch in order:
        panel._on_event(EpochEnded(fold, epoch, 3, fold + 1.0 / epoch, 0.1, 0.5, 0.25 * epoch, 0.1))
        if (fold, epoch) == (0, 2):
            assert "Folds 1, 2 of 3" in panel.status.text()
    x, y = panel.plot.loss_curve.getData()
    assert list(x[:3]) == [1, 2, 3] and list(x[4:7]) == [4, 5, 6] and x[8] == 7  # fold 0, fold 1, fold 2
    assert math.isnan(y[3]) and math.isnan(y[7])
    assert [round(v, 3) for v in y[:3]] == [1.0, 0.5, 0.333]  # fold 0's epochs, though fold 1 came first
    assert [round(v, 3) for v in y[4:7]] == [2.0, 1.5, 1.333]
    assert panel.plot.folds_shown() == [0, 1, 2]
    assert [line.value() for line in panel.plot.fold_lines] == [0.5, 3.5, 6.5]
    assert panel.progress.value() == len(order) and panel.progress.maximum() == 9
    panel.stage = None
