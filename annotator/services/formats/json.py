"""The label-set table as JSON (``labels.json`` in a bundle): see :mod:`annotator.services.formats.table`."""

from __future__ import annotations

from pathlib import Path

from annotator.services.formats import ExportContext, ImportedLabel
from annotator.services.formats.table import table_file, write_table
from annotator.storage.database import Database


def write(ctx: ExportContext) -> list[Path]:
    return write_table(ctx, "json")


def read(db: Database, path: Path, *, reader: str | None) -> list[ImportedLabel]:
    from annotator.services.labelsets import parse_labels

    return parse_labels(db, table_file(path, "json"), reader=reader)
