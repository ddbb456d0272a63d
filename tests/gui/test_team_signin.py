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
        shown_before = {id(w) for w in QApplication.topLevelWidgets() if w.isVisible()}
        assert choose_rater(db, settings) == gina  # no sign-in screen: nothing else was shown
        assert not [w for w in QApplication.topLevelWidgets() if w.isVisible() and id(w) not in shown_before]
        assert [e.action for e in audit.entries(db, entity="rater", entity_id=str(gina.id))][-1] == "rater.sign_in"
    finally:
        db.close()


def test_the_workstation_runs_as_a_team_annotator_and_reviewer(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The window's reads and writes stay within what the server grants each role."""
    from annotator.domain.errors import PermissionDenied as Refused
    from annotator.gui.main_window import MainWindow
    from annotator.services.importing import import_paths
    from tests.gui.conftest import write_mr_series

    server = team_server()
    name = server.new_database()
    team_service.init(server.owner_url(name))
    owner = project.open_project(server.owner_url(name))
    try:
        write_mr_series(tmp_path / "series", n=3)
        import_paths(owner, [tmp_path / "series"])
        for who, role in (("hana", Role.ANNOTATOR), ("ivo", Role.REVIEWER)):
            team_service.add_rater(owner, who, role, f"{who}-password")
    finally:
        owner.close()
    settings = QSettings(str(tmp_path / "user.ini"), QSettings.Format.IniFormat)
    ids = {}
    for who in ("hana", "ivo"):
        db = project.open_project(server.rater_url(name, who, f"{who}-password"))
        try:
            rater = choose_rater(db, settings)
            assert rater is not None and rater.name == who
            ids[who] = rater.id
            w = MainWindow(db, rater, settings)
            qtbot.addWidget(w)
            w.show()
            qtbot.waitUntil(lambda w=w: w.session.showing_current and not w.busy, timeout=10000)
            w.session.place_point(30.0, 40.0)
            label = w.session.set_grade(1)
            assert label.rater_id == rater.id and label.grade == 1
            w.close()
        finally:
            db.close()
    hana = project.open_project(server.rater_url(name, "hana", "hana-password"))
    try:
        from annotator.storage import labels

        mine = labels.current(hana)
        assert [lab.rater_id for lab in mine] == [ids["hana"]]  # ivo's label is not hers to see
        with pytest.raises(Refused):  # nor to write in his name
            labels.add_version(hana, image_id=mine[0].image_id, rater_id=ids["ivo"], x_px=1.0, y_px=1.0, grade=0,
                               scale_code="lee", action="set")
    finally:
        hana.close()
