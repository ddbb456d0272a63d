"""Side by side: the second view follows the first and shows only what the rater may see."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from annotator.domain.entities import ModelSuggestion
from annotator.gui.scale_bar import view_units_per_pixel
from annotator.services.labelling import LabelService
from annotator.storage import people
from annotator.storage.tables import ModelVersionRow, PredictionRow
from tests.gui.helpers import drag, viewport_pos


def _add_model(db, image_ids, name: str = "fast-3", target: str = "rater:alice") -> None:  # type: ignore[no-untyped-def]
    def work(s):  # type: ignore[no-untyped-def]
        mv = ModelVersionRow(name=name, preset="fast", target=target, kind="train",
                             weights_path="/w", weights_sha256="0" * 64, active=True)
        s.add(mv)
        s.flush()
        for i in image_ids:
            s.add(PredictionRow(model_version_id=mv.id, image_id=i, x_px=64.0, y_px=60.0, grade=2,
                                probabilities=[0.05, 0.15, 0.7, 0.1]))

    db.write(work)


def _image_ids(project):  # type: ignore[no-untyped-def]
    from annotator.services.worklist import WorklistService

    return [im.id for im in WorklistService(project.db, project.alice).series_images(1)]


def test_blinded_annotator_sees_no_model_and_no_readers(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    ids = _image_ids(project)
    LabelService(project.db, project.bob).set_label(ids[0], 50, 50, 3)
    w = open_window(project.alice)
    text = w.compare.info.text()
    assert "no active model" in text and "hidden (blinded reading)" in text
    assert w.compare.legend_names == []
    _add_model(project.db, ids)
    w.refresh()  # read in the background
    qtbot.waitUntil(lambda: not w.busy, timeout=5000)
    assert "hidden by project policy" in w.compare.info.text() and "0.70" not in w.compare.info.text()
    assert not any("bob" in n or "model" in n for n in w.compare.legend_names)


def test_a_blinded_annotator_is_not_told_whose_labels_the_model_learnt(open_window, project) -> None:  # type: ignore[no-untyped-def]
    ids = _image_ids(project)
    _add_model(project.db, ids, name="20261127T0100Z-fast-train-rater-bob-1a2b", target="rater:bob")
    people.update_settings(project.db, None, model_suggestion=ModelSuggestion.ALWAYS)
    w = open_window(project.alice)
    info = w.compare.info.text()
    assert "0.70" in info and "bob" not in info and "model 1" in info  # the suggestion, not its provenance
    w.close()
    people.update_settings(project.db, None, model_suggestion=ModelSuggestion.HIDDEN)
    w = open_window(project.alice)
    assert "hidden by project policy" in w.compare.info.text() and "bob" not in w.compare.info.text()
    assert "rater-bob" in open_window(project.rev).compare.info.text()  # reviewers see the full name


def test_readers_keep_distinct_colours_whatever_their_ids(open_window, project) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.entities import Role

    ids = _image_ids(project)
    extra = [people.add_rater(project.db, f"r{i}", Role.ANNOTATOR) for i in range(8)]
    partner = next(r for r in extra if r.id - project.bob.id == 8)  # ids that used to share colour and symbol
    LabelService(project.db, project.bob).set_label(ids[0], 50, 52, 3)
    LabelService(project.db, partner).set_label(ids[0], 40, 40, 1)
    w = open_window(project.rev)
    styles = {(item.opts["pen"].color().name(), str(item.opts["symbol"])) for item in w.compare.marks.items}
    assert len(w.compare.marks.items) == 2 and len(styles) == 2
    assert len({c for c, _ in styles}) == 2


def test_reviewer_sees_readers_in_colours_and_the_model(open_window, project) -> None:  # type: ignore[no-untyped-def]
    ids = _image_ids(project)
    LabelService(project.db, project.alice).set_label(ids[0], 40, 40, 1)
    LabelService(project.db, project.bob).set_label(ids[0], 50, 52, 3)
    _add_model(project.db, ids)
    w = open_window(project.rev)
    names = w.compare.legend_names
    assert "alice: 1" in names and "bob: 3" in names and "model: 2" in names
    colours = {item.opts["pen"].color().name() for item in w.compare.marks.items}
    assert len(colours) == len(w.compare.marks.items)  # one colour per reader
    info = w.compare.info.text()
    assert "fast-3" in info and "0.70" in info and "Moderate" in info


def test_suggestion_appears_after_own_grade_when_policy_says_so(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    people.update_settings(project.db, None, model_suggestion=ModelSuggestion.AFTER_OWN_GRADE)
    _add_model(project.db, _image_ids(project))
    w = open_window(project.alice)
    assert "after you grade" in w.compare.info.text()
    qtbot.keyClick(w, Qt.Key.Key_1)
    assert "model: 2" in w.compare.legend_names and "0.70" in w.compare.info.text()


def test_second_view_follows_slice_window_zoom_and_pan(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    main, other = w.view, w.compare.view

    def centre_and_scale(v):  # type: ignore[no-untyped-def]
        (x0, x1), (y0, y1) = v.view_box.viewRange()
        return ((x0 + x1) / 2, (y0 + y1) / 2, view_units_per_pixel(v.view_box))

    assert centre_and_scale(other) == pytest.approx(centre_and_scale(main))
    main.zoom(2.5)
    main.view_box.translateBy(x=12, y=-7)
    assert centre_and_scale(other) == pytest.approx(centre_and_scale(main))
    drag(other, viewport_pos(other, 64, 64), viewport_pos(other, 50, 70))  # pan in the second view
    assert centre_and_scale(main) == pytest.approx(centre_and_scale(other))
    w.session.step(+1)
    qtbot.waitUntil(lambda: w.session.showing_current)
    assert other.image_ref == main.image_ref == w.session.current
    assert (other.image_item.image == main.image_item.image).all()
    assert tuple(other.image_item.levels) == tuple(main.image_item.levels)
    # the second view never labels
    before = LabelService(project.db, project.alice).history(w.session.current.id)
    from tests.gui.helpers import click_pixel

    click_pixel(other, 30, 30)
    assert LabelService(project.db, project.alice).history(w.session.current.id) == before


def test_compare_view_can_be_hidden_and_the_choice_is_remembered(open_window, project, qtbot, qsettings) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.rev)
    assert not w.compare.isHidden()
    qtbot.keyClick(w, Qt.Key.Key_F9)
    assert w.compare.isHidden()
    w.close()
    assert qsettings.value("window/compare") == "false"
    w2 = open_window(project.rev)
    assert w2.compare.isHidden()
    w2.close()
    w3 = open_window(project.alice)  # blinded annotator, hidden model: nothing to compare with
    assert w3.compare.isHidden()
    qtbot.keyClick(w3, Qt.Key.Key_F9)
    assert not w3.compare.isHidden() and "no active model" in w3.compare.info.text()


def test_slice_styles_differ_and_do_not_depend_on_listing_order() -> None:
    from annotator.gui.theme import reader_style, slice_styles

    assert slice_styles([0, 1, 2]) == [reader_style(0), reader_style(1), reader_style(2)]  # own styles
    assert len(set(slice_styles(list(range(0, 64, 8))))) == 8  # eight raters whose ordinals all clash
    a, b = slice_styles([1, 9, 3]), slice_styles([9, 3, 1])  # review (by name) vs workstation (by label)
    assert (a[0], a[1], a[2]) == (b[2], b[0], b[1])
