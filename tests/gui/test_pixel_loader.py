"""Background decoding: answers only the newest request, prefetches quietly, reports failures."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from annotator.domain.entities import ImageRef
from annotator.domain.errors import InputError
from annotator.domain.geometry import ImageGeometry
from annotator.gui.pixel_loader import PixelLoader, SliceCache
from annotator.services.viewing import DecodedSlice, Window


def _image(i: int, size: int = 16) -> ImageRef:
    return ImageRef(id=i, series_id=1, sop_instance_uid=f"1.2.{i}", instance_number=i, slice_index=i,
                    path=f"/x/{i}.dcm", sha256="0" * 64, geometry=ImageGeometry(rows=size, columns=size))


def _decoded(image: ImageRef) -> DecodedSlice:
    px = np.full((image.geometry.rows, image.geometry.columns), float(image.id), dtype=np.float32)
    return DecodedSlice(image=image, pixels=px, default_window=Window(0, 1), default_source="auto")


class GatedDecoder:
    """Decodes image i only once gate i is opened, so a test controls the order results arrive in."""

    def __init__(self) -> None:
        self.gates: dict[int, threading.Event] = {}
        self.calls: list[int] = []
        self.fail: set[int] = set()

    def gate(self, i: int) -> threading.Event:
        return self.gates.setdefault(i, threading.Event())

    def __call__(self, image: ImageRef) -> DecodedSlice:
        self.calls.append(image.id)
        if not self.gate(image.id).wait(10):
            raise TimeoutError("gate never opened")
        if image.id in self.fail:
            raise InputError(f"{image.path}: cannot read")
        return _decoded(image)

    def open_all(self) -> None:
        for i in range(100):
            self.gate(i).set()


@pytest.fixture
def gated(qapp):  # type: ignore[no-untyped-def]
    dec = GatedDecoder()
    loader = PixelLoader(dec)
    yield dec, loader
    dec.open_all()
    loader.shutdown()


def test_stale_results_are_cached_but_never_shown(gated, qtbot) -> None:  # type: ignore[no-untyped-def]
    dec, loader = gated
    shown: list[tuple[int, int]] = []
    loader.ready.connect(lambda rid, d: shown.append((rid, d.image.id)))
    rid_a = loader.request(_image(1))
    rid_b = loader.request(_image(2))  # the user moved on before slice 1 was decoded
    assert rid_b > rid_a
    dec.gate(1).set()
    qtbot.waitUntil(lambda: 1 in loader.cache)
    assert shown == []
    with qtbot.waitSignal(loader.ready, timeout=5000) as sig:
        dec.gate(2).set()
    assert sig.args[0] == rid_b and shown == [(rid_b, 2)]


def test_cached_request_is_answered_at_once_and_prefetch_is_quiet(gated, qtbot) -> None:  # type: ignore[no-untyped-def]
    dec, loader = gated
    shown: list[int] = []
    loader.ready.connect(lambda rid, d: shown.append(d.image.id))
    dec.open_all()
    loader.prefetch([_image(3), _image(4)])
    qtbot.waitUntil(lambda: 3 in loader.cache and 4 in loader.cache)
    assert shown == []
    loader.prefetch([_image(3)])  # already cached: not decoded again
    loader.request(_image(3))
    assert shown == [3] and dec.calls.count(3) == 1


def test_request_joins_a_prefetch_already_running(gated, qtbot) -> None:  # type: ignore[no-untyped-def]
    dec, loader = gated
    loader.prefetch([_image(5)])
    qtbot.waitUntil(lambda: 5 in dec.calls)
    loader.request(_image(5))
    with qtbot.waitSignal(loader.ready, timeout=5000) as sig:
        dec.gate(5).set()
    assert sig.args[1].image.id == 5 and dec.calls.count(5) == 1


def test_failure_reaches_the_newest_request_only(gated, qtbot) -> None:  # type: ignore[no-untyped-def]
    dec, loader = gated
    dec.fail = {6, 7}
    failures: list[int] = []
    loader.failed.connect(lambda rid, image, exc: failures.append(image.id))
    loader.prefetch([_image(6)])
    dec.gate(6).set()
    qtbot.waitUntil(lambda: loader.in_flight == 0)
    assert failures == [] and 6 not in loader.cache  # a failed prefetch is retried when displayed
    with qtbot.waitSignal(loader.failed, timeout=5000) as sig:
        loader.request(_image(7))
        dec.gate(7).set()
    assert isinstance(sig.args[2], InputError) and failures == [7]


def test_shutdown_cancels_queued_work_and_waits_for_running(qapp, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QThreadPool

    running = QThreadPool.globalInstance().maxThreadCount()
    queued = running + 20
    dec = GatedDecoder()
    loader = PixelLoader(dec)
    loader.prefetch([_image(i) for i in range(queued)])
    qtbot.waitUntil(lambda: len(dec.calls) == running)  # the pool is full, the rest wait in the queue
    opener = threading.Thread(target=lambda: (loader._gate.closing.wait(10), dec.open_all()))
    opener.start()
    assert loader.shutdown()  # cancels the queue, then waits for the running jobs to finish
    opener.join()
    assert len(dec.calls) == running and len(loader.cache) == 0


def test_shutdown_waits_for_its_own_jobs_not_for_other_viewers_on_the_shared_pool(qapp, qtbot) -> None:  # type: ignore[no-untyped-def]
    import time

    from PySide6.QtCore import QThreadPool

    pool = QThreadPool()
    pool.setMaxThreadCount(3)
    other_dec, own_dec = GatedDecoder(), GatedDecoder()
    other, own = PixelLoader(other_dec, pool=pool), PixelLoader(own_dec, pool=pool)
    other.prefetch([_image(1)])  # the workstation's decode, stuck on a slow disk
    own.prefetch([_image(2), _image(3)])
    qtbot.waitUntil(lambda: 1 in other_dec.calls and {2, 3} <= set(own_dec.calls))
    opener = threading.Thread(target=lambda: (own._gate.closing.wait(10), time.sleep(0.2), own_dec.open_all()))
    opener.start()
    t0 = time.monotonic()
    assert own.shutdown(timeout_ms=8000)  # waits for slices 2 and 3 (opened 0.2 s after), not for slice 1
    assert time.monotonic() - t0 < 4
    opener.join()
    assert other.in_flight == 1 and not other_dec.gate(1).is_set()
    other_dec.open_all()
    assert other.shutdown()
    pool.waitForDone(5000)


def test_queued_jobs_outliving_a_closed_loader_never_own_its_qt_objects(qapp) -> None:  # type: ignore[no-untyped-def]
    """Closing does not wait for the shared pool, so queued jobs may outlive the loader. They must not hold
    the last reference to a QObject, or a worker thread would delete it (a crash seen in the full suite)."""
    import shiboken6
    from PySide6.QtCore import QRunnable, QThreadPool

    pool = QThreadPool()
    pool.setMaxThreadCount(1)
    busy = threading.Event()

    class Busy(QRunnable):  # another viewer's slow decode occupies the only thread
        def run(self) -> None:
            busy.wait(10)

    pool.start(Busy())
    dec = GatedDecoder()
    dec.open_all()
    loader = PixelLoader(dec, pool=pool)
    loader.prefetch([_image(i) for i in range(5)])  # queued behind the busy job
    assert loader.shutdown(timeout_ms=1000)  # none of its own jobs runs: returns at once
    signals = loader._signals
    del loader
    assert not shiboken6.isValid(signals)  # deleted with the loader, on this (the GUI) thread
    busy.set()
    assert pool.waitForDone(5000) and dec.calls == []  # the queued jobs ran, found the gate shut, did nothing


def test_lru_cache_is_bounded_by_bytes() -> None:
    one = _decoded(_image(1, size=32)).nbytes
    cache = SliceCache(max_bytes=3 * one)
    for i in range(1, 5):
        cache.put(_decoded(_image(i, size=32)))
    assert 1 not in cache and len(cache) == 3
    cache.get(2)  # touched: now the most recent
    cache.put(_decoded(_image(5, size=32)))
    assert 2 in cache and 3 not in cache
