"""The study dashboard (issue 13, point 8): per study and reader, progress, cannot-grade, calibration
score, median reading time, intra-rater kappa and kappa against a chosen reference, with each reader's
reading times in reading order, and the table's CSV export.

Everything is computed by :func:`annotator.services.dashboard.study_dashboard` on a background op
(which asks the policy: reviewers and admins only); the widget lays the rows out and plots them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import Rater
from annotator.gui.background import BackgroundOp
from annotator.gui.theme import reader_style
from annotator.services.dashboard import DashboardRow, study_dashboard, write_csv
from annotator.services.project import Database
from annotator.services.studies import list_studies

COLUMNS = ("Reader", "Assigned", "Done", "Repeats done", "Cannot grade", "Calibration score",
           "Median time (s)", "Intra-rater κ", "κ vs reference")
NO_REFERENCE = "(no reference)"


def _num(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def row_cells(r: DashboardRow) -> tuple[str, ...]:
    """One reader's row as the table shows it."""
    cal = r.calibration
    cal_text = "–" if cal is None or cal.accuracy is None else f"{cal.exact}/{cal.graded} ({cal.accuracy:.0%})"
    intra = "–" if not r.intra_n else f"{_num(r.intra_kappa, '.2f')} (n={r.intra_n})"
    return (r.reader, str(r.assigned), str(r.done), f"{r.repeats_done}/{r.repeats_planned}", str(r.cannot_grade),
            cal_text, _num(r.median_seconds, ".1f"), intra, _num(r.kappa_vs_reference, ".2f"))


class StudyDashboard(QWidget):
    loaded = Signal(object)  # the list of DashboardRow shown
    exported = Signal(object)  # Path of the CSV written

    def __init__(self, db: Database, viewer: Rater, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setWindowTitle("Study dashboard")
        self.db, self.viewer = db, viewer
        self.rows: list[DashboardRow] = []
        self.study_box = QComboBox()
        self.study_box.setObjectName("studyBox")
        self.study_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.reference_box = QComboBox()
        self.reference_box.setObjectName("referenceBox")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(lambda _c=False: self.ask_export())
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.plot = pg.PlotWidget(background="#1e1e20")
        self.plot.setLabel("bottom", "Read, in reading order")
        self.plot.setLabel("left", "Reading time (s)")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.note = QLabel("")
        top = QHBoxLayout()
        for w in (QLabel("Study"), self.study_box, QLabel("Reference"), self.reference_box):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.export_button)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        split.setSizes([170, 560])
        col = QVBoxLayout(self)
        col.addLayout(top)
        col.addWidget(split, 1)
        col.addWidget(self.note)
        self.study_box.currentIndexChanged.connect(lambda _i: self._on_study())
        self.reference_box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.resize(1200, 760)

    @property
    def study(self) -> str | None:
        return self.study_box.currentData()

    @property
    def reference(self) -> str | None:
        data = self.reference_box.currentData()
        return str(data) if data else None

    def load(self, study: str | None = None) -> None:
        """List the studies the viewer may see (then show ``study``, or the first)."""
        db, viewer = self.db, self.viewer

        def listed(studies: list) -> None:  # type: ignore[type-arg]
            self.study_box.blockSignals(True)
            self.study_box.clear()
            for s in studies:
                self.study_box.addItem(s.name, s.name)
            self.study_box.blockSignals(False)
            if study is not None and self.study_box.findData(study) >= 0:
                self.study_box.setCurrentIndex(self.study_box.findData(study))
            self._on_study()

        BackgroundOp(self, lambda: list_studies(db, viewer), listed, key="studies", label="Listing studies…").run()

    def _on_study(self) -> None:
        self.reference_box.blockSignals(True)
        self.reference_box.clear()
        self.reference_box.addItem(NO_REFERENCE, "")
        self.reference_box.blockSignals(False)
        self.refresh(fill_references=True)

    def refresh(self, fill_references: bool = False) -> None:
        """Compute the dashboard of the chosen study in the background."""
        study, reference, db, viewer = self.study, self.reference, self.db, self.viewer
        if study is None:
            self.note.setText("No study to show.")
            return
        self.note.setText(f"Computing the dashboard of {study}…")

        def shown(rows: list[DashboardRow]) -> None:
            if fill_references:
                self.reference_box.blockSignals(True)
                for r in rows:
                    self.reference_box.addItem(r.reader, r.reader)
                self.reference_box.blockSignals(False)
            self.show_rows(rows)

        BackgroundOp(self, lambda: study_dashboard(db, viewer, study, reference), shown, key="dashboard",
                     label="Computing the study dashboard…").run()

    def show_rows(self, rows: list[DashboardRow]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, text in enumerate(row_cells(r)):
                item = QTableWidgetItem(text)
                if j:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.plot.clear()
        self.legend.clear()
        for i, r in enumerate(rows):
            secs = np.array([np.nan if s is None else s for s in r.seconds_in_order], dtype=float)
            colour, symbol = reader_style(i)
            self.plot.plot(np.arange(1, len(secs) + 1), secs, pen=pg.mkPen(colour, width=1.5), symbol=symbol,
                           symbolSize=5, symbolBrush=colour, symbolPen=None, name=r.reader, connect="finite")
        ref = self.reference
        self.note.setText(f"{len(rows)} readers" + (f"  ·  κ against {ref}" if ref else
                                                     "  ·  choose a reference reader for κ against it"))
        self.loaded.emit(rows)

    # ----- export -----------------------------------------------------------------------------
    def ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the dashboard", f"{self.study or 'study'}.csv",
                                              "CSV (*.csv)")
        if path:
            self.export(Path(path))

    def export(self, out: Path) -> None:
        rows, reference = list(self.rows), self.reference
        BackgroundOp(self, lambda: write_csv(rows, out, reference), lambda _r: self.exported.emit(out),
                     key="export", label="Writing the CSV…").run()
