"""A team workstation: the database password is the sign-in, and the login names the rater."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QInputDialog

from annotator.domain.entities import Role
from annotator.domain.errors import PasswordRequired
from annotator.gui.app import _open, choose_rater
from annotator.services import project
from annotator.services import team as team_service
from annotator.storage import audit
from tests.team_server import team_server

pytestmark = pytest.mark.postgres


def test_the_password_is_asked_once_and_the_login_signs_in(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = team_server()
    name = server.new_database()
    team_service.init(server.owner_url(name))
    owner = project.open_project(server.owner_url(name))
    try:
        gina = team_service.add_rater(owner, "gina", Role.REVIEWER, "gina-password")
    finally:
        owner.close()
    url = server.rater_url(name, "gina", None)
    with pytest.raises(PasswordRequired):
        project.open_project(url)

    asked: list[str] = []

    def answer() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, QInputDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(20, answer)
            return
        asked.append(dialogs[0].labelText())
        dialogs[0].setTextValue("gina-password")
        dialogs[0].accept()

    QTimer.singleShot(0, answer)
    db = _open(url)
    assert db is not None and len(asked) == 1 and "gina" in asked[0]
    try:
        settings = QSettings(str(tmp_path / "user.ini"), QSettings.Format.IniFormat)
        assert choose_rater(db, settings) == gina  # no sign-in screen: nothing else was shown
        assert not [w for w in QApplication.topLevelWidgets() if w.isVisible()]
        assert [e.action for e in audit.entries(db, entity="rater", entity_id=str(gina.id))][-1] == "rater.sign_in"
    finally:
        db.close()
