"""Run database and CPU jobs off the GUI thread: :class:`BackgroundOp` (the shape of Anki's ``QueryOp``).

    BackgroundOp(self, work=lambda: agreement_report(db, names), on_success=self._show_report,
                 key="agreement", label="Computing agreement…").run()

``work`` runs on a worker thread of this module's own pool, so a long bootstrap never waits behind the
slice decoder's jobs (and the reverse). It must not touch widgets: it reads the database through the
services, each call opening its own short session (``Database.read``/``write`` hand out one pooled
connection per unit of work; a SQLite file uses a ``QueuePool`` with ``check_same_thread=False``, so a
connection may serve another thread once returned). An in-memory SQLite database (``sqlite://``,
``:memory:``) is one database per thread: a worker would read an empty one, so the screens refuse it
up front (:func:`require_shared_database`).

``on_success(result)`` or ``on_failure(exc)`` then runs on the GUI thread, then ``on_settled()``, which
runs for a stale result too, so a caller can count what it has in flight). Without ``on_failure`` the
exception goes to :func:`annotator.gui.errors.show_error`, the one error dialog. Anything the work
raises is reported, ``BaseException`` included (wrapped in a RuntimeError), so an op never stays running.
Results are dropped:

- when an op with the same ``key`` and parent was started after this one (the newer one wins);
- when the parent was closed (an accepted close) or deleted meanwhile (no callback on a widget that is
  gone).

A dropped failure is logged as a warning with its traceback (an orphaned op without ``on_failure`` still
goes to the error dialog): nothing is swallowed.

This module imports no widget module: a widget-free presenter may use it (the widget parts are
imported only when the parent is a widget, which means they are loaded already).

While an op runs longer than :data:`PROGRESS_AFTER_S`, the cursor is busy and, in a main window, the
status bar says ``label``.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import shiboken6
from PySide6.QtCore import QEvent, QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from annotator.domain.errors import InputError

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow, QWidget

    from annotator.services.project import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
PROGRESS_AFTER_S = 0.5
MAX_WORKERS = 2
GUI_SWITCH_INTERVAL_S = 0.001
WORKER_NICE = 10  # how much lower than the GUI thread's CPU priority the workers run (Linux; 0: the same)
FULL_COLLECTION_NEVER = 1 << 30  # the oldest generation's threshold: no full collection on allocation
FULL_COLLECTION_EVERY_MS = 1000  # how often the GUI thread looks for an idle moment to collect fully
QUIET_BEFORE_COLLECTION_S = 2.0  # no background op started or finished for this long: the user paused
FULL_COLLECTION_AFTER_YOUNG = 10  # young collections since the last full one before another (CPython's own)
FULL_COLLECTION_FORCED_AFTER = 2000  # young collections (about 14 million allocations) without a full one

_pool: QThreadPool | None = None
_ids = itertools.count(1)
_running: dict[int, BackgroundOp[Any]] = {}  # strong references until the result is delivered
_waiting: dict[tuple[int, Hashable], BackgroundOp[Any]] = {}  # coalesced ops waiting for their slot's running one
_latest: dict[tuple[int, Hashable], int] = {}  # (parent id, key) -> id of the newest op
_parents: set[int] = set()  # ids of parents whose destruction clears their entries in _latest
_collector: QTimer | None = None  # runs collect_when_idle on the GUI thread (keep_gui_thread_responsive)
_survivors = 0  # objects in the oldest generation after the last full collection collect_when_idle ran
_last_activity = 0.0  # time.monotonic() when a background op last started or finished
_worker_nice: int | None = None  # the nice value workers take (set by keep_gui_thread_responsive)


def require_shared_database(db: Database) -> None:
    """Refuse an in-memory SQLite database: each thread would see its own, empty one, so background work
    (every screen's reads) would fail or, worse, read nothing."""
    if db.in_memory:
        raise InputError("an in-memory SQLite database cannot be used by the app (its background work runs on "
                         "other threads, which would each see an empty database): open a database file")


def _forget(parent_id: int) -> None:
    """The parent is destroyed: its newest-op entries go (an op still running for it is then orphaned)."""
    _parents.discard(parent_id)
    for slot in [slot for slot in _latest if slot[0] == parent_id]:
        del _latest[slot]
    for slot in [slot for slot in _waiting if slot[0] == parent_id]:
        del _waiting[slot]  # never started: nothing to settle for a parent that is gone


def _watch_destroyed(parent: QObject) -> None:
    pid = id(parent)
    if pid not in _parents:
        _parents.add(pid)
        parent.destroyed.connect(lambda *_: _forget(pid))


def _log_dropped(op: BackgroundOp[Any], exc: BaseException) -> None:
    log.warning("background op %r (%s) failed after its result was dropped (%s)", op.key, op.label, op.outcome,
                exc_info=(type(exc), exc, exc.__traceback__))


def pool() -> QThreadPool:
    """The pool background ops run on (created on first use)."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(MAX_WORKERS)
        _pool.setObjectName("annotator-background")
    return _pool


def keep_gui_thread_responsive() -> Callable[[], None]:
    """Keep workers running Python code from holding the GIL for long; returns what undoes it.

    Every Qt event that reaches Python code (a timer, a paint of a pyqtgraph item, a signal) must take
    the GIL first, so:

    - a worker hands the GIL over within 1 ms instead of CPython's 5 ms: with 5 ms per hand-over, a
      frame with a few such events waited tens of milliseconds whenever a decode or a query ran on a
      worker (measured with benchmarks/gui_stalls.py);
    - a worker thread runs at a lower CPU priority than the GUI thread (:func:`yield_cpu_to_gui`,
      Linux): with two cores, a slice decode and a query ran beside the GUI thread, and a paint waited
      for a core as often as for the GIL (stalls in which the GUI thread was on the CPU a third of the
      time). The workers still have every core the GUI thread leaves idle, which is nearly all of them;
    - full garbage collections run only once the app is quiet (:func:`collect_when_idle`, looked for
      every :data:`FULL_COLLECTION_EVERY_MS`), not whenever a thread allocates: a collection walks every
      object alive, and triggered by a worker reading the review queue (a few hundred thousand objects
      alive) each took 100-340 ms with the GIL held, several per read. Once the work is done they are
      garbage, and a full collection walks only what the app keeps. Young generations are collected as
      usual.
    """
    global _collector, _worker_nice
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)
    if sys.platform == "linux":
        _worker_nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICE)
    gc.set_threshold(thresholds[0], thresholds[1], FULL_COLLECTION_NEVER)
    if _collector is None:
        _collector = QTimer()
        _collector.setObjectName("annotator-idle-collector")
        _collector.setInterval(FULL_COLLECTION_EVERY_MS)
        _collector.timeout.connect(collect_when_idle)
        _collector.start()

    def undo() -> None:
        global _collector, _worker_nice
        sys.setswitchinterval(interval)
        _worker_nice = None  # workers lowered already stay so (raising a priority needs privileges)
        gc.set_threshold(*thresholds)
        if _collector is not None:
            _collector.stop()
            _collector.deleteLater()
            _collector = None

    return undo


def yield_cpu_to_gui() -> None:
    """Give the calling worker thread the workers' CPU priority (a nice value, per thread on Linux), once
    :func:`keep_gui_thread_responsive` asked for it; the first thing a worker job does. A no-op on other
    systems, without that call, and where the system refuses."""
    nice = _worker_nice
    if nice is None:
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:  # a sandbox forbidding it: the work runs at the GUI thread's priority
        pass


def collect_when_idle() -> bool:
    """Run a full garbage collection when CPython would have run one, but only once the app is quiet:
    no background op running, none started or finished for :data:`QUIET_BEFORE_COLLECTION_S` (every
    step through slices, every decision starts one), so the user has paused (busy or not after very
    many young collections: memory stays bounded); True when it ran.

    As CPython does: once ten young collections ran since the last full one, and the oldest generation
    grew by a quarter since (a full collection walks all of it: amortized, each object is walked a few
    times at most, and garbage in cycles stays under a quarter of what is alive). Walking what the app
    keeps after the window was built (the demo: about 55,000 objects) takes 10-40 ms of the GUI thread,
    so it waits for a pause rather than land between two steps."""
    global _survivors
    young = gc.get_count()[2]  # young collections since the last full one
    if young < FULL_COLLECTION_AFTER_YOUNG:
        return False
    quiet = not _running and time.monotonic() - _last_activity >= QUIET_BEFORE_COLLECTION_S
    if not quiet and young < FULL_COLLECTION_FORCED_AFTER:
        return False
    if len(gc.get_objects(generation=2)) <= _survivors * 5 // 4:
        return False
    gc.collect()
    _survivors = len(gc.get_objects(generation=2))
    return True


def _active() -> None:
    global _last_activity
    _last_activity = time.monotonic()


def freeze_long_lived() -> None:
    """Exempt the objects alive now (modules, the window, its widgets) from the cyclic garbage collector.

    A full collection holds the GIL while it walks every object: with the window built it took
    100-200 ms, and a worker allocating query rows triggered it in the middle of the user's work (seen
    as ``_collection_gced`` in benchmarks/gui_stalls.py's traces). Call once the main window is built;
    calling it again (a new window) first thaws what the last call froze, so garbage among it is freed.
    """
    global _survivors
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _survivors = 0


def wait_idle(timeout_ms: int = 10000) -> bool:
    """Wait until no background work runs (for shutdown and tests); True when none is left."""
    return _pool is None or bool(_pool.waitForDone(timeout_ms))


def pending() -> int:
    """Ops started and not yet delivered (or dropped), coalesced ones waiting to start included."""
    return len(_running) + len(_waiting)


class _Relay(QObject):
    """Lives on the GUI thread: a worker's ``done`` signal is queued to it."""

    done = Signal(int, bool, object)  # op id, succeeded, result or exception

    def __init__(self) -> None:
        super().__init__()
        self.done.connect(self._deliver)

    def _deliver(self, op_id: int, ok: bool, payload: object) -> None:
        op = _running.pop(op_id, None)
        if op is not None:
            op._finish(ok, payload)


_relay: _Relay | None = None


def _the_relay() -> _Relay:
    global _relay
    if _relay is None:
        _relay = _Relay()
    return _relay


class _Job(QRunnable):
    def __init__(self, op_id: int, work: Callable[[], object], relay: _Relay) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._op_id, self._work, self._relay = op_id, work, relay

    def run(self) -> None:
        yield_cpu_to_gui()
        try:
            result = self._work()
        except Exception as exc:  # handed to the GUI thread: on_failure or the error dialog
            self._relay.done.emit(self._op_id, False, exc)
            return
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: reported, never lost
            wrapped = RuntimeError(f"background work stopped by {type(exc).__name__}: {exc}")
            wrapped.__cause__ = exc
            self._relay.done.emit(self._op_id, False, wrapped)
            return
        self._relay.done.emit(self._op_id, True, result)


class _CloseWatch(QObject):
    """Notes that a widget was closed: its pending ops deliver nothing.

    The filter sees a Close event before the widget decides; only an accepted close hides the widget
    (within the same ``close()`` call), so the widget counts as closed when a Hide follows a Close. An
    ignored close (the widget stays open) changes nothing.
    """

    def __init__(self, widget: QObject) -> None:
        super().__init__(widget)
        self.setObjectName("annotator-close-watch")
        self.closed = False
        self._closing = False
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        kind = event.type()
        if kind == QEvent.Type.Close:
            self._closing = True
            QTimer.singleShot(0, self, self._close_decided)
        elif kind == QEvent.Type.Hide and self._closing:
            self.closed = True
        elif kind == QEvent.Type.Show:
            self.closed = self._closing = False
        return False

    def _close_decided(self) -> None:
        self._closing = False


def _close_watch(parent: QObject) -> _CloseWatch | None:
    if not parent.isWidgetType():
        return None
    for child in parent.children():
        if isinstance(child, _CloseWatch):
            return child
    return _CloseWatch(parent)


class BackgroundOp(Generic[T]):
    """One unit of work off the GUI thread with its callbacks on it (see the module docstring)."""

    def __init__(self, parent: QObject | None, work: Callable[[], T], on_success: Callable[[T], None],  # noqa: PLR0913
                 on_failure: Callable[[Exception], None] | None = None, *, key: Hashable | None = None,
                 label: str = "Working…", on_settled: Callable[[], None] | None = None) -> None:
        self.parent, self.work, self.on_success, self.on_failure = parent, work, on_success, on_failure
        self.on_settled = on_settled  # called last, whatever the outcome, unless the parent is gone
        self.key, self.label = key, label
        self.id = 0
        self.progress_shown = False
        self.outcome: str = "new"  # new, running, succeeded, failed, stale, orphaned
        self._timer: QTimer | None = None
        self._watch: _CloseWatch | None = None
        self._status: QMainWindow | None = None

    @property
    def _slot(self) -> tuple[int, Hashable] | None:
        return None if self.key is None else (id(self.parent), self.key)

    def run(self, *, coalesce: bool = False) -> BackgroundOp[T]:
        """Start the work; returns at once. Call on the GUI thread.

        ``coalesce`` (an op with a key): while an op of the same key and parent runs, this one waits and
        starts once that one has settled (whose result is still delivered), instead of running beside it
        and making it stale; a later coalesced op replaces a waiting one, which settles unstarted (outcome
        ``stale``). For re-reads that a stream of changes asks for: at most one runs and one waits, so the
        workers are not filled with reads whose answers would be dropped, and the screen still updates
        while the stream goes on."""
        slot = self._slot
        if coalesce and slot is not None and any(op._slot == slot for op in _running.values()):
            replaced = _waiting.pop(slot, None)
            _waiting[slot] = self
            self.outcome = "waiting"
            if self.parent is not None:
                self._watch = _close_watch(self.parent)  # a parent closed while this waits: never started
                _watch_destroyed(self.parent)  # one deleted: its waiting op goes (_forget)
            if replaced is not None:
                replaced.outcome = "stale"
                if replaced.on_settled is not None and not replaced.orphaned:
                    replaced.on_settled()
            return self
        self.id = next(_ids)
        self.outcome = "running"
        if self._slot is not None:
            _latest[self._slot] = self.id
        if self.parent is not None:
            self._watch = _close_watch(self.parent)
            if self._slot is not None:
                _watch_destroyed(self.parent)
        _running[self.id] = self
        _active()
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._show_progress)
        self._timer.start(int(PROGRESS_AFTER_S * 1000))
        pool().start(_Job(self.id, self.work, _the_relay()))
        return self

    @property
    def stale(self) -> bool:
        slot = self._slot
        return slot is not None and _latest.get(slot) != self.id

    @property
    def orphaned(self) -> bool:
        """The parent is gone or was closed: nothing may be delivered to it."""
        if self.parent is None:
            return False
        if not shiboken6.isValid(self.parent):
            return True
        return self._watch is not None and shiboken6.isValid(self._watch) and self._watch.closed

    # ----- progress ---------------------------------------------------------------------------
    def _show_progress(self) -> None:
        if self.outcome != "running" or self.stale or self.orphaned:
            return
        self.progress_shown = True
        QGuiApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        if self.parent is not None and self.parent.isWidgetType():
            from PySide6.QtWidgets import QMainWindow  # loaded already: the parent is a widget

            window = cast("QWidget", self.parent).window()
            if isinstance(window, QMainWindow):
                self._status = window
                window.statusBar().showMessage(self.label)

    def _hide_progress(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if not self.progress_shown:
            return
        QGuiApplication.restoreOverrideCursor()
        bar = self._status.statusBar() if self._status is not None and shiboken6.isValid(self._status) else None
        if bar is not None and bar.currentMessage() == self.label:
            bar.clearMessage()
        self._status = None

    # ----- delivery (GUI thread) --------------------------------------------------------------
    def _finish(self, ok: bool, payload: object) -> None:
        _active()
        self._hide_progress()
        settle = self.on_settled if not self.orphaned else None
        try:
            self._deliver(ok, payload)
        finally:
            if settle is not None:
                settle()
            self._start_waiting()

    def _start_waiting(self) -> None:
        """Start the coalesced op waiting for this slot, once no op of the slot runs any more."""
        slot = self._slot
        if slot is None or slot not in _waiting or any(op._slot == slot for op in _running.values()):
            return
        waiting = _waiting.pop(slot)
        if waiting.orphaned:  # its screen closed meanwhile: nothing to read for
            waiting.outcome = "orphaned"
            return
        waiting.run()

    def _deliver(self, ok: bool, payload: object) -> None:
        slot = self._slot
        if self.orphaned:  # a result for a widget that is gone is dropped; a failure is still reported
            self.outcome = "orphaned"
            if slot is not None and _latest.get(slot) == self.id:
                del _latest[slot]
            if not ok:
                if self.on_failure is None:
                    _show_error(None, cast(Exception, payload))
                else:
                    _log_dropped(self, cast(Exception, payload))
            return
        if self.stale:
            self.outcome = "stale"
            if not ok:
                _log_dropped(self, cast(Exception, payload))
            return
        if slot is not None:
            del _latest[slot]
        if ok:
            self.outcome = "succeeded"
            self.on_success(cast(T, payload))
            return
        self.outcome = "failed"
        assert isinstance(payload, Exception)
        if self.on_failure is not None:
            self.on_failure(payload)
        else:
            parent = self.parent
            _show_error(cast("QWidget", parent) if parent is not None and parent.isWidgetType() else None, payload)


def _show_error(parent: QWidget | None, exc: Exception) -> None:
    from annotator.gui.errors import show_error  # the dialog's module imports widgets: only when needed

    show_error(parent, exc)
