"""The review screen's decision box: the readers of one slice with an Accept button each, the model's
class probabilities, the reviewer's own grade and reason, Decide / Reopen, and the slice's history.

It holds no database: it shows what the review panel gives it and emits what the reviewer asks for.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import Adjudication, Prediction, QueueStatus
from annotator.domain.policy import ReaderNames
from annotator.domain.readers import ReaderMark, ReaderRef
from annotator.domain.scales import GradingScale
from annotator.gui.compare_pane import grade_text, probability_rows
from annotator.gui.grade_panel import grade_button
from annotator.gui.review_state import ReaderRow, describe_adjudication, grade_long, source_text

__all__ = ["DecisionBox", "ReaderRow", "describe_adjudication", "grade_long", "unlabelled"]

READER_COLUMNS = ("reader", "grade", "point (px)", "")
HISTORY_COLUMNS = ("v", "when", "reviewer", "status", "source", "grade", "reason")
MESSAGE_STYLES = {
    "error": "color: #ff6b6b; font-weight: bold;",
    "conflict": "color: #1e1e1e; background: #ffb000; font-weight: bold; padding: 6px; border-radius: 3px;",
    "info": "color: #8fd18f;",
}


def unlabelled(mark: ReaderMark) -> bool:
    """A required rater's placeholder: no label version at all on the slice."""
    return mark.version is None and mark.grade is None and mark.x_px is None


