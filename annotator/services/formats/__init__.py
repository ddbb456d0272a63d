"""Interchange formats (DICOM SR, RSNA lumbar, COCO keypoints) behind one export and one import contract.

Export: the bundle service gathers :class:`ExportItem` rows (one per slice and reader), then calls the
format's writer with an :class:`ExportContext`; the writer writes its files into ``ctx.out_dir``, a
temporary folder that the bundle publishes atomically (complete or not at all). When the bundle is
de-identified, ``ctx.ids`` maps every UID and patient id to its pseudonym; a writer never writes an
original identifier except through it.

Import: a format's reader parses a file or folder into :class:`ImportedLabel` rows (structural problems
raise :class:`~annotator.domain.errors.InputError` naming the file), and
:func:`annotator.services.labelsets.apply_imported` checks every row and writes all of them in one
transaction, or none, with errors by file and line.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from annotator.domain.entities import ImageRef
from annotator.domain.progress import ProgressCallback, ShouldStop, never_stop, no_progress
from annotator.domain.readers import ReaderMark, ReaderRef
from annotator.domain.scales import GradingScale
from annotator.storage.database import Database


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    JSON = "json"
    SR = "sr"  # DICOM SR, TID 1500 measurement report, one per study and reader (highdicom)
    RSNA = "rsna"  # the RSNA 2024 lumbar spine challenge's CSVs
    COCO = "coco"  # COCO keypoints + PNG renderings


@dataclass(frozen=True)
class ExportItem:
    """One reader's say on one slice, as every format writer receives it."""

    image: ImageRef
    reader: ReaderRef
    reader_label: str  # how files name the reader: a rater's name, "model NAME (id N)", "consensus"
    mark: ReaderMark  # point (integer pixel centres: x = column, y = row) and/or grade; version
    cannot_grade: str | None = None  # a reader-study read's CannotGrade value; then mark.grade is None
    study: str | None = None  # the reader study the read belongs to, if any


class IdentityMap(Protocol):
    """Identifiers as they appear in a bundle: the originals, or a de-identified bundle's pseudonyms
    (consistent across formats and across repeated exports of one project)."""

    @property
    def deidentified(self) -> bool: ...

    def uid(self, original: str) -> str: ...

    def patient(self, original: str) -> str: ...

    def source(self, image: ImageRef) -> Path:
        """The slice's DICOM file as the bundle has it: the de-identified copy (written before any
        format writer runs) or the original; writers take patient and study attributes from it."""
        ...


class PlainIdentity:
    """The identity map of a bundle that is not de-identified."""

    @property
    def deidentified(self) -> bool:
        return False

    def uid(self, original: str) -> str:
        return original

    def patient(self, original: str) -> str:
        return original

    def source(self, image: ImageRef) -> Path:
        return Path(image.path)


@dataclass
class ExportContext:
    db: Database
    items: Sequence[ExportItem]
    out_dir: Path  # a temporary folder inside the bundle being written
    scale: GradingScale
    ids: IdentityMap = field(default_factory=PlainIdentity)
    progress: ProgressCallback = no_progress
    should_stop: ShouldStop = never_stop


# Each format lives in ``annotator/services/formats/<format>.py`` and exposes ``write`` (a FormatWriter)
# and ``read`` (a FormatReader); the bundle service finds them by ExportFormat value.


class FormatWriter(Protocol):
    def __call__(self, ctx: ExportContext) -> list[Path]: ...


@dataclass(frozen=True)
class ImportedLabel:
    """One label read from a file, before it is checked against the project."""

    where: str  # "FILE: line N" or "FILE: item N", for error messages
    sop_uid: str
    reader: str  # a rater's name (imports create raters; models and consensus are never imported)
    x_px: float | None
    y_px: float | None
    grade: int | None  # an ordinal of the project's scale
    level: str | None = None  # a VertebralLevel value; set on the slice where none is known
    version: int | None = None
    created_at: datetime | None = None
    # the reader recorded "cannot grade" (a reader-study read's CannotGrade value, or the file's own words):
    # without a point it is no label, and the import reports it as passed over instead of storing it
    cannot_grade: str | None = None


class FormatReader(Protocol):
    def __call__(self, db: Database, path: Path, *, reader: str | None) -> list[ImportedLabel]: ...
