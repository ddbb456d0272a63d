"""Texts the viewer shows: cursor readout (value, px, mm), slice position, label state.

Pixel convention used everywhere in the app: pixel (column c, row r) has its centre at (x, y) =
(c, r), so x_px is the column index and a pixel covers [c - 0.5, c + 0.5]. In-plane millimetres are
measured from the centre of the first pixel with PixelSpacing (row spacing, column spacing); with no
PixelSpacing the readout says "mm unavailable" and never assumes 1 mm.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from annotator.domain.entities import ImageRef, Label
from annotator.domain.geometry import MM_UNAVAILABLE
from annotator.domain.scales import GradingScale


def pixel_at(x: float, y: float) -> tuple[int, int]:
    """The (column, row) of the pixel that contains the point (x, y)."""
    return int(math.floor(x + 0.5)), int(math.floor(y + 0.5))


def inside(image: ImageRef, x: float, y: float) -> bool:
    g = image.geometry
    return -0.5 <= x < g.columns - 0.5 and -0.5 <= y < g.rows - 0.5


def mm_text(image: ImageRef, x: float, y: float) -> str:
    g = image.geometry
    if not g.has_mm or g.pixel_spacing is None:
        return MM_UNAVAILABLE
    rs, cs = g.pixel_spacing
    return f"{x * cs:.1f}, {y * rs:.1f} mm"


def cursor_readout(image: ImageRef, pixels: np.ndarray | None, x: float, y: float) -> str:
    """"px 12, 40 · 6.0, 20.0 mm · 1034" for the point under the cursor; empty outside the image."""
    if not inside(image, x, y):
        return ""
    c, r = pixel_at(x, y)
    value = ""
    if pixels is not None and 0 <= r < pixels.shape[0] and 0 <= c < pixels.shape[1]:
        value = f"  ·  value {float(pixels[r, c]):.6g}"
    return f"px {c}, {r}  ·  {mm_text(image, x, y)}{value}"


def level_text(image: ImageRef) -> str:
    """"Level L4-L5", or that the slice has no vertebral level."""
    return f"Level {image.level}" if image.level else "Level not set"


def slice_position(image: ImageRef, index: int, total: int) -> str:
    """"Slice 2/5 · +4.0 mm · Level L4-L5" (position along the slice normal), or say what is unavailable."""
    head = f"Slice {index + 1}/{total}"
    g = image.geometry
    position = "position unavailable"
    if g.image_position is not None and g.image_orientation is not None:
        with contextlib.suppress(Exception):  # a degenerate orientation: the position is unknown, not zero
            position = f"{g.position_along_normal():+.1f} mm"
    return f"{head}  ·  {position}  ·  {level_text(image)}"


def label_state(label: Label | None, scale: GradingScale) -> str:
    """What the rater has done on the slice, and what is missing."""
    if label is None or label.empty:
        return "Unlabelled: click the canal centre, press a grade key"
    point = f"centre {label.x_px:.1f}, {label.y_px:.1f} px" if label.has_point else "no centre point"
    grade = "no grade"
    if label.grade is not None:
        try:
            g = scale.grade(label.grade)
            grade = f"grade {g.label} ({g.name})"
        except Exception:  # a label from another scale: show the number, do not fail the view
            grade = f"grade {label.grade} ({label.scale_code})"
    state = "done" if label.complete else "INCOMPLETE"
    return f"{point}  ·  {grade}  ·  {state}  ·  v{label.version}"
