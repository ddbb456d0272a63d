"""Make the README's screenshots reproducibly from the demo phantom project.

docs/screenshot-annotate.png (the workstation), docs/screenshot-training.png (a real training run in the
training panel: loss curve, model table) and docs/screenshot-review.png (the review screen with the
model just trained).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py   # real X server
    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py                  # no display at all

Builds the demo project (synthetic L4-5 phantom, two simulated experts) in a temporary folder, signs
in as the demo's reviewer (who sees every reader), opens a moderately stenotic slice, places the
canal centre where the reviewer would, grades it, zooms in a little on the canal and points the
cursor at it, then grabs the window. It then trains the fast preset on expert 1's labels through the
training panel (a real child process), waits for it to predict and activate, cross-validates
(the preset's epochs, the project's folds), grabs the panel,
and opens the review screen on the most severe disagreement with the model included.

docs/screenshot-export.png is File > Export… after writing a de-identified DICOM SR bundle of the two
experts' labels. docs/screenshot-study.png is the study dashboard of the demo's "L4-L5 axial" study (read by the
simulated experts) as the reviewer sees it, kappa against expert1; docs/screenshot-reading.png is the
reading window just after the reviewer committed a calibration read of a small study made for her.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "screenshot-annotate.png"
TRAINING_OUT = DOCS / "screenshot-training.png"
REVIEW_OUT = DOCS / "screenshot-review.png"
STUDY_OUT = DOCS / "screenshot-study.png"
READING_OUT = DOCS / "screenshot-reading.png"
EXPORT_OUT = DOCS / "screenshot-export.png"


def _spin(app, until, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    """Process events until ``until()`` or the timeout."""
    import time

    end = time.monotonic() + timeout_s
    while not until() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def shoot_training(app, w, out: Path) -> None:  # type: ignore[no-untyped-def]
    """Train on expert 1 through Review > Training and model versions…; grab when it is active."""
    panel = w.show_training()
    w.training_dock.setFloating(True)  # its own window, wide enough for the curve and the model table
    w.training_dock.resize(1400, 900)
    _spin(app, lambda: panel.target_combo.findData("rater:expert1") >= 0, 60)  # targets load in the background
    panel.set_target("rater:expert1")
    outcome: list[str] = []
    panel.runFinished.connect(outcome.append)
    panel.start_button.click()
    _spin(app, lambda: bool(outcome), 900)
    if outcome != ["done"]:
        raise SystemExit(f"training through the panel ended {outcome or 'in a timeout'}: {panel.status.text()}")
    # then a cross-validation, so the table shows held-out metrics and the curve a validation accuracy
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("cv"))
    panel.epochs_spin.setValue(0)  # the preset default
    panel.jobs_spin.setValue(2)  # two folds at once, each its own curve
    panel.start_button.click()
    _spin(app, lambda: len(outcome) == 2, 900)
    if outcome != ["done", "done"]:
        raise SystemExit(f"cross-validation through the panel ended {outcome[1:] or 'in a timeout'}")
    _spin(app, lambda: False, 1.0)
    w.training_dock.grab().save(str(out))
    print(f"wrote {out} (models {panel.model_ids()}: trained, predicted, active; then cross-validated)")


def shoot_export(app, w, folder: Path, out: Path) -> None:  # type: ignore[no-untyped-def]
    """File > Export…: a de-identified DICOM SR bundle of both experts' labels, grabbed when written."""
    from PySide6.QtCore import Qt

    menu = w.interchange
    menu.open_export()
    _spin(app, lambda: menu.export_dialog is not None, 60)  # the choices load in the background
    d = menu.export_dialog
    d.format.setCurrentIndex(d.format.findData("sr"))
    for i in range(d.readers.count()):
        item = d.readers.item(i)
        item.setCheckState(Qt.CheckState.Checked if item.text() in ("rater:expert1", "rater:expert2")
                           else Qt.CheckState.Unchecked)
    d.deidentify.setChecked(True)
    d.out.setText(str(folder / "expert-reads-sr"))
    done: list[object] = []
    d.exported.connect(done.append)
    d.start()
    _spin(app, lambda: bool(done) or not d.running, 600)
    if not done:
        raise SystemExit(f"the export ended without a bundle: {d.status.text()}")
    _spin(app, lambda: False, 0.5)
    d.grab().save(str(out))
    print(f"wrote {out} (a de-identified SR bundle in {folder / 'expert-reads-sr'})")
    d.close()


def shoot_review(app, w, out: Path) -> None:  # type: ignore[no-untyped-def]
    """The review screen on the most severe open slice, with the reviewer's own point and grade set."""
    panel = w.show_review()
    panel.include_model.setChecked(True)
    panel.resize(1600, 1000)
    _spin(app, lambda: panel.current is None or panel.showing == panel.current.image_id, 10)
    item = panel.current
    if item is not None:
        pts = [(m.x_px, m.y_px) for k, m in item.marks.items() if k.startswith("rater:") and m.x_px is not None]
        if pts:
            x, y = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
            panel.set_point(x, y)
            panel.view.zoom(2.2)  # towards the canal, as a reviewer would look at it
            g = panel.view.image_item.image.shape
            panel.view.view_box.translateBy(x=(x - g[1] / 2) * 0.7, y=(y - g[0] / 2) * 0.7)
        panel.choose_grade(max(m.grade for m in item.marks.values() if m.grade is not None))
    _spin(app, lambda: False, 0.5)
    panel.grab().save(str(out))
    print(f"wrote {out} (queue of {len(panel.items)}, slice {item.image_id if item else None})")


