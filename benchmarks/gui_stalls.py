"""The longest GUI-thread stall while the app does its slow jobs, measured offscreen on the demo project.

    python benchmarks/gui_stalls.py [--folder DIR] [--patients 542] [--boot 2000] [--decisions 20]
                                    [--steps 30] [--slices 200] [--weights-mb 100] [--json out.json]

A heartbeat QTimer (every 5 ms) runs on the GUI thread's event loop; the gap between two beats is how
long the event loop could not answer (a user's click or a repaint would have waited as long). Phases:

- ``startup`` (building the window; not held to the target) and ``idle`` (the window doing nothing for
  ``--idle-s`` seconds: the baseline of what the machine's other load costs);
- ``agreement``: open the agreement screen, compute expert1 × expert2 × the model with ``--boot``
  patient-bootstrap resamples, show the first pair's confusion matrix;
- ``activate``: activate a model through the training panel's Activate (it hashes the weights and
  stores the switch in a BackgroundOp, then the workstation refreshes);
- ``review``: open the review window (the queue of the demo's disagreements) and decide ``--decisions``
  slices (accept expert1's label once the slice is on screen);
- ``review-nav``: move through that queue ``--steps`` times, by turns a mouse click on a row a few rows
  down and j/k steps (the J and K keys' handlers), each until the slice's decisions and pixels are shown;
- ``browse``: move through ``--slices`` slices of the worklist in the workstation, each until painted.

Per phase it prints the longest gap, the 99th percentile, how many gaps exceeded 50 ms (the target:
none) and how long the phase took. The demo (``annotator demo``'s phantom with two simulated experts)
is built once in ``--folder`` and reused. The model is registered without training: its predictions
are expert1's labels moved by a few pixels with some grades changed (seeded), and its weights file is
``--weights-mb`` of seeded random bytes, so that activation hashes a file of a realistic size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

HEARTBEAT_MS = 5
STALL_MS = 50.0


def storage_of(path: Path) -> str:
    """'disk (ext4)' or 'memory (tmpfs)': the file system holding ``path``, from /proc/mounts."""
    best, fstype = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown file system"
    real = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and real.startswith(parts[1]) and len(parts[1]) > len(best):
            best, fstype = parts[1], parts[2]
    kind = "memory" if fstype in {"tmpfs", "ramfs"} else "disk"
    return f"{kind} ({fstype} at {best})"


def build_demo(folder: Path, patients: int, weights: Path, sha: str):  # type: ignore[no-untyped-def]
    """The demo project (reused when already built), its reviewer, two models sharing one weights file."""
    from annotator.domain.entities import Prediction
    from annotator.services import project
    from annotator.services.demo import build_demo as demo
    from annotator.storage import catalog, labels, models_repo, people

    folder.mkdir(parents=True, exist_ok=True)
    db = project.open_project(f"sqlite:///{folder / 'demo.db'}")
    summary = demo(db, folder / "dicom", patients=patients, seed=0, if_missing=True)
    models = models_repo.list_versions(db)
    if len(models) < 2:
        expert = people.rater_by_name(db, "expert1")
        mine = {lab.image_id: lab for lab in labels.current(db, rater_ids=[expert.id])}
        rng = np.random.default_rng(7)
        for k in range(2 - len(models)):
            m = models_repo.register(db, name=f"simulated-{k + 1}", preset="fast", target="rater:expert1",
                                     kind="train", weights_path=str(weights), weights_sha256=sha, card={})
            preds = []
            for im in catalog.images(db):
                lab = mine.get(im.id)
                if lab is None or lab.grade is None or lab.x_px is None or lab.y_px is None:
                    continue
                grade = int(lab.grade if rng.random() > 0.2 else min(3, max(0, lab.grade + rng.choice((-1, 1)))))
                probs = np.full(4, 0.05)
                probs[grade] = 0.85
                preds.append(Prediction(m.id, im.id, float(lab.x_px + rng.normal(0, 2)),
                                        float(lab.y_px + rng.normal(0, 2)), grade, tuple(float(p) for p in probs)))
            models_repo.write_predictions(db, m.id, preds)
        models = models_repo.list_versions(db)
    return db, summary, models


def write_weights(folder: Path, megabytes: int) -> tuple[Path, str]:
    """Seeded random bytes: the same file (and hash) every run."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"weights-{megabytes}mb.bin"
    rng = np.random.default_rng(11)
    with open(path, "wb") as fh:
        for _ in range(megabytes):
            fh.write(rng.bytes(1024 * 1024))
    with open(path, "rb") as fh:
        return path, hashlib.file_digest(fh, "sha256").hexdigest()


