"""Colours and the dark palette: a dim interface so the slice is the brightest thing on screen.

Reader colours come from the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies); the rater's own marker is cyan, amber while the label is incomplete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QColor, QPalette

if TYPE_CHECKING:  # the colours are plain values a widget-free presenter uses too
    from PySide6.QtWidgets import QApplication

VIEW_BACKGROUND = "#000000"
OWN_COLOUR = "#00e5ff"
OWN_INCOMPLETE_COLOUR = "#ffb000"
MODEL_COLOUR = "#ff4fd8"
READER_COLOURS = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#ffffff")
READER_SYMBOLS = ("o", "s", "t", "d", "star", "p", "h", "t1")

DONE_COLOUR = "#4caf50"
INCOMPLETE_COLOUR = OWN_INCOMPLETE_COLOUR
UNLABELLED_COLOUR = "#8a8a8a"


def reader_style(ordinal: int) -> tuple[str, str]:
    """The (colour, symbol) of the rater at this position among the project's raters (ordered by id), so
    every view gives a rater the same style and the first eight raters all differ."""
    i = ordinal % len(READER_COLOURS)
    return READER_COLOURS[i], READER_SYMBOLS[i % len(READER_SYMBOLS)]


def slice_styles(ordinals: list[int]) -> list[tuple[str, str]]:
    """Styles for the readers on one slice, in the order given: each rater's own style, unless a rater of
    lower ordinal on the slice has it already (more than eight raters), then the next free one. Up to eight
    readers never share, and the result does not depend on the order the readers are listed in."""
    n = len(READER_COLOURS)
    used: set[int] = set()
    chosen: dict[int, int] = {}
    for ordinal in sorted(set(ordinals)):
        i = next(((ordinal + step) % n for step in range(n) if (ordinal + step) % n not in used), ordinal % n)
        used.add(i)
        chosen[ordinal] = i
    return [reader_style(chosen[o]) for o in ordinals]


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor(30, 30, 32), QColor(40, 40, 43), QColor(220, 220, 220)
    pal.setColor(QPalette.ColorRole.Window, window)
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, base)
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor(36, 36, 39))
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor(50, 50, 54))
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, QColor(52, 52, 56))
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.BrightText, QColor(255, 80, 80))
    pal.setColor(QPalette.ColorRole.Highlight, QColor(0, 120, 140))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor(130, 130, 130))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(110, 110, 110))
    app.setPalette(pal)
