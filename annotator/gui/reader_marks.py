"""Readers' points drawn over a :class:`SliceView`, one colour and symbol each, named in a legend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyqtgraph as pg

from annotator.gui.slice_view import SliceView


@dataclass(frozen=True, slots=True)
class Mark:
    """One reader's point (None: the reader is named without a point)."""

    x: float | None
    y: float | None
    name: str
    colour: str
    symbol: str
    size: int = 14
    no_point: str = " (no point)"


class ReaderMarks:
    """A layer of marks on a slice view; ``names`` lists the legend, in the order shown.

    The scatter items and legend rows are kept and updated from slice to slice: creating them anew
    for every slice cost several milliseconds per mark on the GUI thread.
    """

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self._pool: list[pg.ScatterPlotItem] = []  # in the view box for good; the unused ones hidden
        self._marks: list[Mark] = []
        self.legend = pg.LegendItem(offset=(-10, 10), labelTextColor="#e6e6e6", brush=(0, 0, 0, 150))
        self.legend.setParentItem(view.view_box)
        self.legend.hide()

    @property
    def names(self) -> list[str]:
        return [label.text for _sample, label in self.legend.items]

    @property
    def items(self) -> list[pg.ScatterPlotItem]:
        """The scatter items of the marks shown, in order."""
        return self._pool[:len(self._marks)]

    def show(self, marks: Sequence[Mark]) -> None:
        """Show exactly these marks (the previous ones go)."""
        self._marks = list(marks)
        self._sync()

    def clear(self) -> None:
        self.show([])

    def add(self, x: float | None, y: float | None, name: str, colour: str, symbol: str, size: int = 14,
            no_point: str = " (no point)") -> None:
        """One more mark at pixel (x, y); a reader without a point is still named, followed by ``no_point``."""
        self.show([*self._marks, Mark(x, y, name, colour, symbol, size, no_point)])

    def _sync(self) -> None:
        for i, mark in enumerate(self._marks):
            pts = [(mark.x, mark.y)] if mark.x is not None and mark.y is not None else []
            if i == len(self._pool):
                item = pg.ScatterPlotItem(pxMode=True)
                item.setZValue(50)
                self.view.view_box.addItem(item, ignoreBounds=True)
                self._pool.append(item)
            item = self._pool[i]
            item.setData(pos=pts, symbol=mark.symbol, size=mark.size, pen=pg.mkPen(mark.colour, width=2),
                         brush=pg.mkBrush(0, 0, 0, 0))
            item.show()
            text = mark.name if pts else mark.name + mark.no_point
            if i < len(self.legend.items):
                sample, label = self.legend.items[i]  # row i samples pool item i: only its text may change
                if label.text != text:
                    label.setText(text)
                sample.update()
            else:
                self.legend.addItem(item, text)
        for item in self._pool[len(self._marks):]:
            item.hide()
        while len(self.legend.items) > len(self._marks):
            self.legend.removeItem(self.legend.items[-1][0].item)
        self.legend.setVisible(bool(self._marks))