class Heartbeat:
    """Gaps between beats of a 5 ms timer on the GUI thread, filed under the current phase."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.gaps: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}  # the GUI thread's own CPU time within each gap
        self.phase = "setup"
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self._beat)

    def _beat(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.gaps.setdefault(self.phase, []).append((now - self._last) * 1000.0)
        self.cpu.setdefault(self.phase, []).append((cpu - self._last_cpu) * 1000.0)
        self._last, self._last_cpu = now, cpu
        _BEATS[0] += 1

    def start(self, phase: str) -> None:
        self.phase = phase
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        if not self.timer.isActive():
            self.timer.start()


class StallTracer:
    """A watchdog thread: while the heartbeat is late, sample where the GUI thread is (for --trace)."""

    def __init__(self, beat: Heartbeat) -> None:
        import collections
        import threading

        self.beat = beat
        self.samples: collections.Counter[str] = collections.Counter()
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import threading
        import traceback

        while not self._stop.wait(0.01):
            if (time.perf_counter() - self.beat._last) * 1000 < 30:
                continue
            for ident, frame in sys._current_frames().items():  # noqa: SLF001 (diagnostics)
                if ident == threading.get_ident():
                    continue
                stack = traceback.extract_stack(frame)
                ours = [f for f in stack if "annotator" in f.filename and "gui_stalls" not in f.filename][-3:]
                if ident != self._main and not ours:
                    continue  # an idle worker
                where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(ours))
                who = "GUI" if ident == self._main else "worker"
                self.samples[f"[{self.beat.phase}] {who}: {stack[-1].name} @ "
                             f"{where or Path(stack[-1].filename).name}"] += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


_BEATS = [0]  # heartbeats so far: wait_until lets at least one pass, so the event loop always runs (paints)


def wait_until(cond: Callable[[], bool], timeout_s: float = 120.0) -> None:
    """Run the event loop (idle between polls) until ``cond()`` holds and a heartbeat has passed: like a
    user, the benchmark acts again only once the screen has answered the previous action."""
    from PySide6.QtCore import QEventLoop, QTimer

    start = _BEATS[0]
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(2)
    end = time.perf_counter() + timeout_s
    met: list[bool] = []

    def check() -> None:
        if cond() and _BEATS[0] > start:
            met.append(True)
            loop.quit()
        elif time.perf_counter() > end:
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()
    # judged when it held, not again after exec() returns: the events exec() still runs after quit() may
    # already have started the next job (a live update's re-read makes the review screen busy again)
    if not met:
        raise RuntimeError(f"timed out after {timeout_s:g} s waiting for the GUI")


def summarise(gaps: list[float], cpu: list[float], seconds: float) -> dict[str, float]:
    """Gap statistics; ``busy_in_stalls``: the share of the stalls' time the GUI thread itself spent on the
    CPU (the rest it waited: for the GIL, or for a core the machine's other processes held)."""
    a = np.asarray(gaps) if gaps else np.zeros(1)
    c = np.asarray(cpu) if cpu else np.zeros(1)
    over = a > STALL_MS
    return {"max_ms": float(a.max()), "p99_ms": float(np.percentile(a, 99)), "over_50ms": int(over.sum()),
            "beats": len(gaps), "seconds": seconds,
            "busy_in_stalls": float(c[over].sum() / a[over].sum()) if over.any() else 0.0,
            "max_cpu_ms": float(c.max())}


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 (one scenario, read top to bottom)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "annotator-gui-stalls")
    ap.add_argument("--patients", type=int, default=542)
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--decisions", type=int, default=20)
    ap.add_argument("--steps", type=int, default=30, help="row clicks and j/k steps in the review queue")
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--weights-mb", type=int, default=100)
    ap.add_argument("--idle-s", type=float, default=3.0, help="seconds of the idle baseline phase")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--trace", action="store_true", help="print where the GUI thread was during stalls")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    weights, sha = write_weights(args.folder, args.weights_mb)
    db, summary, models = build_demo(args.folder, args.patients, weights, sha)
    from annotator.storage import models_repo, people

    if any(m.weights_sha256 != sha or m.weights_path != str(weights) for m in models):
        raise SystemExit(f"{args.folder} holds models with other weights: use another --folder or the same "
                         "--weights-mb")
    models_repo.activate(db, models[0].id)
    db.close()
    import shutil

    from annotator.services import project

    db_path = args.folder / "run.db"  # a fresh copy each run: the demo itself keeps its ~450-slice queue
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(args.folder / "demo.db", db_path)
    db = project.open_project(f"sqlite:///{db_path}")
    build_s = time.perf_counter() - t0
    print(f"database: {db_path} on {storage_of(db_path)}")
    print(f"demo: {summary.patients} patients, {summary.slices} slices, raters {sorted(summary.labels)}"
          f"{' (reused)' if summary.reused else ''}; built in {build_s:.1f} s")
    print(f"model: {len(models)} versions registered WITHOUT training (predictions simulated from expert1's "
          f"labels, seeded); weights file {args.weights_mb} MiB of random bytes")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    _app = QApplication.instance() or QApplication(sys.argv[:1])
    from annotator.gui.background import freeze_long_lived, keep_gui_thread_responsive

    keep_gui_thread_responsive()  # as run_app does
    from annotator.gui.main_window import MainWindow
    from annotator.services.worklist import WorklistFilter

    reviewer = people.rater_by_name(db, "reviewer")
    beat = Heartbeat()
    load_before = os.getloadavg()[0]
    tracer = StallTracer(beat) if args.trace else None
    results: dict[str, dict[str, float]] = {}

    def phase(name: str, run: Callable[[], None]) -> None:
        beat.start(name)
        start = time.perf_counter()
        run()
        wait_until(lambda: True)
        results[name] = summarise(beat.gaps.get(name, []), beat.cpu.get(name, []), time.perf_counter() - start)
        beat.start("between")

    settings = QSettings(str(args.folder / "user.ini"), QSettings.Format.IniFormat)
    settings.clear()
    w: MainWindow | None = None

    def open_window() -> None:
        nonlocal w
        w = MainWindow(db, reviewer, settings)
        w.resize(1600, 1000)
        w.show()
        wait_until(lambda: w is not None and w.session.showing_current and not w.busy)

    beat.start("startup")
    phase("startup", open_window)
    freeze_long_lived()  # as the app does once its window is shown
    assert w is not None
    win = w

    def idle() -> None:  # the baseline: the window doing nothing (what the machine's load alone costs)
        end = time.perf_counter() + args.idle_s
        wait_until(lambda: time.perf_counter() > end)

    phase("idle", idle)

    # ---- agreement: 2 raters and the model, 2,000 resamples
    def agreement() -> None:
        panel = win.show_agreement()
        panel.set_selected_readers(["rater:expert1", "rater:expert2", f"model:{models[0].id}"])
        panel.boot.setValue(args.boot)
        shown = time.perf_counter()
        # the user sees the screen, then presses Compute (200 ms: a quick reaction), the event loop running
        wait_until(lambda: panel.isVisible() and time.perf_counter() - shown > 0.2)
        done: list[bool] = []
        panel.computed.connect(lambda: done.append(True))
        panel.compute()
        wait_until(lambda: bool(done), 600)
        if panel.report is None:
            raise RuntimeError(panel.status.text())
        panel.select_pair(0)

    phase("agreement", agreement)

    # ---- activate the other model through the training panel (built before the phase, as a user opens
    # it before pressing Activate): it hashes the weights in a BackgroundOp, then the workstation refreshes
    training = win.show_training()
    wait_until(lambda: not win.busy)

    def activate() -> None:
        target = models[1].id
        done: list[int] = []
        training.modelActivated.connect(done.append)
        if not training.activate(target):
            raise RuntimeError(training.status.text())
        wait_until(lambda: bool(done) or "Cannot activate" in training.status.text())
        wait_until(lambda: not win.busy)
        if not done:
            raise RuntimeError(training.status.text())

    phase("activate", activate)

    # ---- review: 20 decisions in the queue
    queue_size: list[int] = []

    def review() -> None:
        panel = win.show_review()
        assert panel is not None
        p = panel.presenter
        wait_until(lambda: not p.busy and (p.current is None or panel.showing == p.current.image_id))
        queue_size.append(len(p.rows))
        stored: list[object] = []
        p.adjudicated.connect(stored.append)
        for k in range(args.decisions):
            if p.current is None:
                break
            before = p.current.image_id
            panel.accept("rater:expert1")
            wait_until(lambda k=k: len(stored) > k and not p.busy)
            wait_until(lambda: p.current is None or panel.showing == p.current.image_id)
            assert p.current is None or p.current.image_id != before

    phase("review", review)
    panel = win.review_window
    assert panel is not None
    p = panel.presenter
    navigated: list[str] = []

    def shown(image_id: int) -> bool:
        return (p.current is not None and p.current.image_id == image_id and not p.loading_details
                and panel.showing == image_id)

    def review_nav() -> None:
        from PySide6.QtCore import QPoint, Qt
        from PySide6.QtTest import QTest

        for k in range(args.steps):
            ids = p.queue_image_ids()
            i = ids.index(p.current.image_id) if p.current is not None and p.current.image_id in ids else 0
            if k % 3 == 0:  # a click on a row three below (or the top, near the end of the queue)
                row = i + 3 if i + 3 < len(ids) else 0
                index = panel.queue.queue_model.index(row, 0)
                panel.queue.scrollTo(index)
                centre = panel.queue.visualRect(index).center()
                QTest.mouseClick(panel.queue.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                                 QPoint(centre.x(), centre.y()))
                target, how = ids[row], "click"
            elif k % 3 == 1:
                panel.next_item()  # J
                target, how = ids[min(i + 1, len(ids) - 1)], "j"
            else:
                panel.previous_item()  # K
                target, how = ids[max(i - 1, 0)], "k"
            wait_until(lambda target=target: shown(target))
            navigated.append(how)
        panel.close()

    phase("review-nav", review_nav)

    # ---- browse: 200 slices in worklist order, each until its pixels are shown
    wl = win.session.worklist.load(WorklistFilter.ALL)
    order = [sl.image for st in wl.studies for se in st.series for sl in se.slices][:args.slices]

    def browse() -> None:
        for image in order:
            win.session.go_to(image)
            wait_until(lambda image=image: win.session.current == image and win.session.showing_current)

    phase("browse", browse)
    win.close()
    from annotator.gui import background

    background.wait_idle()

    if tracer is not None:
        tracer.stop()
        print("threads during stalls (10 ms samples; the GUI thread and busy workers):")
        for where, n in tracer.samples.most_common(40):
            print(f"  {n:4d}  {where}")
    print(f"heartbeat every {HEARTBEAT_MS} ms; a stall is the gap between two beats; target: none over "
          f"{STALL_MS:.0f} ms")
    print(f"review queue: {queue_size[0] if queue_size else 0} slices to decide; decided {args.decisions}; then "
          f"{len(navigated)} moves ({navigated.count('click')} row clicks, {navigated.count('j')} j, "
          f"{navigated.count('k')} k), each until the slice's decisions and pixels were shown")
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          "cores")
    print(f"{'phase':<10} {'max ms':>8} {'p99 ms':>8} {'> 50 ms':>8} {'beats':>7} {'seconds':>8} "
          f"{'max CPU ms':>10} {'CPU share of stalls':>20}")
    worst = 0.0
    for name, r in results.items():
        print(f"{name:<10} {r['max_ms']:8.1f} {r['p99_ms']:8.1f} {r['over_50ms']:8d} {r['beats']:7d} "
              f"{r['seconds']:8.1f} {r['max_cpu_ms']:10.1f} {100 * r['busy_in_stalls']:19.0f}%")
        if name not in {"startup", "idle"}:
            worst = max(worst, r["max_ms"])
    print(f"longest stall after startup: {worst:.1f} ms ({'meets' if worst <= STALL_MS else 'misses'} the target)")
    if args.json:
        args.json.write_text(json.dumps({"database": str(db_path), "storage": storage_of(db_path),
                                         "phases": results, "queue": queue_size}, indent=2))
    db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
