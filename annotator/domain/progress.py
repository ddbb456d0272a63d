"""Progress and cancellation as plain callbacks, so core code never needs Qt."""

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
