"""Agreement between readers: pick readers, compute the study's table, and look inside one pair.

For the selected pair a confusion-matrix heat map (rows: reader a, columns: reader b) and a histogram
of click distances in mm. Clicking a cell lists the slices behind it; activating one asks the main
window to open that slice (``openImage``). All figures come from :mod:`annotator.services.agreement`.

The readers offered are read in the background each time the panel is shown and whenever the main
window refreshes (a model trained or activated, F5), so a reader added later appears; a Compute pressed
while they are being read runs once they are listed, with the selection made meanwhile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import Rater
from annotator.domain.policy import ReaderNames
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import GradingScale
from annotator.gui.background import BackgroundOp
from annotator.services import readers as reader_service
from annotator.services.agreement import ReaderData, agreement_report_and_data
from annotator.services.agreement_report import AgreementReport, PairRow, distance_median, fmt, fmt_ci
from annotator.services.project import Database, reader_names_for

COLUMNS = ("reader a", "reader b", "n", "accuracy (95% CI)", "F1 macro", "F1 weighted", "κ quadratic", "AC1",
           "distance median mm")
IMAGE_ID_ROLE = Qt.ItemDataRole.UserRole


class AgreementPanel(QWidget):
    openImage = Signal(int)  # noqa: N815 (Qt naming)
    computed = Signal()  # the report asked for last is on screen (or its error is)
    readersLoaded = Signal()  # noqa: N815 - the readers offered were read again and are listed

    def __init__(self, db: Database, scale: GradingScale, rater: Rater, parent: QWidget | None = None) -> None:
        """``rater``: who is looking; the readers offered obey her rights (there is no unblinded default)."""
        super().__init__(parent)
        self.db, self.scale, self.rater = db, scale, rater
        self.report: AgreementReport | None = None
        self.data: ReaderData | None = None
        self.pair: tuple[ReaderRef, ReaderRef] | None = None
        self._wanted: list[str] | None = None  # readers chosen before the list was read (set_selected_readers)
        self._listed = False  # the readers have been read at least once
        self.names = ReaderNames()  # how this rater sees the raters (names, or aliases: the policy's call)
        self._reloads = 0  # reader reads in flight
        self._compute_when_listed = False

        self.readers = QListWidget()
        self.readers.setMaximumHeight(110)
        self.boot = QSpinBox()
        self.boot.setRange(0, 10000)
        self.boot.setSingleStep(100)
        self.boot.setValue(200)
        self.boot.setToolTip("Patient-bootstrap resamples for the 95% CIs (0: no CIs)")
        self.compute_button = QPushButton("Compute")
        self.compute_button.clicked.connect(self.compute)
        self.status = QLabel("")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._on_pair_selected)

        self.confusion_plot = pg.PlotWidget()
        self.confusion_plot.setMinimumSize(220, 220)
        self.confusion_plot.invertY(True)
        self.confusion_plot.setAspectLocked(True)
        self.confusion_plot.setMouseEnabled(False, False)
        self.confusion_plot.hideButtons()
        self.confusion_image = pg.ImageItem(axisOrder="row-major")
        self.confusion_image.setColorMap(pg.colormap.get("viridis"))
        self.confusion_plot.addItem(self.confusion_image)
        self.confusion_plot.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self._count_items: list[pg.TextItem] = []
        self.distance_plot = pg.PlotWidget()
        self.distance_plot.setMinimumSize(220, 180)
        self.distance_plot.setLabel("bottom", "click distance (mm)")
        self.distance_plot.setLabel("left", "slices")
        self.cell_title = QLabel("Click a confusion cell to list its slices")
        self.cell_slices = QListWidget()
        self.cell_slices.itemActivated.connect(self._on_slice_activated)

        top = QHBoxLayout()
        top.addWidget(self.readers, 1)
        side = QVBoxLayout()
        side.addWidget(QLabel("Bootstrap resamples"))
        side.addWidget(self.boot)
        side.addWidget(self.compute_button)
        side.addStretch(1)
        top.addLayout(side)
        lists = QWidget()
        lcol = QVBoxLayout(lists)
        lcol.setContentsMargins(0, 0, 0, 0)
        lcol.addWidget(self.cell_title)
        lcol.addWidget(self.cell_slices)
        plots = QSplitter(Qt.Orientation.Horizontal)
        for w in (self.confusion_plot, self.distance_plot, lists):
            plots.addWidget(w)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(self.table)
        body.addWidget(plots)
        col = QVBoxLayout(self)
        col.addLayout(top)
        col.addWidget(self.status)
        col.addWidget(body, 1)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        self.reload_readers()

    # ----- readers ------------------------------------------------------------------------------
    @property
    def loading_readers(self) -> bool:
        return self._reloads > 0

    def reload_readers(self) -> None:
        """Read the readers this rater may see again, in the background (a newer read drops an older one)."""
        db, rater = self.db, self.rater

        def settled() -> None:
            self._reloads -= 1
            if self._reloads == 0 and self._listed and self._compute_when_listed:
                self._compute_when_listed = False
                self.compute()  # pressed while the readers were being read

        self._reloads += 1
        BackgroundOp(self, lambda: (reader_service.readers_visible_to(db, rater),  # blinding: the policy decides
                                    reader_names_for(db, rater)),  # and so does naming (names or aliases)
                     self._list_readers, self._on_readers_failed, key="readers", label="Reading the readers…",
                     on_settled=settled).run()

    def _list_readers(self, listed: tuple[list[ReaderRef], ReaderNames]) -> None:
        refs, self.names = listed
        checked = set(self._wanted) if self._wanted is not None else (
            set(self.selected_readers()) if self._listed else None)
        self._wanted = None
        self.readers.clear()
        for ref in refs:
            name = self.names.reader(ref)
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, ref)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = ref.kind is ReaderKind.RATER if checked is None else name in checked
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.readers.addItem(item)
        self._listed = True
        self.readersLoaded.emit()

    def _on_readers_failed(self, exc: Exception) -> None:
        self.status.setText(f"Cannot read the readers: {exc}")
        if self._compute_when_listed:
            self._compute_when_listed = False
            self.computed.emit()

    def selected_readers(self) -> list[str]:
        if not self._listed and self._wanted is not None:
            return list(self._wanted)
        return [self.readers.item(i).text() for i in range(self.readers.count())
                if self.readers.item(i).checkState() == Qt.CheckState.Checked]

    def set_selected_readers(self, names: list[str]) -> None:
        """Check these readers (applied to the list when it is read, if it is being read now)."""
        if self.loading_readers or not self._listed:
            self._wanted = list(names)
        for i in range(self.readers.count()):
            it = self.readers.item(i)
            it.setCheckState(Qt.CheckState.Checked if it.text() in names else Qt.CheckState.Unchecked)

    # ----- compute ------------------------------------------------------------------------------
    def compute(self) -> None:
        """Compute the report for the checked readers in the background (once they are listed: only
        readers this rater may see are ever computed)."""
        n_boot = self.boot.value()
        if self.loading_readers or not self._listed:
            self._compute_when_listed = True
            self.status.setText(f"Computing agreement ({n_boot} bootstrap resamples)…")
            if not self.loading_readers:
                self.reload_readers()
            return
        names = [self.readers.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.readers.count())
                 if self.readers.item(i).checkState() == Qt.CheckState.Checked]
        if len(names) < 2:
            self.status.setText("Pick at least two readers.")
            self.computed.emit()
            return
        db = self.db

        def work() -> tuple[AgreementReport, ReaderData]:  # on a worker thread: the bootstrap takes seconds
            return agreement_report_and_data(db, names, n_boot=n_boot, seed=0)

        self.status.setText(f"Computing agreement ({n_boot} bootstrap resamples)…")
        BackgroundOp(self, work, lambda result: self._on_report(result, n_boot), self._on_report_failed,
                     key="agreement", label="Computing agreement…").run()

    def _on_report(self, result: tuple[AgreementReport, ReaderData], n_boot: int) -> None:
        self.report, self.data = result
        self.status.setText(f"{self.report.n_slices} slices; CIs from {n_boot} patient-bootstrap "
                            "resamples (seed 0)")
        self._fill_table(self.report.pairs)
        self.computed.emit()

    def _on_report_failed(self, exc: Exception) -> None:  # shown to the user, nothing to recover
        self.status.setText(f"Cannot compute agreement: {exc}")
        self.computed.emit()

    def _fill_table(self, pairs: tuple[PairRow, ...]) -> None:
        self.table.clearSelection()
        self.table.setRowCount(len(pairs))
        for r, p in enumerate(pairs):
            f = p.figures
            cells = [self.names.reader(p.a), self.names.reader(p.b), str(f.n),
                     fmt(f.accuracy, True) + fmt_ci(p, "accuracy", True),
                     fmt(f.f1_macro, True), fmt(f.f1_weighted, True), fmt(f.kappa_quadratic.value), fmt(f.ac1),
                     fmt(distance_median(p))]
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self._count_cells(self.scale.n_grades ** 2)  # now, not in the turn the first pair is shown
        self._show_pair(None)

    # ----- one pair -----------------------------------------------------------------------------
    def _on_pair_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        self._show_pair(min(rows) if rows else None)

    def select_pair(self, row: int) -> None:
        self.table.selectRow(row)

    def _show_pair(self, row: int | None) -> None:
        self.cell_slices.clear()
        self.cell_title.setText("Click a confusion cell to list its slices")
        self.distance_plot.clear()
        if row is None or self.report is None or self.data is None:
            self.pair = None
            self.confusion_image.clear()
            for t in self._count_items:
                t.setVisible(False)
            return
        p = self.report.pairs[row]
        self.pair = p.pair
        conf = np.asarray(p.figures.confusion, dtype=float)
        self.confusion_image.setImage(conf, levels=(0, max(1.0, conf.max())))
        labels = [(i + 0.5, g.label) for i, g in enumerate(self.scale.grades)]
        self.confusion_plot.getAxis("left").setTicks([labels])
        self.confusion_plot.getAxis("bottom").setTicks([labels])
        self.confusion_plot.setLabel("left", self.names.reader(p.a))
        self.confusion_plot.setLabel("bottom", self.names.reader(p.b))
        high = 0.6 * max(1.0, conf.max())
        self._count_cells(conf.size)
        for t, ((i, j), v) in zip(self._count_items, np.ndenumerate(conf), strict=True):
            t.setText(str(int(v)), color="k" if v > high else "w")
            t.setPos(j + 0.5, i + 0.5)
            t.setVisible(True)
        self.confusion_plot.setRange(xRange=(0, conf.shape[1]), yRange=(0, conf.shape[0]), padding=0.02)
        dist = self.data.click_distances_mm(*self.pair)
        if dist.size:
            edges = np.histogram_bin_edges(dist, bins=min(20, max(1, dist.size)))
            counts, edges = np.histogram(dist, bins=edges)
            width = float(edges[1] - edges[0]) if len(edges) > 1 and edges[1] > edges[0] else 0.1
            self.distance_plot.addItem(pg.BarGraphItem(x0=edges[:-1], height=counts, width=width,
                                                       brush="#56b4e9"))
        self.distance_plot.setTitle(f"{dist.size} slices with both clicks and pixel spacing")

    def _count_cells(self, n: int) -> None:
        """``n`` count labels on the confusion plot, reused from pair to pair (making each anew cost
        the GUI thread a few milliseconds more per pair)."""
        if len(self._count_items) == n:
            return
        for t in self._count_items:
            self.confusion_plot.removeItem(t)
        self._count_items = [pg.TextItem("", anchor=(0.5, 0.5)) for _ in range(n)]
        for t in self._count_items:
            self.confusion_plot.addItem(t)

    def _on_scene_clicked(self, ev: Any) -> None:
        if self.pair is None or ev.button() != Qt.MouseButton.LeftButton:
            return
        pos: QPointF = self.confusion_image.mapFromScene(ev.scenePos())
        n = self.scale.n_grades
        col, row = int(np.floor(pos.x())), int(np.floor(pos.y()))
        if 0 <= row < n and 0 <= col < n:
            self.show_cell(row, col)

    def show_cell(self, row: int, col: int) -> None:
        """List the slices where reader a gave grade ``row`` and reader b grade ``col`` (scale positions)."""
        if self.pair is None or self.data is None:
            return
        a, b = self.pair
        ga, gb = self.scale.grades[row], self.scale.grades[col]
        hits = self.data.slices_graded(a, ga.ordinal, b, gb.ordinal)
        self.cell_slices.clear()
        self.cell_title.setText(f"{self.names.reader(a)} {ga.label} · {self.names.reader(b)} {gb.label}: "
                                f"{hits.size} slices")
        for i in hits.tolist():
            im_id = int(self.data.image_ids[i])
            item = QListWidgetItem(f"{self.data.patient_keys[i]} · image {im_id}")
            item.setData(IMAGE_ID_ROLE, im_id)
            self.cell_slices.addItem(item)

    def listed_image_ids(self) -> list[int]:
        return [int(self.cell_slices.item(i).data(IMAGE_ID_ROLE)) for i in range(self.cell_slices.count())]

    def _on_slice_activated(self, item: QListWidgetItem) -> None:
        self.openImage.emit(int(item.data(IMAGE_ID_ROLE)))