def shoot_study(app, w, out: Path) -> None:  # type: ignore[no-untyped-def]
    """Study > Study dashboard…, the demo's study, kappa against expert1."""
    from annotator.services.studies import SEED_STUDY_NAME

    d = w.study_menu.show_dashboard()
    d.resize(1400, 860)
    loads: list[object] = []
    d.loaded.connect(loads.append)
    _spin(app, lambda: d.study == SEED_STUDY_NAME and bool(loads), 120)
    d.reference_box.setCurrentIndex(d.reference_box.findData("expert1"))
    _spin(app, lambda: len(loads) == 2, 120)
    _spin(app, lambda: False, 0.5)
    d.grab().save(str(out))
    print(f"wrote {out} ({len(d.rows)} readers of {d.study})")
    d.close()


def shoot_reading(app, w, db, admin, out: Path) -> None:  # type: ignore[no-untyped-def]
    """A small study read by the reviewer, with two calibration slices against expert1: her first
    calibration read committed, the reference and the differences on screen."""
    from annotator.domain.studies import Calibration, StudyDefinition
    from annotator.services.studies import create_study, seed_study_definition

    rule = seed_study_definition(("reviewer",)).rule
    create_study(db, admin, StudyDefinition("Reading demo", rule, ("reviewer",), seed=1, repeat_fraction=0.1,
                                            washout=5, calibration=Calibration("rater:expert1", count=2)))
    r = w.study_menu.open_reading("Reading demo")
    r.resize(1100, 940)
    p = r.presenter
    _spin(app, lambda: p.showing, 30)
    g = p.view.image.geometry
    p.place_point(g.columns / 2 + 6, g.rows / 2 + 30)
    r.presenter.set_grade(1)
    r.commit()
    _spin(app, lambda: p.feedback is not None, 30)
    _spin(app, lambda: False, 0.5)
    r.grab().save(str(out))
    print(f"wrote {out} ({p.feedback.text.splitlines()[0] if p.feedback else 'no feedback'})")
    r.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--patients", type=int, default=40, help="demo size (40 = `make run`'s demo)")
    ap.add_argument("--training-out", type=Path, default=TRAINING_OUT)
    ap.add_argument("--review-out", type=Path, default=REVIEW_OUT)
    ap.add_argument("--study-out", type=Path, default=STUDY_OUT)
    ap.add_argument("--reading-out", type=Path, default=READING_OUT)
    ap.add_argument("--export-out", type=Path, default=EXPORT_OUT)
    ap.add_argument("--only-annotate", action="store_true", help="skip the training and review pictures")
    ap.add_argument("--only-export", action="store_true", help="only the workstation and export pictures")
    ap.add_argument("--only-study", action="store_true", help="only the dashboard and reading pictures")
    args = ap.parse_args(argv)

    from PySide6.QtCore import QEvent, QPointF, QSettings, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from annotator.gui.main_window import MainWindow
    from annotator.gui.theme import apply_dark_theme
    from annotator.services import project
    from annotator.services.demo import REVIEWER, build_demo
    from annotator.services.labelling import LabelService
    from annotator.services.worklist import human_raters

    apply_dark_theme(app)
    tmp = Path(tempfile.mkdtemp(prefix="annotator-shot-"))
    db = project.open_project(f"sqlite:///{tmp / 'demo.db'}")
    build_demo(db, tmp / "dicom", patients=args.patients, seed=0)
    reviewer = next(r for r in human_raters(db) if r.name == REVIEWER)
    raters = {r.name: r for r in project.list_raters(db)}

    # a slice both experts graded 2 (moderate), labelled by the reviewer at the experts' mean point
    e1, e2 = LabelService(db, raters["expert1"]), LabelService(db, raters["expert2"])
    first = {lab.image_id: lab for lab in e1.my_labels()}
    both = [(first[lab.image_id], lab) for lab in e2.my_labels() if lab.image_id in first]
    a, b = next(((x, y) for x, y in both if x.grade == 2 and y.grade == 2), both[0])
    mine = LabelService(db, reviewer)

    settings = QSettings(str(tmp / "user.ini"), QSettings.Format.IniFormat)
    w = MainWindow(db, reviewer, settings, open_first=False)
    w.resize(1600, 1000)
    w.show()
    s = w.session
    image = next(im for st in s.worklist.load().studies for se in st.series for im in
                 (sl.image for sl in se.slices) if im.id == a.image_id)
    s.go_to(image)
    while not s.showing_current:
        app.processEvents()
    x, y = (a.x_px + b.x_px) / 2 + 0.6, (a.y_px + b.y_px) / 2 - 0.4
    s.place_point(x, y)
    s.set_grade(2)
    del mine
    for _ in range(20):
        app.processEvents()
    # zoom towards the canal, keeping most of the slice in view
    w.view.zoom(1.45)
    cx, cy = image.geometry.columns / 2, image.geometry.rows / 2
    w.view.view_box.translateBy(x=(x - cx) * 0.45, y=(y - cy) * 0.45)
    for _ in range(20):
        app.processEvents()
    vp = w.view.graphics_view.viewport()
    pos = w.view.graphics_view.mapFromScene(w.view.pixel_to_scene(x + 3, y + 2))
    app.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), QPointF(vp.mapToGlobal(pos)),
                                  Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
    for _ in range(20):
        app.processEvents()
    w.grab().save(str(args.out))
    print(f"wrote {args.out} ({QApplication.platformName()}, slice id {image.id}, "
          f"experts graded {a.grade} and {b.grade})")
    shoot_export(app, w, tmp, args.export_out)
    if args.only_export:
        w.close()
        db.close()
        return 0
    shoot_study(app, w, args.study_out)
    shoot_reading(app, w, db, raters["admin"], args.reading_out)
    if args.only_study:
        w.close()
        db.close()
        return 0
    if not args.only_annotate:
        shoot_training(app, w, args.training_out)
        shoot_review(app, w, args.review_out)
    w.close()
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
