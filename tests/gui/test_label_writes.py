"""What one label action costs in SQL: a click or a grade key is ONE write transaction and no reads.

The workstation's presenter already holds the slice (its geometry), the grading scale and the rater's
current label, so the service writes the new version without asking the database for any of them.
Counted with SQLAlchemy's ``before_cursor_execute`` event on SQLite (BEGIN statements included).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from annotator.domain.errors import ConflictError
from annotator.services.labelling import LabelService
from annotator.storage import audit, catalog

# the statements of one action on a slice the presenter shows a label for:
# BEGIN IMMEDIATE, INSERT the version, INSERT its audit entry (COMMIT is the driver's, not a statement)
STATEMENTS_PER_ACTION = 3


class StatementLog:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def write_transactions(self) -> int:
        return sum(s.startswith("BEGIN IMMEDIATE") for s in self.statements)

    @property
    def read_transactions(self) -> int:
        return sum(s == "BEGIN" for s in self.statements)

    @property
    def selects(self) -> list[str]:
        return [s for s in self.statements if s.startswith("SELECT")]

    @property
    def inserts(self) -> list[str]:
        return [s for s in self.statements if s.startswith("INSERT")]


@contextmanager
def counting(engine: Any) -> Iterator[StatementLog]:
    log = StatementLog()

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        log.statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


@pytest.fixture
def session(project, qtbot):  # type: ignore[no-untyped-def]
    from annotator.gui.session import AnnotationSession

    s = AnnotationSession(project.db, project.alice)
    [series] = catalog.list_series(project.db)
    s.open_series(series.id)
    qtbot.waitUntil(lambda: s.showing_current, timeout=5000)
    qtbot.waitUntil(lambda: s.current.id in s._undo_state, timeout=5000)  # the deferred undo-state read
    yield s
    s.close()


def test_a_click_and_a_grade_key_each_cost_one_write_transaction_and_no_read(session, project) -> None:  # type: ignore[no-untyped-def]
    engine = project.db.engine
    image = session.current
    with counting(engine) as first_click:
        session.place_point(10.0, 12.0)
    with counting(engine) as click:
        session.place_point(11.0, 13.0)
    with counting(engine) as grade:
        label = session.grade_key("2")
    for log in (first_click, click, grade):
        assert log.write_transactions == 1, log.statements
        assert log.read_transactions == 0, log.statements
        assert len(log.inserts) == 2, log.statements  # the version and its audit entry
    # a slice without a shown label: its newest version may be an emptied one the screen does not
    # hold, so that one SELECT runs inside the write transaction; a shown label needs none
    assert len(first_click.selects) <= 1, first_click.statements
    assert click.selects == [] and grade.selects == [], (click.statements, grade.statements)
    assert len(click.statements) == len(grade.statements) == STATEMENTS_PER_ACTION, grade.statements
    assert label is not None and (label.version, label.x_px, label.y_px, label.grade) == (3, 11.0, 13.0, 2)
    history = LabelService(project.db, project.alice).history(image.id)
    assert [(h.version, h.action) for h in history] == [(1, "point"), (2, "point"), (3, "grade")]
    entries = audit.entries(project.db, entity="annotation")
    assert [e.action for e in entries] == ["label.point", "label.point", "label.grade"]
    assert entries[2].before == {"version": 2, "x_px": 11.0, "y_px": 13.0, "grade": None, "scale": label.scale_code}


def test_a_label_changed_elsewhere_is_a_conflict_not_an_overwrite(session, project) -> None:  # type: ignore[no-untyped-def]
    image = session.current
    session.place_point(10.0, 12.0)
    elsewhere = LabelService(project.db, project.alice).set_grade(image.id, 1)  # same rater, other machine
    with pytest.raises(ConflictError) as err:
        session.grade_key("3")
    assert err.value.args and "changed" in str(err.value)
    history = LabelService(project.db, project.alice).history(image.id)
    assert [h.version for h in history] == [1, 2] and history[-1] == elsewhere  # nothing overwritten
    assert session.own_label == elsewhere  # the screen now shows what is stored
    assert session.grade_key("3") is not None  # and the next action applies on top of it
    assert LabelService(project.db, project.alice).history(image.id)[-1].grade == 3


def test_a_slice_labelled_elsewhere_while_it_looked_empty_is_a_conflict(session, project) -> None:  # type: ignore[no-untyped-def]
    image = session.current
    LabelService(project.db, project.alice).set_label(image.id, 5.0, 5.0, 1)
    with pytest.raises(ConflictError):
        session.place_point(20.0, 20.0)
    assert [h.version for h in LabelService(project.db, project.alice).history(image.id)] == [1]
    assert session.own_label is not None and session.own_label.grade == 1


def test_a_cleared_label_is_labelled_again_without_conflict(session, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    image = session.current
    svc = LabelService(project.db, project.alice)
    svc.set_label(image.id, 5.0, 5.0, 1)
    svc.clear(image.id)  # newest version is empty: the screen shows no label
    session.refresh()  # read in the background
    qtbot.waitUntil(lambda: not session.busy, timeout=5000)
    assert session.own_label is None
    label = session.place_point(20.0, 20.0)
    assert (label.version, label.x_px, label.grade) == (3, 20.0, None)
