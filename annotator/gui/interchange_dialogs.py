"""File > Export… and File > Import labels…: the choices of ``annotator export`` / ``import-labels``, a
progress bar and Cancel; the work runs off the GUI thread (:class:`BackgroundOp`) in
:mod:`annotator.services.interchange`, which decides everything (rights, formats, atomic bundles).
The dialogs only lay out the choices, forward them and show what came back.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import Rater
from annotator.domain.errors import Cancelled
from annotator.domain.policy import Action
from annotator.gui.background import BackgroundOp
from annotator.gui.errors import show_error
from annotator.services import interchange
from annotator.services.labelsets import WHY_PASSED_OVER, ImportReport
from annotator.services.project import Database

if TYPE_CHECKING:
    from annotator.gui.main_window import MainWindow

NO_STUDY = "Labels (not a reader study)"
GUESS = "From the file or bundle"


class _Job(QObject):
    """Progress from the worker thread (queued to the dialog) and the Cancel flag it polls."""

    progressed = Signal(int, int, str)

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()

    def report(self, done: int, total: int, message: str) -> None:
        self.progressed.emit(done, total, message)

    def cancel(self) -> None:
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()


class _RunDialog(QDialog):
    """The part both dialogs share: a progress bar, a status line, Start / Cancel / Close."""

    def __init__(self, title: str, start_text: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.job: _Job | None = None
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.start_button = QPushButton(start_text)
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.form = QFormLayout()
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        col = QVBoxLayout(self)
        col.addLayout(self.form)
        col.addWidget(self.progress)
        col.addWidget(self.status)
        self.extra = QVBoxLayout()
        col.addLayout(self.extra)
        col.addLayout(buttons)

    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self) -> None:
        raise NotImplementedError

    def _begin(self) -> _Job:
        job = self.job = _Job()
        job.progressed.connect(self._on_progress)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first report
        self.status.setText("Working…")
        return job

    def _on_progress(self, done: int, total: int, message: str) -> None:
        if self.job is None:
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status.setText(message)

    def _end(self) -> None:
        self.job = None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, exc: Exception) -> None:
        self._end()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        if isinstance(exc, Cancelled):
            self.status.setText(f"Cancelled: {exc}")
        else:
            self.status.setText(f"Failed: {exc}")
            show_error(self, exc)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        self.cancel()  # a closed dialog's export stops and leaves nothing behind
        super().closeEvent(event)


class ExportDialog(_RunDialog):
    exported = Signal(object)  # the ExportSummary

    def __init__(self, db: Database, rater: Rater, choices: interchange.ExportChoices,
                 parent: QWidget | None = None) -> None:
        super().__init__("Export", "Export", parent)
        self.db, self.rater = db, rater
        self.format = QComboBox()
        for fmt, installed in choices.formats:
            self.format.addItem(fmt.value, fmt.value)
            if not installed:  # listed, but not offered: this installation has no writer for it
                item = self.format.model().item(self.format.count() - 1)  # type: ignore[attr-defined]
                item.setEnabled(False)
                item.setToolTip(f"this installation has no {fmt.value} writer")
        self.readers = QListWidget()
        for r in choices.readers:
            item = QListWidgetItem(r)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.readers.addItem(item)
        self.study = QComboBox()
        self.study.addItem(NO_STUDY, None)
        for name in choices.studies:
            self.study.addItem(name, name)
        self.deidentify = QCheckBox("De-identify (DICOM copies of the slices, pseudonymous UIDs)")
        self.out = QLineEdit()
        self.out.setPlaceholderText("a new file (csv, json) or a new folder (a bundle)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.out, 1)
        row.addWidget(browse)
        self.form.addRow("Format", self.format)
        self.form.addRow("Readers", self.readers)
        self.form.addRow("Reader study", self.study)
        self.form.addRow("", self.deidentify)
        self.form.addRow("Save to", row)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to (a new file or bundle folder)", self.out.text())
        if path:
            self.out.setText(path)

    def request(self) -> interchange.ExportRequest:
        checked = tuple(self.readers.item(i).text() for i in range(self.readers.count())
                        if self.readers.item(i).checkState() == Qt.CheckState.Checked)
        readers = () if len(checked) == self.readers.count() else checked  # all: every reader (of a study too)
        return interchange.ExportRequest(str(self.format.currentData()), Path(self.out.text().strip()), readers,
                                         self.study.currentData(), self.deidentify.isChecked())

    def start(self) -> None:
        if self.running:
            return
        if not self.out.text().strip():
            self.status.setText("Choose where to save the export.")
            return
        if not any(self.readers.item(i).checkState() == Qt.CheckState.Checked for i in range(self.readers.count())):
            self.status.setText("Choose at least one reader.")
            return
        request, db, rater = self.request(), self.db, self.rater
        job = self._begin()
        BackgroundOp(self, lambda: interchange.export(db, request, actor=rater, progress=job.report,
                                                      should_stop=job.should_stop),
                     self._done, self._failed, key="export", label="Exporting…").run()

    def _done(self, summary: interchange.ExportSummary) -> None:
        self._end()
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        kind = f"{summary.format.value} bundle" if summary.bundle else f"{summary.format.value} file"
        text = f"Wrote a {kind} of {summary.items} rows to {summary.path}"
        if summary.warnings:
            text += (f"\nWarning: {len(summary.warnings)} slices may carry text burned into their pixels ("
                     + "; ".join(f"{r}: {n}" for r, n in sorted(summary.warning_counts.items()))
                     + "); bundle.json lists them.")
        self.status.setText(text)
        self.exported.emit(summary)


class ImportDialog(_RunDialog):
    imported = Signal(object)  # the ImportReport, when labels were stored

    def __init__(self, db: Database, rater: Rater, parent: QWidget | None = None) -> None:
        super().__init__("Import labels", "Import", parent)
        self.db, self.rater = db, rater
        self.path = QLineEdit()
        self.path.setPlaceholderText("a label file or an export bundle folder")
        pick_file, pick_folder = QPushButton("File…"), QPushButton("Folder…")
        pick_file.clicked.connect(self._pick_file)
        pick_folder.clicked.connect(self._pick_folder)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(pick_file)
        row.addWidget(pick_folder)
        self.format = QComboBox()
        self.format.addItem(GUESS, None)
        for fmt in interchange.ExportFormat:
            self.format.addItem(fmt.value, fmt.value)
        self.reader = QLineEdit()
        self.reader.setPlaceholderText("optional: rater:NAME for every row")
        self.form.addRow("Import from", row)
        self.form.addRow("Format", self.format)
        self.form.addRow("Reader", self.reader)
        self.errors = QListWidget()
        self.errors.hide()
        self.extra.addWidget(self.errors)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import labels from a file")
        if path:
            self.path.setText(path)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Import labels from a bundle folder")
        if path:
            self.path.setText(path)

    def start(self) -> None:
        if self.running:
            return
        text = self.path.text().strip()
        if not text:
            self.status.setText("Choose a file or bundle folder to import.")
            return
        db, rater, path = self.db, self.rater, Path(text)
        fmt, reader = self.format.currentData(), self.reader.text().strip() or None
        self.errors.clear()
        self.errors.hide()
        job = self._begin()
        BackgroundOp(self, lambda: interchange.import_labels(db, path, fmt=fmt, reader=reader, actor=rater,
                                                             should_stop=job.should_stop),
                     self._done, self._failed, key="import", label="Importing labels…").run()

    def _done(self, report: ImportReport) -> None:
        self._end()
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        if report.errors:
            self.errors.addItems(report.errors)
            self.errors.show()
            self.status.setText(f"{len(report.errors)} bad rows: nothing was imported.")
            return
        created = f" (new raters: {', '.join(report.created_raters)})" if report.created_raters else ""
        passed = (f" {len(report.passed_over)} reads passed over (listed below): {WHY_PASSED_OVER}."
                  if report.passed_over else "")
        self.status.setText(f"Imported {report.applied} labels{created}.{passed}")
        if report.passed_over:
            self.errors.addItems(report.passed_over)
            self.errors.show()
        self.imported.emit(report)


class InterchangeMenu:
    """Adds File > Export… and File > Import labels… to a workstation window (offered per the policy)."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.session = window.session
        self.export_dialog: ExportDialog | None = None
        self.import_dialog: ImportDialog | None = None
        menu = window._menu("&File")
        quit_action: QAction = window.actions["quit"]
        rules = self.session.policy
        self.export_action = QAction("Export…", window)
        self.export_action.triggered.connect(lambda _c=False: self.open_export())
        self.export_action.setEnabled(rules.may(Action.EXPORT))
        self.import_action = QAction("Import labels…", window)
        self.import_action.triggered.connect(lambda _c=False: self.open_import())
        self.import_action.setEnabled(rules.may(Action.IMPORT_LABELS))
        for action, who in ((self.export_action, "reviewers and admins"), (self.import_action, "admins")):
            if not action.isEnabled():
                action.setToolTip(f"For {who}")
        menu.insertAction(quit_action, self.export_action)
        menu.insertAction(quit_action, self.import_action)
        menu.insertSeparator(quit_action)

    def open_export(self) -> None:
        db, rater = self.session.db, self.session.rater
        BackgroundOp(self.window, lambda: interchange.export_choices(db, rater), self._show_export,
                     key="export_choices", label="Listing what can be exported…").run()

    def _show_export(self, choices: interchange.ExportChoices) -> None:
        if self.export_dialog is not None:
            self.export_dialog.close()
        d = self.export_dialog = ExportDialog(self.session.db, self.session.rater, choices, self.window)
        d.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        d.destroyed.connect(lambda _o=None: self._gone("export_dialog", d))
        d.show()

    def open_import(self) -> ImportDialog:
        if self.import_dialog is not None:
            self.import_dialog.close()
        d = self.import_dialog = ImportDialog(self.session.db, self.session.rater, self.window)
        d.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        d.destroyed.connect(lambda _o=None: self._gone("import_dialog", d))
        d.imported.connect(lambda _r: self.window.refresh())
        d.show()
        return d

    def _gone(self, attr: str, dialog: QDialog) -> None:
        if getattr(self, attr) is dialog:
            setattr(self, attr, None)

    def close(self) -> None:
        for d in (self.export_dialog, self.import_dialog):
            if d is not None:
                d.close()
