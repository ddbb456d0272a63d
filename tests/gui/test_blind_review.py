"""Blind adjudication on the review screen: with reader names hidden from reviewers, every reader appears
as "Reader A" / "Reader B" (legend, reader rows, accept buttons, history, queue reasons, messages) and no
real name appears in any of the screen's texts; accepting still stores the real reader."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractButton, QLabel, QTableWidget, QWidget

from annotator.domain.entities import Role
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.gui.review_panel import ReviewPanel
from annotator.services import project as project_service
from annotator.services.labelling import LabelService
from annotator.services.review import ReviewService
from annotator.services.worklist import WorklistService, project_rules

ALICE, BOB = ReaderRef(ReaderKind.RATER, "alice"), ReaderRef(ReaderKind.RATER, "bob")


def _texts(panel: ReviewPanel) -> list[str]:
    """Every text the screen shows: labels, buttons and their tooltips, table cells, the slice's legend."""
    out = [panel.windowTitle(), *panel.marks.names]
    for w in panel.findChildren(QWidget):
        out.append(w.toolTip())
        if isinstance(w, QLabel | QAbstractButton):
            out.append(w.text())
        if isinstance(w, QTableWidget):
            out += [it.text() + it.toolTip() for r in range(w.rowCount()) for c in range(w.columnCount())
                    if (it := w.item(r, c)) is not None]
            out += [it.text() for c in range(w.columnCount()) if (it := w.horizontalHeaderItem(c)) is not None]
    return out


def _blind_project(project) -> list[int]:  # type: ignore[no-untyped-def]
    """alice and bob disagree on two slices; bob has not labelled a third; names hidden from reviewers."""
    ids = [im.id for im in WorklistService(project.db, project.alice).series_images(1)]
    for i, (ga, gb) in enumerate(((0, 2), (1, 3))):
        LabelService(project.db, project.alice).set_label(ids[i], 40, 40, ga)
        LabelService(project.db, project.bob).set_label(ids[i], 42, 40, gb)
    LabelService(project.db, project.alice).set_label(ids[2], 40, 40, 1)
    boss = project_service.add_rater(project.db, "boss", Role.ADMIN)
    project_service.change_settings(project.db, boss, hide_reader_names_from_reviewers=True)
    return ids


def _open(qtbot, project, rater) -> ReviewPanel:  # type: ignore[no-untyped-def]
    panel = ReviewPanel(project.db, rater, project_rules(project.db).scale)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.presenter.itemChanged, timeout=10000,
                          check_params_cb=lambda view: view is not None and not view.loading):
        panel.resize(1400, 800)
        panel.show()
    qtbot.waitUntil(lambda: not panel.presenter.busy and panel.showing == panel.current.image_id, timeout=10000)
    return panel


def test_a_reviewer_sees_only_aliases_and_decides_by_them(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _blind_project(project)
    panel = _open(qtbot, project, project.rev)
    assert [n.split(":")[0] for n in panel.marks.names[:2]] == ["Reader A", "Reader B"]
    assert set(panel.decision.accept_buttons) == {ALICE, BOB}  # the rows still carry the real readers
    reasons = {panel.queue.cell_text(r, 4) for r in range(panel.queue.rowCount())}
    assert "missing Reader B" in reasons

    with qtbot.waitSignal(panel.adjudicated, timeout=10000) as sig:
        panel.decision.accept_buttons[BOB].click()
    assert sig.args[0].source == BOB  # stored against bob, shown as Reader B
    qtbot.waitUntil(lambda: not panel.presenter.busy, timeout=10000)
    assert "Reader B" in panel.decision.message.text()
    panel.presenter.select_image(ids[0])  # back to the decided slice: its history names the source by alias
    qtbot.waitUntil(lambda: panel.decision.history.rowCount() == 1, timeout=10000)
    assert panel.decision.history.item(0, 4).text() == "Reader B"

    texts = " ".join(_texts(panel))
    assert "Reader A" in texts and "Reader B" in texts
    assert "alice" not in texts and "bob" not in texts
    assert [a.source for a in ReviewService(project.db, project.rev).history(ids[0])] == [BOB]


def test_an_admin_sees_names_on_the_same_screen(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    _blind_project(project)
    boss = project_service.rater_by_name(project.db, "boss")
    panel = _open(qtbot, project, boss)
    texts = " ".join(_texts(panel))
    assert "alice" in texts and "bob" in texts and "Reader A" not in texts
