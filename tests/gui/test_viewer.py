"""The viewer: window/level, scrolling, zoom, readouts in px and mm, scale bar, marker drag."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt

from annotator.gui import readout
from annotator.gui.scale_bar import nice_length, view_units_per_pixel
from annotator.services.labelling import LabelService
from annotator.services.viewing import Window
from tests.gui.helpers import click_pixel, drag, move_to, viewport_pos, wheel


def test_default_window_comes_from_dicom_and_right_drag_changes_it(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    assert w.session.window == Window(600.0, 1200.0)  # WindowCenter/WindowWidth of the files
    assert w.view.image_item.levels is not None and tuple(w.view.image_item.levels) == (0.0, 1200.0)
    start = QPoint(200, 200)
    drag(w.view, start, QPoint(260, 200), Qt.MouseButton.RightButton)  # right: wider
    wider = w.session.window
    assert wider.width > 1200 and wider.center == pytest.approx(600)
    drag(w.view, start, QPoint(200, 240), Qt.MouseButton.RightButton)  # down: higher level
    assert w.session.window.center > 600 and w.session.window.width == pytest.approx(wider.width)
    lo, hi = w.session.window.levels
    assert tuple(w.compare.view.image_item.levels) == pytest.approx((lo, hi))  # both views follow
    assert "W " in w.view.corner["top_right"].text()
    assert not LabelService(project.db, project.alice).history(w.session.current.id)  # W/L labels nothing


def test_presets_and_percentile_fallback(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    qtbot.keyClick(w, Qt.Key.Key_F6)  # full range
    d = w.session.decoded
    assert w.session.window.levels == pytest.approx((float(d.pixels.min()), float(d.pixels.max())))
    qtbot.keyClick(w, Qt.Key.Key_F2)
    assert w.session.window == Window(600.0, 1200.0)
    from annotator.services.viewing import window_presets

    no_dicom = d.image.__class__(**{**{f: getattr(d.image, f) for f in d.image.__slots__},
                                    "window_center": None, "window_width": None})
    default, source, presets = window_presets(no_dicom, d.pixels)
    assert source == "auto" and "DICOM" not in presets and default == presets["Auto 1–99 %"]


def test_wheel_and_arrow_keys_scroll_slices_keeping_zoom(open_window, project, qtbot) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    w.view.zoom(2.0)
    zoomed = [tuple(r) for r in w.view.view_box.viewRange()]
    wheel(w.view, -1)  # towards the user: next slice
    assert w.session.index == 1
    qtbot.waitUntil(lambda: w.session.showing_current)
    qtbot.keyClick(w, Qt.Key.Key_Down)
    assert w.session.index == 2
    qtbot.keyClick(w, Qt.Key.Key_Down)  # stays on the last slice
    assert w.session.index == 2
    qtbot.keyClick(w, Qt.Key.Key_Up)
    wheel(w.view, +1)
    assert w.session.index == 0
    qtbot.waitUntil(lambda: w.session.showing_current)
    assert [tuple(r) for r in w.view.view_box.viewRange()] == zoomed
    wheel(w.view, +1, Qt.KeyboardModifier.ControlModifier)  # Ctrl+wheel zooms, does not scroll
    assert w.session.index == 0 and [tuple(r) for r in w.view.view_box.viewRange()] != zoomed
    assert "Slice 1/3" in w.view.corner["top_left"].text() and "+0.0 mm" in w.view.corner["top_left"].text()


def test_readout_shows_value_px_and_mm(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    move_to(w.view, viewport_pos(w.view, 20, 10))
    text = w.view.corner["bottom_right"].text()
    # pixel [r, c] = 10 r + c on slice 0; spacing 0.5 mm between rows, 0.6 mm between columns
    assert text.startswith("px 20, 10") and "12.0, 5.0 mm" in text and "value 120" in text


def test_monochrome1_shows_low_values_white_and_reads_out_stored_values(qtbot, project, qsettings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from annotator.gui.main_window import MainWindow
    from annotator.services.importing import import_paths
    from tests.gui.conftest import write_mr_series

    def shown(w, r: int, c: int) -> int:  # type: ignore[no-untyped-def]
        item = w.view.image_item
        item.render()
        return item.qimage.pixelColor(c, r).red()

    write_mr_series(tmp_path / "m1", n=1, patient="P0002", photometric="MONOCHROME1")
    import_paths(project.db, [tmp_path / "m1"])
    w = MainWindow(project.db, project.alice, qsettings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.showing_current)
    assert not w.view.inverted and shown(w, 0, 0) == 0 and shown(w, 100, 50) > 200  # MONOCHROME2: 0 is black
    [image] = w.session.worklist.series_images(2)
    w.session.go_to(image)  # another series: read in the background, then shown
    qtbot.waitUntil(lambda: w.session.current == image and w.session.showing_current)
    assert w.view.inverted and w.compare.view.inverted
    assert shown(w, 0, 0) == 255 and shown(w, 100, 50) < 55  # the same values, MONOCHROME1: 0 is white
    assert tuple(w.view.image_item.levels) == (0.0, 1200.0)  # the window still applies to stored values
    move_to(w.view, viewport_pos(w.view, 20, 10))
    assert "value 120" in w.view.corner["bottom_right"].text()


def test_mm_unavailable_without_pixel_spacing(qtbot, project, qsettings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from annotator.gui.main_window import MainWindow
    from annotator.services.importing import import_paths
    from tests.gui.conftest import write_mr_series

    write_mr_series(tmp_path / "nospacing", n=1, spacing=None, patient="P0002")
    import_paths(project.db, [tmp_path / "nospacing"])
    w = MainWindow(project.db, project.alice, qsettings, open_first=False)
    qtbot.addWidget(w)
    w.show()
    [image] = [im for im in w.session.worklist.series_images(2)]
    w.session.go_to(image)
    qtbot.waitUntil(lambda: w.session.showing_current)
    assert w.view.scale_bar.text == "mm unavailable" and w.view.scale_bar.length_px == 0
    assert readout.cursor_readout(image, None, 3, 4) == "px 3, 4  ·  mm unavailable"
    assert w.view.view_box.state["aspectLocked"] == 1.0


def test_scale_bar_tracks_zoom(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    bar = w.view.scale_bar
    mm = float(bar.text.split()[0])
    px_per_mm = 1.0 / (view_units_per_pixel(w.view.view_box) * 0.6)  # column spacing 0.6 mm
    assert bar.length_px == pytest.approx(mm * px_per_mm, rel=1e-6)
    before = bar.length_px / mm
    w.view.zoom(3.0)
    assert bar.length_px / float(bar.text.split()[0]) == pytest.approx(3 * before, rel=0.02)
    assert nice_length(0.37) in (20.0, 50.0) and nice_length(0.01) == 1.0


def test_dragging_the_marker_moves_the_point(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    click_pixel(w.view, 40, 40)
    drag(w.view, viewport_pos(w.view, 40, 40), viewport_pos(w.view, 60, 50))
    hist = LabelService(project.db, project.alice).history(w.session.current.id)
    assert [h.action for h in hist] == ["point", "point"]
    assert (round(hist[-1].x_px), round(hist[-1].y_px)) == (60, 50)


def test_pixel_convention_matches_the_image_item(open_window, project) -> None:  # type: ignore[no-untyped-def]
    w = open_window(project.alice)
    v = w.view
    # ImageItem-local (c + 0.5, r + 0.5) is the centre of array element [r, c]
    for c, r in [(0, 0), (17, 99), (127, 127)]:
        assert v.scene_to_pixel(v.image_item.mapToScene(v.image_item.mapFromScene(v.pixel_to_scene(c, r)))) \
            == pytest.approx((c, r))
    rect = v.image_item.mapRectToParent(v.image_item.boundingRect())
    assert (rect.left(), rect.top(), rect.width(), rect.height()) == (-0.5, -0.5, 128, 128)


def test_another_series_opens_from_the_background_and_a_later_move_wins(open_window, project, qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from annotator.services.importing import import_paths
    from tests.gui.conftest import write_mr_series

    write_mr_series(tmp_path / "second", n=2, patient="P0002")
    import_paths(project.db, [tmp_path / "second"])
    w = open_window(project.alice)
    s = w.session
    first = s.current
    other = s.worklist.series_images(2)[1]
    s.go_to(other)
    assert s.busy and s.current == first  # read in the background; the slice on screen stays current
    qtbot.waitUntil(lambda: not s.busy and s.current == other and s.showing_current, timeout=5000)
    assert s.images == s.worklist.series_images(2) and s.overlays is not None

    s.go_to(first)  # the first series is read in the background...
    s.go_to(s.worklist.series_images(2)[0])  # ...while the rater moves within the series on screen
    s.step(+1)
    qtbot.waitUntil(lambda: not s.busy, timeout=5000)
    assert s.current == other  # the late answer for the first series was dropped: no jump back
