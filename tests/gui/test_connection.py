"""The workstation on PostgreSQL when the server goes away: the status bar says so, an action that was
not stored is told and kept, and it is stored once when the server is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from annotator.domain.connection import ConnectionState
from annotator.domain.entities import Role
from annotator.services import connection
from annotator.services import project as project_service
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from tests.gui.conftest import write_mr_series

if TYPE_CHECKING:
    from tests.conftest import PgServer


@pytest.fixture
def pg_project(own_pg_server: PgServer, tmp_path: Path) -> Iterator[tuple[object, object]]:
    db = project_service.open_project(own_pg_server.create_database())
    write_mr_series(tmp_path / "dicom" / "s1")
    assert all(r.status.value == "imported" for r in import_paths(db, [tmp_path / "dicom"]))
    yield db, project_service.add_rater(db, "alice", Role.ANNOTATOR)
    db.close()


def test_offline_action_is_told_kept_and_stored_once_when_the_server_is_back(  # type: ignore[no-untyped-def]
        qtbot, qsettings, pg_project, own_pg_server) -> None:
    from annotator.gui.main_window import MainWindow

    db, alice = pg_project
    w = MainWindow(db, alice, qsettings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.session.showing_current and not w.busy, timeout=10000)
    image = w.session.current
    assert w.connection.isVisible() and w.connection.text() == "Database: connected"

    connection.set_reconnect_time(db, 0.5)
    own_pg_server.stop("fast")
    try:
        qtbot.keyClick(w, Qt.Key.Key_2)  # refused after the reconnect time: the one error dialog says so
        qtbot.waitUntil(lambda: w.findChild(QMessageBox, "annotator-error") is not None)
        box = w.findChild(QMessageBox, "annotator-error")
        assert "not stored" in box.text()
        assert w.session.pending is not None and w.session.pending.what.startswith("grade 2 on slice")
        qtbot.waitUntil(lambda: w.connection.property("state") == ConnectionState.OFFLINE.value, timeout=5000)
        assert "offline" in w.connection.text() and "not stored yet: grade 2" in w.connection.text()
        box.close()
    finally:
        own_pg_server.start_again()
    # the window probes the server, finds it back and stores the kept action with its key: once
    qtbot.waitUntil(lambda: w.connection.text() == "Database: connected" and w.session.pending is None,
                    timeout=15000)
    [stored] = LabelService(db, alice).history(image.id)
    assert (stored.grade, stored.version) == (2, 1)
    assert w.grades.buttons[2].isChecked()
    w.close()
