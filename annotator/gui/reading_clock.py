"""How long a read took, as the reader study counts it (issue 13, point 6). Plain Python, no Qt.

The clock runs from the first moment the slice's pixels are on screen (:meth:`ReadingClock.start`) to
the commit (:meth:`ReadingClock.stop`). Two kinds of stretch are left out:

- an **idle** stretch: when more than ``idle_limit_s`` (60 s) pass between two signs of the reader
  (mouse or key activity, the start, a change of window focus), the whole stretch is dropped, not only
  its part beyond the limit: a reader who walked away was not reading;
- time with the window **inactive** (in the background): nothing counts until it is active again.

The clock function is injected (``time.monotonic`` by default) so that tests drive it by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable

IDLE_LIMIT_S = 60.0


class ReadingClock:
    def __init__(self, now: Callable[[], float] = time.monotonic, *, idle_limit_s: float = IDLE_LIMIT_S) -> None:
        self._now = now
        self.idle_limit_s = idle_limit_s
        self._started = False
        self._active = True  # is the reading window the active window?
        self._mark = 0.0  # the last moment accounted for
        self._total = 0.0

    @property
    def running(self) -> bool:
        """Started, not stopped, and the window active: time passing now may count."""
        return self._started and self._active

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """The slice's pixels are on screen: count from zero (a second call while running is ignored)."""
        if self._started:
            return
        self._started, self._total, self._mark = True, 0.0, self._now()

    def activity(self) -> None:
        """The reader moved the mouse, clicked or pressed a key."""
        self._account()

    def set_active(self, active: bool) -> None:
        """The window became active (front) or inactive (background)."""
        if active == self._active:
            return
        self._account()
        self._active = active
        self._mark = self._now()

    @property
    def seconds(self) -> float:
        """The reading time so far (as if the reader acted now)."""
        return self._total + self._gap()

    def stop(self) -> float:
        """The commit: the reading time, and the clock waits for the next :meth:`start`."""
        self._account()
        self._started = False
        return self._total

    def reset(self) -> None:
        """Forget the current read (the slice was left unread)."""
        self._started, self._total = False, 0.0

    def _gap(self) -> float:
        if not self.running:
            return 0.0
        gap = max(0.0, self._now() - self._mark)
        return gap if gap <= self.idle_limit_s else 0.0

    def _account(self) -> None:
        self._total += self._gap()
        self._mark = self._now()
