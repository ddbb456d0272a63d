"""A millimetre scale bar fixed to the bottom-left of a view, resized as the user zooms.

Its length is a round number of millimetres (1, 2, 5, 10, 20, 50 ...) chosen to span roughly
70-160 screen pixels, computed from the column spacing of the slice. Without PixelSpacing it shows
"mm unavailable" instead of a bar: nothing assumes 1 mm.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen

from annotator.domain.geometry import MM_UNAVAILABLE

TARGET_PX = 110.0
MARGIN = 16.0


def nice_length(mm_per_screen_px: float, target_px: float = TARGET_PX) -> float:
    """The round length in mm whose bar is closest to ``target_px`` screen pixels."""
    want = mm_per_screen_px * target_px
    if want <= 0 or not math.isfinite(want):
        return 0.0
    exp = math.floor(math.log10(want))
    candidates = [m * 10.0**e for e in (exp - 1, exp, exp + 1) for m in (1.0, 2.0, 5.0)]
    return min(candidates, key=lambda c: abs(math.log(c / want)))


def view_units_per_pixel(vb: pg.ViewBox) -> float:
    """Image pixels per screen pixel along x (0 before the view has a size).

    Computed from the view range rather than ``ViewBox.viewPixelSize()``, whose cache pyqtgraph
    does not clear when it adjusts the range for a locked aspect ratio.
    """
    (x0, x1), _ = vb.viewRange()
    width = float(vb.width())
    return (x1 - x0) / width if width > 0 else 0.0


class ScaleBar(pg.GraphicsObject):
    """Child of a ViewBox (not of its content), so it stays put while the image pans and zooms."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        super().__init__()
        self._vb = view_box
        self._col_spacing: float | None = None
        self._length_px = 0.0
        self._text = ""
        self._font = QFont()
        self._font.setPointSizeF(9.0)
        self.setParentItem(view_box)
        self.setZValue(1000)
        view_box.sigRangeChanged.connect(self._relayout)
        view_box.sigResized.connect(self._relayout)

    @property
    def text(self) -> str:
        return self._text

    @property
    def length_px(self) -> float:
        return self._length_px

    def set_column_spacing(self, mm: float | None) -> None:
        """Column spacing of the slice shown (mm per pixel along x), or None when unknown."""
        self._col_spacing = mm if mm is not None and mm > 0 else None
        self._relayout()

    def _relayout(self, *args: object) -> None:
        self.prepareGeometryChange()
        if self._col_spacing is None:
            self._length_px, self._text = 0.0, MM_UNAVAILABLE
        else:
            view_units_per_px = view_units_per_pixel(self._vb)
            mm_per_px = view_units_per_px * self._col_spacing
            length = nice_length(mm_per_px)
            if length <= 0:
                self._length_px, self._text = 0.0, ""
            else:
                self._length_px = length / mm_per_px
                self._text = f"{length:g} mm"
        self.setPos(QPointF(MARGIN, self._vb.height() - MARGIN))
        self.update()

    def boundingRect(self) -> QRectF:
        width = max(self._length_px, QFontMetricsF(self._font).horizontalAdvance(self._text)) + 8
        return QRectF(-4, -24, width, 30)

    def paint(self, p: QPainter, *args: object) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setFont(self._font)
        shadow = QColor(0, 0, 0, 200)
        ink = QColor(235, 235, 235)
        if self._length_px > 0:
            for colour, off in ((shadow, 1.0), (ink, 0.0)):
                p.setPen(QPen(colour, 2))
                p.drawLine(QPointF(off, off), QPointF(self._length_px + off, off))
                p.drawLine(QPointF(off, -5 + off), QPointF(off, 5 + off))
                p.drawLine(QPointF(self._length_px + off, -5 + off), QPointF(self._length_px + off, 5 + off))
        for colour, off in ((shadow, 1.0), (ink, 0.0)):
            p.setPen(colour)
            p.drawText(QRectF(off, -22 + off, max(self._length_px, 200), 16),
                       int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), self._text)
