"""One axial slice on screen: a pyqtgraph ViewBox we own, an ImageItem, the canal marker, a scale bar.

Pixel convention (the same in the database, the services and every overlay): pixel (column c,
row r) has its centre at view coordinates (x, y) = (c, r); it covers [c - 0.5, c + 0.5] x
[r - 0.5, r + 0.5]. An ImageItem draws array element [r, c] over item-local [c, c + 1] x [r, r + 1],
so the item is placed with ``setRect(-0.5, -0.5, columns, rows)``: view = item-local - 0.5.
A click at the centre of pixel (c, r) therefore yields exactly (c, r).
Rows grow downwards (``invertY``) as radiology displays them; arrays are row-major (rows x columns).

Mouse: left-click places the canal centre (drag the marker to adjust), left/middle-drag pans,
right-drag changes window/level, the wheel scrolls slices, Ctrl+wheel zooms.
Clicks come from ``scene.sigMouseClicked`` and are mapped with ``imageItem.mapFromScene``.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from annotator.domain.entities import ImageRef
from annotator.gui.scale_bar import ScaleBar
from annotator.gui.theme import OWN_COLOUR, OWN_INCOMPLETE_COLOUR, VIEW_BACKGROUND
from annotator.services.viewing import Window

pg.setConfigOptions(imageAxisOrder="row-major")

WHEEL_STEP = 120  # angle delta of one notch
INVERTED_GREYS = np.arange(255, -1, -1, dtype=np.uint8)  # MONOCHROME1: the window's low end is white


class SliceViewBox(pg.ViewBox):
    """A ViewBox whose right-drag sets window/level and whose wheel scrolls slices."""

    windowDragged = Signal(float, float)  # screen pixels dx, dy since the last move
    wheelSteps = Signal(int)  # +1 = next slice

    def __init__(self) -> None:
        super().__init__(enableMenu=False, invertY=True, lockAspect=True, defaultPadding=0.0)
        self._wheel_acc = 0

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            d = ev.screenPos() - ev.lastScreenPos()
            self.windowDragged.emit(float(d.x()), float(d.y()))
            return
        super().mouseDragEvent(ev, axis)

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        self._wheel_acc += ev.delta()
        steps = int(self._wheel_acc / WHEEL_STEP)
        if steps:
            self._wheel_acc -= steps * WHEEL_STEP
            self.wheelSteps.emit(-steps)  # wheel towards the user = next slice


class _CornerLabel(QLabel):
    """Text in a corner of the view, on a translucent backdrop so it stays legible over bright tissue."""

    def __init__(self, parent: QWidget, align: Qt.AlignmentFlag) -> None:
        super().__init__(parent)
        self.corner_align = align
        self.setAlignment(align)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setObjectName("cornerText")
        self.setStyleSheet("QLabel#cornerText { color: #ececec; background: rgba(0, 0, 0, 150);"
                           " border-radius: 3px; padding: 2px 5px; font-size: 9pt; }")


class SliceView(QWidget):
    """Shows a slice; emits image-pixel coordinates for clicks, drags and the cursor."""

    canalClicked = Signal(float, float)  # a left-click inside the image, in pixel coordinates
    markerMoved = Signal(float, float)  # the canal marker was dragged and released here
    cursorMoved = Signal(float, float)  # the pointer is over the image at this pixel position
    cursorLeft = Signal()
    windowDragged = Signal(float, float)
    sliceStepRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None, *, editable: bool = True, follower: bool = False) -> None:
        """``editable``: clicks place the canal marker. ``follower``: zoom and pan come from another view."""
        super().__init__(parent)
        self.editable = editable
        self.follower = follower
        self.image_ref: ImageRef | None = None
        self._marker_xy: tuple[float, float] | None = None
        self._shape: tuple[int, int] | None = None  # of the last slice shown, kept while the next one loads
        self.inverted = False  # the slice shown is MONOCHROME1
        self.graphics_view = pg.GraphicsView(background=VIEW_BACKGROUND)
        self.graphics_view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.graphics_view.setFrameShape(QFrame.Shape.NoFrame)  # else pyqtgraph scales the scene ~2 %
        self.view_box = SliceViewBox()
        self.graphics_view.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.marker = pg.TargetItem(pos=(0, 0), size=18, symbol="crosshair", pen=pg.mkPen(OWN_COLOUR, width=2),
                                    hoverPen=pg.mkPen("w", width=2), brush=(0, 0, 0, 0), movable=editable)
        self.marker.setZValue(100)
        self.marker.hide()
        self.view_box.addItem(self.marker, ignoreBounds=True)
        self.scale_bar = ScaleBar(self.view_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics_view)
        vp = self.graphics_view.viewport()
        self.corner = {
            "top_left": _CornerLabel(vp, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop),
            "top_right": _CornerLabel(vp, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop),
            "bottom_right": _CornerLabel(vp, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom),
            "center": _CornerLabel(vp, Qt.AlignmentFlag.AlignCenter),
        }
        vp.installEventFilter(self)
        scene = self.graphics_view.scene()
        scene.sigMouseClicked.connect(self._on_click)
        scene.sigMouseMoved.connect(self._on_move)
        self.marker.sigPositionChangeFinished.connect(self._on_marker_dragged)
        self._auto_fit = not follower  # keep fitting on resize until the user zooms or pans
        self.view_box.sigRangeChangedManually.connect(self._user_moved)
        self.view_box.sigResized.connect(self._on_resized)
        self.view_box.windowDragged.connect(self.windowDragged)
        self.view_box.wheelSteps.connect(self.sliceStepRequested)

    # ----- coordinates -------------------------------------------------------------------------
    def scene_to_pixel(self, scene_pos: QPointF) -> tuple[float, float]:
        """Scene position -> pixel coordinates (centre of pixel (c, r) = (c, r))."""
        self.view_box.updateMatrix()  # pyqtgraph applies a range change to the transform lazily
        local = self.image_item.mapFromScene(scene_pos)
        return float(local.x()) - 0.5, float(local.y()) - 0.5

    def pixel_to_scene(self, x: float, y: float) -> QPointF:
        self.view_box.updateMatrix()
        return self.image_item.mapToScene(QPointF(x + 0.5, y + 0.5))

    def _inside(self, x: float, y: float) -> bool:
        g = self.image_ref.geometry if self.image_ref is not None else None
        return g is not None and -0.5 <= x < g.columns - 0.5 and -0.5 <= y < g.rows - 0.5

    # ----- content -----------------------------------------------------------------------------
    def set_slice(self, image: ImageRef, pixels: np.ndarray, window: Window, *, fit: bool = False,
                  inverted: bool = False) -> None:
        """Show new pixels; keep zoom and pan unless ``fit`` or the image size changed.

        ``inverted`` (MONOCHROME1) draws the window's low end white through an inverted grey ramp."""
        shape = (image.geometry.rows, image.geometry.columns)
        resized, self._shape = shape != self._shape, shape
        self.image_ref = image
        self.inverted = inverted
        self.image_item.setLookupTable(INVERTED_GREYS if inverted else None, update=False)
        self.image_item.setImage(pixels, autoLevels=False, levels=window.levels)
        self.image_item.setRect(QRectF(-0.5, -0.5, pixels.shape[1], pixels.shape[0]))
        g = image.geometry
        ratio = 1.0
        if g.has_mm and g.pixel_spacing is not None:
            ratio = g.pixel_spacing[1] / g.pixel_spacing[0]  # screen px per x unit / per y unit
        self.view_box.setAspectLocked(True, ratio=ratio)
        self.scale_bar.set_column_spacing(g.pixel_spacing[1] if g.has_mm and g.pixel_spacing else None)
        if fit or resized:
            self.fit()
        self.set_message("")

    def clear(self, message: str = "") -> None:
        self.image_ref = None
        self.image_item.clear()
        self.marker.hide()
        self.set_message(message)

    def set_window(self, window: Window) -> None:
        self.image_item.setLevels(window.levels)

    def fit(self) -> None:
        """Show the whole slice, as large as the view allows; it stays fitted until the user zooms or pans."""
        self._auto_fit = not self.follower
        if self.image_ref is not None and not self.follower:
            g = self.image_ref.geometry
            self.view_box.setRange(QRectF(-0.5, -0.5, g.columns, g.rows), padding=0.01)

    def zoom(self, factor: float) -> None:
        """Zoom about the view centre; factor > 1 enlarges the image."""
        self._auto_fit = False
        self.view_box.scaleBy((1.0 / factor, 1.0 / factor))

    def _user_moved(self, *args: object) -> None:
        self._auto_fit = False

    def _on_resized(self, *args: object) -> None:
        if self._auto_fit:
            self.fit()

    def set_marker(self, x: float | None, y: float | None, *, complete: bool = True) -> None:
        """Show the rater's canal centre (or hide it); an incomplete label draws it in warning colour."""
        if x is None or y is None:
            self._marker_xy = None
            self.marker.hide()
            return
        colour = QColor(OWN_COLOUR if complete else OWN_INCOMPLETE_COLOUR)
        self.marker.setPen(pg.mkPen(colour, width=2))
        self._marker_xy = (x, y)
        self.marker.setPos(QPointF(x, y))
        self.marker.show()

    def set_corner_text(self, corner: str, text: str) -> None:
        label = self.corner[corner]
        label.setText(text)
        self._place_corners()

    def set_message(self, text: str) -> None:
        """A message in the middle of the view (loading, errors, empty worklist)."""
        self.set_corner_text("center", text)

    # ----- events ------------------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Resize:
            self._place_corners()
        elif event.type() == QEvent.Type.Leave:
            self.cursorLeft.emit()
        return False

    def _place_corners(self) -> None:
        r = self.graphics_view.viewport().rect().adjusted(8, 6, -8, -6)
        for label in self.corner.values():
            label.setVisible(bool(label.text()))
            label.adjustSize()
            a, size = label.corner_align, label.size()
            x = r.left() if a & Qt.AlignmentFlag.AlignLeft else (
                r.right() - size.width() if a & Qt.AlignmentFlag.AlignRight else r.center().x() - size.width() // 2)
            y = r.top() if a & Qt.AlignmentFlag.AlignTop else (
                r.bottom() - size.height() if a & Qt.AlignmentFlag.AlignBottom else r.center().y() - size.height() // 2)
            label.move(x, y)
            label.raise_()

    def _on_click(self, ev) -> None:
        if not self.editable or self.image_ref is None:
            return
        if ev.button() != Qt.MouseButton.LeftButton or ev.double():
            return
        x, y = self.scene_to_pixel(ev.scenePos())
        if self._inside(x, y):
            self.canalClicked.emit(x, y)

    def _on_move(self, scene_pos: QPointF) -> None:
        if self.image_ref is None:
            return
        x, y = self.scene_to_pixel(scene_pos)
        if self._inside(x, y):
            self.cursorMoved.emit(x, y)
        else:
            self.cursorLeft.emit()

    def _on_marker_dragged(self, *args: object) -> None:
        pos = self.marker.pos()
        x, y = float(pos.x()), float(pos.y())
        if self._inside(x, y):
            self.markerMoved.emit(x, y)
        elif self._marker_xy is not None:  # dropped outside the image: put it back
            self.marker.setPos(QPointF(*self._marker_xy))
