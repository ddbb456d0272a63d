"""The one way errors reach the user: :func:`show_error`, also behind sys/threading excepthooks.

Expected errors (:class:`AnnotatorError`: a moved file, a conflicting edit, a bad input) show their
one-line message. Anything else is a bug: the dialog says so and carries the traceback in its details.
Exceptions raised on worker threads are relayed to the GUI thread first, because widgets may only be
touched there.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from annotator.domain.errors import AnnotatorError

_TITLE = "annotator"
_open: set[QMessageBox] = set()  # parentless dialogs would be garbage-collected while on screen


def describe(exc: BaseException) -> tuple[str, str]:
    """(one-line message, details) for an exception, as the dialog shows them."""
    if isinstance(exc, AnnotatorError):
        return str(exc) or type(exc).__name__, ""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"Unexpected error ({type(exc).__name__}): {exc}", details


def show_error(parent: QWidget | None, exc: BaseException, *, blocking: bool = False) -> QMessageBox:
    """Show ``exc`` to the user. Non-blocking by default (the dialog is window-modal and deletes itself).

    ``blocking=True`` waits for the user, for errors raised before the main window exists.
    """
    message, details = describe(exc)
    box = QMessageBox(parent)
    box.setObjectName("annotator-error")
    box.setIcon(QMessageBox.Icon.Warning if isinstance(exc, AnnotatorError) else QMessageBox.Icon.Critical)
    box.setWindowTitle(_TITLE)
    box.setText(message)
    if details:
        box.setInformativeText("This is a bug in annotator; your labels up to the last action are saved.")
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    print(f"annotator: error: {message}", file=sys.stderr)
    if details:
        print(details, file=sys.stderr)
    if blocking:
        box.exec()
        box.deleteLater()
    else:
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        _open.add(box)
        box.finished.connect(lambda _result, b=box: _open.discard(b))
        box.open()
    return box


class _Relay(QObject):
    """Lives on the GUI thread; a queued signal carries worker-thread exceptions to it."""

    raised = Signal(object)

    def __init__(self, parent_widget: Callable[[], QWidget | None]) -> None:
        super().__init__()
        self._parent_widget = parent_widget
        self.raised.connect(self._show)

    def _show(self, exc: BaseException) -> None:
        show_error(self._parent_widget(), exc)

    def report(self, exc: BaseException) -> None:
        app = QApplication.instance()
        if app is not None and QThread.currentThread() is app.thread():
            self._show(exc)
        else:
            self.raised.emit(exc)


_relay: _Relay | None = None
_previous: list[tuple[object, object]] = []


def install_excepthooks(parent_widget: Callable[[], QWidget | None] = QApplication.activeWindow) -> None:
    """Route uncaught exceptions (GUI thread and worker threads) to :func:`show_error`."""
    global _relay
    _relay = _Relay(parent_widget)
    relay = _relay

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        relay.report(exc.with_traceback(tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            relay.report(args.exc_value.with_traceback(args.exc_traceback))

    _previous.append((sys.excepthook, threading.excepthook))
    sys.excepthook = hook
    threading.excepthook = thread_hook


def uninstall_excepthooks() -> None:
    """Put back the hooks that were installed before :func:`install_excepthooks`."""
    global _relay
    if _previous:
        sys.excepthook, threading.excepthook = _previous.pop()  # type: ignore[assignment]
    _relay = None
