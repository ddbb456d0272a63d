"""BackgroundOp: work off the GUI thread, callbacks on it, errors to the one dialog, stale and orphaned
results dropped, progress only after half a second."""

from __future__ import annotations

import sys
import threading

import pytest
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow, QMessageBox, QWidget

from annotator.domain.errors import ConflictError
from annotator.gui import background
from annotator.gui.background import BackgroundOp


class _Sink(QObject):
    """Records callbacks and the thread they ran on; emits ``got`` so tests can wait for them."""

    got = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.results: list[object] = []
        self.failures: list[Exception] = []
        self.threads: list[int] = []

    def ok(self, value: object) -> None:
        self.threads.append(threading.get_ident())
        self.results.append(value)
        self.got.emit("ok")

    def fail(self, exc: Exception) -> None:
        self.threads.append(threading.get_ident())
        self.failures.append(exc)
        self.got.emit("fail")


@pytest.fixture
def parent(qtbot) -> QWidget:  # type: ignore[no-untyped-def]
    w = QWidget()
    qtbot.addWidget(w)
    w.show()
    return w


def _settled(qtbot) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: background.pending() == 0, timeout=5000)


def test_work_runs_on_a_worker_and_the_result_comes_back_on_the_gui_thread(qtbot, parent) -> None:  # type: ignore[no-untyped-def]
    sink = _Sink()
    work_thread: list[int] = []

    def work() -> int:
        work_thread.append(threading.get_ident())
        return 42

    with qtbot.waitSignal(sink.got):
        op = BackgroundOp(parent, work, sink.ok, sink.fail).run()
    assert sink.results == [42] and sink.failures == [] and op.outcome == "succeeded"
    gui = threading.get_ident()
    assert work_thread[0] != gui and sink.threads == [gui]
    assert not op.progress_shown  # quick work: no busy cursor at all


def test_a_failure_goes_to_on_failure_or_else_to_the_error_dialog(qtbot, parent) -> None:  # type: ignore[no-untyped-def]
    sink = _Sink()

    def boom() -> None:
        raise ConflictError("someone decided first")

    with qtbot.waitSignal(sink.got):
        BackgroundOp(parent, boom, sink.ok, sink.fail).run()
    assert sink.results == [] and [str(e) for e in sink.failures] == ["someone decided first"]
    assert sink.threads == [threading.get_ident()]

    op = BackgroundOp(parent, boom, sink.ok).run()  # no on_failure: the one error dialog, parented
    qtbot.waitUntil(lambda: op.outcome == "failed", timeout=5000)
    [box] = [b for b in parent.findChildren(QMessageBox) if b.objectName() == "annotator-error"]
    assert box.text() == "someone decided first" and sink.results == []
    box.close()


def test_an_older_op_with_the_same_key_is_dropped(qtbot, parent) -> None:  # type: ignore[no-untyped-def]
    sink = _Sink()
    release_old = threading.Event()

    def old() -> str:
        release_old.wait(5)
        return "old"

    settled: list[str] = []
    first = BackgroundOp(parent, old, sink.ok, sink.fail, key="queue", on_settled=lambda: settled.append("old")).run()
    with qtbot.waitSignal(sink.got):
        second = BackgroundOp(parent, lambda: "new", sink.ok, sink.fail, key="queue",
                              on_settled=lambda: settled.append("new")).run()
    other = BackgroundOp(parent, lambda: "other key", sink.ok, sink.fail, key="worklist").run()
    qtbot.waitUntil(lambda: other.outcome == "succeeded", timeout=5000)
    release_old.set()
    qtbot.waitUntil(lambda: first.outcome != "running", timeout=5000)
    assert first.outcome == "stale" and second.outcome == "succeeded"
    assert sink.results == ["new", "other key"]  # the old result never arrives...
    assert settled == ["new", "old"]  # ...but its caller learns that it is no longer in flight


def test_coalesced_ops_wait_for_the_running_one_and_the_newest_waiting_wins(qtbot, parent) -> None:  # type: ignore[no-untyped-def]
    """A stream of re-reads: while one runs, the next waits (the running one's answer still arrives), a
    later one replaces the waiting one (which settles unstarted), and the newest runs once the slot is free."""
    sink = _Sink()
    release = threading.Event()
    ran: list[str] = []
    settled: list[str] = []

    def work(name: str, wait: bool = False):  # type: ignore[no-untyped-def]
        def run() -> str:
            ran.append(name)
            if wait:
                release.wait(5)
            return name
        return run

    def op(name: str, wait: bool = False) -> BackgroundOp[str]:
        return BackgroundOp(parent, work(name, wait), sink.ok, sink.fail, key="queue",
                            on_settled=lambda: settled.append(name)).run(coalesce=True)

    first = op("first", wait=True)
    qtbot.waitUntil(lambda: ran == ["first"], timeout=5000)
    second, third = op("second"), op("third")
    assert (first.outcome, second.outcome, third.outcome) == ("running", "stale", "waiting")
    assert settled == ["second"] and background.pending() == 2  # the waiting one counts as pending
    release.set()
    _settled(qtbot)
    assert ran == ["first", "third"]  # the replaced one never ran
    assert sink.results == ["first", "third"] and first.outcome == third.outcome == "succeeded"
    assert settled == ["second", "first", "third"]
    alone = op("alone")  # nothing running: starts at once
    assert alone.outcome == "running"
    _settled(qtbot)
    assert sink.results[-1] == "alone"


