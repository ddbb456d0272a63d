"""Find a format's writer and reader by its :class:`ExportFormat` value: the module
``annotator.services.formats.<value>`` exposes ``write`` and ``read``. A format whose module is not
installed is refused with a clear error, so the others work without it."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import cast

from annotator.domain.errors import InputError
from annotator.services.formats import ExportFormat, FormatReader, FormatWriter

PACKAGE = "annotator.services.formats"


def parse(value: ExportFormat | str) -> ExportFormat:
    try:
        return ExportFormat(value)
    except ValueError:
        raise InputError(f"--format {value!r}: use one of {', '.join(f.value for f in ExportFormat)}") from None


def _module(fmt: ExportFormat) -> ModuleType:
    name = f"{PACKAGE}.{fmt.value}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise  # the format's module is there but needs something that is not
        raise InputError(f"--format {fmt.value}: this installation has no {fmt.value} format "
                         f"(module {name} is missing)") from None


def _entry(value: ExportFormat | str, name: str, lacking: str) -> object:
    """The format module's function ``name``; InputError saying ``lacking`` when it has none."""
    fmt = parse(value)
    module = _module(fmt)
    function = getattr(module, name, None)
    if not callable(function):
        raise InputError(f"--format {fmt.value}: module {module.__name__} {lacking}")
    return function


def writer(value: ExportFormat | str) -> FormatWriter:
    return cast(FormatWriter, _entry(value, "write", "has no write(ctx)"))


def reader(value: ExportFormat | str) -> FormatReader:
    return cast(FormatReader, _entry(value, "read", "cannot read"))


def available() -> list[ExportFormat]:
    """The formats this installation can write (their module imports)."""
    out = []
    for fmt in ExportFormat:
        try:
            _module(fmt)
        except InputError:
            continue
        out.append(fmt)
    return out
