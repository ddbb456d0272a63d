"""The workstation's presenter reads the database only on workers: opening a series brings the overlays
and the rater's label histories together, browsing and undo/redo availability read nothing more, and a
refresh runs in the background without undoing, on screen, a label action made while it ran."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event

from annotator.services.labelling import LabelService
from annotator.storage import catalog


@pytest.fixture
def session(project, qtbot):  # type: ignore[no-untyped-def]
    from annotator.gui.session import AnnotationSession

    s = AnnotationSession(project.db, project.alice)
    yield s
    s.close()


def _open(qtbot, s) -> None:  # type: ignore[no-untyped-def]
    [series] = catalog.list_series(s.db)
    s.open_series(series.id)
    qtbot.waitUntil(lambda: s.showing_current and not s.busy, timeout=5000)


class _GuiThreadStatements:
    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine, self.gui, self.seen = engine, threading.get_ident(), []  # type: ignore[var-annotated]
        event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if threading.get_ident() == self.gui:
            self.seen.append(statement)

    def stop(self) -> list[str]:
        event.remove(self.engine, "before_cursor_execute", self._on)
        return self.seen


def test_browsing_and_refreshing_read_nothing_on_the_gui_thread(session, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    svc = LabelService(project.db, project.alice)
    _open(qtbot, session)
    ids = [im.id for im in session.images]
    svc.set_point(ids[1], 10, 10)
    svc.set_grade(ids[1], 2)
    svc.undo(ids[1])  # history: point, grade, undo -> both undo and redo apply
    states: list[tuple[int, bool, bool]] = []
    session.undoRedoChanged.connect(lambda u, r: states.append((session.current.id, u, r)))
    log = _GuiThreadStatements(project.db.engine)
    try:
        session.refresh()  # what was labelled elsewhere, read in the background
        qtbot.waitUntil(lambda: not session.busy, timeout=5000)
        session.step(+1)
        qtbot.waitUntil(lambda: session.showing_current, timeout=5000)
        session.step(+1)
        session.step(-2)
        qtbot.waitUntil(lambda: session.showing_current and not session.busy, timeout=5000)
    finally:
        seen = log.stop()
    assert seen == []
    assert (ids[1], True, True) in states and (ids[2], False, False) in states
    assert session.own_label is None and session.current.id == ids[0]
    session.step(+1)
    assert session.own_label is not None and session.own_label.x_px == 10 and session.own_label.grade is None


def test_undo_and_redo_availability_follows_each_action_without_reading(session, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, session)
    states: list[tuple[bool, bool]] = []
    session.undoRedoChanged.connect(lambda u, r: states.append((u, r)))
    session.place_point(10.0, 12.0)
    session.set_grade(1)
    assert states[-1] == (True, False)
    session.undo()
    assert states[-1] == (True, True)
    session.undo()
    assert states[-1] == (False, True) and session.own_label is None
    session.redo()
    assert states[-1] == (True, True)
    session.set_grade(3)  # a new action drops the redo branch
    assert states[-1] == (True, False)
    from annotator.services.labelling import undo_redo

    assert undo_redo(LabelService(project.db, project.alice).history(session.current.id)) == (True, False)


def test_a_refresh_read_before_a_label_action_keeps_the_action_on_screen(session, project, qtbot,  # type: ignore[no-untyped-def]
                                                                          monkeypatch) -> None:
    _open(qtbot, session)
    release, started = threading.Event(), threading.Event()
    viewing = type(session.viewing)
    real = viewing.overlays

    def slow(self, image_ids):  # type: ignore[no-untyped-def]
        out = real(self, image_ids)  # read before the click below...
        started.set()
        release.wait(10)  # ...and answered after it
        return out

    monkeypatch.setattr(viewing, "overlays", slow)
    session.refresh()
    qtbot.waitUntil(started.is_set, timeout=5000)
    label = session.place_point(20.0, 22.0)
    release.set()
    qtbot.waitUntil(lambda: not session.busy, timeout=5000)
    assert session.own_label == label  # the refresh's older answer did not replace it
    assert session.set_grade(2).version == 2  # and the next action follows it, no conflict


def test_an_in_memory_database_is_refused_before_any_background_read() -> None:
    from annotator.domain.entities import Role
    from annotator.domain.errors import InputError
    from annotator.gui.review_presenter import ReviewPresenter
    from annotator.gui.session import AnnotationSession
    from annotator.services import project as project_service
    from annotator.services.worklist import project_rules

    db = project_service.open_project("sqlite://")
    try:
        rater = project_service.add_rater(db, "rev", Role.REVIEWER)
        with pytest.raises(InputError, match="in-memory SQLite"):
            AnnotationSession(db, rater)
        with pytest.raises(InputError, match="in-memory SQLite"):
            ReviewPresenter(db, rater, project_rules(db).scale)
    finally:
        db.close()
