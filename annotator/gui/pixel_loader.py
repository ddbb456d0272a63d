"""Decode slices off the GUI thread, prefetch neighbours, keep the recent ones in an LRU cache.

Jobs run on ``QThreadPool.globalInstance()`` (shared by every viewer); a worker never touches widgets,
it emits a signal of a QObject that lives on the GUI thread (Qt queues the call across threads). Every
display request gets an increasing id and only the newest request is answered: a slice decoded after
the user has moved on is cached but never shown (stale results are dropped).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from annotator.domain.entities import ImageRef
from annotator.gui.background import yield_cpu_to_gui
from annotator.services.viewing import DecodedSlice, decode_slice

Decoder = Callable[[ImageRef], DecodedSlice]
DEFAULT_CACHE_BYTES = 384 * 1024 * 1024
DISPLAY_PRIORITY = 10
PREFETCH_PRIORITY = 0


class SliceCache:
    """Least-recently-used decoded slices, bounded by the bytes of their pixels."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[int, DecodedSlice] = OrderedDict()
        self._bytes = 0

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, image_id: int) -> DecodedSlice | None:
        item = self._items.get(image_id)
        if item is not None:
            self._items.move_to_end(image_id)
        return item

    def put(self, item: DecodedSlice) -> None:
        old = self._items.pop(item.image.id, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._items[item.image.id] = item
        self._bytes += item.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


class _JobSignals(QObject):
    done = Signal(int, object)  # image id, DecodedSlice
    failed = Signal(int, object)  # image id, exception


class _Gate:
    """One loader's running jobs, so that closing waits for its own jobs only (not the shared pool's).

    A job enters only while the gate is open; once closed, queued jobs return at once without touching
    the loader, and :meth:`close` waits until the jobs already running have emitted their result.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._open = True
        self.closing = threading.Event()  # set once close() has been called

    def enter(self) -> bool:
        with self._cond:
            if self._open:
                self._running += 1
            return self._open

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def close(self, timeout_s: float) -> bool:
        """Refuse new jobs and wait for the running ones; True when none is left running."""
        with self._cond:
            self._open = False
            self.closing.set()
            return self._cond.wait_for(lambda: self._running == 0, timeout_s)


class _DecodeJob(QRunnable):
    def __init__(self, image: ImageRef, decode: Decoder, signals: _JobSignals, gate: _Gate) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.image = image
        self._decode = decode
        self._signals = signals
        self._gate = gate

    def run(self) -> None:
        yield_cpu_to_gui()
        if not self._gate.enter():  # the viewer closed while this job waited in the queue
            return
        try:
            try:
                result = self._decode(self.image)
            except Exception as exc:  # reported to the GUI thread; nothing is swallowed
                self._signals.failed.emit(self.image.id, exc)
                return
            self._signals.done.emit(self.image.id, result)
        finally:
            self._gate.leave()


class PixelLoader(QObject):
    """Asynchronous, cached slice decoding for one viewer."""

    ready = Signal(int, object)  # request id, DecodedSlice: the answer to the newest request only
    failed = Signal(int, object, object)  # request id, ImageRef, exception: the newest request only

    def __init__(self, decode: Decoder = decode_slice, *, max_bytes: int = DEFAULT_CACHE_BYTES,
                 pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._decode = decode
        self._pool = pool or QThreadPool.globalInstance()
        self.cache = SliceCache(max_bytes)
        # a child: deleted with the loader on the GUI thread, never by a worker dropping the last reference
        # (a queued job that finds the gate closed may outlive the loader)
        self._signals = _JobSignals(self)
        self._signals.done.connect(self._on_done)
        self._signals.failed.connect(self._on_failed)
        self._jobs: dict[int, ImageRef] = {}  # image id -> slice queued or being decoded
        self._gate = _Gate()
        self._ids = itertools.count(1)
        self._wanted: tuple[int, ImageRef] | None = None
        self._closed = False

    def cached(self, image_id: int) -> DecodedSlice | None:
        return self.cache.get(image_id)

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    def request(self, image: ImageRef) -> int:
        """Ask for a slice to display; the answer comes by ``ready``/``failed`` with the returned id.

        A newer request makes this one stale. Call :meth:`cached` first for the synchronous path.
        """
        rid = next(self._ids)
        self._wanted = (rid, image)
        hit = self.cache.get(image.id)
        if hit is not None:
            self._wanted = None
            self.ready.emit(rid, hit)
        else:
            self._submit(image, DISPLAY_PRIORITY)
        return rid

    def prefetch(self, images: Iterable[ImageRef]) -> None:
        """Decode these slices in the background if they are neither cached nor already queued."""
        for image in images:
            if image.id not in self.cache:
                self._submit(image, PREFETCH_PRIORITY)

    def _submit(self, image: ImageRef, priority: int) -> None:
        if self._closed or image.id in self._jobs:
            return
        self._jobs[image.id] = image
        self._pool.start(_DecodeJob(image, self._decode, self._signals, self._gate), priority)

    def _take_wanted(self, image_id: int) -> int | None:
        if self._wanted is not None and self._wanted[1].id == image_id:
            rid = self._wanted[0]
            self._wanted = None
            return rid
        return None

    def _on_done(self, image_id: int, result: DecodedSlice) -> None:
        self._jobs.pop(image_id, None)
        if self._closed:
            return
        self.cache.put(result)
        rid = self._take_wanted(image_id)
        if rid is not None:
            self.ready.emit(rid, result)

    def _on_failed(self, image_id: int, exc: Exception) -> None:
        image = self._jobs.pop(image_id, None)
        if self._closed:
            return
        rid = self._take_wanted(image_id)
        if rid is not None and image is not None:
            self.failed.emit(rid, image, exc)
        # a failed prefetch is not cached: the slice is decoded again, and reported, when displayed

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel this loader's queued jobs and wait for its running ones (other loaders' jobs on the
        shared pool are not waited for); True when none of its jobs is still running. For good."""
        self._closed = True
        self._wanted = None
        finished = self._gate.close(timeout_ms / 1000)
        self._jobs.clear()
        self.cache.clear()
        return bool(finished)
