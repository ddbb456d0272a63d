"""Questions the command line asks a person (passwords), or reads from a script's standard input."""

from __future__ import annotations

import sys

from annotator.domain.errors import InputError


def read_new_password(name: str) -> str:
    """Twice at a terminal (not echoed), else one line from standard input (for scripts)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise InputError("the two passwords differ; nothing was changed")
    return first
