"""Use case: export label sets (per reader) and import labels made elsewhere.

Export writes one row per slice and reader, atomically (temporary file, fsync, rename). Import checks
every row first and reports problems line by line; a file with any bad row changes nothing.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.domain.entities import Rater, Role
from annotator.domain.errors import Cancelled, InputError, NotFound
from annotator.domain.policy import Action
from annotator.domain.progress import ShouldStop, never_stop
from annotator.domain.readers import ReaderRef
from annotator.domain.scales import load_scale
from annotator.domain.studies import VertebralLevel
from annotator.services import readers as reader_service
from annotator.services.formats import ExportItem, ImportedLabel
from annotator.services.formats.table import COLUMNS, item_row, number, read_rows, render, row_label
from annotator.services.project import policy
from annotator.storage import catalog, labels, people
from annotator.storage import levels as level_repo
from annotator.storage.database import Database


def export_items(db: Database, readers: Sequence[ReaderRef | str]) -> list[ExportItem]:
    """One item per slice and reader that has a point or a grade, by reader, then in catalogue order."""
    images = catalog.images(db)
    items: list[ExportItem] = []
    for reader in readers:
        ref = ReaderRef.parse(reader) if isinstance(reader, str) else reader
        marks = reader_service.marks(db, ref)
        label = reader_service.reader_label(db, ref)
        for im in images:
            m = marks.get(im.id)
            if m is None or (m.grade is None and m.x_px is None):
                continue
            items.append(ExportItem(image=im, reader=ref, reader_label=label, mark=m))
    return items


def export_rows(db: Database, readers: Sequence[ReaderRef | str]) -> list[dict[str, Any]]:
    scale = load_scale(people.get_settings(db).scale_code)
    return [item_row(item, scale) for item in export_items(db, readers)]


def _atomic_write(path: Path, text: str) -> None:
    path = path.expanduser().resolve()
    if not path.parent.is_dir():
        raise InputError(f"--out {path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def export(db: Database, readers: Sequence[ReaderRef | str], out: Path, fmt: str = "csv",
           actor: Rater | None = None) -> int:
    """Write the readers' current labels to ``out`` (CSV or JSON, atomically); the number of rows.
    ``actor``: the rater exporting, who needs the right to export (PermissionDenied otherwise); None: the
    database's owner (a script)."""
    if actor is not None:
        policy(db, actor).require(Action.EXPORT)
    rows = export_rows(db, readers)
    write_rows(out, COLUMNS, rows, fmt)
    return len(rows)


def write_rows(out: Path, columns: Sequence[str], rows: list[dict[str, Any]], fmt: str) -> None:
    """Write rows as CSV (empty cell for None, booleans as true/false) or JSON ({"columns", "rows"}),
    atomically; the one writer of every single-file label-set and study export."""
    _atomic_write(out, render(columns, rows, fmt))


@dataclass(frozen=True)
class ImportReport:
    applied: int
    errors: list[str]
    created_raters: list[str]
    passed_over: list[str] = field(default_factory=list)  # "WHERE: why" of reads that are no label


PASSED_OVER_CANNOT_GRADE = "cannot grade ({reason}) without a point"
# said once above the list, not on every line of it
WHY_PASSED_OVER = ("a label needs a point or a grade; a reader study's 'cannot grade' reads travel in its table "
                   "export (export --study)")


_read_rows = read_rows
_num = number


def import_labels(db: Database, path: Path, *, reader: str | None = None, actor: Rater | None = None,
                  should_stop: ShouldStop = never_stop) -> ImportReport:
    """Check every row, then apply all of them in one transaction, or none if any row is bad. A file of
    reader-study reads (a ``study`` column, from ``export --study``) rebuilds its studies (``actor``: an admin)."""
    rows = _read_rows(path)
    if should_stop():
        raise Cancelled("import cancelled: nothing was imported")
    if any(str(r.get("study") or "").strip() for _, r in rows):
        from annotator.services import study_io

        return ImportReport(*study_io.import_rows(db, actor, path, rows))
    parsed, errors = _parse_rows(db, path, rows, reader)
    if should_stop():
        raise Cancelled("import cancelled: nothing was imported")
    return apply_imported(db, parsed, source=str(path), problems=errors)


