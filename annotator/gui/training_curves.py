"""The live loss / accuracy plot of a training run: loss on the left axis, train and validation accuracy
(0–1) on the right, one point per epoch. In cross-validation each fold is its own segment (NaN gaps,
drawn with ``connect="finite"``) with a labelled boundary, and x counts on across folds."""

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
        epochs = max(1, e.epochs)
        k = e.fold if e.fold is not None else 0
        x = float(k * epochs + e.epoch)
        if e.fold is not None and e.epoch == 1:
            self._start_fold_segment(k, epochs)
        self.loss_x.append(x)
        self.loss_y.append(e.loss)
        self.loss_curve.setData(self.loss_x, self.loss_y)
        self.train_acc_y.append(e.train_accuracy)
        self.train_acc_curve.setData(self.loss_x, self.train_acc_y)
        if e.val_accuracy is not None:
            self.val_x.append(x)
            self.val_y.append(e.val_accuracy)
            self.val_acc_curve.setData(self.val_x, self.val_y)

    def _start_fold_segment(self, k: int, epochs: int) -> None:
        edge = k * epochs + 0.5
        if self.loss_x:  # a gap so folds are not joined
            self.loss_x.append(edge)
            self.loss_y.append(math.nan)
            self.train_acc_y.append(math.nan)
        if self.val_x:
            self.val_x.append(edge)
            self.val_y.append(math.nan)
        line = pg.InfiniteLine(pos=edge, angle=90, pen=pg.mkPen("#555555", style=Qt.PenStyle.DotLine),
                               label=f"fold {k + 1}", labelOpts={"position": 0.97, "color": "#9a9a9a"})
        self.addItem(line)
        self.fold_lines.append(line)

    def clear_curves(self) -> None:
        self.loss_x, self.loss_y, self.train_acc_y, self.val_x, self.val_y = [], [], [], [], []
        for curve in (self.loss_curve, self.train_acc_curve, self.val_acc_curve):
            curve.setData([], [])
        for line in self.fold_lines:
            self.removeItem(line)
        self.fold_lines = []
