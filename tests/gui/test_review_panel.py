"""The review screen: queue, side-by-side readers, decisions, conflicts, reopening, refusal of annotators."""

from __future__ import annotations

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from annotator.domain.entities import Prediction, Role
from annotator.domain.errors import PermissionDenied
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.gui.review_panel import ReviewPanel, open_review_panel
from annotator.gui.review_queue import counts_text
from annotator.services import project as project_service
from annotator.services.labelling import LabelService
from annotator.services.review import ReviewService, disagreement_queue, queue_counts
from annotator.services.worklist import WorklistService, project_rules
from annotator.storage import audit, labels, models_repo
from tests.gui.helpers import click_pixel

ALICE, BOB = ReaderRef(ReaderKind.RATER, "alice"), ReaderRef(ReaderKind.RATER, "bob")

# slice index: (alice point, grade), (bob point, grade) — 0.5 mm rows x 0.6 mm columns
PLAN = {
    0: (((40, 40), 1), ((43, 44), 3)),  # grades differ by 2 (2.7 mm apart: under the 3 mm threshold)
    1: (((40, 40), 2), ((50, 40), 2)),  # same grade, 6 mm apart
    2: (((60, 60), 0), None),  # bob has not labelled it
}


def _label(project) -> list[int]:  # type: ignore[no-untyped-def]
    ids = [im.id for im in WorklistService(project.db, project.alice).series_images(1)]
    for i, (a, b) in PLAN.items():
        LabelService(project.db, project.alice).set_label(ids[i], *a[0], a[1])
        if b is not None:
            LabelService(project.db, project.bob).set_label(ids[i], *b[0], b[1])
    return ids


def _add_model(db, ids) -> None:  # type: ignore[no-untyped-def]
    m = models_repo.register(db, name="fast-7", preset="fast", target="rater:alice", kind="train",
                             weights_path="/x", weights_sha256="0" * 64, card={})
    models_repo.activate(db, m.id)
    models_repo.write_predictions(db, m.id, [Prediction(m.id, i, 64.0, 60.0, 2, (0.05, 0.15, 0.7, 0.1))
                                             for i in ids])


def _panel(qtbot, project, rater=None) -> ReviewPanel:  # type: ignore[no-untyped-def]
    panel = ReviewPanel(project.db, rater or project.rev, project_rules(project.db).scale)
    qtbot.addWidget(panel)
    panel.resize(1400, 800)
    panel.show()
    qtbot.waitExposed(panel)
    _wait_shown(qtbot, panel)
    return panel


def _settle(qtbot, panel: ReviewPanel) -> None:  # type: ignore[no-untyped-def]
    """Wait until the queue reload or decision running in the background has been delivered."""
    qtbot.waitUntil(lambda: not panel.presenter.busy, timeout=10000)


def _wait_shown(qtbot, panel: ReviewPanel) -> None:  # type: ignore[no-untyped-def]
    _settle(qtbot, panel)
    if panel.current is not None:
        qtbot.waitUntil(lambda: panel.showing == panel.current.image_id, timeout=5000)


def _history(project, image_id: int):  # type: ignore[no-untyped-def]
    return ReviewService(project.db, project.rev).history(image_id)


