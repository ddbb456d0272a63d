"""Where a benchmark's database lives: a file on a disk, or in memory (tmpfs), which changes every timing."""

from __future__ import annotations

import os
from pathlib import Path


def filesystem(path: Path) -> str:
    """The type of the file system holding ``path`` (ext4, tmpfs, overlay...), from /proc/mounts."""
    target = os.path.realpath(path if path.exists() else path.parent)
    best, fstype = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return fstype
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")) \
                and len(parts[1]) >= len(best):
            best, fstype = parts[1], parts[2]
    return fstype


def describe(db_file: Path) -> str:
    """One line for a benchmark's header: the SQLite file, its file system, and memory or disk."""
    fs = filesystem(db_file)
    medium = "in memory" if fs in ("tmpfs", "ramfs") else "on disk" if fs != "unknown" else "medium unknown"
    return f"database: SQLite file {db_file} ({fs}, {medium})"
