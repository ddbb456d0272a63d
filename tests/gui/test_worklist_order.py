"""The worklist ordered by a next-sample strategy: ranked list, Enter follows it, remembered per rater."""

from __future__ import annotations

from PySide6.QtCore import Qt

from annotator.domain.entities import ModelSuggestion, Prediction
from annotator.services import strategies
from annotator.storage import catalog, models_repo, people


def _model_with_predictions(db, probs):  # type: ignore[no-untyped-def]
    ims = catalog.images(db)
    m = models_repo.register(db, name="m", preset="fast", target="rater:bob", kind="train", weights_path="/x",
                             weights_sha256="0" * 64, card={})
    models_repo.activate(db, m.id)
    models_repo.write_predictions(db, m.id, [Prediction(m.id, im.id, 5, 5, 0, p) for im, p in zip(ims, probs,
                                                                                                   strict=True)])
    return ims


def test_most_uncertain_order_ranks_the_list_and_drives_next(open_window, project, qtbot, qsettings) -> None:  # type: ignore[no-untyped-def]
    probs = [(0.9, 0.1, 0.0, 0.0), (0.25, 0.25, 0.25, 0.25), (0.5, 0.5, 0.0, 0.0)]
    ims = _model_with_predictions(project.db, probs)
    w = open_window(project.alice)
    box = w.worklist.order_box
    names = [box.itemData(i) for i in range(box.count())]
    assert names == ["sequential", "random"]  # blinded annotator, model hidden: no order that reads either
    w.close()
    people.update_settings(project.db, None, model_suggestion=ModelSuggestion.ALWAYS)
    w = open_window(project.alice)
    box = w.worklist.order_box
    names = [box.itemData(i) for i in range(box.count())]
    assert names == ["sequential", "random", "most_uncertain"]  # the project shows her the model anyway
    assert w.worklist.tree.topLevelItemCount() == 1  # the study tree
    with qtbot.waitSignal(w.worklistLoaded, timeout=5000):  # the ranked list is read in the background
        box.setCurrentIndex(names.index("most_uncertain"))
    tree = w.worklist.tree
    rows = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    assert [r.data(0, Qt.ItemDataRole.UserRole)[1].id for r in rows] == [ims[1].id, ims[2].id, ims[0].id]
    assert rows[0].text(0).startswith("1. P0001") and rows[0].text(2) == f"{strategies.entropy(probs[1]):.2f}"
    assert tree.headerItem().text(2) == "Entropy"
    assert qsettings.value("worklist/strategy/alice") == "most_uncertain"  # remembered for this rater
    w.session.go_to(ims[2])
    qtbot.keyClick(w, Qt.Key.Key_Return)  # next unfinished in the ranked order, from the current slice
    qtbot.waitUntil(lambda: not w.session.busy, timeout=5000)
    assert w.session.current.id == ims[0].id
    qtbot.keyClick(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not w.session.busy, timeout=5000)
    assert w.session.current.id == ims[1].id


def test_reviewer_may_order_by_disagreement_and_the_choice_is_remembered(open_window, project, qsettings) -> None:  # type: ignore[no-untyped-def]
    from annotator.services.labelling import LabelService

    ims = catalog.images(project.db)
    for rater, grades in ((project.alice, (0, 0, 1)), (project.bob, (0, 3, 2))):
        for im, g in zip(ims, grades, strict=True):
            LabelService(project.db, rater).set_grade(im.id, g)
    qsettings.setValue("worklist/strategy/rev", "most_disagreement")
    qsettings.setValue("worklist/strategy/alice", "most_disagreement")  # e.g. from when she was allowed
    w = open_window(project.rev)
    assert w.worklist.current_strategy == "most_disagreement"
    tree = w.worklist.tree
    order = [tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole)[1].id for i in range(tree.topLevelItemCount())]
    assert order == [ims[1].id, ims[2].id, ims[0].id]
    w.close()
    w2 = open_window(project.alice)  # alice is blinded: her remembered order falls back
    assert w2.worklist.current_strategy == "sequential"
    assert w2.worklist.tree.topLevelItemCount() == 1
    w2.worklist.order_box.setCurrentIndex(1)  # random, for alice only
    w2.close()
    assert qsettings.value("worklist/strategy/alice") == "random"
    assert open_window(project.rev).worklist.current_strategy == "most_disagreement"  # rev's own choice


def test_a_refresh_that_finds_nothing_new_keeps_the_listed_tree(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    """A model activated (or F5) refreshes the window: the worklist is read again, but listed again (every
    slice's row rebuilt on the GUI thread) only when it changed."""
    from annotator.services.labelling import LabelService

    ims = catalog.images(project.db)
    w = open_window(project.alice)
    rows = [w.worklist.slice_item(im.id) for im in ims]
    with qtbot.waitSignal(w.worklistLoaded, timeout=5000):
        w.refresh()
    assert all(w.worklist.slice_item(im.id) is row for im, row in zip(ims, rows, strict=True))  # not rebuilt
    LabelService(project.db, project.alice).set_grade(ims[2].id, 1)  # elsewhere (another window, the CLI)
    with qtbot.waitSignal(w.worklistLoaded, timeout=5000):
        w.refresh()
    assert w.worklist.slice_state(ims[2].id) != w.worklist.slice_state(ims[0].id)  # listed again: the change shows
    assert w.worklist.slice_item(ims[0].id) is not rows[0]
