"""Use case: export label sets (per reader) and import labels made elsewhere.

Export writes one row per slice and reader, atomically (temporary file, fsync, rename). Import checks
every row first and reports problems line by line; a file with any bad row changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from annotator.domain.entities import Rater, Role
from annotator.domain.errors import InputError, NotFound
from annotator.domain.policy import Action
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import load_scale
from annotator.domain.studies import VertebralLevel
from annotator.services import readers as reader_service
from annotator.services.formats import ImportedLabel
from annotator.services.project import policy
from annotator.storage import catalog, labels, people
from annotator.storage import levels as level_repo
from annotator.storage.database import Database

COLUMNS = ("patient_key", "study_uid", "series_uid", "sop_uid", "instance_number", "reader", "x_px", "y_px",
           "grade", "grade_label", "scale", "version", "labelled_at", "level")


def export_rows(db: Database, readers: Sequence[ReaderRef | str]) -> list[dict[str, Any]]:
    scale = load_scale(people.get_settings(db).scale_code)
    images = catalog.images(db)
    rows: list[dict[str, Any]] = []
    for reader in readers:
        ref = ReaderRef.parse(reader) if isinstance(reader, str) else reader
        marks = reader_service.marks(db, ref)
        for im in images:
            m = marks.get(im.id)
            if m is None or (m.grade is None and m.x_px is None):
                continue
            rows.append({
                "patient_key": im.patient_key, "study_uid": im.study_instance_uid,
                "series_uid": im.series_instance_uid, "sop_uid": im.sop_instance_uid,
                "instance_number": im.instance_number, "reader": str(ref), "x_px": m.x_px, "y_px": m.y_px,
                "grade": m.grade, "grade_label": scale.label(m.grade) if m.grade is not None else None,
                "scale": scale.code, "version": m.version, "labelled_at": m.labelled_at, "level": im.level,
            })
    return rows


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
    atomically; the one writer of every label-set and study export."""
    if fmt == "json":
        text = json.dumps({"columns": list(columns), "rows": rows}, indent=1)
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else str(r[k]).lower() if isinstance(r[k], bool) else r[k])
                        for k in columns})
        text = buf.getvalue()
    else:
        raise InputError(f"--format {fmt!r}: use csv or json")
    _atomic_write(out, text)


@dataclass(frozen=True)
class ImportReport:
    applied: int
    errors: list[str]
    created_raters: list[str]


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a CSV (header line 1) or JSON label file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        rows = data["rows"] if isinstance(data, dict) and "rows" in data else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError(f"{path}: expected a list of row objects or {{\"rows\": [...]}}")
        return [(i + 1, r) for i, r in enumerate(rows)]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "sop_uid" not in reader.fieldnames:
        raise InputError(f"{path}: line 1: the header must name at least sop_uid and reader (or use --reader)")
    return [(i + 2, r) for i, r in enumerate(reader)]


def _num(value: Any, field: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{field} {value!r} is not a number") from None


def import_labels(db: Database, path: Path, *, reader: str | None = None, actor: Rater | None = None) -> ImportReport:
    """Check every row, then apply all of them in one transaction, or none if any row is bad. A file of
    reader-study reads (a ``study`` column, from ``export --study``) rebuilds its studies (``actor``: an admin)."""
    rows = _read_rows(path)
    if any(str(r.get("study") or "").strip() for _, r in rows):
        from annotator.services import study_io

        return ImportReport(*study_io.import_rows(db, actor, path, rows))
    scale = load_scale(people.get_settings(db).scale_code)
    parsed: list[ImportedLabel] = []
    errors: list[str] = []
    for line, row in rows:
        where = f"{path.name}: line {line}"
        try:
            parsed.append(_row_label(where, row, reader, scale.code, scale.parse))
        except (InputError, ValueError) as exc:
            errors.append(f"{where}: {exc}")
    return apply_imported(db, parsed, source=str(path), problems=errors)


def _row_label(where: str, row: dict[str, Any], reader: str | None, scale_code: str,
               parse_grade: Callable[[str], int]) -> ImportedLabel:
    """One CSV/JSON row of ``export``'s columns as an imported label (InputError: what is wrong)."""
    ref = ReaderRef.parse(str(reader or row.get("reader") or ""))
    if ref.kind is not ReaderKind.RATER:
        raise InputError(f"reader {ref}: only rater labels can be imported")
    x, y = _num(row.get("x_px"), "x_px"), _num(row.get("y_px"), "y_px")
    grade = None
    grade_text = row.get("grade")
    if grade_text not in (None, ""):
        file_scale = str(row.get("scale") or scale_code)
        if file_scale != scale_code:
            raise InputError(f"scale {file_scale!r} differs from the project's {scale_code!r}")
        grade = parse_grade(str(grade_text))
    version = _num(row.get("version"), "version")
    when = row.get("labelled_at") or None
    return ImportedLabel(where=where, sop_uid=str(row.get("sop_uid") or "").strip(), reader=ref.key, x_px=x, y_px=y,
                         grade=grade, level=str(row.get("level") or "").strip() or None,
                         version=int(version) if version else None,
                         created_at=datetime.fromisoformat(str(when)) if when else None)


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
    for lab in parsed:
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
    if errors:
        return ImportReport(0, sorted(errors, key=_in_file_order), [])
    new_raters: list[str] = []
    for name in sorted({name for name, _ in staged} - set(raters)):
        raters[name] = people.add_rater(db, name, Role.ANNOTATOR)
        new_raters.append(name)
    items = [{**item, "rater_id": raters[name].id} for name, item in staged]
    n = labels.import_versions(db, items, actor_id=None, source=source)
    for level, image_ids in levels.items():
        level_repo.set_level(db, sorted(set(image_ids)), level, actor_id=None, source=source)
    return ImportReport(n, [], new_raters)
