"""Use case: the user sees the database connection and waits a bounded time when it drops.

The storage layer retries a lost connection with back-off and reports the state through a plain
callback; a screen subscribes here (Qt only in the GUI) and renders it. A workstation waits less than
a script before telling the user an action was not stored: a person is waiting for the answer.
"""

from __future__ import annotations

from annotator.domain.connection import ConnectionListener, ConnectionStatus
from annotator.storage.database import Database
from annotator.storage.reconnect import Backoff

INTERACTIVE_RECONNECT_S = 4.0  # a pg_ctl restart takes ~0.3 s; a longer outage is told to the user


def status(db: Database) -> ConnectionStatus:
    return db.monitor.status


def watch(db: Database, listener: ConnectionListener) -> None:
    """Call ``listener`` (from any thread) whenever the connection state changes."""
    db.monitor.subscribe(listener)


def unwatch(db: Database, listener: ConnectionListener) -> None:
    db.monitor.unsubscribe(listener)


def probe(db: Database) -> bool:
    """One round trip without waiting: is the server back? (The state change is reported to watchers.)"""
    return db.ping()


def set_reconnect_time(db: Database, seconds: float) -> None:
    """How long an action waits for a lost connection before it is refused with NotCommitted."""
    db.backoff = Backoff(total_s=seconds)
