"""Retrain from the app: pick a target and a preset, train (or cross-validate) in a child process, watch
the loss, cancel, and choose which model version is active.

Training runs as one ``python -m annotator train … --predict|--activate --json-progress`` under a
:class:`CliProcess` (the database travels in ``ANNOTATOR_DB``; the GUI never imports torch). That one
command also predicts every slice with the new version and, with "make it active", then activates it
(audited with the signed-in rater), so the predictions the workstation shows — always the active
version's — are there the moment it switches. The panel only renders the child's typed events
(:mod:`annotator.domain.events`); the workflow is the service's. Activating an older version without
predictions runs one ``models activate ID --predict`` child the same way (predict, then activate); one
with predictions is activated in the background (its weights are hashed). The targets and the model
table are loaded in one background operation, with the rule book built once per load. Only reviewers
and admins may start a run or activate a version (the services check it too); annotators see the
panel read-only, with the reason.

Signals for the main window: ``modelsChanged`` (a version was added or activated), ``modelActivated(id)``,
``predictionsWritten(id)``, and ``runFinished(outcome)`` with outcome ``done``, ``failed`` or ``cancelled``.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import ModelKind, ModelVersion, Rater
from annotator.domain.errors import AnnotatorError
from annotator.domain.events import (
    Done,
    EpochEnded,
    Event,
    Failed,
    FoldEnded,
    ModelActivated,
    ModelSaved,
    Phase,
    PhaseStarted,
    PredictionsWritten,
    StepProgress,
    describe,
)
from annotator.domain.policy import Policy
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.gui.background import BackgroundOp
from annotator.gui.cli_process import CliProcess
from annotator.gui.errors import show_error
from annotator.gui.model_table import ModelTable, fmt
from annotator.gui.training_curves import TrainingCurves
from annotator.services import models as model_service
from annotator.services import project as project_service
from annotator.services.project import Database

PRESETS = ("fast", "paper")
OTHER_PRESET = "Preset file…"
STEP_NAMES = {Phase.READ: "reading images", Phase.PREDICT: "predicting", Phase.TRAIN: "training",
              Phase.ACTIVATE: "activating"}
ERROR_COLOUR = "#ff6b6b"
NOT_ALLOWED = "Training and activating models is for reviewers and admins; you are signed in as an annotator."


def step_name(phase: Phase, fold: int | None, folds: int) -> str:
    """``read`` -> ``reading images``; predict in fold 2 (0-based, as stored) -> ``predicting fold 3/5``."""
    name = STEP_NAMES[phase]
    return name if fold is None else f"{name} fold {fold + 1}/{folds}"


class TrainingPanel(QWidget):
    modelsChanged = Signal()  # noqa: N815 (Qt naming)
    modelActivated = Signal(int)  # noqa: N815
    predictionsWritten = Signal(int)  # noqa: N815
    runFinished = Signal(str)  # noqa: N815

    def __init__(self, db: Database, db_url: str, rater: Rater, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.db, self.db_url, self.rater = db, db_url, rater
        self.can_manage = project_service.policy(db, rater).may_train
        self.run: CliProcess | None = None
        self._activating = False  # an activation is hashing weights in the background
        self._loads = 0  # reloads of the targets and models in flight
        self.stage: str | None = None  # "train", "cv" or "predict" while a child runs
        self.trained_id: int | None = None  # the model the running child registered (ModelSaved)
        self.predicted_id: int | None = None  # the model the running child wrote predictions for
        self.activated_id: int | None = None  # the model the running child activated
        self._epochs_done = 0  # epochs reported by the running child, all folds together
        self._fold_epochs: dict[int, int] = {}
        self.done: Done | None = None  # the child's last event on success
        self.failure: Failed | None = None  # its last event on an error
        self._watched: QWidget | None = None
        self._build()
        self.refresh()

    # ----- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.target_combo = QComboBox()
        self.target_combo.setMinimumContentsLength(18)
        self.preset_combo = QComboBox()
        for name in PRESETS:
            self.preset_combo.addItem(name, name)
        self.preset_combo.addItem(OTHER_PRESET, None)
        self.preset_combo.activated.connect(self._on_preset_activated)
        self.mode_combo = QComboBox()
        self.mode_combo.addItem("train", "train")
        self.mode_combo.addItem("cross-validate", "cv")
        self.mode_combo.currentIndexChanged.connect(self._update_enabled)
        self.folds_spin = QSpinBox()
        self.folds_spin.setRange(2, 50)
        self._folds_from_settings = True  # the first load sets the project's number of folds
        self.jobs_spin = QSpinBox()
        self.jobs_spin.setRange(0, max(1, os.cpu_count() or 1))
        self.jobs_spin.setSpecialValueText("auto")
        self.jobs_spin.setToolTip("Folds trained at once, each in its own process (auto: one per GPU, else what "
                                  "the CPU cores allow); on a CPU the weights are the same whatever the number")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(0, 100000)
        self.epochs_spin.setSpecialValueText("preset default")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.activate_check = QCheckBox("Make it the active model when done")
        self.activate_check.setChecked(True)
        self.activate_check.setToolTip("After training, predict every slice with the new model, then activate it")
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.permission_label = QLabel("" if self.can_manage else NOT_ALLOWED)
        self.permission_label.setWordWrap(True)
        self.permission_label.setVisible(not self.can_manage)

        form = QFormLayout()
        form.addRow("Target", self.target_combo)
        form.addRow("Preset", self.preset_combo)
        form.addRow("Mode", self.mode_combo)
        form.addRow("Folds", self.folds_spin)
        form.addRow("Parallel folds", self.jobs_spin)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Seed", self.seed_spin)
        form.addRow(self.activate_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("Idle.")
        self.status.setWordWrap(True)
        self.elapsed_label = QLabel("")
        self._clock = QElapsedTimer()
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._show_elapsed)

        self.plot = TrainingCurves()

        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("Messages from the training process appear here.")

        self.table = ModelTable()
        self.table.itemSelectionChanged.connect(self._update_enabled)
        self.activate_button = QPushButton("Activate")
        self.activate_button.setToolTip("Make the selected version the one whose predictions the workstation shows")
        self.activate_button.clicked.connect(self.activate_selected)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)

        top = QWidget()
        top_row = QHBoxLayout(top)
        top_row.setContentsMargins(0, 0, 0, 0)
        left = QVBoxLayout()
        left.addWidget(self.permission_label)
        left.addLayout(form)
        left.addStretch(1)
        top_row.addLayout(left)
        top_row.addWidget(self.plot, 1)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.elapsed_label)
        table_box = QWidget()
        tcol = QVBoxLayout(table_box)
        tcol.setContentsMargins(0, 0, 0, 0)
        trow = QHBoxLayout()
        trow.addWidget(QLabel("Model versions"))
        trow.addStretch(1)
        trow.addWidget(self.refresh_button)
        trow.addWidget(self.activate_button)
        tcol.addLayout(trow)
        tcol.addWidget(self.table, 1)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(top)
        body.addWidget(self.log)
        body.addWidget(table_box)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(2, 2)
        col = QVBoxLayout(self)
        col.addWidget(self.progress)
        col.addLayout(status_row)
        col.addWidget(body, 1)
        self._update_enabled()

    # ----- state ----------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.run is not None

    def _update_enabled(self) -> None:
        idle = not self.is_running()
        for w in (self.target_combo, self.preset_combo, self.mode_combo, self.epochs_spin, self.seed_spin):
            w.setEnabled(self.can_manage and idle)
        cv = self.mode_combo.currentData() == "cv"
        self.folds_spin.setEnabled(self.can_manage and idle and cv)
        self.jobs_spin.setEnabled(self.can_manage and idle and cv)
        self.activate_check.setEnabled(self.can_manage and idle and not cv)
        self.start_button.setEnabled(self.can_manage and idle and self.target_combo.count() > 0)
        self.cancel_button.setEnabled(not idle and not (self.run is not None and self.run.stop_requested))
        selected = self.selected_model()
        self.activate_button.setEnabled(self.can_manage and idle and not self._activating and selected is not None
                                        and selected.kind is ModelKind.TRAIN and not selected.active)

    @property
    def loading(self) -> bool:
        """Is a reload of the targets and the model table in flight?"""
        return self._loads > 0

    def refresh(self) -> None:
        """Reload the targets (raters with labels, and the consensus) and the model versions, in one
        background operation (a newer reload supersedes one still in flight); ``loading`` meanwhile."""
        db, rater, manage = self.db, self.rater, self.can_manage

        def work() -> tuple[dict[str, int], list[ModelVersion], Policy]:  # on a worker
            rules = project_service.policy(db, rater)  # once per reload: the settings may have changed
            # annotators do not get to see who labelled how much (blinding): no counts are read for them
            counts = project_service.status(db).labels_per_rater if manage else {}
            return counts, model_service.list_models(db), rules

        def settled() -> None:
            self._loads -= 1

        self._loads += 1
        BackgroundOp(self, work, self._loaded, key="load", label="Loading model versions…",
                     on_settled=settled).run()

    def reload_models(self) -> None:
        """A version was added or activated: the same one reload as :meth:`refresh` (the targets' counts
        cost one query more)."""
        self.refresh()

    def _loaded(self, result: tuple[dict[str, int], list[ModelVersion], Policy]) -> None:
        counts, versions, rules = result
        current = self.target_combo.currentData()
        self.target_combo.clear()
        if self.can_manage:
            for name, n in counts.items():
                if n > 0:
                    ref = str(ReaderRef(ReaderKind.RATER, name))  # the child's --target text
                    self.target_combo.addItem(f"{ref} ({n} labelled)", ref)
            self.target_combo.addItem("consensus", "consensus")
        i = self.target_combo.findData(current)
        if i >= 0:
            self.target_combo.setCurrentIndex(i)
        self.table.set_models(versions, lambda v: rules.may_see_model_details(v.target))
        if self._folds_from_settings:
            self._folds_from_settings = False
            self.folds_spin.setValue(max(2, rules.settings.cv_folds))
        self._update_enabled()

    def set_target(self, target: str) -> None:
        i = self.target_combo.findData(target)
        if i < 0:
            raise ValueError(f"{target} is not among the targets offered")
        self.target_combo.setCurrentIndex(i)

    def add_preset_file(self, path: str | Path) -> None:
        """Offer a preset JSON file (as ``annotator train --preset FILE`` accepts) and select it."""
        text = str(path)
        i = self.preset_combo.findData(text)
        if i < 0:
            i = self.preset_combo.count() - 1  # before "Preset file…"
            self.preset_combo.insertItem(i, Path(text).name, text)
            self.preset_combo.setItemData(i, text, Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setCurrentIndex(i)

    def _on_preset_activated(self, index: int) -> None:
        if self.preset_combo.itemData(index) is not None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Model preset", "", "Preset (*.json)")
        if path:
            self.add_preset_file(path)
        else:
            self.preset_combo.setCurrentIndex(0)

    # ----- models table ---------------------------------------------------------------------------
    def model_ids(self) -> list[int]:
        return self.table.model_ids()

    def selected_model(self) -> ModelVersion | None:
        return self.table.selected()

    def select_model(self, model_id: int) -> None:
        self.table.select(model_id)

    def activate_selected(self) -> None:
        v = self.selected_model()
        if v is not None:
            self.activate(v.id)

    def activate(self, model_id: int) -> bool:
        """Start making ``model_id`` active (audited as the signed-in rater).

        The checks are immediate (False when refused). In the background, a count tells whether the
        version has predictions: if it has, the activation (which hashes the weights) runs there too and
        ends with ``modelActivated`` (or an error in the status line and dialog); if not, one child
        ``models activate ID --predict`` predicts its slices, then activates it (the service's order)."""
        if not self.can_manage:
            self._set_status(NOT_ALLOWED, error=True)
            return False
        if self.is_running() or self._activating:  # its own prediction would race the running child's
            self._set_status("Wait until the run ends (or cancel it) before activating another version.", error=True)
            return False
        db, actor = self.db, self.rater

        def work() -> ModelVersion | None:  # on a worker: a count, then reading and hashing the weights file
            if not model_service.has_predictions(db, model_id):
                return None  # a child predicts, then activates
            return model_service.activate(db, model_id, actor=actor)

        self._activating = True
        self._update_enabled()
        self._set_status(f"Activating model {model_id} (checking its weights)…")
        BackgroundOp(self, work, lambda v: self._activated(v, model_id),
                     lambda exc: self._activation_failed(model_id, exc),
                     key="activate", label=f"Activating model {model_id}…").run()
        return True

    def _activated(self, version: ModelVersion | None, model_id: int) -> None:
        self._activating = False
        if version is None:  # no predictions yet: one child predicts its slices, then activates it
            self._start_child("activate", ["models", "activate", str(model_id), "--predict", "--json-progress",
                                           f"--as={self.rater.name}"])  # one token: a name may start with "-"
            return
        self._set_status(f"Model {version.id} is now active.")
        self.reload_models()
        self.modelActivated.emit(version.id)
        self.modelsChanged.emit()

    def _activation_failed(self, model_id: int, exc: Exception) -> None:
        self._activating = False
        self._update_enabled()
        self._set_status(f"Cannot activate model {model_id}: {exc}", error=True)
        show_error(self, exc)

    # ----- runs -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start training (or cross-validation) with the chosen settings: one child process."""
        if not self.can_manage or self.is_running():
            return
        target = self.target_combo.currentData()
        preset = self.preset_combo.currentData()
        if target is None or preset is None:
            self._set_status("Choose a target and a preset first.", error=True)
            return
        mode = self.mode_combo.currentData()
        args = [mode, "--target", target, f"--preset={preset}", "--seed", str(self.seed_spin.value()),
                f"--as={self.rater.name}"]  # one token: a name starting with "-" is not an option
        if self.epochs_spin.value() > 0:
            args += ["--epochs", str(self.epochs_spin.value())]
        if mode == "cv":
            args += ["--folds", str(self.folds_spin.value())]
            if self.jobs_spin.value() > 0:
                args += ["--jobs", str(self.jobs_spin.value())]
        else:  # the child predicts every slice with the new version, then, if asked, activates it
            args.append("--activate" if self.activate_check.isChecked() else "--predict")
        self.plot.clear_curves()
        self.log.clear()
        self._start_child(mode, [*args, "--json-progress"])

    def cancel(self) -> None:
        """SIGTERM the child: it stops between batches, exits non-zero and publishes nothing."""
        if self.run is not None:
            self.run.stop()
            self._set_status("Cancelling…")
            self._update_enabled()

    def shutdown(self) -> None:
        """Stop a running child and wait for it (the window is closing: leave no orphan process)."""
        if self.run is not None:
            self.run.stop_and_wait()

    def _start_child(self, stage: str, args: list[str]) -> None:
        self.stage = stage
        self.trained_id = self.predicted_id = self.activated_id = None
        self.done, self.failure = None, None
        self._epochs_done = 0
        self._fold_epochs: dict[int, int] = {}  # fold -> its last epoch reported (folds may run at once)
        self.run = run = CliProcess(self.db_url, args, self)
        run.event.connect(self._on_event)
        run.badLine.connect(self._on_bad_line)
        run.stderrLine.connect(self.log.appendPlainText)
        run.finished.connect(self._on_finished)
        self.log.appendPlainText(f"$ {run.command_line()}")
        self.progress.setRange(0, 0)  # busy until the first event
        self.progress.setFormat("starting…")
        verb = {"train": "Training", "cv": "Cross-validating", "predict": "Predicting",
                "activate": "Predicting, then activating"}[stage]
        self._set_status(f"{verb}: starting {' '.join(args[:3])}…")
        self._clock.start()
        self._ticker.start()
        self._show_elapsed()
        run.start()
        self._update_enabled()

    def _on_event(self, e: Event) -> None:
        """Render one event of the child (and remember what it has done so far)."""
        folds = self.folds_spin.value()
        match e:
            case PhaseStarted(phase=Phase.ACTIVATE):
                model_id = self.trained_id if self.trained_id is not None else self.predicted_id
                self._set_status(f"Model {model_id}: predictions written; activating it…")
            case PhaseStarted():
                if e.phase is not Phase.TRAIN:  # training shows its epochs instead
                    self._set_status(f"{step_name(e.phase, e.fold, folds).capitalize()}…")
            case StepProgress():
                name = step_name(e.phase, e.fold, folds)
                self._bar(e.done, max(1, e.total), f"{name} %v/%m")
                self._set_status(f"{name[:1].upper()}{name[1:]}: {e.done}/{e.total}")
            case EpochEnded():
                self._on_epoch(e)
            case FoldEnded():
                f = e.figures
                self._set_status(f"Fold {e.fold + 1}/{e.folds} done: accuracy {fmt(f.accuracy, True)}, "
                                 f"F1 macro {fmt(f.f1_macro, True)}")
            case ModelSaved():
                self.trained_id = e.model_id
                self.log.appendPlainText(describe(e))
                self.reload_models()
                self.modelsChanged.emit()
            case PredictionsWritten():
                self.predicted_id = e.model_id
                self.log.appendPlainText(describe(e))
                self._set_status(f"Model {e.model_id}: predictions written.")
                self.predictionsWritten.emit(e.model_id)
            case ModelActivated():
                self.activated_id = e.model_id
                self.log.appendPlainText(describe(e))
                self.reload_models()
                self.modelActivated.emit(e.model_id)
                self.modelsChanged.emit()
            case Done():
                self.done = e
            case Failed():
                self.failure = e

    def _on_bad_line(self, why: str) -> None:
        self.log.appendPlainText(f"(ignored) {why}")

    def _on_epoch(self, e: EpochEnded) -> None:
        epoch, epochs = e.epoch, max(1, e.epochs)
        folds = self.folds_spin.value() if self.stage == "cv" else 1
        self.plot.add_epoch(e)
        self._epochs_done += 1
        where = ""
        if e.fold is not None:
            self._fold_epochs[e.fold] = epoch
            running = sorted(k for k, n in self._fold_epochs.items() if n < epochs)
            where = (f"fold {e.fold + 1}/{folds} · " if len(running) <= 1 else
                     f"folds {', '.join(str(k + 1) for k in running)} of {folds} · fold {e.fold + 1} ")
        self._bar(min(self._epochs_done, folds * epochs), folds * epochs, f"{where}epoch {epoch}/{epochs}")
        val = f", val accuracy {fmt(e.val_accuracy, True)}" if e.val_accuracy is not None else ""
        text = f"{where}epoch {epoch}/{epochs}: loss {e.loss:.4f}, train accuracy {fmt(e.train_accuracy, True)}{val}"
        self._set_status(text[:1].upper() + text[1:])

    def _on_finished(self, code: int, normal: bool) -> None:
        run, stage = self.run, self.stage
        assert run is not None and stage is not None
        self.run, self.stage = None, None
        self._ticker.stop()
        self._show_elapsed()
        run.deleteLater()
        if run.stop_requested:
            self._finish_cancelled(stage, completed=code == 0 and normal and self.done is not None)
        elif code != 0 or not normal:
            self._finish_failed(stage, run, code, normal)
        elif self.done is None:
            self._finish_failed(stage, run, code, normal, "the process ended without reporting a model")
        else:
            self._finish_done(stage, self.done)

    def _finish_done(self, stage: str, done: Done) -> None:
        self._bar(1, 1, "done")
        if stage == "cv":
            self._set_status(f"Cross-validated model {done.model_id} saved, with its out-of-fold predictions "
                             f"(reader model:{done.model_id}).")
        elif stage == "train" and self.activated_id is None:
            written = "; predictions written" if self.predicted_id is not None else ""
            self._set_status(f"Model {done.model_id} trained and saved{written} (not active: activate it below).")
        elif self.activated_id is not None:
            self._set_status(f"Model {done.model_id}: predictions written; it is now the active model.")
        else:
            self._set_status(f"Model {done.model_id}: predictions written.")
        self.reload_models()
        self._update_enabled()
        self.runFinished.emit("done")

    def _finish_cancelled(self, stage: str, completed: bool) -> None:
        self.progress.setRange(0, max(1, self.progress.maximum()))
        self.progress.setFormat("cancelled")
        if completed and stage == "predict":  # the stop came after the work was saved: say so
            self._set_status(f"Cancelled too late: model {self.predicted_id}'s predictions were already written.")
        elif stage == "activate" and self.activated_id is not None:
            self._set_status(f"Cancelled too late: model {self.activated_id} was already activated.")
        elif completed and self.activated_id is not None:
            self._set_status(f"Cancelled too late: model {self.activated_id} was already saved and activated.")
        elif self.trained_id is not None:
            self._set_status(f"Cancelled: model {self.trained_id} was already saved (not activated).")
        elif stage == "predict":
            self._set_status("Prediction cancelled: the model is saved, no predictions were written.")
        elif stage == "activate":
            written = " (its predictions so far are kept)" if self.predicted_id is not None else ""
            self._set_status(f"Cancelled: the model was not activated{written}.")
        else:
            self._set_status("Training cancelled, nothing published.")
        self.reload_models()
        self._update_enabled()
        self.runFinished.emit("cancelled")

    def _finish_failed(self, stage: str, run: CliProcess, code: int, normal: bool, why: str = "") -> None:
        self.progress.setRange(0, max(1, self.progress.maximum()))
        self.progress.setFormat("failed")
        prefix = "annotator: error: "
        line = why or (self.failure.message if self.failure is not None else "") or run.last_error_line \
            or (f"exit code {code}" if normal else "the process crashed")
        message = line[len(prefix):] if line.startswith(prefix) else line
        what = {"train": "Training", "cv": "Cross-validation", "predict": "Prediction",
                "activate": "Activation"}[stage]
        self._set_status(f"{what} failed: {message}", error=True)
        self.reload_models()
        self._update_enabled()
        if not self.isVisible():  # nobody is looking at the panel: say it in the one error dialog
            show_error(self.window(), AnnotatorError(f"{what} failed: {message}"))
        self.runFinished.emit("failed")

    # ----- display helpers ----------------------------------------------------------------------
    def _bar(self, value: int, maximum: int, text: str) -> None:
        self.progress.setFormat(text)
        self.progress.setRange(0, max(1, maximum))
        self.progress.setValue(min(value, max(1, maximum)))

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {ERROR_COLOUR};" if error else "")

    def _show_elapsed(self) -> None:
        if self._clock.isValid():
            s = self._clock.elapsed() // 1000
            self.elapsed_label.setText(f"{s // 60}:{s % 60:02d}")

    # ----- lifetime: never leave a child behind ----------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        root: QWidget = self
        while root.parentWidget() is not None:
            root = root.parentWidget()
        if root is not self and root is not self._watched:
            if self._watched is not None:
                self._watched.removeEventFilter(self)
            root.installEventFilter(self)
            self._watched = root
        if not self.is_running():
            self.refresh()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self._watched and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)
