"""Live across workstations: what other users committed, for the screens to re-read.

The screens (and scripts) subscribe through :func:`watch_changes`; how the database tells (PostgreSQL
notifications, SQLite's ``data_version``) is the storage layer's business.
"""

from __future__ import annotations

from annotator.domain.changes import ChangeKind
from annotator.storage.changes import ChangeWatcher, OnChange, fingerprint
from annotator.storage.database import Database

__all__ = ["ChangeKind", "ChangeWatcher", "fingerprint", "watch_changes"]


def watch_changes(db: Database, *, on_change: OnChange | None = None, interval_s: float | None = None) -> ChangeWatcher:
    """A started :class:`ChangeWatcher` on ``db``: ``poll()`` it (or pass ``on_change``), ``close()`` it."""
    return ChangeWatcher(db, on_change=on_change, interval_s=interval_s).start()
