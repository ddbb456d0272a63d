"""Live across workstations, for the screens: a widget-free QObject that says what others committed.

It owns a :class:`~annotator.services.live.ChangeWatcher` (its own thread and database connection) and
asks it every :data:`TICK_MS` on the GUI thread (``poll()`` only swaps a set: it never waits on the
database). Kinds that arrive within :data:`SETTLE_MS` of each other are told as one ``changed`` signal,
and two signals are at least :data:`MIN_GAP_MS` apart, so a stream of commits (an import, a colleague
labelling fast) costs the screens a few re-reads a second, not one per commit.
The screens re-read in the background (:class:`~annotator.gui.background.BackgroundOp`); this object
only tells them when.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, QTimer, Signal

from annotator.domain.changes import ChangeKind
from annotator.services.live import ChangeWatcher, watch_changes
from annotator.services.project import Database

log = logging.getLogger(__name__)
TICK_MS = 50
SETTLE_MS = 60
MIN_GAP_MS = 250
# what the worklist, the open series' overlays and the compare pane show (no decisions); what the queue shows
SHOWN_KINDS = frozenset({ChangeKind.LABELS, ChangeKind.PREDICTIONS, ChangeKind.MODELS, ChangeKind.CATALOGUE})
REVIEW_KINDS = frozenset({ChangeKind.LABELS, ChangeKind.ADJUDICATIONS, ChangeKind.PREDICTIONS, ChangeKind.MODELS})


class LiveUpdates(QObject):
    changed = Signal(object)  # frozenset[ChangeKind] committed since the last signal

    def __init__(self, db: Database, parent: QObject | None = None, *, interval_s: float | None = None) -> None:
        super().__init__(parent)
        self._watcher: ChangeWatcher | None = watch_changes(db, interval_s=interval_s)
        self._gathered: set[ChangeKind] = set()
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._poll)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.timeout.connect(self._tell)
        self._told_at = 0.0  # time.monotonic() of the last signal
        self._tick.start()
        watcher = self._watcher
        self.destroyed.connect(lambda *_: watcher.close())  # deleted without close(): the thread still ends

    @property
    def watching(self) -> bool:
        return self._watcher is not None and self._watcher.running

    def _poll(self) -> None:
        if self._watcher is None:
            return
        kinds = self._watcher.poll()
        if kinds:
            self._gathered |= kinds
            if not self._settle.isActive():
                self._settle.start(SETTLE_MS)

    def _tell(self) -> None:
        wait_ms = MIN_GAP_MS - (time.monotonic() - self._told_at) * 1000
        if wait_ms > 0:
            self._settle.start(int(wait_ms) + 1)
            return
        kinds, self._gathered = frozenset(self._gathered), set()
        if kinds:
            self._told_at = time.monotonic()
            self.changed.emit(kinds)

    def close(self) -> None:
        """Stop watching (the watcher's thread and connection end); nothing is signalled afterwards."""
        self._tick.stop()
        self._settle.stop()
        self._gathered.clear()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
