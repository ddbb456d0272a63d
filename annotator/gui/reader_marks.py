"""Readers' points drawn over a :class:`SliceView`, one colour and symbol each, named in a legend."""

from __future__ import annotations

import pyqtgraph as pg

from annotator.gui.slice_view import SliceView


class ReaderMarks:
    """A layer of marks on a slice view; ``names`` lists the legend, newest last."""

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self.items: list[pg.ScatterPlotItem] = []
        self.legend = pg.LegendItem(offset=(-10, 10), labelTextColor="#e6e6e6", brush=(0, 0, 0, 150))
        self.legend.setParentItem(view.view_box)
        self.legend.hide()

    @property
    def names(self) -> list[str]:
        return [label.text for _sample, label in self.legend.items]

    def clear(self) -> None:
        for item in self.items:
            self.view.view_box.removeItem(item)
        self.items.clear()
        self.legend.clear()
        self.legend.hide()

    def add(self, x: float | None, y: float | None, name: str, colour: str, symbol: str, size: int = 14,
            no_point: str = " (no point)") -> None:
        """A mark at pixel (x, y); a reader without a point is still named, followed by ``no_point``."""
        pts = [(x, y)] if x is not None and y is not None else []
        item = pg.ScatterPlotItem(pos=pts, symbol=symbol, size=size, pen=pg.mkPen(colour, width=2),
                                  brush=pg.mkBrush(0, 0, 0, 0), pxMode=True)
        item.setZValue(50)
        self.view.view_box.addItem(item, ignoreBounds=True)
        self.items.append(item)
        self.legend.addItem(item, name if pts else name + no_point)
        self.legend.show()
