"""Keep two views on the same place at the same zoom, whatever their sizes.

pyqtgraph's axis links copy view *ranges*; with a locked aspect ratio and views of different sizes
that makes the two views fight. Here the centre and the scale (view units per screen pixel) are
copied instead: every change of the leader is copied to the follower; only the user's own zoom and
pan in the follower go back to the leader (its resizes must not change the leader's zoom).
"""

from __future__ import annotations

import pyqtgraph as pg


class ViewSync:
    """``a`` leads, ``b`` follows."""

    def __init__(self, a: pg.ViewBox, b: pg.ViewBox) -> None:
        self._a, self._b = a, b
        self._busy = False
        self.enabled = True
        a.sigRangeChanged.connect(lambda *_: self._copy(a, b))
        b.sigRangeChangedManually.connect(lambda *_: self._copy(b, a))
        b.sigResized.connect(lambda *_: self._copy(a, b))

    def sync_now(self) -> None:
        self._copy(self._a, self._b)

    def _copy(self, src: pg.ViewBox, dst: pg.ViewBox) -> None:
        if self._busy or not self.enabled or dst.width() <= 0 or dst.height() <= 0:
            return
        if src.width() <= 0 or src.height() <= 0 or not dst.isVisible():
            return
        self._busy = True
        try:
            (x0, x1), (y0, y1) = src.viewRange()
            cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
            sx, sy = (x1 - x0) / src.width(), (y1 - y0) / src.height()
            hw, hh = sx * dst.width() / 2.0, sy * dst.height() / 2.0
            dst.setRange(xRange=(cx - hw, cx + hw), yRange=(cy - hh, cy + hh), padding=0)
        finally:
            self._busy = False