def _parse_rows(db: Database, path: Path, rows: Sequence[tuple[int, dict[str, Any]]],
                reader: str | None) -> tuple[list[ImportedLabel], list[str]]:
    scale = load_scale(people.get_settings(db).scale_code)
    parsed: list[ImportedLabel] = []
    errors: list[str] = []
    for line, row in rows:
        where = f"{path.name}: line {line}"
        try:
            parsed.append(row_label(where, row, reader, scale.code, scale.parse))
        except (InputError, ValueError) as exc:
            errors.append(f"{where}: {exc}")
    return parsed, errors


def parse_labels(db: Database, path: Path, *, reader: str | None = None) -> list[ImportedLabel]:
    """A CSV or JSON label file's rows as imported labels (the csv/json formats' reader); InputError with
    every bad row, by line, if any row is bad."""
    parsed, errors = _parse_rows(db, path, _read_rows(path), reader)
    if errors:
        raise InputError("\n".join(errors))
    return parsed


def _in_file_order(error: str) -> tuple[str, int, str]:
    """Sort key of "FILE: line N: ..." messages: by file, then line or item number."""
    m = re.match(r"(.*?): (?:line|item) (\d+)", error)
    return (m.group(1), int(m.group(2)), error) if m else (error, 0, error)


def apply_imported(db: Database, parsed: Sequence[ImportedLabel], *, source: str,
                   problems: Sequence[str] = ()) -> ImportReport:
    """Check imported labels against the project (slice imported, point inside the image, grade on the
    project's scale, level known), then write all of them in one transaction, or none if any is bad; raters
    named in the file that the project lacks are created as annotators. Slices without a level get the
    one the file names (after the labels are stored). ``problems``: errors the reader already found
    (reported together with these checks', in file order)."""
    scale = load_scale(people.get_settings(db).scale_code)
    sop_to_image = {im.sop_instance_uid: im for im in catalog.images(db)}
    raters = {r.name: r for r in people.list_raters(db)}
    errors: list[str] = list(problems)
    staged: list[tuple[str, dict[str, Any]]] = []
    levels: dict[VertebralLevel, list[int]] = {}
    passed_over: list[str] = []
    for lab in parsed:
        if lab.cannot_grade is not None and lab.x_px is None and lab.grade is None:
            passed_over.append(f"{lab.where}: " + PASSED_OVER_CANNOT_GRADE.format(reason=lab.cannot_grade))
            continue
        try:
            if not lab.reader:
                raise InputError("the reader is missing")
            if not lab.sop_uid:
                raise InputError("sop_uid is missing")
            im = sop_to_image.get(lab.sop_uid)
            if im is None:
                raise InputError(f"sop_uid {lab.sop_uid} is not an imported slice")
            x, y = lab.x_px, lab.y_px
            if (x is None) != (y is None):
                raise InputError("a point needs both x_px and y_px")
            if x is not None and y is not None and not im.geometry.contains(x, y):
                raise InputError(f"point ({x}, {y}) lies outside the {im.geometry.columns}x{im.geometry.rows} image")
            if lab.grade is not None and lab.grade not in scale.ordinals:
                raise InputError(f"grade {lab.grade} is not on the {scale.name} scale")
            if lab.grade is None and x is None:
                raise InputError("a row needs a point (x_px, y_px) and/or a grade")
            level = VertebralLevel.parse(lab.level) if lab.level else None
            if level is not None and im.level is None:
                levels.setdefault(level, []).append(im.id)
            staged.append((lab.reader, {"image_id": im.id, "x_px": x, "y_px": y, "grade": lab.grade,
                                        "scale_code": scale.code, "version": lab.version,
                                        "created_at": lab.created_at}))
        except (InputError, NotFound, ValueError) as exc:
            errors.append(f"{lab.where}: {exc}")
    passed_over.sort(key=_in_file_order)
    if errors:
        return ImportReport(0, sorted(errors, key=_in_file_order), [], passed_over)
    new_raters: list[str] = []
    for name in sorted({name for name, _ in staged} - set(raters)):
        raters[name] = people.add_rater(db, name, Role.ANNOTATOR)
        new_raters.append(name)
    items = [{**item, "rater_id": raters[name].id} for name, item in staged]
    n = labels.import_versions(db, items, actor_id=None, source=source)
    for level, image_ids in levels.items():
        level_repo.set_level(db, sorted(set(image_ids)), level, actor_id=None, source=source)
    return ImportReport(n, [], new_raters, passed_over)
