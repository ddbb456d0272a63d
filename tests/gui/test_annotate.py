"""The annotation workflow through the real window: click, grade keys, undo/redo, next, close."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QMessageBox

from annotator.gui.scale_bar import view_units_per_pixel
from annotator.gui.theme import OWN_COLOUR, OWN_INCOMPLETE_COLOUR
from annotator.services.labelling import LabelService
from annotator.services.worklist import SliceState
from tests.gui.helpers import click_pixel, drag, viewport_pos


def _history(project, rater, image_id):  # type: ignore[no-untyped-def]
    return LabelService(project.db, rater).history(image_id)


def test_click_lands_at_the_pixel_also_after_zoom_and_pan(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    view, image = w.view, w.session.current
    for c, r in [(40, 70), (0, 0), (127, 127)]:
        click_pixel(view, c, r)
        last = _history(project, project.alice, image.id)[-1]
        assert (round(last.x_px), round(last.y_px)) == (c, r)
        assert abs(last.x_px - c) < 0.5 and abs(last.y_px - r) < 0.5
    view.zoom(4.0)
    view.view_box.translateBy(x=-17.0, y=9.0)  # pan
    qtbot.waitUntil(lambda: view_units_per_pixel(view.view_box) < 0.2)
    click_pixel(view, 55, 48)
    last = _history(project, project.alice, image.id)[-1]
    # at this zoom one image pixel is > 5 screen pixels: the click lands within a fraction of a pixel
    assert abs(last.x_px - 55) < 0.15 and abs(last.y_px - 48) < 0.15
    assert view.scene_to_pixel(view.pixel_to_scene(55, 48)) == pytest.approx((55.0, 48.0), abs=1e-9)


def test_a_pan_drag_places_no_point(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    before = w.view.view_box.viewRange()
    drag(w.view, viewport_pos(w.view, 40, 40), viewport_pos(w.view, 70, 60))
    assert w.view.view_box.viewRange() != before
    assert _history(project, project.alice, w.session.current.id) == []


def test_grade_keys_commit_a_version_each_and_show_state(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    image = w.session.current
    qtbot.keyClick(w, Qt.Key.Key_2)
    [v1] = _history(project, project.alice, image.id)
    assert (v1.grade, v1.x_px, v1.action) == (2, None, "grade")
    assert "INCOMPLETE" in w.grades.state.text() and w.grades.buttons[2].isChecked()
    assert w.worklist.slice_state(image.id) is SliceState.INCOMPLETE
    qtbot.keyClick(w, Qt.Key.Key_9)  # not on the Lee scale: nothing happens
    qtbot.keyClick(w, Qt.Key.Key_0, Qt.KeyboardModifier.KeypadModifier)
    assert [h.grade for h in _history(project, project.alice, image.id)] == [2, 0]
    click_pixel(w.view, 64, 30)
    assert w.worklist.slice_state(image.id) is SliceState.DONE
    assert "done" in w.grades.state.text() and w.worklist.progress.value() == 1
    assert w.view.marker.pen.color() == QColor(OWN_COLOUR)


def test_point_without_grade_is_incomplete(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    click_pixel(w.view, 20, 20)
    assert w.view.marker.isVisible() and w.view.marker.pen.color() == QColor(OWN_INCOMPLETE_COLOUR)
    assert "INCOMPLETE" in w.grades.state.text()
    assert w.worklist.slice_item(w.session.current.id).text(1) == "◐"


def test_schizas_grades_by_letter(project, open_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from annotator.storage import people

    people.update_settings(project.db, None, scale_code="schizas")
    w = open_window(project.alice)
    assert [b.text() for b in w.grades.buttons.values()][0].startswith("A")
    assert "CSF clearly visible" in w.grades.buttons[0].toolTip()
    qtbot.keyClick(w, Qt.Key.Key_C)
    [v] = _history(project, project.alice, w.session.current.id)
    assert (v.grade, v.scale_code) == (2, "schizas")


def test_undo_redo_keys_add_versions(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    image = w.session.current
    click_pixel(w.view, 30, 40)
    qtbot.keyClick(w, Qt.Key.Key_1)
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.session.own_label.grade is None and w.session.own_label.x_px is not None
    assert w.grades.redo_button.isEnabled()
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.session.own_label is None and not w.view.marker.isVisible()  # empty = unlabelled
    assert not w.grades.undo_button.isEnabled()
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(w, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    hist = _history(project, project.alice, image.id)
    assert [h.action for h in hist] == ["point", "grade", "undo", "undo", "redo", "redo"]
    assert (hist[-1].grade, round(hist[-1].x_px)) == (1, 30)


def test_enter_and_space_go_to_the_next_unfinished_slice(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    imgs = w.session.images
    assert w.session.current == imgs[0]
    LabelService(project.db, project.alice).set_label(imgs[1].id, 5, 5, 1)  # done elsewhere
    w.refresh()
    qtbot.keyClick(w, Qt.Key.Key_Return)  # the next slice is looked up in the background
    qtbot.waitUntil(lambda: not w.session.busy and w.session.current == imgs[2], timeout=5000)
    qtbot.waitUntil(lambda: w.session.showing_current)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not w.session.busy, timeout=5000)
    assert w.session.current == imgs[0]  # wrapped around
    assert w.worklist.tree.currentItem() is w.worklist.slice_item(imgs[0].id)


def test_closing_right_after_click_and_grade_loses_nothing(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    from annotator.services.project import open_project

    w = open_window(project.alice)
    image = w.session.current
    click_pixel(w.view, 12, 34)
    qtbot.keyClick(w, Qt.Key.Key_3)
    w.close()
    other = open_project(project.url)  # a fresh connection, as after a restart
    try:
        [label] = LabelService(other, project.alice).my_labels([image.id])
        assert (round(label.x_px), round(label.y_px), label.grade) == (12, 34, 3)
    finally:
        other.close()


def test_labels_wait_until_the_slice_is_visible(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    w.session.loader.cache.clear()
    w.session.step(+1)
    if not w.session.showing_current:  # the decode is still running: a grade key must not label
        qtbot.keyClick(w, Qt.Key.Key_1)
        assert _history(project, project.alice, w.session.current.id) == []
        box = w.findChild(QMessageBox, "annotator-error")
        assert box is not None and "still loading" in box.text()
        box.close()
        w.activateWindow()  # offscreen Qt does not hand activation back by itself
        qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    qtbot.waitUntil(lambda: w.session.showing_current)
    qtbot.keyClick(w, Qt.Key.Key_1)
    assert len(_history(project, project.alice, w.session.current.id)) == 1
