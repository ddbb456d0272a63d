"""The label-set table (CSV or JSON, one row per slice and reader): the one row builder and file writer
of ``export`` (a single file) and of the csv/json formats of a bundle (``labels.csv`` / ``labels.json``).

A row's identifiers go through the bundle's identity map, so a de-identified bundle's table names the
de-identified copies' UIDs and patient ids. Reads of a reader study (:class:`StudyReadItem`) add the
study columns.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from annotator.domain.errors import InputError
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import GradingScale
from annotator.services.formats import ExportContext, ExportItem, IdentityMap, ImportedLabel, PlainIdentity

COLUMNS = ("patient_key", "study_uid", "series_uid", "sop_uid", "instance_number", "reader", "x_px", "y_px",
           "grade", "grade_label", "scale", "version", "labelled_at", "level")
STUDY_COLUMNS = (*COLUMNS, "study", "read", "calibration", "seconds", "cannot_grade", "comment")
FORMATS = ("csv", "json")


@dataclass(frozen=True)
class StudyReadItem(ExportItem):
    """A reader-study read, with what only the table writes of it."""

    read: int = 1  # 1 first, 2 repeat
    calibration: bool = False
    seconds: float | None = None
    comment: str = ""


def item_row(item: ExportItem, scale: GradingScale, ids: IdentityMap | None = None) -> dict[str, Any]:
    """One table row of an export item, its identifiers as the bundle has them."""
    ids = ids or PlainIdentity()
    im, m = item.image, item.mark
    row: dict[str, Any] = {
        "patient_key": ids.patient(im.patient_key), "study_uid": ids.uid(im.study_instance_uid),
        "series_uid": ids.uid(im.series_instance_uid), "sop_uid": ids.uid(im.sop_instance_uid),
        "instance_number": im.instance_number, "reader": str(item.reader), "x_px": m.x_px, "y_px": m.y_px,
        "grade": m.grade, "grade_label": scale.label(m.grade) if m.grade is not None else None,
        "scale": scale.code, "version": m.version, "labelled_at": m.labelled_at, "level": im.level,
    }
    if isinstance(item, StudyReadItem):
        row.update({"study": item.study, "read": item.read, "calibration": item.calibration,
                    "seconds": item.seconds, "cannot_grade": item.cannot_grade, "comment": item.comment})
    return row


def columns_of(items: Sequence[ExportItem]) -> tuple[str, ...]:
    return STUDY_COLUMNS if any(isinstance(i, StudyReadItem) for i in items) else COLUMNS


def render(columns: Sequence[str], rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as CSV (empty cell for None, booleans as true/false) or JSON ({"columns", "rows"})."""
    if fmt == "json":
        return json.dumps({"columns": list(columns), "rows": rows}, indent=1)
    if fmt != "csv":
        raise InputError(f"--format {fmt!r}: use csv or json")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else str(r[k]).lower() if isinstance(r[k], bool) else r[k])
                    for k in columns})
    return buf.getvalue()


def write_table(ctx: ExportContext, fmt: str) -> list[Path]:
    """``labels.csv`` or ``labels.json`` in the bundle: one row per item."""
    rows = []
    for n, item in enumerate(ctx.items):
        rows.append(item_row(item, ctx.scale, ctx.ids))
        if n % 1000 == 0 and ctx.should_stop():
            from annotator.domain.errors import Cancelled

            raise Cancelled("export cancelled: nothing was written")
    path = ctx.out_dir / f"labels.{fmt}"
    path.write_text(render(columns_of(ctx.items), rows, fmt), encoding="utf-8", newline="")
    return [path]


# ----------------------------------------------------------------------------------------------- reading
def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
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


def number(value: Any, field: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{field} {value!r} is not a number") from None


def row_label(where: str, row: dict[str, Any], reader: str | None, scale_code: str,
              parse_grade: Callable[[str], int]) -> ImportedLabel:
    """One row of ``export``'s columns as an imported label (InputError: what is wrong)."""
    ref = ReaderRef.parse(str(reader or row.get("reader") or ""))
    if ref.kind is not ReaderKind.RATER:
        raise InputError(f"reader {ref}: only rater labels can be imported")
    x, y = number(row.get("x_px"), "x_px"), number(row.get("y_px"), "y_px")
    grade = None
    grade_text = row.get("grade")
    if grade_text not in (None, ""):
        file_scale = str(row.get("scale") or scale_code)
        if file_scale != scale_code:
            raise InputError(f"scale {file_scale!r} differs from the project's {scale_code!r}")
        grade = parse_grade(str(grade_text))
    version = number(row.get("version"), "version")
    when = row.get("labelled_at") or None
    return ImportedLabel(where=where, sop_uid=str(row.get("sop_uid") or "").strip(), reader=ref.key, x_px=x, y_px=y,
                         grade=grade, level=str(row.get("level") or "").strip() or None,
                         version=int(version) if version else None,
                         created_at=datetime.fromisoformat(str(when)) if when else None)


def table_file(path: Path, fmt: str) -> Path:
    """The label file itself, or ``labels.<fmt>`` inside a bundle folder."""
    if path.is_dir():
        inside = path / f"labels.{fmt}"
        if not inside.is_file():
            raise InputError(f"{path}: a folder without labels.{fmt}")
        return inside
    return path
