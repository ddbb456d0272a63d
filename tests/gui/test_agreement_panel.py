"""The agreement panel: the pair table, a confusion cell's slices, and opening one in the viewer."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from sklearn.metrics import accuracy_score

from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.gui.agreement_panel import AgreementPanel
from annotator.services.labelling import LabelService
from annotator.services.worklist import WorklistService, project_rules

ALICE = (1, 2, 0)
BOB = (1, 3, 0)


def _label(project):  # type: ignore[no-untyped-def]
    ids = [im.id for im in WorklistService(project.db, project.alice).series_images(1)]
    for i, (ga, gb) in enumerate(zip(ALICE, BOB, strict=True)):
        LabelService(project.db, project.alice).set_label(ids[i], 40, 40, ga)
        LabelService(project.db, project.bob).set_label(ids[i], 43, 44, gb)  # 3 px at 0.6 mm, 4 px at 0.5 mm
    return ids


def _panel(qtbot, project) -> AgreementPanel:  # type: ignore[no-untyped-def]
    panel = AgreementPanel(project.db, project_rules(project.db).scale, project.rev)
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_selected_readers(["rater:alice", "rater:bob"])
    panel.boot.setValue(50)
    panel.compute_button.click()
    # computed on a worker thread: the click returns before the report exists, with a word on screen
    assert panel.report is None and panel.status.text() == "Computing agreement (50 bootstrap resamples)…"
    with qtbot.waitSignal(panel.computed, timeout=20000):
        pass
    return panel


def test_table_matches_sklearn_and_cell_lists_slices(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    panel = _panel(qtbot, project)
    assert panel.table.rowCount() == 1
    assert (panel.table.item(0, 0).text(), panel.table.item(0, 1).text()) == ("rater:alice", "rater:bob")
    expected = accuracy_score(ALICE, BOB)
    assert panel.report.pairs[0].figures.accuracy == expected
    assert panel.table.item(0, 3).text().startswith(f"{100 * expected:.1f}%")

    panel.select_pair(0)
    assert panel.pair == (ReaderRef(ReaderKind.RATER, "alice"), ReaderRef(ReaderKind.RATER, "bob"))
    assert np.allclose(panel.data.click_distances_mm(*panel.pair), np.hypot(3 * 0.6, 4 * 0.5))
    assert panel.distance_plot.plotItem.titleLabel.text == "3 slices with both clicks and pixel spacing"
    scale = panel.scale
    row = scale.ordinals.index(2)
    col = scale.ordinals.index(3)
    # a real click on the cell's centre, through the scene
    panel.confusion_plot.plotItem.vb.updateMatrix()
    scene_pos = panel.confusion_image.mapToScene(QPointF(col + 0.5, row + 0.5))

    class _Click:
        def button(self):  # type: ignore[no-untyped-def]
            return Qt.MouseButton.LeftButton

        def scenePos(self):  # type: ignore[no-untyped-def]  # noqa: N802
            return scene_pos

    panel.confusion_plot.scene().sigMouseClicked.emit(_Click())
    assert panel.listed_image_ids() == [ids[1]]
    panel.show_cell(scale.ordinals.index(1), scale.ordinals.index(1))
    assert panel.listed_image_ids() == [ids[0]]
    panel.show_cell(scale.ordinals.index(0), scale.ordinals.index(3))
    assert panel.listed_image_ids() == []

    panel.show_cell(row, col)
    item = panel.cell_slices.item(0)
    with qtbot.waitSignal(panel.openImage, timeout=1000) as sig:
        panel.cell_slices.itemActivated.emit(item)
    assert sig.args == [ids[1]]


def test_window_opens_panel_and_navigates(open_window, qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    w = open_window(project.rev)
    assert w.agreement_action.isEnabled()
    w.agreement_action.trigger()
    panel = w.agreement_dock.widget()
    panel.set_selected_readers(["rater:alice", "rater:bob"])
    panel.boot.setValue(0)
    with qtbot.waitSignal(panel.computed, timeout=20000):
        panel.compute()
    panel.select_pair(0)
    panel.show_cell(panel.scale.ordinals.index(0), panel.scale.ordinals.index(0))
    assert panel.listed_image_ids() == [ids[2]]
    panel.cell_slices.itemActivated.emit(panel.cell_slices.item(0))
    qtbot.waitUntil(lambda: w.session.current is not None and w.session.current.id == ids[2], timeout=5000)


def test_blinded_annotator_cannot_open_agreement(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    assert not w.agreement_action.isEnabled()


def test_an_annotator_who_sees_other_readers_sees_the_model_only_if_the_project_shows_it(open_window, project,  # type: ignore[no-untyped-def]
                                                                                        qtbot) -> None:
    from annotator.domain.entities import ModelSuggestion
    from annotator.storage import models_repo, people

    _label(project)
    models_repo.register(project.db, name="m", preset="fast", target="rater:bob", kind="train", weights_path="/x",
                         weights_sha256="0" * 64, card={})
    people.update_settings(project.db, None, show_other_raters_to_annotators=True)

    def offered(rater) -> list[str]:  # type: ignore[no-untyped-def]
        w = open_window(rater)
        assert w.agreement_action.isEnabled()
        w.agreement_action.trigger()
        panel = w.agreement_dock.widget()
        with qtbot.waitSignal(panel.readersLoaded, timeout=5000):  # read in the background once shown
            pass
        names = [panel.readers.item(i).text() for i in range(panel.readers.count())]
        w.close()
        return names

    hidden = offered(project.alice)  # model hidden from annotators: no model:1 to compare against
    assert "rater:bob" in hidden and "consensus" in hidden and not any(n.startswith("model:") for n in hidden)
    assert "model:1" in offered(project.rev)
    people.update_settings(project.db, None, model_suggestion=ModelSuggestion.AFTER_OWN_GRADE)
    assert not any(n.startswith("model:") for n in offered(project.alice))
    people.update_settings(project.db, None, model_suggestion=ModelSuggestion.ALWAYS)
    assert "model:1" in offered(project.alice)


def test_opening_a_slice_from_another_screen_searches_off_the_gui_thread(open_window, qtbot, project) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    w = open_window(project.rev)
    assert w.session.current.id == ids[0]
    w.open_image(ids[2])
    assert w.busy and w.session.current.id == ids[0]  # the worklist is searched in the background...
    qtbot.waitUntil(lambda: not w.busy and w.session.current.id == ids[2], timeout=5000)  # ...then opened
    w.open_image(10**6)
    qtbot.waitUntil(lambda: not w.busy, timeout=5000)
    assert w.statusBar().currentMessage() == f"Image {10**6} is not in the worklist"
    assert w.session.current.id == ids[2]


def test_the_screen_reads_nothing_on_the_gui_thread_and_loads_the_readers_once(open_window, qtbot, project,  # type: ignore[no-untyped-def]
                                                                                 monkeypatch) -> None:
    import threading

    from sqlalchemy import event

    from annotator.services import agreement

    _label(project)
    w = open_window(project.rev)
    loads: list[int] = []
    real = agreement.load_reader_data
    monkeypatch.setattr(agreement, "load_reader_data", lambda db, refs: loads.append(1) or real(db, refs))
    gui, seen = threading.get_ident(), []

    def on_execute(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if threading.get_ident() == gui:
            seen.append(statement)

    event.listen(project.db.engine, "before_cursor_execute", on_execute)
    try:
        panel = w.show_agreement()
        panel.set_selected_readers(["rater:alice", "rater:bob"])
        panel.boot.setValue(20)
        with qtbot.waitSignal(panel.computed, timeout=20000):
            panel.compute()  # pressed while the readers are still being read: runs once they are listed
        assert panel.report is not None and panel.selected_readers() == ["rater:alice", "rater:bob"]
    finally:
        event.remove(project.db.engine, "before_cursor_execute", on_execute)
    assert seen == [] and loads == [1]  # the report and the cell lists come from one load
    panel.select_pair(0)
    assert panel.data is not None and panel.data.click_distances_mm(*panel.pair).size == 3


def test_readers_added_later_appear_when_shown_again_or_after_a_refresh(open_window, qtbot, project) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.entities import Role
    from annotator.services import project as project_service
    from annotator.storage import models_repo

    ids = _label(project)
    w = open_window(project.rev)
    panel = w.show_agreement()
    qtbot.waitUntil(lambda: panel.isVisible() and panel.readers.count() > 0 and not panel.loading_readers,
                    timeout=5000)
    listed = lambda: [panel.readers.item(i).text() for i in range(panel.readers.count())]  # noqa: E731
    assert "rater:carol" not in listed() and not any(n.startswith("model:") for n in listed())
    panel.set_selected_readers(["rater:alice"])
    carol = project_service.add_rater(project.db, "carol", Role.ANNOTATOR)
    LabelService(project.db, carol).set_label(ids[0], 40, 40, 1)
    w.agreement_dock.hide()
    w.show_agreement()  # shown again: read again
    qtbot.waitUntil(lambda: "rater:carol" in listed(), timeout=5000)
    model = models_repo.register(project.db, name="m", preset="fast", target="rater:bob", kind="train",
                                 weights_path="/x", weights_sha256="0" * 64, card={})
    w.refresh()  # what a trained or activated model triggers
    qtbot.waitUntil(lambda: f"model:{model.id}" in listed() and not w.busy, timeout=5000)
    assert panel.selected_readers() == ["rater:alice"]  # the reader's choice survives the reloads


def test_opening_a_slice_by_id_does_not_load_the_worklist(open_window, qtbot, project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids = _label(project)
    w = open_window(project.rev)
    qtbot.waitUntil(lambda: not w.busy, timeout=5000)
    loads: list[object] = []
    real = WorklistService.load
    monkeypatch.setattr(WorklistService, "load", lambda self, *a, **k: loads.append(a) or real(self, *a, **k))
    w.open_image(ids[1])
    qtbot.waitUntil(lambda: not w.busy and w.session.current.id == ids[1], timeout=5000)
    assert loads == []


def test_the_confusion_counts_are_labels_reused_from_pair_to_pair(qtbot, project) -> None:  # type: ignore[no-untyped-def]
    """Each pair shows its own counts, in the same label items (made once, when the report arrives)."""
    _label(project)
    LabelService(project.db, project.rev).set_label(
        WorklistService(project.db, project.rev).series_images(1)[0].id, 40, 40, 1)
    panel = AgreementPanel(project.db, project_rules(project.db).scale, project.rev)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_selected_readers(["rater:alice", "rater:bob", "rater:rev"])
    panel.boot.setValue(0)
    with qtbot.waitSignal(panel.computed, timeout=20000):
        panel.compute()
    labels = list(panel._count_items)
    n = panel.scale.n_grades
    assert len(labels) == n * n and not any(t.isVisible() for t in labels)  # made, none shown yet

    def shown() -> list[int]:
        assert all(t.isVisible() for t in panel._count_items)
        return [int(t.textItem.toPlainText()) for t in panel._count_items]

    for row in (0, 1, 0):
        panel.select_pair(row)
        conf = np.asarray(panel.report.pairs[row].figures.confusion).ravel().tolist()
        assert shown() == conf and panel._count_items == labels  # the same items, this pair's counts
    assert sum(shown()) == 3 and panel.table.rowCount() == 3