def test_queue_is_sorted_by_severity_counted_and_filtered(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    panel = _panel(qtbot, project)
    expected = disagreement_queue(project.db, project.rev)
    assert panel.queue_image_ids() == [it.image_id for it in expected] == ids  # grade Δ 2, then 6 mm, then missing
    assert panel.counts.text() == counts_text(queue_counts(expected), "to decide")
    assert panel.counts.text() == "3 to decide · 1 grades differ · 1 centres apart · 1 missing rater"
    row = [panel.queue.cell_text(0, c) for c in range(panel.queue.columnCount())]
    assert row == ["P0001 · slice 1", "2", "2.7", "open", "grades differ by 2"]
    assert panel.queue.cell_text(2, 4) == "missing bob" and panel.queue.cell_text(2, 2) == "–"
    assert panel.current.image_id == ids[0]
    panel.queue.selectRow(2)  # the slice bob has not labelled: he is listed, with nothing to accept
    assert panel.current.image_id == ids[2]
    assert panel.decision.readers.item(1, 1).text() == "not labelled"
    assert not panel.decision.accept_buttons[BOB].isEnabled()
    assert panel.marks.names == ["alice: 0", "bob: not labelled"]
    _wait_shown(qtbot, panel)

    panel.reason_box.setCurrentIndex(panel.reason_box.findData("centres"))
    _settle(qtbot, panel)
    assert panel.queue_image_ids() == [it.image_id for it in disagreement_queue(
        project.db, project.rev, reason="centres")] == [ids[1]]
    assert panel.counts.text().endswith("— 1 shown") and panel.current.image_id == ids[1]

    ReviewService(project.db, project.rev).accept(ids[1], "rater:alice", expected_version=0)
    panel.reason_box.setCurrentIndex(0)  # all reasons: reloads
    _settle(qtbot, panel)
    assert panel.queue_image_ids() == [ids[0], ids[2]]
    panel.status_box.setCurrentText("decided")
    _settle(qtbot, panel)
    assert panel.queue_image_ids() == [ids[1]] and panel.counts.text() == "1 decided · 1 centres apart"
    panel.status_box.setCurrentText("all")
    _settle(qtbot, panel)
    assert panel.queue_image_ids() == ids and panel.queue.cell_text(1, 3) == "decided"
    assert panel.counts.text().startswith("3 in queue")


def test_side_by_side_readers_names_colours_and_model_probabilities(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    _add_model(project.db, ids)
    panel = _panel(qtbot, project)
    assert panel.current.image_id == ids[0] and panel.showing == ids[0]
    assert panel.marks.names == ["alice: 1", "bob: 3", "model: 2"]
    colours = [m.opts["pen"].color().name() for m in panel.marks.items]
    assert len(set(colours)) == 3
    positions = [(float(m.getData()[0][0]), float(m.getData()[1][0])) for m in panel.marks.items]
    assert positions == [(40, 40), (43, 44), (64, 60)]
    info = panel.decision.model_info.text()
    assert "fast-7" in info and "0.70" in info and "Moderate" in info
    model_key = ReaderRef(ReaderKind.MODEL, str(models_repo.active(project.db).id))
    assert set(panel.decision.accept_buttons) == {ALICE, BOB, model_key}
    assert panel.decision.readers.item(1, 1).text() == "3 Severe"
    assert panel.decision.readers.item(2, 1).text() == "2 Moderate"
    # accepting the model's grade 2, which neither rater gave, overrides everyone: a reason first
    panel.decision.accept_buttons[model_key].click()
    _settle(qtbot, panel)
    assert "reason is required" in panel.decision.message.text() and _history(project, ids[0]) == []
    panel.decision.reason.setText("canal narrower than bob saw, wider than alice")
    panel.decision.accept_buttons[model_key].click()
    _settle(qtbot, panel)
    [adj] = _history(project, ids[0])
    assert (adj.source, adj.grade, adj.x_px, adj.y_px) == (model_key, 2, 64.0, 60.0)
    panel.status_box.setCurrentText("all")
    _settle(qtbot, panel)
    panel.select_image(ids[0])
    _wait_shown(qtbot, panel)

    panel.include_model.setChecked(True)  # the model joins the queue as a reason
    _settle(qtbot, panel)
    reasons = {panel.queue.cell_text(r, 4) for r in range(panel.queue.rowCount())}
    assert "missing bob; model disagrees" in reasons
    panel.reason_box.setCurrentIndex(panel.reason_box.findData("model"))
    _settle(qtbot, panel)
    assert panel.queue_image_ids() == [ids[0], ids[2]]


def test_accept_a_reader_stores_an_adjudication_and_moves_on(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    before = labels.current(project.db)
    panel = _panel(qtbot, project)
    with qtbot.waitSignal(panel.adjudicated) as sig:
        panel.decision.accept_buttons[BOB].click()
    _settle(qtbot, panel)
    [adj] = _history(project, ids[0])
    assert sig.args[0] == adj
    assert (adj.source, adj.grade, adj.x_px, adj.y_px, adj.status, adj.version) == (BOB, 3, 43, 44, "decided",
                                                                                     1)
    assert labels.current(project.db) == before  # rater labels untouched
    assert [e.action for e in audit.entries(project.db, entity="adjudication")] == ["adjudication.decided"]
    assert panel.queue_image_ids() == [ids[1], ids[2]] and panel.current.image_id == ids[1]
    assert panel.counts.text().startswith("2 to decide")
    assert "Saved slice" in panel.decision.message.text()
    _wait_shown(qtbot, panel)


def test_a_decision_removes_its_row_without_resetting_the_queue_table(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    panel = _panel(qtbot, project)
    model = panel.queue.queue_model
    resets: list[int] = []
    removed: list[tuple[int, int]] = []
    model.modelAboutToBeReset.connect(lambda: resets.append(1))
    model.rowsRemoved.connect(lambda _parent, first, last: removed.append((first, last)))
    assert panel.queue.selected_row() == 0
    with qtbot.waitSignal(panel.adjudicated):
        panel.decision.accept_buttons[BOB].click()
    _settle(qtbot, panel)
    assert resets == [] and removed == [(0, 0)]  # the decided row left "to decide"; the rest stayed put
    assert [it.image_id for it in model.rows] == [ids[1], ids[2]]
    assert panel.queue.selected_row() == 0 and panel.current.image_id == ids[1]
    _wait_shown(qtbot, panel)


def test_own_decision_overriding_everyone_needs_a_reason(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    panel = _panel(qtbot, project)
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_J)  # next item
    assert panel.current.image_id == ids[1]
    _wait_shown(qtbot, panel)
    panel.decision.decide_button.click()
    assert "click the canal centre" in panel.decision.message.text()
    click_pixel(panel.view, 45, 42)
    assert panel.own[:2] == pytest.approx((45, 42), abs=0.3)
    assert panel.view.marker.isVisible()
    qtbot.keyClick(panel, Qt.Key.Key_0)  # grade 0: both readers said 2
    assert panel.own[2] == 0 and panel.decision.grade_buttons[0].isChecked()
    panel.decision.decide_button.click()
    _settle(qtbot, panel)
    msg = panel.decision.message
    assert msg.isVisible() and panel.decision.message_kind == "error"
    assert "reason is required" in msg.text() and "#ff6b6b" in msg.styleSheet()
    assert _history(project, ids[1]) == []
    assert panel.current.image_id == ids[1] and panel.own[2] == 0  # nothing lost, still on the slice

    panel.decision.reason.setText("disc bulge mistaken for stenosis")
    qtbot.keyClick(panel, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Enter decides
    _settle(qtbot, panel)
    [adj] = _history(project, ids[1])
    assert (adj.source, adj.grade, adj.reason) == (None, 0, "disc bulge mistaken for stenosis")
    assert (adj.x_px, adj.y_px) == pytest.approx((45, 42), abs=0.3)
    assert panel.current.image_id == ids[2] and panel.decision.reason.text() == ""
    qtbot.keyClick(panel, Qt.Key.Key_K)  # previous: back to the first row
    assert panel.current.image_id == ids[0]
    _wait_shown(qtbot, panel)


def test_second_reviewer_gets_a_conflict_naming_the_first_decision(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    other = project_service.add_rater(project.db, "rev2", Role.REVIEWER)
    first, second = _panel(qtbot, project), _panel(qtbot, project, other)
    assert first.current.image_id == second.current.image_id == ids[0]
    first.decision.accept_buttons[ALICE].click()
    _settle(qtbot, first)
    with qtbot.assertNotEmitted(second.adjudicated):
        second.decision.accept_buttons[BOB].click()
        _settle(qtbot, second)
    box = second.decision
    assert box.message_kind == "conflict"
    text = box.message.text()
    assert "rev decided grade 1 Mild from rater:alice" in text and "nothing was overwritten" in text
    [adj] = _history(project, ids[0])  # exactly the first decision
    assert (adj.reviewer_id, adj.source, adj.grade) == (project.rev.id, ALICE, 1)
    assert second.current.image_id == ids[0]  # the slice stays on screen with the first decision
    assert box.history.rowCount() == 1 and box.history.item(0, 2).text() == "rev"
    assert box.accept_buttons[ALICE].text() == "Accepted"
    assert "decision (rev): 1" in second.marks.names
    assert second.version == 1  # a deliberate second decision now builds on what the reviewer has seen
    _wait_shown(qtbot, first)
    _wait_shown(qtbot, second)


def test_accepting_a_label_changed_since_it_was_shown_stores_nothing_and_shows_the_new_one(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    panel = _panel(qtbot, project)
    assert panel.current.image_id == ids[0] and panel.current.marks[BOB].grade == 3
    LabelService(project.db, project.bob).set_grade(ids[0], 2)  # bob, at his workstation, changes his grade
    with qtbot.assertNotEmitted(panel.adjudicated):
        panel.decision.accept_buttons[BOB].click()
        _settle(qtbot, panel)
    assert panel.decision.message_kind == "conflict"
    text = panel.decision.message.text()
    assert "bob changed their label" in text and "now: grade 2 Moderate" in text
    assert _history(project, ids[0]) == []
    assert panel.current.image_id == ids[0] and panel.current.marks[BOB].grade == 2  # shown as it is now
    with qtbot.waitSignal(panel.adjudicated) as sig:
        panel.decision.accept_buttons[BOB].click()
    assert sig.args[0].grade == 2
    _wait_shown(qtbot, panel)
    assert panel.current.image_id == ids[1]  # same grade, 6 mm apart
    LabelService(project.db, project.bob).set_point(ids[1], 41, 40)  # bob moves his point next to alice's
    panel.decision.accept_buttons[BOB].click()
    _settle(qtbot, panel)
    assert panel.decision.message_kind == "conflict" and "has left the queue" in panel.decision.message.text()
    assert ids[1] not in panel.queue_image_ids() and _history(project, ids[1]) == []


def test_reopen_requires_a_reason(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    ReviewService(project.db, project.rev).accept(ids[0], "rater:alice", expected_version=0)
    panel = _panel(qtbot, project)
    assert not panel.decision.reopen_button.isEnabled()  # the open slice shown first has nothing to reopen
    panel.status_box.setCurrentText("decided")
    _settle(qtbot, panel)
    assert panel.current.image_id == ids[0] and panel.decision.reopen_button.isEnabled()
    panel.decision.reopen_button.click()
    _settle(qtbot, panel)
    assert "reason is required to reopen" in panel.decision.message.text()
    assert len(_history(project, ids[0])) == 1
    panel.decision.reason.setText("bob's grade looks right after all")
    panel.decision.reopen_button.click()
    _settle(qtbot, panel)
    hist = _history(project, ids[0])
    assert [a.status for a in hist] == ["decided", "reopened"] and hist[1].reason.startswith("bob's")
    assert panel.current.image_id == ids[0] and "reopened" in panel.title.text()
    assert panel.decision.history.rowCount() == 2 and panel.decision.history.item(0, 3).text() == "reopened"
    assert panel.queue_image_ids() == []  # nothing decided left under this filter
    panel.status_box.setCurrentText("to decide")  # the default: a reopened slice needs a decision again
    _settle(qtbot, panel)
    assert panel.queue_image_ids() == [ids[0], ids[1], ids[2]]
    panel.status_box.setCurrentText("open")  # never decided only
    _settle(qtbot, panel)
    assert panel.queue_image_ids() == [ids[1], ids[2]]
    _wait_shown(qtbot, panel)


def test_open_in_workstation_emits_the_image(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    panel = _panel(qtbot, project)
    with qtbot.waitSignal(panel.openImage) as sig:
        panel.open_button.click()
    assert sig.args == [ids[0]]


def test_an_annotator_cannot_open_the_panel(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    _label(project)
    scale = project_rules(project.db).scale
    with pytest.raises(PermissionDenied, match="alice is an annotator"):
        ReviewPanel(project.db, project.alice, scale)
    parent = QWidget()
    qtbot.addWidget(parent)
    assert open_review_panel(project.db, project.alice, scale, parent) is None
    [box] = [w for w in parent.findChildren(QMessageBox) if w.objectName() == "annotator-error"]
    assert "annotator and cannot adjudicate" in box.text()
    box.close()


def test_docked_in_a_window_the_panel_keys_win_while_it_has_the_focus(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    """The main window has its own grade keys and PgDown: a dock's QShortcut would be ambiguous."""
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QDockWidget, QLineEdit, QMainWindow

    ids = _label(project)
    window = QMainWindow()
    qtbot.addWidget(window)
    central = QLineEdit()
    window.setCentralWidget(central)
    fired: list[str] = []
    for key in ("1", "PgDown"):
        act = QAction(key, window)
        act.setShortcut(QKeySequence(key))
        act.triggered.connect(lambda _c=False, k=key: fired.append(k))
        window.addAction(act)
    panel = ReviewPanel(project.db, project.rev, project_rules(project.db).scale)
    dock = QDockWidget("Review", window)
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resize(1600, 900)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    _wait_shown(qtbot, panel)

    panel.queue.setFocus()
    qtbot.keyClick(panel.queue, Qt.Key.Key_1)
    qtbot.keyClick(panel.queue, Qt.Key.Key_PageDown)
    assert panel.own[2] is None and panel.current.image_id == ids[1] and fired == []  # grade reset on moving on
    qtbot.keyClick(panel.queue, Qt.Key.Key_2)
    assert panel.own[2] == 2 and fired == []
    panel.decision.reason.setFocus()
    qtbot.keyClicks(panel.decision.reason, "1 j")  # typing a reason stays typing
    assert panel.decision.reason.text() == "1 j" and panel.own[2] == 2 and panel.current.image_id == ids[1]
    central.setFocus()
    qtbot.keyClick(central, Qt.Key.Key_PageDown)
    assert fired == ["PgDown"] and panel.current.image_id == ids[1]  # outside the panel the window's keys work
    _wait_shown(qtbot, panel)


def test_review_menu_opens_the_review_window_and_sends_slices_to_the_workstation(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    annotator_window = open_window(project.alice)
    assert not annotator_window.review_action.isEnabled()  # blinded annotators never see the queue
    annotator_window.close()
    w = open_window(project.rev)
    assert w.review_action.isEnabled()
    w.review_action.trigger()
    panel = w.review_window
    assert panel is not None and panel.isWindow() and panel.isVisible()
    _wait_shown(qtbot, panel)
    assert panel.queue_image_ids() == [ids[0], ids[1], ids[2]]
    w.session.go_to(w.session.worklist.series_images(1)[1])
    panel.openImage.emit(ids[2])  # "Open in workstation" on the third queue item
    qtbot.waitUntil(lambda: w.session.current is not None and w.session.current.id == ids[2], timeout=5000)
    w.close()
    assert panel.closed  # the review window goes with the main window, its decoding stopped


def test_the_review_window_closed_and_opened_again_still_shows_slices(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    w = open_window(project.rev)
    w.review_action.trigger()
    first = w.review_window
    _wait_shown(qtbot, first)
    first.close()
    assert first.closed and not first.isVisible()
    w.review_action.trigger()  # Review > Disagreement queue… (Ctrl+R) again
    panel = w.review_window
    assert panel is not None and panel is not first and panel.isVisible() and not panel.closed
    _wait_shown(qtbot, panel)  # a fresh loader: the slice is decoded and drawn
    assert panel.showing == ids[0]
    panel.queue.selectRow(1)
    qtbot.waitUntil(lambda: panel.showing == ids[1], timeout=5000)
    qtbot.waitUntil(lambda: not shiboken6.isValid(first), timeout=5000)  # the first panel's late deletion...
    assert w.review_window is panel  # ...leaves the new one tracked: Ctrl+R raises it, closing the app closes it
    w.review_action.trigger()
    assert w.review_window is panel
