"""A real fault between client and server: a Unix-socket proxy that loses the answer to a COMMIT.

Once armed, the proxy drops the connection that carries the server's CommandComplete "COMMIT" instead
of passing it on: the transaction is committed on the server, and the client never hears so. That is
the one case in which a client cannot know its outcome, made to happen on purpose.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from types import TracebackType

SOCKET_NAME = ".s.PGSQL.5432"
COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"  # CommandComplete: 'C', int32 length 11, "COMMIT\0"


class DropCommitAck:
    def __init__(self, server_dir: Path) -> None:
        self.server_dir = Path(server_dir)
        self.dir = Path(tempfile.mkdtemp(prefix="annotator-pgproxy-"))
        self.dropped = 0
        self._armed = threading.Event()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.dir / SOCKET_NAME))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self._accepting = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)

    def url(self, server_url: str) -> str:
        """The same database, reached through the proxy."""
        return server_url.replace(f"host={self.server_dir}", f"host={self.dir}")

    def arm(self) -> None:
        """Drop the connection carrying the next COMMIT's answer."""
        self._armed.set()

    def __enter__(self) -> DropCommitAck:
        self._accepting.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._accepting.join(5)
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                _close(s)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.server_dir / SOCKET_NAME))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_server: bool) -> None:
        tail = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_server and self._armed.is_set() and COMMIT_DONE in tail + data:
                    self._armed.clear()
                    self.dropped += 1
                    break
                dst.sendall(data)
                tail = data[-len(COMMIT_DONE):]
        except OSError:
            pass  # the other direction closed the pair
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
