"""Run one ``annotator`` command as a child process and read its ``--json-progress`` output.

The GUI never imports torch: training and batch prediction run as ``python -m annotator …``
under a :class:`QProcess`. The database URL travels in the child's ``ANNOTATOR_DB`` environment variable,
not on its command line, so a PostgreSQL password never shows in a process list or the panel's log.
Standard output carries one event per line, decoded by :func:`annotator.domain.events.decode` (the
same module the child encodes with); lines are handled only once complete (partial reads are buffered).
A line that is not an event is reported on ``badLine`` with the reason, never raised. Standard error
lines are relayed as text, and the last one is kept because the CLI reports a failure there in one line
(``annotator: error: …``).
"""

from __future__ import annotations

import shlex
import sys

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from annotator.domain.events import EventFormatError, decode

KILL_AFTER_MS = 4000  # after terminate(), how long a child may take to stop cleanly before kill()


class LineBuffer:
    """Bytes in, complete text lines out; the tail without a newline waits for more."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        return [ln.decode("utf-8", errors="replace").rstrip("\r") for ln in lines]

    def flush(self) -> list[str]:
        rest, self._pending = self._pending, b""
        text = rest.decode("utf-8", errors="replace").rstrip("\r")
        return [text] if text else []


class CliProcess(QObject):
    """One child run of the CLI. ``finished(exit_code, normal)`` comes exactly once, also when it fails to start."""

    event = Signal(object)  # one decoded annotator.domain.events.Event
    badLine = Signal(str)  # noqa: N815 - why a stdout line is not an event (the message quotes the line)
    stderrLine = Signal(str)  # noqa: N815
    finished = Signal(int, bool)  # exit code, normal exit (False: killed by a signal or failed to start)

    def __init__(self, db_url: str, args: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.arguments = ["-m", "annotator", *args]
        self.last_error_line = ""
        self.stop_requested = False
        self._out, self._err = LineBuffer(), LineBuffer()
        self._ended = False
        self.process = QProcess(self)
        self.process.setProgram(sys.executable)
        self.process.setArguments(self.arguments)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("ANNOTATOR_DB", db_url)
        self.process.setProcessEnvironment(env)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

    def command_line(self) -> str:
        return shlex.join([sys.executable, *self.arguments])

    def start(self) -> None:
        self.process.start()

    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int:
        return int(self.process.processId())

    def stop(self, kill_after_ms: int = KILL_AFTER_MS) -> None:
        """Ask the child to stop (SIGTERM: it exits cleanly, publishing nothing); kill it if it lingers."""
        if not self.running():
            return
        self.stop_requested = True
        self.process.terminate()
        self._kill_timer.start(kill_after_ms)

    def stop_and_wait(self, kill_after_ms: int = KILL_AFTER_MS) -> None:
        """Like :meth:`stop`, but block until the child is gone (used when the window closes)."""
        if not self.running():
            return
        self.stop_requested = True
        self.process.terminate()
        if not self.process.waitForFinished(kill_after_ms):
            self.process.kill()
            self.process.waitForFinished(2000)

    def _kill(self) -> None:
        if self.running():
            self.process.kill()

    def _read_stdout(self) -> None:
        for line in self._out.feed(self.process.readAllStandardOutput().data()):
            self._stdout_line(line)

    def _read_stderr(self) -> None:
        for line in self._err.feed(self.process.readAllStandardError().data()):
            self._stderr_line(line)

    def _stdout_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            event = decode(line)
        except EventFormatError as exc:
            self.badLine.emit(str(exc))
            return
        self.event.emit(event)

    def _stderr_line(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        self.last_error_line = text
        self.stderrLine.emit(text)

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        for line in self._out.flush():
            self._stdout_line(line)
        for line in self._err.flush():
            self._stderr_line(line)
        self._end(int(code), status == QProcess.ExitStatus.NormalExit)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:  # no finished() follows
            self.last_error_line = f"cannot start {sys.executable}: {self.process.errorString()}"
            self.stderrLine.emit(self.last_error_line)
            self._end(-1, False)

    def _end(self, code: int, normal: bool) -> None:
        if not self._ended:
            self._ended = True
            self.finished.emit(code, normal)