def test_a_coalesced_op_waiting_for_a_closed_parent_never_runs(qtbot) -> None:  # type: ignore[no-untyped-def]
    w = QWidget()
    qtbot.addWidget(w)
    w.show()
    release = threading.Event()
    ran: list[str] = []

    def slow() -> str:
        release.wait(5)
        return "slow"

    BackgroundOp(w, slow, lambda _r: None, key="queue").run()
    waiting = BackgroundOp(w, lambda: ran.append("waiting") or "x", lambda _r: None, key="queue").run(coalesce=True)
    assert waiting.outcome == "waiting"
    w.close()
    release.set()
    _settled(qtbot)
    assert waiting.outcome == "orphaned" and ran == []


def test_progress_shows_only_after_half_a_second_and_goes_away(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = QMainWindow()
    qtbot.addWidget(window)
    child = QWidget()
    window.setCentralWidget(child)
    window.show()
    sink = _Sink()
    release = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "done"

    op = BackgroundOp(child, slow, sink.ok, key="slow", label="Computing agreement…").run()
    assert started.wait(5)
    assert QGuiApplication.overrideCursor() is None and not op.progress_shown  # not before 0.5 s
    qtbot.waitUntil(lambda: op.progress_shown, timeout=3000)
    assert QGuiApplication.overrideCursor().shape() == Qt.CursorShape.BusyCursor
    assert window.statusBar().currentMessage() == "Computing agreement…"
    with qtbot.waitSignal(sink.got):
        release.set()
    assert QGuiApplication.overrideCursor() is None and window.statusBar().currentMessage() == ""
    assert sink.results == ["done"]


def test_a_closed_parent_gets_no_callback(qtbot) -> None:  # type: ignore[no-untyped-def]
    sink = _Sink()
    release = threading.Event()
    closed = QWidget()
    closed.show()
    deleted = QWidget()
    deleted.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    deleted.show()
    got: list[str] = []
    ops = [BackgroundOp(w, lambda: release.wait(5), lambda _r, w=w: got.append(w.objectName()), sink.fail).run()
           for w in (closed, deleted)]
    closed.close()
    deleted.close()
    with qtbot.waitSignal(deleted.destroyed, timeout=5000):
        pass
    release.set()
    qtbot.waitUntil(lambda: all(op.outcome != "running" for op in ops), timeout=5000)
    assert [op.outcome for op in ops] == ["orphaned", "orphaned"] and got == [] and sink.failures == []
    closed.deleteLater()
    _settled(qtbot)


def test_a_base_exception_in_the_work_is_reported_and_the_op_settles(qtbot, parent) -> None:  # type: ignore[no-untyped-def]
    sink = _Sink()
    settled: list[bool] = []

    def interrupted() -> None:
        raise KeyboardInterrupt("stop")

    with qtbot.waitSignal(sink.got):
        op = BackgroundOp(parent, interrupted, sink.ok, sink.fail, on_settled=lambda: settled.append(True)).run()
    assert op.outcome == "failed" and settled == [True] and background.pending() == 0
    [exc] = sink.failures
    assert isinstance(exc, RuntimeError) and isinstance(exc.__cause__, KeyboardInterrupt)
    assert "KeyboardInterrupt" in str(exc)


def test_a_dropped_failure_is_logged_with_its_traceback(qtbot, parent, caplog) -> None:  # type: ignore[no-untyped-def]
    sink = _Sink()
    release = threading.Event()

    def late_failure() -> None:
        release.wait(5)
        raise ConflictError("too late to matter")

    old = BackgroundOp(parent, late_failure, sink.ok, sink.fail, key="k").run()
    with qtbot.waitSignal(sink.got):
        BackgroundOp(parent, lambda: "new", sink.ok, sink.fail, key="k").run()
    with caplog.at_level("WARNING", logger="annotator.gui.background"):
        release.set()
        qtbot.waitUntil(lambda: old.outcome != "running", timeout=5000)
    assert old.outcome == "stale" and sink.failures == [] and sink.results == ["new"]
    [record] = [r for r in caplog.records if r.name == "annotator.gui.background"]
    assert record.levelname == "WARNING" and record.exc_info is not None
    assert isinstance(record.exc_info[1], ConflictError) and "too late to matter" in caplog.text


def test_a_destroyed_parent_leaves_no_entry_behind(qtbot) -> None:  # type: ignore[no-untyped-def]
    owner = QObject()
    with qtbot.waitSignal(owner.destroyed, timeout=5000):
        op = BackgroundOp(owner, lambda: 1, lambda _r: None, key="q").run()
        assert (id(owner), "q") in background._latest  # noqa: SLF001
        owner.deleteLater()
    _settled(qtbot)
    assert op.outcome == "orphaned"
    assert all(slot[0] != id(op.parent) for slot in background._latest)  # noqa: SLF001


class _Stubborn(QWidget):
    """Refuses to close (as a window with unsaved input asking the user would)."""

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802
        event.ignore()


def test_an_ignored_close_keeps_the_results_coming(qtbot) -> None:  # type: ignore[no-untyped-def]
    sink = _Sink()
    release = threading.Event()
    w = _Stubborn()
    qtbot.addWidget(w)
    w.show()
    op = BackgroundOp(w, lambda: release.wait(5) and "kept", sink.ok, sink.fail).run()
    assert not w.close() and w.isVisible()
    with qtbot.waitSignal(sink.got):
        release.set()
    assert op.outcome == "succeeded" and sink.results == ["kept"]


def test_an_in_memory_sqlite_database_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from annotator.domain.errors import InputError
    from annotator.services.project import open_project

    for url in ("sqlite://", "sqlite:///:memory:"):
        db = open_project(url)
        try:
            with pytest.raises(InputError, match="in-memory SQLite"):
                background.require_shared_database(db)
        finally:
            db.close()
    db = open_project(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        background.require_shared_database(db)  # a file is shared by every thread
    finally:
        db.close()


def test_freezing_long_lived_objects_keeps_them_out_of_full_collections() -> None:
    import gc
    import weakref

    class Node:
        peer: object = None

    node = Node()
    node.peer = node  # a cycle: only the cyclic collector can free it
    alive = weakref.ref(node)
    try:
        background.freeze_long_lived()
        assert gc.get_freeze_count() > 1000  # the modules, Qt wrappers and everything alive now
        del node
        gc.collect()
        assert alive() is not None  # frozen: full collections no longer walk (or free) it
        background.freeze_long_lived()  # a new window: thaws first, so the old garbage goes
        assert alive() is None
    finally:
        gc.unfreeze()


def test_full_collections_wait_until_no_background_op_runs(qtbot, parent) -> None:  # type: ignore[no-untyped-def]
    """A worker allocating many objects triggers no full collection (it would hold the GIL while it walks
    them all); the GUI thread collects fully once the work is done, and the defaults come back."""
    import gc
    import sys
    import weakref

    class Node:
        __slots__ = ("peer", "__weakref__")

    full: list[int] = []
    refs: list[weakref.ref[Node]] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(threading.get_ident())

    def work() -> int:
        kept = []
        for _ in range(600_000):  # survivors of many young collections: enough for several full ones
            node = Node()
            node.peer = node  # a cycle: only a full collection frees it once it reaches the oldest generation
            kept.append(node)
        refs.append(weakref.ref(kept[0]))
        return len(kept)

    sink = _Sink()
    before = gc.get_threshold(), sys.getswitchinterval()
    let_go = background.keep_gui_thread_responsive()
    gc.callbacks.append(on_gc)
    try:
        with qtbot.waitSignal(sink.got, timeout=60000):
            BackgroundOp(parent, work, sink.ok, sink.fail).run()
        assert sink.results == [600_000] and full == []  # none while the worker allocated
        assert refs[0]() is not None  # its garbage cycles wait for the idle collection
        qtbot.waitUntil(lambda: refs[0]() is None, timeout=5000)  # idle: collected on the GUI thread
        assert full and set(full) == {threading.get_ident()}
    finally:
        gc.callbacks.remove(on_gc)
        let_go()
    assert (gc.get_threshold(), sys.getswitchinterval()) == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_workers_run_below_the_gui_threads_cpu_priority(qtbot, parent) -> None:  # type: ignore[no-untyped-def]
    """Once the app asks for a responsive GUI thread, a background op and a slice decode run at a lower CPU
    priority than the GUI thread (so a paint does not wait for a core behind them); before, the same."""
    import os

    import numpy as np

    from annotator.domain.entities import ImageRef
    from annotator.domain.geometry import ImageGeometry
    from annotator.gui.pixel_loader import PixelLoader
    from annotator.services.viewing import DecodedSlice, Window

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    decoded: list[int] = []

    def decode(image: ImageRef) -> DecodedSlice:
        decoded.append(nice())
        return DecodedSlice(image=image, pixels=np.zeros((4, 4), np.float32), default_window=Window(0, 1),
                            default_source="auto")

    gui = nice()
    sink = _Sink()
    let_go = background.keep_gui_thread_responsive()
    try:
        with qtbot.waitSignal(sink.got, timeout=5000):
            BackgroundOp(parent, nice, sink.ok, sink.fail).run()
        loader = PixelLoader(decode)
        with qtbot.waitSignal(loader.ready, timeout=5000):
            loader.request(ImageRef(id=1, series_id=1, sop_instance_uid="1.2.1", instance_number=1, slice_index=0,
                                    path="/x/1.dcm", sha256="0" * 64, geometry=ImageGeometry(rows=4, columns=4)))
        loader.shutdown()
    finally:
        let_go()
    assert nice() == gui  # the GUI thread itself keeps its priority
    assert sink.results == [min(19, gui + background.WORKER_NICE)] and decoded == sink.results
    assert background.WORKER_NICE >= 5  # a priority that matters: CFS gives nice +5 a third of nice 0's share
