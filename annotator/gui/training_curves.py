"""The live loss / accuracy plot of a training run: loss on the left axis, train and validation accuracy
(0–1) on the right, one point per epoch. In cross-validation each fold is its own segment (NaN gaps,
drawn with ``connect="finite"``) with a labelled boundary, and x counts on across folds: fold k's epoch e
sits at ``k * epochs + e``. Folds trained at once (``cv --jobs N``) report their epochs interleaved; each
epoch is kept with its fold and the curves are redrawn in fold order, so no line joins two folds."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from annotator.domain.events import EpochEnded
from annotator.gui.theme import READER_COLOURS


class TrainingCurves(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss_x: list[float] = []
        self.loss_y: list[float] = []
        self.train_acc_y: list[float] = []
        self.val_x: list[float] = []
        self.val_y: list[float] = []
        self.fold_lines: list[pg.InfiniteLine] = []
        self._epochs: dict[int | None, dict[int, EpochEnded]] = {}  # fold -> epoch -> its event
        self.setMinimumHeight(160)
        self.setLabel("bottom", "epoch")
        self.setLabel("left", "loss")
        self.showAxis("right")
        self.setLabel("right", "accuracy")
        legend = self.addLegend(offset=(-10, 10))
        self.loss_curve = self.plot([], [], pen=pg.mkPen(READER_COLOURS[0], width=2), symbol="o",
                                    symbolSize=5, name="loss", connect="finite")
        self.acc_box = pg.ViewBox()
        self.scene().addItem(self.acc_box)
        self.getAxis("right").linkToView(self.acc_box)
        self.acc_box.setXLink(self.getPlotItem())
        self.acc_box.setYRange(0.0, 1.0)
        self.acc_box.setMouseEnabled(False, False)
        self.train_acc_curve = pg.PlotDataItem([], [], pen=pg.mkPen(READER_COLOURS[1], width=1,
                                                                     style=Qt.PenStyle.DashLine), connect="finite")
        self.val_acc_curve = pg.PlotDataItem([], [], pen=pg.mkPen(READER_COLOURS[2], width=2), symbol="t",
                                             symbolSize=6, connect="finite")
        for curve, name in ((self.train_acc_curve, "train accuracy"), (self.val_acc_curve, "val accuracy")):
            self.acc_box.addItem(curve)
            legend.addItem(curve, name)
        self.getPlotItem().vb.sigResized.connect(self._sync_acc_box)

    def _sync_acc_box(self) -> None:
        self.acc_box.setGeometry(self.getPlotItem().vb.sceneBoundingRect())
        self.acc_box.linkedViewChanged(self.getPlotItem().vb, self.acc_box.XAxis)

    def add_epoch(self, e: EpochEnded) -> None:
        """Add one epoch's figures to its fold's segment (folds may arrive interleaved) and redraw."""
        epochs = max(1, e.epochs)
        if e.fold is not None and e.fold not in self._epochs:
            self._mark_fold(e.fold, epochs)
        self._epochs.setdefault(e.fold, {})[e.epoch] = e
        self._redraw()

    def folds_shown(self) -> list[int]:
        """The folds that have at least one epoch on the plot, in order."""
        return sorted(k for k in self._epochs if k is not None)

    def _redraw(self) -> None:
        self.loss_x, self.loss_y, self.train_acc_y, self.val_x, self.val_y = [], [], [], [], []
        for fold in sorted(self._epochs, key=lambda k: -1 if k is None else k):
            points = [self._epochs[fold][n] for n in sorted(self._epochs[fold])]
            k = fold if fold is not None else 0
            edge = k * max(1, points[0].epochs) + 0.5
            if self.loss_x:  # a gap so folds are not joined
                self.loss_x.append(edge)
                self.loss_y.append(math.nan)
                self.train_acc_y.append(math.nan)
            if self.val_x:
                self.val_x.append(edge)
                self.val_y.append(math.nan)
            for p in points:
                x = float(k * max(1, p.epochs) + p.epoch)
                self.loss_x.append(x)
                self.loss_y.append(p.loss)
                self.train_acc_y.append(p.train_accuracy)
                if p.val_accuracy is not None:
                    self.val_x.append(x)
                    self.val_y.append(p.val_accuracy)
        self.loss_curve.setData(self.loss_x, self.loss_y)
        self.train_acc_curve.setData(self.loss_x, self.train_acc_y)
        self.val_acc_curve.setData(self.val_x, self.val_y)

    def _mark_fold(self, k: int, epochs: int) -> None:
        edge = k * epochs + 0.5
        line = pg.InfiniteLine(pos=edge, angle=90, pen=pg.mkPen("#555555", style=Qt.PenStyle.DotLine),
                               label=f"fold {k + 1}", labelOpts={"position": 0.97, "color": "#9a9a9a"})
        self.addItem(line)
        self.fold_lines.append(line)
        self.fold_lines.sort(key=lambda ln: ln.value())

    def clear_curves(self) -> None:
        self.loss_x, self.loss_y, self.train_acc_y, self.val_x, self.val_y = [], [], [], [], []
        self._epochs = {}
        for curve in (self.loss_curve, self.train_acc_curve, self.val_acc_curve):
            curve.setData([], [])
        for line in self.fold_lines:
            self.removeItem(line)
        self.fold_lines = []