def _item(text: str, tip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if tip:
        item.setToolTip(tip)
    return item


def _table(columns: tuple[str, ...]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    t.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    t.verticalHeader().setVisible(False)
    t.horizontalHeader().setStretchLastSection(True)
    return t


class DecisionBox(QWidget):
    acceptRequested = Signal(object)  # noqa: N815 (Qt naming) - the reader's ReaderRef
    gradeChosen = Signal(int)  # noqa: N815
    decideRequested = Signal()  # noqa: N815
    reopenRequested = Signal()  # noqa: N815

    def __init__(self, scale: GradingScale, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = scale
        self.accept_buttons: dict[ReaderRef, QPushButton] = {}
        self.readers = _table(READER_COLUMNS)
        self.readers.horizontalHeader().setStretchLastSection(False)
        self.readers.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.model_info = QLabel()
        self.model_info.setObjectName("reviewModelInfo")
        self.model_info.setWordWrap(True)
        self.model_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.grade_buttons: dict[int, QPushButton] = {}
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        grades = QHBoxLayout()
        for g in scale.grades:
            b = grade_button(g, self.gradeChosen.emit)
            self._group.addButton(b)
            self.grade_buttons[g.ordinal] = b
            grades.addWidget(b)
        self.point_label = QLabel()
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Reason (required to override every reader, and to reopen)")
        self.message = QLabel()
        self.message.setObjectName("reviewMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.decide_button = QPushButton("Decide")
        self.decide_button.setToolTip("Store your own point and grade as the decision (Ctrl+Enter)")
        self.decide_button.clicked.connect(lambda _c=False: self.decideRequested.emit())
        self.reopen_button = QPushButton("Reopen…")
        self.reopen_button.setToolTip("Reopen the decision on this slice; write the reason first")
        self.reopen_button.clicked.connect(lambda _c=False: self.reopenRequested.emit())
        buttons = QHBoxLayout()
        buttons.addWidget(self.decide_button)
        buttons.addWidget(self.reopen_button)
        buttons.addStretch(1)
        own = QGroupBox("Your decision")
        own_col = QVBoxLayout(own)
        own_col.addLayout(grades)
        own_col.addWidget(self.point_label)
        own_col.addWidget(self.reason)
        own_col.addLayout(buttons)

        self.history = _table(HISTORY_COLUMNS)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(QLabel("<b>Readers</b>"))
        layout.addWidget(self.readers)
        layout.addWidget(self.model_info)
        layout.addWidget(own)
        layout.addWidget(self.message)
        layout.addWidget(QLabel("<b>Decisions on this slice</b>"))
        layout.addWidget(self.history, 1)
        self.set_own(None, None, None)
        self.show_message("")

    # ----- readers and model ------------------------------------------------------------------
    def show_readers(self, rows: list[ReaderRow], decided_source: ReaderRef | None) -> None:
        for old in self.accept_buttons.values():  # deleted later by Qt: hide them now so none lingers on screen
            old.hide()
        self.accept_buttons.clear()
        self.readers.setRowCount(0)
        self.readers.setRowCount(len(rows))
        for r, row in enumerate(rows):
            m = row.mark
            name = _item(f"● {row.name}")
            name.setForeground(QColor(row.colour))
            self.readers.setItem(r, 0, name)
            self.readers.setItem(r, 1, _item("not labelled" if unlabelled(m) else grade_long(self.scale, m.grade)))
            point = "no point" if m.x_px is None or m.y_px is None else f"{m.x_px:.1f}, {m.y_px:.1f}"
            self.readers.setItem(r, 2, _item(point, f"label version {m.version}, {m.labelled_at or ''}"))
            b = QPushButton("Accepted" if row.key == decided_source else "Accept")
            b.setToolTip(f"Adopt {row.name}'s point and grade as the decision")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setEnabled(m.grade is not None)
            b.clicked.connect(lambda _c=False, k=row.key: self.acceptRequested.emit(k))
            self.readers.setCellWidget(r, 3, b)
            self.accept_buttons[row.key] = b
        self.readers.resizeColumnsToContents()
        self.readers.setFixedHeight(self.readers.horizontalHeader().height() + 4
                                    + sum(self.readers.rowHeight(i) for i in range(len(rows))))

    def show_model(self, name: str | None, prediction: Prediction | None, status: str) -> None:
        """The active model's grade and class probabilities, or why there are none."""
        if prediction is None:
            self.model_info.setText(f"<b>Model</b>: {html.escape(status)}")
            return
        lines = [f"<b>Model</b> {html.escape(name or '')}: grade "
                 f"{html.escape(grade_long(self.scale, prediction.grade))}"]
        if prediction.probabilities:
            rows = probability_rows(self.scale, prediction.probabilities)
            lines.append("<pre style='margin:0'>" + html.escape("\n".join(rows)) + "</pre>")
        self.model_info.setText("<br>".join(lines))

    # ----- own decision -----------------------------------------------------------------------
    def set_own(self, x: float | None, y: float | None, grade: int | None) -> None:
        self._group.setExclusive(False)  # an exclusive group cannot uncheck its last button
        for o, b in self.grade_buttons.items():
            b.setChecked(o == grade)
        self._group.setExclusive(True)
        where = "click the canal centre on the slice" if x is None or y is None else f"{x:.1f}, {y:.1f} px"
        keys = "/".join(g.key for g in self.scale.grades)
        self.point_label.setText(f"Your point: {where} · grade: {grade_text(self.scale, grade)} (keys {keys})")

    def set_status(self, status: QueueStatus | None) -> None:
        """Enable what makes sense for the slice's status (None: no slice)."""
        for b in (*self.grade_buttons.values(), self.decide_button):
            b.setEnabled(status is not None)
        self.reopen_button.setEnabled(status is QueueStatus.DECIDED)

    def show_message(self, text: str, kind: str = "error") -> None:
        self.message.setStyleSheet(f"QLabel#reviewMessage {{ {MESSAGE_STYLES[kind]} }}")
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self.message_kind = kind if text else ""

    # ----- history ----------------------------------------------------------------------------
    def show_history(self, adjs: list[Adjudication], names: dict[int, str],
                     readers: ReaderNames | None = None) -> None:
        """``names``: reviewer id -> the name shown; ``readers``: how the adopted readers are shown."""
        self.history.setRowCount(len(adjs))
        for r, a in enumerate(reversed(adjs)):  # newest first
            point = "" if a.x_px is None or a.y_px is None else f" at {a.x_px:.1f}, {a.y_px:.1f}"
            cells = (str(a.version), a.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                     names.get(a.reviewer_id, f"#{a.reviewer_id}"), a.status, source_text(a, readers or ReaderNames()),
                     "" if a.grade is None else grade_long(self.scale, a.grade) + point, a.reason)
            for c, text in enumerate(cells):
                self.history.setItem(r, c, _item(text, a.reason if c == 6 else ""))
        self.history.resizeColumnsToContents()
