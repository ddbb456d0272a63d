"""The database connection as the user sees it, and the key that makes a repeated action harmless.

The storage layer reports a :class:`ConnectionStatus` through a plain callback whenever the state
changes; the GUI renders it in the status bar and the CLI may print it. A user action carries an
:func:`new_action_key`: repeating the action with the same key (after a dropped connection left its
outcome unknown) stores it at most once.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass


class ConnectionState(enum.StrEnum):
    CONNECTED = "connected"  # the last statement reached the server
    RECONNECTING = "reconnecting"  # the connection dropped; retrying with back-off
    OFFLINE = "offline"  # the reconnect time ran out; actions are refused until the server answers


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    state: ConnectionState
    detail: str = ""  # the last connection error, one line (empty when connected)

    def describe(self) -> str:
        """One line for a status bar."""
        if self.state is ConnectionState.CONNECTED:
            return "Database: connected"
        if self.state is ConnectionState.RECONNECTING:
            return "Database: connection lost, reconnecting…"
        return "Database: offline" + (f" ({self.detail})" if self.detail else "")


ConnectionListener = Callable[[ConnectionStatus], None]


def new_action_key() -> str:
    """A fresh idempotency key for one user action (a UUID4, 36 characters)."""
    return str(uuid.uuid4())
