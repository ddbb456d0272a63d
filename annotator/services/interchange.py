"""Use case: one export and one import for every interchange format (csv, json, sr, rsna, coco).

Export gathers the items (each chosen reader's current labels, or a reader study's reads), then writes
either a single file (csv or json without de-identification, as ``export`` always did) or a **bundle**: a
folder with the format's files and ``bundle.json``, the manifest. A bundle is written into a temporary
sibling folder, flushed to disk, then renamed into place: it appears complete or not at all (an error or
a cancel removes the temporary folder). ``--out`` must not exist yet.

A de-identified bundle also holds ``dicom/``, a de-identified copy of every exported slice
(:mod:`annotator.services.deidentify`, seeded by the project's secret salt, which stays in the database),
and every format writes identifiers through the copies' identity map, so the label files name the
copies' UIDs and patient ids, the same in every format and every export of the project. Its manifest
names no original identifier; slices that may carry burned-in text are listed as warnings.

Import reads a file or a bundle in any format; csv/json keep their own rules (reader-study files); the
rest go through :func:`annotator.services.labelsets.apply_imported`: all rows or none, errors by file and
line (or item).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from annotator import __version__
from annotator.domain.entities import ImageRef, Rater
from annotator.domain.errors import Cancelled, InputError
from annotator.domain.policy import Action
from annotator.domain.progress import ProgressCallback, ShouldStop, never_stop, no_progress
from annotator.domain.readers import ReaderRef
from annotator.domain.scales import GradingScale, load_scale
from annotator.services import deidentify, labelsets
from annotator.services import readers as reader_service
from annotator.services.formats import ExportContext, ExportFormat, ExportItem, IdentityMap, PlainIdentity, registry
from annotator.services.formats.table import columns_of, item_row, table_file
from annotator.services.project import policy
from annotator.storage import people
from annotator.storage import secrets as secret_repo
from annotator.storage.database import Database

MANIFEST = "bundle.json"
DICOM_FOLDER = "dicom"
PIXEL_CONVENTION = ("points in pixels of the slice: x = column, y = row, 0-based, integers at pixel centres "
                    "(the image spans -0.5 .. columns-0.5, -0.5 .. rows-0.5)")
TABLE_FORMATS = (ExportFormat.CSV, ExportFormat.JSON)


@dataclass(frozen=True)
class ExportRequest:
    format: ExportFormat | str
    out: Path
    readers: Sequence[str] = ()  # rater:NAME, model:ID, consensus; empty: every reader the exporter may see
    study: str | None = None  # a reader study's reads instead of labels
    deidentify: bool = False


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    format: ExportFormat
    bundle: bool  # a folder with bundle.json (else one csv or json file)
    items: int
    slices: int
    readers: tuple[str, ...]
    files: tuple[str, ...] = ()  # relative to path, the manifest and DICOM copies included
    dicom_copies: int = 0
    warnings: tuple[str, ...] = ()  # one per slice that may carry burned-in text
    warning_counts: dict[str, int] = field(default_factory=dict)  # reason -> slices


def export(db: Database, request: ExportRequest, *, actor: Rater | None = None,
           progress: ProgressCallback = no_progress, should_stop: ShouldStop = never_stop) -> ExportSummary:
    """Export as ``request`` says. ``actor``: the rater exporting, who needs the right to export (a study's
    reads: also to see its progress); None: the database's owner (a script; not for a study)."""
    fmt = registry.parse(request.format)
    if actor is not None:
        policy(db, actor).require(Action.EXPORT)
    items, scale, readers = _gather(db, request, actor)
    out = request.out.expanduser().resolve()
    if fmt in TABLE_FORMATS and not request.deidentify:
        if out.is_dir():
            raise InputError(f"--out {out} is a folder: a {fmt.value} export without --deidentify is one file")
        progress(0, 1, f"writing {out.name}")
        labelsets.write_rows(out, columns_of(items), [item_row(i, scale) for i in items], fmt.value)
        progress(1, 1, f"wrote {len(items)} rows")
        return ExportSummary(out, fmt, False, len(items), len(_slices(items)), readers, (out.name,))
    return _bundle(db, fmt, items, scale, readers, request, out, progress, should_stop)


