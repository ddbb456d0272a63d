"""Start the desktop application: open the project, sign in, show the workstation.

Imports only Qt, pyqtgraph and the services (never torch), so the window opens in a second or two.
Uncaught exceptions on any thread reach the user through :func:`annotator.gui.errors.show_error`.
"""

from __future__ import annotations

import gc
import hashlib
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSettings, Qt
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QMainWindow

from annotator.domain.entities import Rater
from annotator.domain.errors import AnnotatorError, PasswordRequired
from annotator.gui.background import freeze_long_lived, keep_gui_thread_responsive, wait_idle
from annotator.gui.errors import install_excepthooks, show_error, uninstall_excepthooks
from annotator.gui.main_window import MainWindow
from annotator.gui.signin import SignInDialog, ask_database_password
from annotator.gui.theme import apply_dark_theme
from annotator.services import connection, team
from annotator.services.project import Database, open_project, with_password


def user_settings() -> QSettings:
    """Per-user window state (never project rules: those live in the database)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "annotator", "annotator")


def _rater_key(db: Database) -> str:
    return "last_rater/" + hashlib.sha256(db.url.encode()).hexdigest()[:16]


def choose_rater(db: Database, settings: QSettings) -> Rater | None:
    me = team.sign_in(db)  # a team database: the connection's login is the rater, its password the sign-in
    if me is not None:
        return me
    last = settings.value(_rater_key(db))
    dialog = SignInDialog(db, int(last) if last is not None and str(last).isdigit() else None)
    try:
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.rater is None:
            return None
        settings.setValue(_rater_key(db), dialog.rater.id)
        return dialog.rater
    finally:
        dialog.deleteLater()


UPGRADE_BACKUP_LABEL = "upgrade-backup"


def show_upgrade_backup(window: QMainWindow, backup: Path) -> QLabel:
    """Say for as long as the window is open where the file as it was before this open's schema upgrade
    is kept: a permanent status-bar label, which the background operations' progress messages (shown in
    the same status bar) never overwrite."""
    label = QLabel(f"Database upgraded; the file as it was is kept in {backup}")
    label.setObjectName(UPGRADE_BACKUP_LABEL)
    label.setToolTip(str(backup))
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    window.statusBar().addPermanentWidget(label)
    return label


class Workstation:
    """Holds the open project and the current main window; switching rater rebuilds the window."""

    def __init__(self, db: Database, settings: QSettings) -> None:
        self.db = db
        self.settings = settings
        self.window: MainWindow | None = None

    def start(self) -> bool:
        rater = choose_rater(self.db, self.settings)
        if rater is None:
            return False
        self.window = MainWindow(self.db, rater, self.settings)
        self.window.switchRaterRequested.connect(self.switch_rater)
        if self.db.upgrade_backup is not None:
            show_upgrade_backup(self.window, self.db.upgrade_backup)
        self.window.show()
        freeze_long_lived()
        return True

    def switch_rater(self) -> None:
        old = self.window
        if old is not None:
            old.close()
            old.deleteLater()
        self.window = None
        if not self.start():
            QApplication.quit()


def _open(db_url: str | None) -> Database | None:
    """Open the project; a team database whose URL has no password asks for it (None: the user cancelled)."""
    try:
        return open_project(db_url)
    except PasswordRequired:
        password = ask_database_password(None, db_url or "")
        return None if password is None else open_project(with_password(db_url, password))


def run_app(db_url: str | None) -> int:
    """Open the workstation on the project at ``db_url`` (default database when None); exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    QCoreApplication.setOrganizationName("annotator")
    QCoreApplication.setApplicationName("annotator")
    apply_dark_theme(app)  # type: ignore[arg-type]
    let_go = keep_gui_thread_responsive()
    install_excepthooks()
    try:
        try:
            opened = _open(db_url)
        except AnnotatorError as exc:
            show_error(None, exc, blocking=True)
            return 1
        if opened is None:
            return 0
        db = opened
        connection.set_reconnect_time(db, connection.INTERACTIVE_RECONNECT_S)  # a person waits for each click
        station = Workstation(db, user_settings())
        try:
            if not station.start():
                return 0
            app.setQuitOnLastWindowClosed(True)
            return int(app.exec())
        finally:
            wait_idle()  # no background job may be left reading a closed database
            db.close()
    finally:
        uninstall_excepthooks()
        let_go()
        gc.unfreeze()
