"""Progress and cancellation as plain callbacks, so core code never needs Qt.

Model runs (train, cross-validate, predict, activate) report richer, typed events on top of these:
see :mod:`annotator.domain.events`, whose JSON encoding is the one the CLI and the GUI share.
"""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    def __call__(self, done: int, total: int, message: str) -> None: ...


class ShouldStop(Protocol):
    def __call__(self) -> bool: ...


def no_progress(done: int, total: int, message: str) -> None:
    """A progress callback that ignores everything."""


def never_stop() -> bool:
    return False
