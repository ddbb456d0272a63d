"""Find the files an import should look at (every regular, non-hidden file; the reader judges DICOM)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["iter_dicom_candidates"]


def iter_dicom_candidates(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Yield every regular file under ``paths``, depth first, in sorted order; skip hidden entries.

    Explicit paths are yielded even if hidden or not regular files (the reader then says why); inside
    folders, names starting with "." and non-regular files (sockets, FIFOs) are skipped. Each file is
    yielded once (first occurrence wins). A folder that cannot be listed is yielded itself, so that
    reading it fails with the reason instead of its files vanishing silently. Symbolic links to files
    are followed; links to folders are not (no cycles). Paths come out absolute (not symlink-resolved).
    Missing paths are skipped: the caller reports them.
    """
    seen: set[str] = set()

    def emit(p: Path) -> Iterator[Path]:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            yield p

    for raw in paths:
        top = Path(os.path.abspath(raw))
        if not top.is_dir():
            if os.path.lexists(top):
                yield from emit(top)
            continue
        failed: list[Path] = []

        def on_error(exc: OSError, failed: list[Path] = failed) -> None:
            failed.append(Path(exc.filename))

        for root, dirs, files in os.walk(top, onerror=on_error):
            while failed:
                yield from emit(failed.pop(0))
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                p = Path(root) / name
                try:
                    regular = stat.S_ISREG(p.stat().st_mode)
                except OSError:
                    regular = True  # dangling link or no permission: let the reader say why
                if regular:
                    yield from emit(p)
        while failed:
            yield from emit(failed.pop(0))
