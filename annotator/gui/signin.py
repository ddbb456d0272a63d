"""Sign in: pick who is reading (with the password, if that rater has one) or add a new rater.

Every label and audit entry then carries the right rater, and blinding applies to that rater's role.
A rater with a password (``annotator raters password NAME``) needs it here; once the project has a
protected admin, the screen adds annotators only (see :mod:`annotator.services.auth`). Simulated raters
(software readers) cannot be signed in as.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.domain.entities import Rater, Role
from annotator.domain.errors import AnnotatorError
from annotator.domain.policy import describe_blinding, describe_reader_names
from annotator.gui.errors import show_error
from annotator.services.auth import self_enrolment_roles as enrolment_roles
from annotator.services.project import Database
from annotator.services.worklist import human_raters, project_rules, sign_in


def ask_database_password(parent: QWidget | None, url: str) -> str | None:
    """A team workstation's sign-in: the database password of the URL's user (None: cancelled)."""
    text, ok = QInputDialog.getText(parent, "Sign in", f"Database password for\n{url}",
                                    QLineEdit.EchoMode.Password)
    return text if ok else None


def rules_text(db: Database) -> str:
    rules = project_rules(db)
    s = rules.settings
    suggestion, others = describe_blinding(s)
    return (f"<b>Project</b> {s.name}<br><b>Scale</b> {rules.scale.name}<br>"
            f"<b>Model suggestion</b> {suggestion}<br><b>Other readers</b> {others}<br>"
            f"<b>Reader names</b> {describe_reader_names(s)}<br>"
            "Reviewers and admins see every reader and the model.")


class SignInDialog(QDialog):
    def __init__(self, db: Database, last_rater_id: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.db = db
        self.rater: Rater | None = None
        self.setWindowTitle("annotator — sign in")
        self.setMinimumWidth(460)
        rules = QLabel(rules_text(db))
        rules.setWordWrap(True)
        self.list = QListWidget()
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        for r in human_raters(db):
            item = QListWidgetItem(f"{r.name}    ({r.role.value}){'  · password' if r.protected else ''}")
            item.setData(Qt.ItemDataRole.UserRole, r.id)
            self.list.addItem(item)
            if r.id == last_rater_id:
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("only for a rater who has one")
        self.new_name = QLineEdit()
        self.new_name.setPlaceholderText("name, e.g. dr_lee")
        self.new_role = QComboBox()
        roles = enrolment_roles(db)
        for role in roles:
            self.new_role.addItem(role.value, role)
        if roles == [Role.ANNOTATOR]:
            self.new_role.setToolTip("Reviewers and admins are added by an admin: annotator raters add NAME --role")
        self.new_password = QLineEdit()
        self.new_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.new_password.setPlaceholderText("optional, at least 8 characters")
        self.create_button = QPushButton("Add rater and sign in")
        self.create_button.clicked.connect(self._create)
        new_box = QGroupBox("New rater")
        form = QFormLayout(new_box)
        form.addRow("Name", self.new_name)
        form.addRow("Role", self.new_role)
        form.addRow("Password", self.new_password)
        form.addRow("", self.create_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Sign in")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        for button in (*buttons.buttons(), self.create_button):
            if isinstance(button, QPushButton):
                button.setAutoDefault(False)  # Enter is handled in keyPressEvent, once
                button.setDefault(False)
        layout = QVBoxLayout(self)
        layout.addWidget(rules)
        layout.addWidget(QLabel("Sign in as"))
        layout.addWidget(self.list, 1)
        pw_row = QFormLayout()
        pw_row.addRow("Password", self.password)
        layout.addLayout(pw_row)
        layout.addWidget(new_box)
        layout.addWidget(buttons)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        """Enter in the new-rater fields adds that rater; anywhere else it signs in. Exactly one of them:
        no button is a default button, so Enter never also reaches one."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self.focusWidget() in (self.new_name, self.new_password, self.new_role):
                self._create()
            else:
                self.accept()
            return
        super().keyPressEvent(event)

    def accept(self) -> None:
        if self.rater is None:
            item = self.list.currentItem()
            if item is None:
                show_error(self, _NoChoice("choose a rater, or add a new one"))
                return
            try:
                self.rater = sign_in(self.db, rater_id=int(item.data(Qt.ItemDataRole.UserRole)),
                                     password=self.password.text() or None)
            except AnnotatorError as exc:
                self.password.clear()
                show_error(self, exc)
                return
        super().accept()

    def _create(self) -> None:
        try:
            self.rater = sign_in(self.db, new_name=self.new_name.text(), new_role=Role(self.new_role.currentData()),
                                 password=self.new_password.text() or None)
        except AnnotatorError as exc:
            show_error(self, exc)
            return
        self.accept()


class _NoChoice(AnnotatorError):
    pass
