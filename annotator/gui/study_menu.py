"""The workstation's Study menu: read in one of her studies, the study dashboard, and setting slice
levels from the worklist. What each rater is offered comes from the services and the policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.policy import Action
from annotator.domain.studies import VertebralLevel
from annotator.gui.background import BackgroundOp
from annotator.gui.reading_presenter import her_studies
from annotator.gui.reading_window import ReadingWindow
from annotator.gui.study_dashboard import StudyDashboard
from annotator.services.levels import set_image_levels

if TYPE_CHECKING:
    from annotator.gui.main_window import MainWindow

NO_LEVEL = "none (clear)"


class StudyPicker(QDialog):
    """Her studies with her progress; OK (or a double-click) picks one."""

    chosen = Signal(str)

    def __init__(self, studies: list[tuple[str, int, int]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Read a study")
        self.list = QListWidget()
        for name, done, total in studies:
            item = QListWidgetItem(f"{name}   ({done} of {total} read)")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.list.addItem(item)
        if studies:
            self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _i: self.accept())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        col = QVBoxLayout(self)
        col.addWidget(QLabel("The studies you read in:" if studies else "You are not a reader of any study."))
        col.addWidget(self.list)
        col.addWidget(buttons)

    def accept(self) -> None:
        item = self.list.currentItem()
        super().accept()
        if item is not None:
            self.chosen.emit(str(item.data(Qt.ItemDataRole.UserRole)))


class StudyMenu:
    """Adds the Study menu to a workstation window and the worklist's "Set level…" entry."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.session = window.session
        self.picker: StudyPicker | None = None
        self.reading: ReadingWindow | None = None
        self.dashboard: StudyDashboard | None = None
        rules = self.session.policy
        self.menu: QMenu = window.menuBar().addMenu("&Study")
        self.read_action = self.menu.addAction("Read a study…", self.pick_study)
        self.dashboard_action = self.menu.addAction("Study dashboard…", self.show_dashboard)
        self.dashboard_action.setEnabled(rules.may_see_study_progress)
        if not rules.may_see_study_progress:
            self.dashboard_action.setToolTip("For reviewers and admins")
        window.worklist.allow_set_level(rules.may(Action.MANAGE_STUDIES))
        window.worklist.setLevelRequested.connect(self.ask_level)

    # ----- reading ----------------------------------------------------------------------------
    def pick_study(self) -> None:
        db, rater = self.session.db, self.session.rater
        BackgroundOp(self.window, lambda: her_studies(db, rater), self._show_picker, key="her_studies",
                     label="Finding your studies…").run()

    def _show_picker(self, studies: list[tuple[str, int, int]]) -> None:
        self.picker = StudyPicker(studies, self.window)
        self.picker.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.picker.chosen.connect(self.open_reading)
        self.picker.open()

    def open_reading(self, study: str) -> ReadingWindow:
        if self.reading is not None:
            self.reading.close()
        w = self.reading = ReadingWindow(self.session.db, self.session.rater, study, parent=self.window)
        w.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        w.destroyed.connect(lambda _o=None: self._reading_gone(w))
        w.show()
        w.start()
        return w

    def _reading_gone(self, w: ReadingWindow) -> None:
        if self.reading is w:
            self.reading = None

    # ----- dashboard --------------------------------------------------------------------------
    def show_dashboard(self) -> StudyDashboard:
        if self.dashboard is None:
            d = self.dashboard = StudyDashboard(self.session.db, self.session.rater, parent=self.window)
            d.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
            d.destroyed.connect(lambda _o=None: setattr(self, "dashboard", None))
            d.load()
        self.dashboard.show()
        self.dashboard.raise_()
        return self.dashboard

    def close(self) -> None:
        for w in (self.reading, self.dashboard):
            if w is not None:
                w.close()

    # ----- levels -----------------------------------------------------------------------------
    def ask_level(self, image_ids: list[int]) -> None:
        levels = [NO_LEVEL, *(v.value for v in VertebralLevel)]
        text, ok = QInputDialog.getItem(self.window, "Set level",
                                        f"Vertebral level of the {len(image_ids)} chosen slices:", levels, 0, False)
        if ok:
            self.set_level(image_ids, None if text == NO_LEVEL else VertebralLevel(text))

    def set_level(self, image_ids: list[int], level: VertebralLevel | None) -> None:
        """Store the level (the service asks the policy; a refusal becomes the error dialog)."""
        db, rater = self.session.db, self.session.rater

        def done(n: int) -> None:
            self.window.statusBar().showMessage(f"Level set on {n} slices", 4000)
            self.window.reload_worklist()

        BackgroundOp(self.window, lambda: set_image_levels(db, rater, image_ids, level), done, key="set_level",
                     label="Setting the level…").run()
