"""Workstation latency, measured offscreen on a phantom project of 512 x 512 slices.

    python benchmarks/gui_latency.py [--matrix 512] [--patients 6] [--repeats 150] [--json out.json]

Prints p50 / p95 in milliseconds of:
- slice switch, slice cached: from the keypress-equivalent ``step`` until both views have painted
  the new slice in the event loop (target p95 <= 16 ms at 512 x 512);
- slice switch, slice not cached: cache emptied and background work drained first, so the decode
  runs on a worker thread while the GUI waits (target p95 <= 100 ms);
- grade key press -> label row committed: a real key event through the window's QAction, timed to
  the return of its handler (the commit, the audit entry and the on-screen update are inside);
  the service call alone is reported beside it (target p95 <= 30 ms).
The project database is a SQLite file with the app's settings (WAL, synchronous=FULL) on local disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import where  # noqa: E402  (benchmarks/where.py, beside this script)

TARGETS_MS = {"switch_cached": 16.0, "switch_uncached": 100.0, "grade_key_to_commit": 30.0}


def _pct(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000.0
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}


def PaintCounter(widgets):  # type: ignore[no-untyped-def]  # noqa: N802 (a factory of a QObject)
    """Counts paint events of some widgets (an event filter), so timings end when pixels are drawn."""
    from PySide6.QtCore import QEvent, QObject

    class _PaintCounter(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.counts = {id(wd): 0 for wd in widgets}
            for wd in widgets:
                wd.installEventFilter(self)

        def eventFilter(self, obj, ev):  # type: ignore[no-untyped-def]  # noqa: N802
            if ev.type() == QEvent.Type.Paint and id(obj) in self.counts:
                self.counts[id(obj)] += 1
            return False

        def reset(self) -> None:
            for k in self.counts:
                self.counts[k] = 0

        def all_painted(self) -> bool:
            return all(v > 0 for v in self.counts.values())

    return _PaintCounter()


def build_project(folder: Path, matrix: int, patients: int):  # type: ignore[no-untyped-def]
    from annotator.domain.entities import Role
    from annotator.imaging.phantom_dicom import generate_dataset
    from annotator.services import project
    from annotator.services.importing import import_paths

    generate_dataset(folder / "dicom", patients, seed=7, matrix=matrix, compressed_fraction=0.0)
    db = project.open_project(f"sqlite:///{folder / 'bench.db'}")
    import_paths(db, [folder / "dicom"])
    rater = project.add_rater(db, "bench", Role.ANNOTATOR)
    return db, rater


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=150)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from PySide6.QtCore import QCoreApplication, QSettings, Qt, QThreadPool
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from annotator.gui.main_window import MainWindow
    from annotator.services.labelling import LabelService

    tmp = Path(tempfile.mkdtemp(prefix="annotator-bench-"))
    db, rater = build_project(tmp, args.matrix, args.patients)
    settings = QSettings(str(tmp / "user.ini"), QSettings.Format.IniFormat)
    w = MainWindow(db, rater, settings, open_first=False)
    w.resize(1600, 1000)
    w.compare.setVisible(True)  # measure the heavier case: both views (a blinded annotator hides the second)
    w.show()
    s = w.session
    series = s.worklist.load().studies[0].series[0]
    s.open_series(series.series.id)
    pool = QThreadPool.globalInstance()

    paints = PaintCounter([w.view.graphics_view.viewport(), w.compare.view.graphics_view.viewport()])

    s.pixelsShown.connect(lambda _decoded: paints.reset())  # paints from here on show the new pixels

    def settle(deadline_s: float = 10.0) -> None:
        """Run the event loop until the new slice is current and both views have painted it."""
        paints.reset()
        end = time.perf_counter() + deadline_s
        while not (s.showing_current and paints.all_painted()):
            app.processEvents()
            if time.perf_counter() > end:
                raise RuntimeError("the slice was not painted within the deadline")

    def repaint() -> None:  # nothing more to do: settle() waited for the real paints
        pass

    settle()
    n = len(s.images)
    direction = 1

    def step() -> None:
        nonlocal direction
        if not 0 <= s.index + direction < n:
            direction = -direction
        s.step(direction)

    # ---- cached: every slice of the series decoded first
    s.loader.prefetch(s.images)
    pool.waitForDone()
    app.processEvents()
    cached: list[float] = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        settle()
        repaint()
        cached.append(time.perf_counter() - t0)

    # ---- uncached: empty cache, nothing in flight, then switch
    uncached: list[float] = []
    for _ in range(max(args.repeats // 3, 20)):
        pool.waitForDone()
        QCoreApplication.processEvents()
        s.loader.cache.clear()
        t0 = time.perf_counter()
        step()
        settle()
        repaint()
        uncached.append(time.perf_counter() - t0)
    pool.waitForDone()
    app.processEvents()

    # ---- grade key -> row committed
    labels = LabelService(db, rater)
    keys = [Qt.Key.Key_0, Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3]
    image_id = s.current.id  # type: ignore[union-attr]
    before = len(labels.history(image_id))
    grade_ui: list[float] = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        QTest.keyClick(w, keys[i % 4])
        grade_ui.append(time.perf_counter() - t0)
    committed = len(labels.history(image_id)) - before
    if committed != args.repeats:
        print(f"error: {committed} rows committed for {args.repeats} key presses", file=sys.stderr)
        return 1
    grade_service: list[float] = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        labels.set_grade(image_id, i % 4)
        grade_service.append(time.perf_counter() - t0)

    results = {
        "matrix": args.matrix, "slices_in_series": n, "platform": QApplication.platformName(),
        "switch_cached": _pct(cached), "switch_uncached": _pct(uncached),
        "grade_key_to_commit": _pct(grade_ui), "grade_service_only": _pct(grade_service),
    }
    w.close()
    db.close()
    print(f"annotator GUI latency ({args.matrix}x{args.matrix}, {n} slices in the series, "
          f"Qt platform {results['platform']}, SQLite synchronous=FULL)")
    print(where.describe(tmp / "bench.db"))
    print(f"{'measure':28} {'p50 ms':>8} {'p95 ms':>8} {'target p95':>11}  n")
    for key in ("switch_cached", "switch_uncached", "grade_key_to_commit", "grade_service_only"):
        r = results[key]
        target = TARGETS_MS.get(key)
        verdict = "" if target is None else ("  ok" if r["p95"] <= target else "  MISSED")
        print(f"{key:28} {r['p50']:8.2f} {r['p95']:8.2f} {target if target else '':>11} {r['n']:3d}{verdict}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
