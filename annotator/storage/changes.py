"""Learn, within a moment, what other workstations committed to the shared project database.

One interface, :class:`ChangeWatcher`: a thread of its own watches the database and gathers the
:class:`ChangeKind` s committed since the last :meth:`ChangeWatcher.poll`, which returns them at once
(it never touches the database, so the GUI thread may call it on a timer).

- PostgreSQL: the triggers of migration ``0006_live`` call ``pg_notify('annotator_changes', <table>)``
  at commit; the watcher ``LISTEN`` s on a connection of its own and maps each table to its kind. After
  a lost connection it reconnects and reports every kind (notifications sent meanwhile are lost).
- SQLite: no notifications exist, so the watcher asks ``PRAGMA data_version`` every ``interval_s`` on a
  connection of its own (the number changes when any other connection commits: a microsecond query),
  then, only when it changed, the largest id of each insert-only table to tell which kinds grew. A
  change it cannot place (an update: a model activated, a level set) reports every kind.

Commits by this process are reported too (they come from other connections): a screen re-reads what it
shows, which its own write already agrees with.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from annotator.domain.changes import ChangeKind
from annotator.storage.database import Database
from annotator.storage.tables import (
    AdjudicationRow,
    AnnotationRow,
    ImageRow,
    ModelVersionRow,
    PredictionRow,
    ProjectSettingsRow,
    ReadRow,
)

log = logging.getLogger(__name__)

CHANNEL = "annotator_changes"
TABLE_KINDS: dict[str, ChangeKind] = {
    "annotations": ChangeKind.LABELS,
    "adjudications": ChangeKind.ADJUDICATIONS,
    "reads": ChangeKind.READS,
    "predictions": ChangeKind.PREDICTIONS,
    "model_versions": ChangeKind.MODELS,
    "images": ChangeKind.CATALOGUE,
    "project_settings": ChangeKind.SETTINGS,
}
POLL_INTERVAL_S = 0.2  # SQLite: how often data_version is asked (the 1 s goal leaves room for the re-read)
LISTEN_WAKE_S = 0.2  # PostgreSQL: how often the listening thread looks up to see whether to stop
RECONNECT_S = 1.0

OnChange = Callable[[frozenset[ChangeKind]], None]


class ChangeWatcher:
    """Watches one project database from a thread of its own; :meth:`poll` drains what it saw."""

    def __init__(self, db: Database, *, interval_s: float | None = None, on_change: OnChange | None = None) -> None:
        if db.in_memory:
            raise ValueError("an in-memory SQLite database is private to one connection: nothing to watch")
        self.db = db
        self.mode = "listen" if db.dialect == "postgresql" else "poll"
        self.interval_s = interval_s or (LISTEN_WAKE_S if self.mode == "listen" else POLL_INTERVAL_S)
        self.on_change = on_change  # called on the watcher's thread, after the kinds are queued for poll()
        self._pending: set[ChangeKind] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # the last failure of the watcher's connection, if any

    # ----- the interface ----------------------------------------------------------------------
    def start(self) -> ChangeWatcher:
        """Start watching; returns once the watcher listens (or has its first data_version), so a commit
        made after ``start()`` returns is never missed."""
        target = self._listen if self.mode == "listen" else self._poll_sqlite
        self._thread = threading.Thread(target=target, name=f"annotator-changes-{self.mode}", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        return self

    def poll(self) -> set[ChangeKind]:
        """The kinds committed since the last call (empty: nothing); never blocks on the database."""
        with self._lock:
            kinds, self._pending = self._pending, set()
        return kinds

    def close(self) -> None:
        """Stop the thread and close its connection (waits at most a few intervals)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5 * self.interval_s + 5.0)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> ChangeWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- the thread -------------------------------------------------------------------------
    def _report(self, kinds: set[ChangeKind] | frozenset[ChangeKind]) -> None:
        if not kinds:
            return
        with self._lock:
            self._pending |= kinds
        if self.on_change is not None:
            try:
                self.on_change(frozenset(kinds))
            except Exception:  # a subscriber's bug must not stop the watching
                log.exception("a change subscriber failed")

    def _listen(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                conn = self._listening_connection()
            except Exception as exc:
                self._failed(exc)
                if self._stop.wait(RECONNECT_S):
                    break
                continue
            try:
                if not first:  # notifications sent while disconnected are lost
                    self._report(ChangeKind.every())
                first = False
                self.error = None
                self._ready.set()
                while not self._stop.is_set():
                    for n in conn.notifies(timeout=self.interval_s):  # yields each as it arrives
                        kind = TABLE_KINDS.get(n.payload)
                        if kind is not None:
                            self._report({kind})
            except Exception as exc:
                self._failed(exc)
                self._stop.wait(RECONNECT_S)
            finally:
                with contextlib.suppress(Exception):  # already broken
                    conn.close()
        self._ready.set()

    def _listening_connection(self) -> Any:
        """A psycopg connection of the watcher's own, made like the app's (same URL, same connect events),
        taken out of the pool for good, in autocommit, listening."""
        fairy = self.db.engine.raw_connection()
        conn = fairy.driver_connection
        fairy.detach()
        assert conn is not None
        conn.rollback()
        conn.autocommit = True
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _failed(self, exc: BaseException) -> None:
        if self.error is None or str(self.error) != str(exc):
            log.warning("watching %s for changes failed: %s (retrying)", self.db.url, exc)
        self.error = exc

    def _poll_sqlite(self) -> None:
        path = self.db.engine.url.database
        assert path
        tables = [t for t in TABLE_KINDS if t != "project_settings"]
        query = "SELECT " + ", ".join(f"(SELECT max(id) FROM {t})" for t in tables)
        conn: sqlite3.Connection | None = None
        version: int | None = None
        latest: tuple[Any, ...] = ()
        lost = False  # a failure happened: once reading again, report everything (it may have changed)
        try:
            while True:
                try:
                    if conn is None:
                        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
                        version = None
                    now = int(conn.execute("PRAGMA data_version").fetchone()[0])
                    if now != version:
                        ids = tuple(conn.execute(query).fetchone())
                        if version is not None:
                            grown = {TABLE_KINDS[t] for t, a, b in zip(tables, latest, ids, strict=True) if a != b}
                            self._report(grown or ChangeKind.every())
                        version, latest = now, ids
                    if lost:
                        self._report(ChangeKind.every())
                    lost, self.error = False, None
                except sqlite3.Error as exc:
                    self._failed(exc)
                    lost = True
                    if conn is not None:
                        conn.close()
                        conn = None
                self._ready.set()
                if self._stop.wait(self.interval_s):
                    break
        finally:
            if conn is not None:
                conn.close()
            self._ready.set()


def fingerprint(db: Database) -> tuple[object, ...]:
    """A cheap summary of the project that changes with every commit a screen could show: the row counts
    of the insert-only tables (a count, unlike the largest id, also grows when a transaction that took a
    smaller id commits last), the model versions and the active one, the slices and how many have a
    level, the rules' last change. Read it BEFORE reading what a screen shows: an equal fingerprint later
    means nothing it shows was committed in between."""
    def count(column: Any) -> Any:
        return select(func.count(column)).scalar_subquery()

    query = select(count(AnnotationRow.id), count(AdjudicationRow.id), count(ReadRow.id), count(PredictionRow.id),
                   count(ModelVersionRow.id),
                   select(func.max(ModelVersionRow.id)).where(ModelVersionRow.active.is_(True)).scalar_subquery(),
                   count(ImageRow.id), count(ImageRow.level),
                   select(func.max(ProjectSettingsRow.updated_at)).scalar_subquery())
    with db.read() as s:
        return tuple(s.execute(query).one())
