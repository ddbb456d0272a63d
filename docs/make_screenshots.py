"""Make docs/screenshot-annotate.png reproducibly: the workstation on the demo phantom project.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py   # real X server
    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py                  # no display at all

Builds the demo project (synthetic L4-5 phantom, two simulated experts) in a temporary folder, signs
in as the demo's reviewer (who sees every reader), opens a moderately stenotic slice, places the
canal centre where the reviewer would, grades it, zooms in a little on the canal and points the
cursor at it, then grabs the window.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "screenshot-annotate.png"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--patients", type=int, default=8)
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
    w.close()
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
