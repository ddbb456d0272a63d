"""Window/level interaction maths, kept free of widgets so it can be tested and reused.

Right-drag as radiology viewers do: horizontal motion changes the window width (right = wider,
flatter contrast), vertical motion changes the level (down = higher level, darker image). The rate
scales with the current width, so the same gesture works on 12-bit MR and on rescaled data.
"""

from __future__ import annotations

from annotator.services.viewing import Window

DRAG_PIXELS_PER_WIDTH = 300.0  # a drag of this many screen pixels changes the value by one window width
MIN_WIDTH = 1e-3


def drag(window: Window, dx: float, dy: float) -> Window:
    """The window after a right-drag of (dx, dy) screen pixels (y grows downwards)."""
    rate = max(window.width, 1.0) / DRAG_PIXELS_PER_WIDTH
    return Window(center=window.center + dy * rate, width=max(window.width + dx * rate, MIN_WIDTH))


def describe(window: Window) -> str:
    return f"W {window.width:.0f}  L {window.center:.0f}"