def _gather(db: Database, request: ExportRequest,
            actor: Rater | None) -> tuple[list[ExportItem], GradingScale, tuple[str, ...]]:
    wanted = [ReaderRef.parse(r) for r in request.readers]
    if request.study is not None:
        if actor is None:
            raise InputError("exporting a study's reads needs --as NAME (a reviewer or admin)")
        from annotator.services import study_io

        study_items, scale = study_io.export_items(db, actor, request.study)
        items: list[ExportItem] = [i for i in study_items if not wanted or i.reader in wanted]
        return items, scale, tuple(dict.fromkeys(str(i.reader) for i in items))
    if not wanted:
        wanted = (reader_service.readers_visible_to(db, actor) if actor is not None
                  else reader_service.all_readers(db))
    scale = load_scale(people.get_settings(db).scale_code)
    return labelsets.export_items(db, wanted), scale, tuple(str(r) for r in wanted)


def _slices(items: Sequence[ExportItem]) -> list[ImageRef]:
    return list({i.image.id: i.image for i in items}.values())


def _bundle(db: Database, fmt: ExportFormat, items: list[ExportItem], scale: GradingScale,
            readers: tuple[str, ...], request: ExportRequest, out: Path, progress: ProgressCallback,
            should_stop: ShouldStop) -> ExportSummary:
    if out.exists():
        raise InputError(f"--out {out} exists: a bundle is written to a new folder, never over another")
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: folder {out.parent} does not exist")
    writer = registry.writer(fmt)  # a missing format fails before anything is written
    slices = _slices(items)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    copy_n = len(slices) if request.deidentify else 0
    write_n = max(len(slices), 1)
    overall = copy_n + write_n + 1  # copies, the format's files, the manifest

    def writing(done: int, total: int, message: str) -> None:
        progress(copy_n + write_n * min(done, total) // max(total, 1), overall, message)

    try:
        progress(0, overall, "starting the export")
        ids: IdentityMap = PlainIdentity()
        burned: list[deidentify.BurnedIn] = []
        if request.deidentify:
            ids, burned = deidentify.copy_deidentified(
                slices, tmp / DICOM_FOLDER, secret_repo.deid_salt(db),
                progress=lambda done, _total, msg: progress(done, overall, msg), should_stop=should_stop)
        if should_stop():
            raise Cancelled("export cancelled: nothing was written")
        ctx = ExportContext(db=db, items=items, out_dir=tmp, scale=scale, ids=ids, progress=writing,
                            should_stop=should_stop)
        writer(ctx)
        writing(1, 1, f"wrote the {fmt.value} files")
        if should_stop():
            raise Cancelled("export cancelled: nothing was written")
        warnings = tuple(f"{b.sop_uid}: {b.reason}" for b in burned)
        counts = dict(Counter(b.reason for b in burned))
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        manifest = _manifest(fmt, items, slices, scale, readers, request, files, burned, counts)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        deidentify.fsync_tree(tmp)
        os.rename(tmp, out)  # atomic on one file system; fails on a non-empty folder that appeared meanwhile
        deidentify.fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(overall, overall, f"wrote {out.name}")
    copies = sum(f.startswith(f"{DICOM_FOLDER}/") for f in files)
    return ExportSummary(out, fmt, True, len(items), len(slices), readers, tuple(sorted([*files, MANIFEST])),
                         copies, warnings, counts)


def _manifest(fmt: ExportFormat, items: Sequence[ExportItem], slices: Sequence[ImageRef], scale: GradingScale,
              readers: tuple[str, ...], request: ExportRequest, files: list[str],
              burned: Sequence[deidentify.BurnedIn], counts: dict[str, int]) -> dict[str, Any]:
    """What the bundle holds; in a de-identified bundle only pseudonyms (the warnings name the copies)."""
    return {
        "format": fmt.value,
        "written_by": f"annotator {__version__}",
        "written_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "readers": list(readers),
        "study": request.study,
        "counts": {"items": len(items), "slices": len(slices), "dicom_copies": sum(
            f.startswith(f"{DICOM_FOLDER}/") for f in files)},
        "scale": {"code": scale.code, "name": scale.name, "grades": {str(g.ordinal): g.label for g in scale.grades}},
        "pixel_convention": PIXEL_CONVENTION,
        "deidentified": request.deidentify,
        "deidentification": {
            "method": deidentify.METHOD, "profile": [{"code": c, "scheme": "DCM", "meaning": m}
                                                     for c, m in deidentify.PROFILE_CODES],
            "patient_identity_removed": "YES", "pixels": "copied unchanged: text burned into pixels is not removed",
            "burned_in_annotation": "slices whose BurnedInAnnotation is not NO (absent counts: unknown) are listed "
                                    "under warnings",
        } if request.deidentify else None,
        "files": files,
        "warnings": [{"sop_uid": b.sop_uid, "reason": b.reason} for b in burned],
        "warning_counts": counts,
    }


# ----------------------------------------------------------------------------------------------- import
def guess_format(path: Path) -> ExportFormat:
    """A bundle's manifest names its format; a file goes by its suffix (a JSON file by its keys)."""
    if path.is_dir():
        manifest = path / MANIFEST
        if manifest.is_file():
            try:
                return registry.parse(json.loads(manifest.read_text(encoding="utf-8"))["format"])
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{manifest}: not a bundle manifest ({exc})") from exc
        raise InputError(f"{path}: a folder without {MANIFEST}: name its --format")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ExportFormat.CSV
    if suffix == ".dcm":
        return ExportFormat.SR
    if suffix == ".json":
        try:
            head = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            return ExportFormat.JSON  # the reader reports what is wrong, by file
        is_coco = isinstance(head, dict) and "annotations" in head and "images" in head
        return ExportFormat.COCO if is_coco else ExportFormat.JSON
    raise InputError(f"{path}: cannot tell its format from the name: name its --format")


def import_labels(db: Database, path: Path, *, fmt: ExportFormat | str | None = None, reader: str | None = None,
                  actor: Rater | None = None, should_stop: ShouldStop = never_stop) -> labelsets.ImportReport:
    """Import a label file or bundle: every row checked, then all stored in one transaction, or none.
    ``actor``: the rater importing, who needs the right to import labels; None: the database's owner (a
    script). ``should_stop`` is asked once the file is read and checked, before anything is stored."""
    if actor is not None:
        policy(db, actor).require(Action.IMPORT_LABELS)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    chosen = registry.parse(fmt) if fmt is not None else guess_format(path)
    if chosen in TABLE_FORMATS:
        return labelsets.import_labels(db, table_file(path, chosen.value), reader=reader, actor=actor,
                                       should_stop=should_stop)
    if reader is not None and reader.startswith("rater:"):
        reader = ReaderRef.parse(reader).key  # the other formats' readers take a rater's name
    parsed = registry.reader(chosen)(db, path, reader=reader)
    if should_stop():
        raise Cancelled("import cancelled: nothing was imported")
    return labelsets.apply_imported(db, parsed, source=str(path))


# ----------------------------------------------------------------------------------------------- choices
@dataclass(frozen=True)
class ExportChoices:
    """What the export dialog offers a rater."""

    formats: tuple[tuple[ExportFormat, bool], ...]  # every format, and whether this installation writes it
    readers: tuple[str, ...]  # the readers she may export (all checked by default)
    studies: tuple[str, ...]  # the reader studies whose reads she may export


def export_choices(db: Database, rater: Rater) -> ExportChoices:
    rules = policy(db, rater)
    rules.require(Action.EXPORT)
    installed = set(registry.available())
    readers = tuple(str(r) for r in reader_service.readers_visible_to(db, rater))
    studies: tuple[str, ...] = ()
    if rules.may_see_study_progress:
        from annotator.services.studies import list_studies

        studies = tuple(s.name for s in list_studies(db, rater))
    return ExportChoices(tuple((f, f in installed) for f in ExportFormat), readers, studies)
