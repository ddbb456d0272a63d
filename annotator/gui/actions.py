"""The keyboard map, as QActions in the window's menus (so every shortcut is also discoverable).

Grade keys come from the project's scale (0-3 for Lee, A-D for Schizas, 1-3 for RSNA); nothing else
uses a bare letter or digit, so no scale can collide with another command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from annotator.domain.scales import GradingScale

PRESET_KEYS = ("F2", "F3", "F4", "F6")
PRESET_NAMES = ("DICOM", "Auto 1–99 %", "High contrast 10–90 %", "Full range")


@dataclass
class Actions:
    grades: dict[int, QAction] = field(default_factory=dict)
    all: dict[str, QAction] = field(default_factory=dict)

    def __getitem__(self, name: str) -> QAction:
        return self.all[name]


def _keys(*specs: str | QKeySequence.StandardKey) -> list[QKeySequence]:
    return [QKeySequence(s) for s in specs]


def build_actions(window: QMainWindow, scale: GradingScale, handlers: dict[str, Callable[[], object]],
                  grade: Callable[[int], object], preset: Callable[[str], object]) -> Actions:
    """Create every action with its shortcut, add it to the window and to its menu."""
    acts = Actions()
    bar = window.menuBar()
    menus: dict[str, QMenu] = {name: bar.addMenu(name) for name in ("&File", "&Label", "&View", "&Review", "&Help")}

    def add(menu: str, name: str, text: str, keys: list[QKeySequence], fn: Callable[[], object],
            checkable: bool = False) -> QAction:
        a = QAction(text, window)
        a.setShortcuts(keys)
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setCheckable(checkable)
        a.triggered.connect(lambda _checked=False: fn())
        window.addAction(a)
        menus[menu].addAction(a)
        acts.all[name] = a
        return a

    add("&File", "switch_rater", "Switch rater…", [], handlers["switch_rater"])
    add("&File", "refresh", "Reload worklist and readers", _keys("F5"), handlers["refresh"])
    menus["&File"].addSeparator()
    add("&File", "quit", "Quit", _keys("Ctrl+Q"), handlers["quit"])

    for g in scale.grades:
        keys = _keys(g.key)
        if g.key.isdigit():
            keys.append(QKeySequence(Qt.KeyboardModifier.KeypadModifier | Qt.Key(ord(g.key))))
        a = add("&Label", f"grade_{g.ordinal}", f"Grade {g.label} – {g.name}", keys,
                lambda o=g.ordinal: grade(o))
        a.setToolTip(g.definition)
        acts.grades[g.ordinal] = a
    menus["&Label"].addSeparator()
    add("&Label", "undo", "Undo on this slice", _keys("Ctrl+Z"), handlers["undo"])
    add("&Label", "redo", "Redo on this slice", _keys("Ctrl+Shift+Z", "Ctrl+Y"), handlers["redo"])
    add("&Label", "next_unlabelled", "Next unfinished slice",
        _keys("Return", "Enter", "Space"), handlers["next_unlabelled"])

    add("&View", "prev_slice", "Previous slice", _keys("Up", "PgUp"), handlers["prev_slice"])
    add("&View", "next_slice", "Next slice", _keys("Down", "PgDown"), handlers["next_slice"])
    add("&View", "first_slice", "First slice of series", _keys("Home"), handlers["first_slice"])
    add("&View", "last_slice", "Last slice of series", _keys("End"), handlers["last_slice"])
    menus["&View"].addSeparator()
    add("&View", "zoom_in", "Zoom in", _keys("Ctrl++", "Ctrl+="), handlers["zoom_in"])
    add("&View", "zoom_out", "Zoom out", _keys("Ctrl+-"), handlers["zoom_out"])
    add("&View", "fit", "Fit slice to view", _keys("Ctrl+0"), handlers["fit"])
    wl = menus["&View"].addMenu("Window preset")
    for key, name in zip(PRESET_KEYS, PRESET_NAMES, strict=True):
        a = add("&View", f"preset_{name}", name, _keys(key), lambda n=name: preset(n))
        menus["&View"].removeAction(a)
        wl.addAction(a)
    menus["&View"].addSeparator()
    add("&View", "toggle_compare", "Model and readers side by side", _keys("F9"), handlers["toggle_compare"],
        checkable=True)
    add("&Help", "keys", "Keyboard and mouse…", _keys("F1"), handlers["keys"])
    return acts


HELP_TEXT = """<h3>Keyboard and mouse</h3>
<table cellspacing=4>
<tr><td><b>left-click</b></td><td>place the canal centre (drag the marker to adjust)</td></tr>
<tr><td><b>{keys}</b></td><td>grade the slice</td></tr>
<tr><td><b>Enter / Space</b></td><td>next slice you have not finished</td></tr>
<tr><td><b>Ctrl+Z / Ctrl+Shift+Z</b></td><td>undo / redo on this slice (each is saved as a new version)</td></tr>
<tr><td><b>wheel, Up/Down</b></td><td>previous / next slice</td></tr>
<tr><td><b>Ctrl+wheel, Ctrl +/-</b></td><td>zoom; Ctrl+0 fits the slice</td></tr>
<tr><td><b>left- or middle-drag</b></td><td>pan</td></tr>
<tr><td><b>right-drag</b></td><td>window (horizontal) and level (vertical)</td></tr>
<tr><td><b>F2 F3 F4 F6</b></td><td>window presets: DICOM, auto, high contrast, full range</td></tr>
<tr><td><b>F9</b></td><td>show / hide the model and other readers side by side</td></tr>
</table>
<p>Every click and key is saved at once; closing the window loses nothing.</p>"""
