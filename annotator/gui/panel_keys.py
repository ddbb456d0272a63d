"""Keys that belong to a panel wherever it is placed, even docked in the main window.

A ``QShortcut`` in a dock that repeats one of the window's shortcuts (the grade keys, PgUp/PgDown) is
ambiguous, and Qt then fires neither. Instead, while the focus is inside the panel, its keys claim the
``ShortcutOverride`` (so no window shortcut fires) and run on the key press. Typing into a text field
of the panel stays typing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QKeyCombination, QObject, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

TEXT_INPUTS = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)


def _combined(modifiers: Qt.KeyboardModifier, key: Qt.Key) -> int:
    return QKeyCombination(modifiers & ~Qt.KeyboardModifier.KeypadModifier, key).toCombined()


class PanelKeys(QObject):
    def __init__(self, panel: QWidget) -> None:
        super().__init__(panel)
        self._panel = panel
        self._actions: dict[int, Callable[[], object]] = {}

    def add(self, key: str, action: Callable[[], object]) -> None:
        """``key`` as QKeySequence spells it: "J", "PgDown", "Ctrl+Return"; keypad keys count as the same."""
        combo = QKeySequence(key)[0]
        self._actions[_combined(combo.keyboardModifiers(), combo.key())] = action

    def watch(self) -> None:
        """Listen on the panel and every widget in it (call once the panel is built)."""
        for w in (self._panel, *self._panel.findChildren(QWidget)):
            w.installEventFilter(self)

    def action_for(self, obj: QObject, ev: QKeyEvent) -> Callable[[], object] | None:
        action = self._actions.get(_combined(ev.modifiers(), Qt.Key(ev.key())))
        typing = ev.text().isprintable() and bool(ev.text()) and not (
            ev.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier))
        if action is not None and typing and isinstance(obj, TEXT_INPUTS):
            return None
        return action

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 (Qt naming)
        if ev.type() not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) or not isinstance(ev, QKeyEvent):
            return False
        action = self.action_for(obj, ev)
        if action is None:
            return False
        ev.accept()
        if ev.type() == QEvent.Type.KeyPress:
            action()
        return True
