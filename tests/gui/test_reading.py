"""The reading window of a reader study, end to end on a small phantom exam: a reader reads through her
sequence with the mouse and keys; every read is stored with its time; a repeat shows nothing of the
first read; a calibration slice shows the reference and the differences after the commit; cannot-grade
with a reason and a comment is stored; the worklist's Study menu opens only her studies."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from annotator.domain.studies import CannotGrade, ReadKind
from annotator.gui.reading_clock import ReadingClock
from annotator.gui.reading_window import ReadingWindow
from annotator.storage import studies as repo
from tests.gui.helpers import click_pixel
from tests.gui.study_project import REF_GRADE, STUDY, StudyProject, build

READ_SECONDS = 7.5


@pytest.fixture
def sp(tmp_path) -> StudyProject:  # type: ignore[no-untyped-def]
    p = build(tmp_path)
    yield p
    p.db.close()


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def on_screen(w: ReadingWindow) -> dict[str, object]:
    """Everything the window shows about the item apart from its pixels and the position number."""
    return {"title": w.windowTitle(), "badge": w.badge.text(), "state": w.state.text(),
            "progress": re.sub(r"^\d+ of", "# of", w.progress.text()),
            "feedback": (w.feedback.isVisible(), w.feedback.text()), "marker": w.view.marker.isVisible(),
            "reference": w.reference.names, "grades": {o: b.isChecked() for o, b in w.buttons.items()},
            "cannot": (w.cannot.text(), w.cannot.isChecked()), "comment": w.comment.text(),
            "corners": {k: lab.text() for k, lab in w.view.corner.items()},
            "enabled": [b.isEnabled() for b in (*w.buttons.values(), w.commit_button, w.cannot)]}


def open_reading(qtbot, sp: StudyProject, clock: ReadingClock) -> ReadingWindow:  # type: ignore[no-untyped-def]
    w = ReadingWindow(sp.db, sp.ann, STUDY, clock=clock)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.start()
    return w


def wait_item(qtbot, w: ReadingWindow, number: int) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: w.presenter.showing and w.presenter.view.item.number == number
                    and not w.presenter.busy, timeout=10000)


def test_a_reader_reads_her_study_through_and_every_read_is_stored(qtbot, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    now = FakeTime()
    w = open_reading(qtbot, sp, ReadingClock(now))
    plan = repo.plan(sp.db, sp.study.id, sp.ann.id)
    assert [i.kind for i in plan].count(ReadKind.REPEAT) == 2 and plan[0].kind is ReadKind.CALIBRATION
    seen: dict[int, dict[str, object]] = {}
    for item in plan:
        wait_item(qtbot, w, item.seq)
        assert w.progress.text() == f"{item.seq} of {len(plan)}"
        assert w.presenter.view.image.id == item.image_id  # her own order, only the study's slices
        if item.kind is ReadKind.FIRST or item.kind is ReadKind.REPEAT:
            state = on_screen(w)
            if item.kind is ReadKind.REPEAT:
                assert state == seen[item.image_id]  # nothing on screen tells the repeat from the first read
            else:
                seen[item.image_id] = state
        now.t += READ_SECONDS
        if item.seq == 3:  # cannot grade, with a reason and a comment
            w.choose_reason(CannotGrade.MOTION)
            QTest.keyClicks(w.comment, "blurred")
            assert w.cannot.text() == "Cannot grade: Motion"
        else:
            click_pixel(w.view, 20, 24)
            QTest.keyClick(w, Qt.Key.Key_1)
            assert w.buttons[1].isChecked() and w.view.marker.isVisible()
        with qtbot.waitSignal(w.readCommitted, timeout=10000) as committed:
            QTest.keyClick(w, Qt.Key.Key_Return)
        if item.kind is ReadKind.CALIBRATION:  # the reference and the differences, until she moves on
            outcome = committed.args[0]
            assert outcome.calibration and outcome.feedback.grade_difference == 1 - REF_GRADE
            qtbot.waitUntil(lambda: w.feedback.isVisible())
            text = w.feedback.text()
            assert "Reference: 2 (Moderate)" in text and "-1 grade" in text and "mm from the reference" in text
            assert "Calibration score: 0 of 1 grades exact (0%)" in text  # the last calibration slice
            assert w.reference.names == ["Reference"]
            assert w.presenter.view.item.number == 1  # still on the calibration slice
            now.t += 30.0  # looking at the feedback is not reading time (under the idle limit)
            QTest.keyClick(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.presenter.finished and not w.presenter.busy, timeout=10000)
    assert "read every slice" in w.view.corner["center"].text()
    reads = repo.reads(sp.db, sp.study.id, [sp.ann.id])
    assert [r.seq for r in reads] == [i.seq for i in plan]
    assert [r.kind for r in reads] == [i.kind for i in plan]
    assert all(r.seconds == pytest.approx(READ_SECONDS) for r in reads)  # the clock's seconds are stored
    third = next(r for r in reads if r.seq == 3)
    assert (third.cannot_grade, third.grade, third.comment) == (CannotGrade.MOTION, None, "blurred")
    graded = [r for r in reads if r.seq != 3]
    assert all((r.grade, r.x_px, r.y_px) == (1, pytest.approx(20, abs=0.6), pytest.approx(24, abs=0.6))
               for r in graded)
    w.close()


def test_a_repeat_starts_empty_even_after_the_first_read_was_answered(qtbot, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    """The first read's point, grade and comment are gone on the repeat (the state is per item)."""
    w = open_reading(qtbot, sp, ReadingClock(FakeTime()))
    plan = repo.plan(sp.db, sp.study.id, sp.ann.id)
    first_seq = {}
    for item in plan:
        wait_item(qtbot, w, item.seq)
        if item.kind is ReadKind.REPEAT:
            p = w.presenter
            assert (p.draft.x_px, p.draft.grade, p.draft.comment) == (None, None, "")
            assert not w.view.marker.isVisible() and not any(b.isChecked() for b in w.buttons.values())
            assert item.image_id in first_seq
            break
        first_seq[item.image_id] = item.seq
        click_pixel(w.view, 30, 30)
        QTest.keyClicks(w.comment, "note")
        QTest.keyClick(w, Qt.Key.Key_3)
        with qtbot.waitSignal(w.readCommitted, timeout=10000):
            QTest.keyClick(w, Qt.Key.Key_Return)
        if item.kind is ReadKind.CALIBRATION:
            QTest.keyClick(w, Qt.Key.Key_Return)
    w.close()


