"""Grade buttons (one per grade of the project's scale, each showing its key, name and definition),
the state of the rater's label on the slice, and undo / redo / next buttons.

The buttons only mirror the keyboard: every key press and click goes through the same actions.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from annotator.domain.entities import Label
from annotator.domain.scales import Grade, GradingScale
from annotator.gui import readout
from annotator.gui.theme import DONE_COLOUR, INCOMPLETE_COLOUR, OWN_COLOUR, UNLABELLED_COLOUR

GRADE_BUTTON_STYLE = (
    "QPushButton { padding: 4px 10px; }"
    f"QPushButton:checked {{ background: #00687a; color: white; font-weight: bold; border: 2px solid {OWN_COLOUR}; }}"
)


def grade_button(g: Grade, chosen: Callable[[int], object]) -> QPushButton:
    """A checkable button for one grade: label and name, the definition and key in the tooltip."""
    b = QPushButton(f"{g.label}  {g.name}" if g.label != g.name else g.name)
    b.setCheckable(True)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    b.setToolTip(f"<b>{html.escape(g.label)} – {html.escape(g.name)}</b> (key {html.escape(g.key)})"
                 f"<br>{html.escape(g.definition)}")
    b.setStyleSheet(GRADE_BUTTON_STYLE)
    b.clicked.connect(lambda _checked=False, o=g.ordinal: chosen(o))
    return b


class GradePanel(QWidget):
    gradeChosen = Signal(int)
    undoRequested = Signal()
    redoRequested = Signal()
    nextRequested = Signal()

    def __init__(self, scale: GradingScale, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = scale
        self.buttons: dict[int, QPushButton] = {}
        row = QHBoxLayout()
        row.setSpacing(6)
        for g in scale.grades:
            b = grade_button(g, self.gradeChosen.emit)
            b.setMinimumHeight(34)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.buttons[g.ordinal] = b
            row.addWidget(b)
        row.addSpacing(12)
        self.undo_button = self._small("Undo", "Undo your last change on this slice (Ctrl+Z)", self.undoRequested)
        self.redo_button = self._small("Redo", "Redo (Ctrl+Shift+Z)", self.redoRequested)
        self.next_button = self._small("Next ▶", "Next slice you have not finished (Enter or Space)",
                                       self.nextRequested)
        for b in (self.undo_button, self.redo_button, self.next_button):
            row.addWidget(b)
        self.state = QLabel()
        self.state.setObjectName("labelState")
        self.definition = QLabel()
        self.definition.setObjectName("gradeDefinition")
        self.definition.setWordWrap(True)
        self.definition.setStyleSheet("QLabel#gradeDefinition { color: #b8b8b8; }")
        info = QHBoxLayout()
        info.addWidget(self.state)
        info.addWidget(self.definition, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(row)
        layout.addLayout(info)
        self.show_label(None)

    def _small(self, text: str, tip: str, signal: Signal) -> QPushButton:
        b = QPushButton(text)
        b.setToolTip(tip)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        b.setMinimumHeight(34)
        b.clicked.connect(lambda _checked=False: signal.emit())
        return b

    def show_label(self, label: Label | None) -> None:
        current = label.grade if label is not None else None
        for ordinal, b in self.buttons.items():
            b.setChecked(ordinal == current)
        if label is None or label.empty:
            colour = UNLABELLED_COLOUR
        else:
            colour = DONE_COLOUR if label.complete else INCOMPLETE_COLOUR
        self.state.setStyleSheet(f"QLabel#labelState {{ color: {colour}; font-weight: bold; }}")
        self.state.setText(readout.label_state(label, self.scale))
        keys = "/".join(g.key for g in self.scale.grades)
        if current is not None:
            try:
                g = self.scale.grade(current)
                self.definition.setText(f"{g.label} {g.name}: {g.definition}")
            except Exception:  # a label on another scale
                self.definition.setText("")
        else:
            self.definition.setText(f"Keys {keys} grade · Enter/Space next · Ctrl+Z undo · right-drag window")

    def set_undo_redo(self, can_undo: bool, can_redo: bool) -> None:
        self.undo_button.setEnabled(can_undo)
        self.redo_button.setEnabled(can_redo)
