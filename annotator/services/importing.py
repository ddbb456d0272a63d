"""Use case: bring DICOM files into the project catalogue.

Every file ends as imported, relinked (moved file, same SOPInstanceUID), skipped (duplicate, or the same
instance in another encoding: identical decoded pixels) or rejected with a one-line reason; a bad file
never aborts the batch and never leaves partial rows. An imported file's reason carries its warnings
(geometry that cannot be right was dropped: "mm unavailable").
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from annotator.domain.entities import DicomInstance, ImportResult, ImportStatus
from annotator.domain.errors import DicomRejected
from annotator.domain.progress import ProgressCallback, ShouldStop, never_stop, no_progress
from annotator.imaging.dicom_io import iter_dicom_candidates, read_decoded, read_instance
from annotator.storage import catalog
from annotator.storage.catalog import PixelMatch
from annotator.storage.database import Database

BATCH = 200
READ_THREADS = 3


def _read(path: Path) -> DicomInstance | ImportResult:
    try:
        inst, _pixels = read_instance(path)
        return inst
    except DicomRejected as exc:
        return ImportResult(str(path), ImportStatus.REJECTED, exc.reason)
    except OSError as exc:
        return ImportResult(str(path), ImportStatus.REJECTED, f"cannot read: {exc.strerror or exc}")


def compare_pixels(stored_path: str, stored_sha256: str, inst: DicomInstance) -> PixelMatch:
    """Decode the file already imported under ``inst``'s SOPInstanceUID and ``inst``'s file, and compare.

    UNREADABLE when either cannot be decoded, or when either file's bytes are no longer those that
    were imported or read (then the comparison would not be about the files the catalogue knows)."""
    try:
        stored, new = read_decoded(stored_path), read_decoded(inst.path)
    except DicomRejected:
        return PixelMatch.UNREADABLE
    if stored.sha256 != stored_sha256 or new.sha256 != inst.sha256:
        return PixelMatch.UNREADABLE
    return PixelMatch.SAME if stored.same_pixels(new) else PixelMatch.DIFFERENT


def import_paths(db: Database, paths: Iterable[str | os.PathLike[str]], *,
                 on_progress: ProgressCallback = no_progress, should_stop: ShouldStop = never_stop,
                 on_result: Callable[[ImportResult], None] | None = None) -> list[ImportResult]:
    """Walk ``paths`` (files and folders), import every readable image, report each file's fate."""
    paths = [os.fspath(p) for p in paths]
    missing = [str(p) for p in paths if not os.path.exists(p)]
    files = [f for f in iter_dicom_candidates(p for p in paths if os.path.exists(p))]
    results: list[ImportResult] = [ImportResult(p, ImportStatus.REJECTED, "no such file or folder") for p in missing]
    if on_result:
        for r in results:
            on_result(r)
    total = len(files)
    pending: list[DicomInstance] = []
    order: list[DicomInstance | ImportResult] = []

    def flush() -> None:
        stored = iter(catalog.import_instances(db, pending, compare_pixels) if pending else [])
        for item in order:
            r = next(stored) if isinstance(item, DicomInstance) else item
            results.append(r)
            if on_result:
                on_result(r)
        pending.clear()
        order.clear()

    # Reading overlaps on READ_THREADS threads: hashing and file I/O release the GIL while another
    # parses; the read-ahead is deep enough that reading goes on while a batch is written.
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for i, item in enumerate(_read_ahead(pool, files, should_stop), start=1):
            order.append(item)
            if isinstance(item, DicomInstance):
                pending.append(item)
            if len(order) >= BATCH:
                flush()
            on_progress(i, total, item.path)
    flush()
    from annotator.services.levels import apply_import_rule  # the level rule: set from SeriesDescription

    apply_import_rule(db, [r.sop_instance_uid for r in results if r.status is ImportStatus.IMPORTED])
    return results


def _read_ahead(pool: ThreadPoolExecutor, files: list[Path], should_stop: ShouldStop,
                depth: int = 256) -> Iterator[DicomInstance | ImportResult]:
    """Results in file order, with up to ``depth`` reads in flight; stops submitting when asked."""
    queue: deque[Future[DicomInstance | ImportResult]] = deque()
    it = iter(files)
    while True:
        while len(queue) < depth and not should_stop():
            nxt = next(it, None)
            if nxt is None:
                break
            queue.append(pool.submit(_read, nxt))
        if not queue:
            return
        yield queue.popleft().result()