def test_an_incomplete_answer_is_not_stored(qtbot, sp: StudyProject, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    shown: list[Exception] = []
    monkeypatch.setattr("annotator.gui.reading_window.show_error", lambda _w, exc: shown.append(exc))
    w = open_reading(qtbot, sp, ReadingClock(FakeTime()))
    wait_item(qtbot, w, 1)
    QTest.keyClick(w, Qt.Key.Key_2)  # a grade, no point
    QTest.keyClick(w, Qt.Key.Key_Return)
    assert shown and "canal centre" in str(shown[0])
    assert repo.reads(sp.db, sp.study.id) == [] and w.presenter.view.item.number == 1
    w.close()


def test_only_her_studies_are_offered_and_a_non_reader_is_refused(qtbot, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.errors import PermissionDenied
    from annotator.gui.reading_presenter import her_studies

    assert her_studies(sp.db, sp.ann) == [(STUDY, 0, 8)]
    assert her_studies(sp.db, sp.admin) == []  # an admin sees every study but reads in none of these
    errors: list[Exception] = []
    w = ReadingWindow(sp.db, sp.rev, STUDY)
    qtbot.addWidget(w)
    w.presenter.errorRaised.disconnect()
    w.presenter.errorRaised.connect(errors.append)
    w.start()
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert isinstance(errors[0], PermissionDenied) and w.presenter.view is None
    w.close()


def test_the_window_feeds_the_clock_activity_and_focus(qtbot, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    """Mouse moves over the slice keep a long read counting; the window in the background stops it."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from tests.gui.helpers import move_to, viewport_pos

    now = FakeTime()
    clock = ReadingClock(now)
    w = open_reading(qtbot, sp, clock)
    wait_item(qtbot, w, 1)
    for step in range(3):  # 150 s of reading, never 60 s without a sign of her
        now.t += 50
        move_to(w.view, viewport_pos(w.view, 10 + step, 10))
    assert clock.seconds == pytest.approx(150)
    w.isActiveWindow = lambda: False  # type: ignore[method-assign]  # what Qt reports in the background
    QApplication.sendEvent(w, QEvent(QEvent.Type.ActivationChange))
    now.t += 40
    assert not clock.running and clock.seconds == pytest.approx(150)
    w.isActiveWindow = lambda: True  # type: ignore[method-assign]
    QApplication.sendEvent(w, QEvent(QEvent.Type.ActivationChange))
    now.t += 5
    click_pixel(w.view, 20, 20)
    QTest.keyClick(w, Qt.Key.Key_2)
    with qtbot.waitSignal(w.readCommitted, timeout=10000):
        QTest.keyClick(w, Qt.Key.Key_Return)
    assert repo.reads(sp.db, sp.study.id)[0].seconds == pytest.approx(155)
    w.close()
