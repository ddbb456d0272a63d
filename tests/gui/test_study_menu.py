"""The workstation's Study menu and levels: the level shows in the worklist and the readout; an admin
sets the level of chosen slices (audited), an annotator is refused; a reader opens her study from the
menu; the dashboard entry is for reviewers and admins only."""

from __future__ import annotations

import pytest

from annotator.domain.errors import PermissionDenied
from annotator.domain.studies import VertebralLevel
from annotator.gui.main_window import MainWindow
from annotator.gui.worklist_panel import ROLE
from annotator.storage import audit
from tests.gui.study_project import STUDY, StudyProject, build


@pytest.fixture
def sp(tmp_path) -> StudyProject:  # type: ignore[no-untyped-def]
    p = build(tmp_path)
    yield p
    p.db.close()


@pytest.fixture
def window(qtbot, sp: StudyProject, qsettings):  # type: ignore[no-untyped-def]
    def make(rater) -> MainWindow:  # type: ignore[no-untyped-def]
        w = MainWindow(sp.db, rater, qsettings)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        qtbot.waitUntil(lambda: w.session.showing_current and not w.busy, timeout=10000)
        return w

    return make


def listed(w: MainWindow) -> dict[str, tuple[int, str]]:
    """SOPInstanceUID -> (image id, the row's text) of every slice in the worklist."""
    out = {}
    for image_id in list(w.worklist._slices):
        item = w.worklist.slice_item(image_id)
        out[item.data(0, ROLE)[1].sop_instance_uid] = (image_id, item.text(0))
    return out


def test_levels_show_in_the_worklist_and_the_readout(qtbot, window, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    w = window(sp.ann)
    rows = listed(w)
    assert set(sp.truth) <= set(rows)  # every axial slice is listed, with the level its series names
    for sop, level in sp.truth.items():
        assert rows[sop][1].endswith(f"  {level}"), rows[sop]
    others = [text for sop, (_i, text) in rows.items() if sop not in sp.truth]
    assert others and not any("L" in t.split("mm")[-1] for t in others)  # localizer and sagittal: no level
    sop = next(s for s, lv in sp.truth.items() if lv == "L4-L5")
    image = w.worklist.slice_item(rows[sop][0]).data(0, ROLE)[1]
    w.session.go_to(image)
    qtbot.waitUntil(lambda: w.session.current.id == image.id and not w.busy, timeout=10000)
    assert "Level L4-L5" in w.view.corner["top_left"].text()
    w.close()


def test_an_admin_sets_the_level_of_chosen_slices(qtbot, window, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    w = window(sp.admin)
    rows = listed(w)
    chosen = [rows[sop][0] for sop, lv in sp.truth.items() if lv == "L5-S1"][:2]
    w.worklist.tree.clearSelection()  # the open slice is selected; choose two others
    for image_id in chosen:
        w.worklist.slice_item(image_id).setSelected(True)
    assert sorted(w.worklist.selected_image_ids()) == sorted(chosen)
    menu = w.worklist.context_menu()
    assert [a.isEnabled() for a in menu.actions()] == [True] and "2 slices" in menu.actions()[0].text()
    menu.close()
    with qtbot.waitSignal(w.worklistLoaded, timeout=10000):
        w.study_menu.set_level(chosen, VertebralLevel.L3_L4)
    rows = listed(w)
    texts = {i: t for i, t in rows.values()}
    assert all(texts[i].endswith("  L3-L4") for i in chosen)
    entry = audit.entries(sp.db, entity="images")[-1]
    assert (entry.action, entry.rater_id, entry.after) == ("image.level", sp.admin.id, {"level": "L3-L4"})
    assert set(entry.before["levels"]) == {str(i) for i in chosen}
    w.close()


def test_an_annotator_may_not_set_levels(qtbot, window, sp: StudyProject, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    shown: list[Exception] = []
    monkeypatch.setattr("annotator.gui.errors.show_error", lambda _w, exc: shown.append(exc))
    w = window(sp.ann)
    image_id, _text = next(iter(listed(w).values()))
    w.worklist.slice_item(image_id).setSelected(True)
    menu = w.worklist.context_menu()
    assert [a.isEnabled() for a in menu.actions()] == [False]  # the policy: admins only
    menu.close()
    w.study_menu.set_level([image_id], VertebralLevel.L1_L2)  # the service refuses whatever the GUI offers
    qtbot.waitUntil(lambda: bool(shown), timeout=10000)
    assert isinstance(shown[0], PermissionDenied)
    assert not [e for e in audit.entries(sp.db, entity="images") if e.action == "image.level" and e.rater_id]
    w.close()


def test_a_reader_opens_her_study_from_the_menu(qtbot, window, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    w = window(sp.ann)
    menu = w.study_menu
    assert menu.read_action.isEnabled() and not menu.dashboard_action.isEnabled()
    menu.read_action.trigger()
    qtbot.waitUntil(lambda: menu.picker is not None and menu.picker.isVisible(), timeout=10000)
    assert [menu.picker.list.item(i).text() for i in range(menu.picker.list.count())] == [f"{STUDY}   (0 of 8 read)"]
    menu.picker.accept()
    reading = menu.reading
    assert reading is not None
    qtbot.waitUntil(lambda: reading.presenter.showing, timeout=10000)
    assert reading.progress.text() == "1 of 8" and reading.presenter.view.item.calibration
    w.close()  # closes the reading window with it
    assert reading.presenter.closed


def test_the_dashboard_entry_is_for_reviewers(qtbot, window, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    w = window(sp.rev)
    assert w.study_menu.dashboard_action.isEnabled()
    d = w.study_menu.show_dashboard()
    qtbot.waitUntil(lambda: d.table.rowCount() == 2, timeout=10000)
    w.close()
