"""Input simulation on a SliceView: clicks, drags and wheel turns at image-pixel positions.

Positions are computed the way the brief asks: image pixel -> scene with ``imageItem.mapToScene``
-> viewport with ``view.mapFromScene``. ImageItem-local coordinates put pixel c over [c, c + 1], so
the centre of pixel (c, r) is item-local (c + 0.5, r + 0.5).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from annotator.gui.slice_view import SliceView


def viewport_pos(view: SliceView, c: float, r: float) -> QPoint:
    view.view_box.updateMatrix()  # else a zoom or pan not yet painted is not in the item's transform
    scene = view.image_item.mapToScene(QPointF(c + 0.5, r + 0.5))
    return view.graphics_view.mapFromScene(scene)


def click_pixel(view: SliceView, c: float, r: float, button: Qt.MouseButton = Qt.MouseButton.LeftButton) -> None:
    QTest.mouseClick(view.graphics_view.viewport(), button, Qt.KeyboardModifier.NoModifier,
                     viewport_pos(view, c, r))


def _send(view: SliceView, kind: QMouseEvent.Type, pos: QPoint, button: Qt.MouseButton,
          buttons: Qt.MouseButton) -> None:
    vp = view.graphics_view.viewport()
    ev = QMouseEvent(kind, QPointF(pos), QPointF(vp.mapToGlobal(pos)), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, ev)


def drag(view: SliceView, start: QPoint, end: QPoint, button: Qt.MouseButton = Qt.MouseButton.LeftButton,
         steps: int = 8) -> None:
    """Hover to ``start``, press, move in steps with the button held, release at ``end`` (viewport pixels).

    The hover first is what a real pointer does; pyqtgraph picks the item to drag from it.
    """
    _send(view, QMouseEvent.Type.MouseMove, start, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    _send(view, QMouseEvent.Type.MouseButtonPress, start, button, button)
    for i in range(1, steps + 1):
        p = QPoint(start.x() + (end.x() - start.x()) * i // steps, start.y() + (end.y() - start.y()) * i // steps)
        _send(view, QMouseEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button)
    _send(view, QMouseEvent.Type.MouseButtonRelease, end, button, Qt.MouseButton.NoButton)


def move_to(view: SliceView, pos: QPoint) -> None:
    _send(view, QMouseEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)


def wheel(view: SliceView, notches: int, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """Turn the wheel; positive = away from the user (up)."""
    vp = view.graphics_view.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    ev = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * notches),
                     Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)
