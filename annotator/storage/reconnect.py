"""Surviving a server restart or a dropped connection: which errors mean "the connection is gone",
how long to wait before trying again, and the connection state reported to whoever listens.

A lost connection is retried with exponential back-off and full jitter, bounded in total time, so a
crowd of workstations does not hammer a server that is starting up, and a user waits a bounded time
before being told. SQLAlchemy's pool (``pool_pre_ping``) discards the dead connections.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, OperationalError

from annotator.domain.connection import ConnectionListener, ConnectionState, ConnectionStatus

# SQLSTATEs of a server that went away or is not ready: connection exceptions (class 08), and
# admin_shutdown, crash_shutdown, cannot_connect_now (starting up, shutting down, in recovery)
_LOST_SQLSTATES = ("57P01", "57P02", "57P03")


def connection_lost(exc: BaseException, dialect: str) -> bool:
    """True when ``exc`` says the connection to a PostgreSQL server broke or could not be made."""
    if dialect != "postgresql" or not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in _LOST_SQLSTATES
    # psycopg raises connection failures (refused, socket missing, closed unexpectedly) without a SQLSTATE
    return isinstance(exc, OperationalError)


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between reconnect attempts: doubling from ``first_s`` up to ``max_s``, each drawn uniformly
    from its upper half (jitter), until ``total_s`` have passed since the connection was found lost."""

    first_s: float = 0.05
    max_s: float = 2.0
    total_s: float = 30.0


@dataclass
class Retry:
    """One operation's reconnect schedule."""

    backoff: Backoff
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0

    def next_wait(self) -> float | None:
        """Seconds to wait before the next attempt, or None when the total time has run out."""
        left = self.backoff.total_s - (time.monotonic() - self.started)
        if left <= 0:
            return None
        ceiling = min(self.backoff.first_s * 2 ** self.attempts, self.backoff.max_s)
        self.attempts += 1
        return min(random.uniform(ceiling / 2, ceiling), left)


class ConnectionMonitor:
    """The connection state of one database, told to listeners when it changes (from any thread)."""

    def __init__(self) -> None:
        self._status = ConnectionStatus(ConnectionState.CONNECTED)
        self._listeners: list[ConnectionListener] = []
        self._lock = threading.Lock()

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    def subscribe(self, listener: ConnectionListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: ConnectionListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def report(self, state: ConnectionState, detail: str = "") -> None:
        with self._lock:
            if state is self._status.state:
                return
            self._status = ConnectionStatus(state, detail)
            listeners, status = list(self._listeners), self._status
        for listener in listeners:
            listener(status)

    def connected(self) -> None:
        if self._status.state is not ConnectionState.CONNECTED:
            self.report(ConnectionState.CONNECTED)
