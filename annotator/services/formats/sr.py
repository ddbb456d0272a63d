"""DICOM SR (TID 1500 measurement report): one report per DICOM study and reader, written with highdicom
(:mod:`sr_write`), and read back from this app's reports and other producers' point reports
(:mod:`sr_read`). The codes and their meaning: :mod:`sr_codes` and the README's "DICOM SR" section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from annotator.services.formats.sr_read import read
from annotator.services.formats.sr_write import write

__all__ = ["read", "write"]

if TYPE_CHECKING:  # the contract of annotator.services.formats, checked by mypy
    from annotator.services.formats import FormatReader, FormatWriter

    _writer: FormatWriter = write
    _reader: FormatReader = read
