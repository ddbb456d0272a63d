"""BackgroundOp: work off the GUI thread, callbacks on it, errors to the one dialog, stale and orphaned
results dropped, progress only after half a second."""

from __future__ import annotations

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
