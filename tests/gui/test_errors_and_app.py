"""One error dialog for every error (GUI thread, worker threads, missing files), and run_app."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from annotator.domain.errors import NotFound
from annotator.gui.errors import describe, install_excepthooks, show_error, uninstall_excepthooks


def _boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.objectName() == "annotator-error" and w.isVisible()]


def test_expected_error_shows_its_message_and_a_bug_shows_details(qtbot) -> None:  # type: ignore[no-untyped-def]
    box = show_error(None, NotFound("rater 'x' does not exist"))
    assert box.text() == "rater 'x' does not exist" and box.detailedText() == ""
    box.close()
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as exc:
        message, details = describe(exc)
        box = show_error(None, exc)
    assert message.startswith("Unexpected error (ZeroDivisionError)") and "Traceback" in details
    assert box.icon() is QMessageBox.Icon.Critical and "ZeroDivisionError" in box.detailedText()
    box.close()


def test_worker_thread_exception_reaches_the_dialog_on_the_gui_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    install_excepthooks(lambda: None)
    try:
        t = threading.Thread(target=lambda: (_ for _ in ()).throw(NotFound("image id 99 does not exist")))
        t.start()
        t.join()
        qtbot.waitUntil(lambda: len(_boxes()) == 1)
        [box] = _boxes()
        assert box.text() == "image id 99 does not exist"
        assert box.thread() is QApplication.instance().thread()
        box.close()
    finally:
        uninstall_excepthooks()


def test_a_moved_file_is_reported_with_its_path(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    qtbot.waitUntil(lambda: w.session.loader.in_flight == 0)  # a prefetch decoding it now would cache it again
    w.session.loader.cache.clear()
    missing = w.session.images[2]
    Path(missing.path).unlink()
    w.session.go_to(missing)
    qtbot.waitUntil(lambda: len(_boxes()) == 1)
    [box] = _boxes()
    assert missing.path in box.text()
    assert "Cannot show this slice" in w.view.corner["center"].text()
    box.close()


def test_run_app_signs_in_and_opens_the_workstation(qtbot, project, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from annotator.gui import app as app_module
    from annotator.gui.main_window import MainWindow
    from annotator.gui.signin import SignInDialog

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "cfg"))
    seen: dict[str, object] = {}

    def drive() -> None:
        for w in QApplication.topLevelWidgets():
            if isinstance(w, SignInDialog) and w.isVisible() and "signed" not in seen:
                seen["signed"] = True
                names = [w.list.item(i).text() for i in range(w.list.count())]
                seen["names"] = names
                w.list.setCurrentRow(names.index(next(n for n in names if n.startswith("alice"))))
                w.accept()
            if isinstance(w, MainWindow) and w.isVisible() and w.session.showing_current:
                seen["title"] = w.windowTitle()
                seen["rater"] = w.session.rater.name
                timer.stop()
                w.close()

    timer = QTimer()
    timer.timeout.connect(drive)
    timer.start(20)
    code = app_module.run_app(project.url)
    timer.stop()
    assert code == 0
    assert seen["rater"] == "alice" and "alice" in str(seen["title"])
    assert any(n.startswith("rev") and "reviewer" in n for n in seen["names"])  # type: ignore[attr-defined]
    settings = app_module.user_settings()
    assert settings.value("window/geometry") is not None  # per-user window state was saved
    QApplication.instance().setQuitOnLastWindowClosed(False)
    for w in QApplication.topLevelWidgets():
        if isinstance(w, MainWindow):
            w.deleteLater()


def test_gui_start_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, annotator.gui.app; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'sqlalchemy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert "torch" not in out.stdout


def test_the_upgrade_backup_stays_in_the_status_bar(qtbot, project, qsettings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The path of the pre-upgrade backup is a permanent status-bar label: a background op's progress
    message, shown and cleared in the same status bar, does not replace it; a rebuilt window has it too."""
    from PySide6.QtWidgets import QLabel

    from annotator.gui import app as app_module

    backup = project.folder / "project.db.bak-0002-20261130T000000Z"
    project.db.upgrade_backup = backup
    monkeypatch.setattr(app_module, "choose_rater", lambda db, settings: project.alice)
    station = app_module.Workstation(project.db, qsettings)
    assert station.start()
    window = station.window
    qtbot.addWidget(window)
    qtbot.waitExposed(window)
    label = window.statusBar().findChild(QLabel, app_module.UPGRADE_BACKUP_LABEL)
    assert label is not None and str(backup) in label.text() and label.isVisible()
    window.statusBar().showMessage("Loading the worklist…")  # what a BackgroundOp shows after 0.5 s
    window.statusBar().clearMessage()
    assert label.isVisible() and str(backup) in label.text()
    station.switch_rater()  # the next window (after signing in again) says it too
    qtbot.addWidget(station.window)
    again = station.window.statusBar().findChild(QLabel, app_module.UPGRADE_BACKUP_LABEL)
    assert again is not None and str(backup) in again.text()
    station.window.close()
    __import__("gc").unfreeze()  # Workstation.start froze the objects alive then, as run_app's end undoes
