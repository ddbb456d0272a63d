"""The RSNA 2024 lumbar spine challenge's files: ``train.csv``, ``train_label_coordinates.csv``,
``train_series_descriptions.csv`` and the images at ``train_images/<study_id>/<series_id>/<instance_number>.dcm``.

The challenge holds one grade per study, condition and level, and names no reader, so an export writes
one challenge-shaped folder per reader (the folder itself when there is one reader). Only the central
canal is graded here: ``spinal_canal_stenosis``; the other conditions' columns are written blank and
their rows are ignored on import.

- **Ids.** ``study_id`` and ``series_id`` are integers derived from the UIDs as the bundle writes them
  (``ctx.ids``: the pseudonyms of a de-identified bundle): a UID that is already a plain integer (as in
  the challenge's own files) is kept, any other is the first 8 bytes of its SHA-256 modulo 10^15. The
  same UID gives the same id in every export of every project, and an id reveals nothing the bundle's
  UIDs do not. ``instance_number`` is the DICOM InstanceNumber (the slice order, 1-based, in a series
  whose numbers are missing or repeated).
- **Grades.** A study's grade at a level is the **most severe** class among the reader's graded slices
  at that level (a level is graded by its narrowest point). Lee 0-1 -> Normal/Mild, 2 -> Moderate,
  3 -> Severe; Schizas A -> Normal/Mild, B -> Moderate, C-D -> Severe; the RSNA scale as it is. On import
  a class becomes the lowest grade that maps to it (Normal/Mild -> Lee 0 / Schizas A, Severe ->
  Schizas C): the round trip keeps RSNA classes, not the finer grades.
- **Coordinates.** One row per slice with a point and a level; ``x`` = column, ``y`` = row in pixels of
  that instance, the centre of the first pixel at (0, 0) (the app's own convention, and how the
  challenge's points land when plotted over ``imshow``), written at full precision.
- **Left out.** A slice without a level has no row in the challenge's files; such items are listed in
  ``left_out.csv`` (written only when there are some).

Import reads the same files and layout: the images through the normal importer, then every
``Spinal Canal Stenosis`` coordinate becomes a label of the named reader on the slice it references
(sagittal ones included), with the study's grade at that level from ``train.csv`` (none where the cell is
blank) and the level, set on slices that have none. A slice holds one label per reader, so where several
rows reference one instance (the challenge often puts all five levels on one sagittal slice) the first
row in file order is imported and the others are reported in a :class:`RsnaImportWarning`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from annotator.domain.entities import ImageRef, ImportStatus
from annotator.domain.errors import Cancelled, InputError, NotFound
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import GradingScale, load_scale
from annotator.domain.studies import Orientation, VertebralLevel, orientation_of
from annotator.services.formats import ExportContext, ExportItem, IdentityMap, ImportedLabel
from annotator.services.importing import import_paths
from annotator.storage import catalog, people
from annotator.storage.database import Database

TRAIN = "train.csv"
COORDINATES = "train_label_coordinates.csv"
SERIES_DESCRIPTIONS = "train_series_descriptions.csv"
IMAGES = "train_images"
LEFT_OUT = "left_out.csv"

CONDITION = "spinal_canal_stenosis"
CONDITION_TITLE = "Spinal Canal Stenosis"
CONDITIONS = (CONDITION, "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
              "left_subarticular_stenosis", "right_subarticular_stenosis")
# VertebralLevel -> (column suffix, coordinates' level)
LEVELS: dict[VertebralLevel, tuple[str, str]] = {
    lv: (lv.value.lower().replace("-", "_"), lv.value.replace("-", "/")) for lv in VertebralLevel}
TRAIN_COLUMNS = ("study_id", *(f"{c}_{LEVELS[lv][0]}" for c in CONDITIONS for lv in VertebralLevel))
COORDINATE_COLUMNS = ("study_id", "series_id", "instance_number", "condition", "level", "x", "y")
SERIES_COLUMNS = ("study_id", "series_id", "series_description")
CLASSES = ("Normal/Mild", "Moderate", "Severe")

# scale code -> the RSNA class index of each ordinal; and the ordinal each class comes back as
TO_RSNA: dict[str, dict[int, int]] = {
    "lee": {0: 0, 1: 0, 2: 1, 3: 2},
    "schizas": {0: 0, 1: 1, 2: 2, 3: 2},
    "rsna": {0: 0, 1: 1, 2: 2},
}
FROM_RSNA: dict[str, tuple[int, int, int]] = {"lee": (0, 2, 3), "schizas": (0, 1, 2), "rsna": (0, 1, 2)}
ID_MODULUS = 10**15
PLANE_TOLERANCE_DEG = 30.0  # oblique axial stacks (angled to the disc) still count as axial


class RsnaImportWarning(UserWarning):
    """Coordinate rows that could not become labels (a slice holds one label per reader)."""


def rsna_class(scale: GradingScale, ordinal: int) -> str:
    """The challenge's class of a grade on ``scale`` (InputError for a scale without a mapping)."""
    return CLASSES[_to_rsna(scale)[scale.grade(ordinal).ordinal]]


def grade_from_class(scale: GradingScale, text: str) -> int:
    """The grade on ``scale`` that a challenge class comes back as (the lowest that maps to it)."""
    try:
        k = CLASSES.index(text.strip())
    except ValueError:
        raise InputError(f"{text!r} is not a class of the challenge ({', '.join(CLASSES)})") from None
    _to_rsna(scale)
    return FROM_RSNA[scale.code][k]


def _to_rsna(scale: GradingScale) -> dict[int, int]:
    found = TO_RSNA.get(scale.code)
    if found is None:
        raise InputError(f"the {scale.name} scale has no mapping to the RSNA classes "
                         f"(mapped: {', '.join(sorted(TO_RSNA))})")
    return found


def rsna_id(uid: str) -> int:
    """A UID as a challenge id: a plain integer UID as it is, any other a 15-digit hash of it."""
    if uid.isdigit() and not uid.startswith("0") and len(uid) <= 15:
        return int(uid)
    return int.from_bytes(hashlib.sha256(uid.encode("utf-8")).digest()[:8], "big") % ID_MODULUS


def series_description(images: Sequence[ImageRef], own: str) -> str:
    """The challenge's description of a series: "Axial T2", "Sagittal T1" or "Sagittal T2/STIR" by the
    plane of its slices (and T1 named in its own description); other series keep their own."""
    planes = {orientation_of(im.geometry.image_orientation, PLANE_TOLERANCE_DEG) for im in images}
    if planes == {Orientation.AXIAL}:
        return "Axial T2"
    if planes == {Orientation.SAGITTAL}:
        return "Sagittal T1" if re.search(r"T1(?![0-9])", own, re.IGNORECASE) else "Sagittal T2/STIR"
    return own


# --------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class _Ids:
    study: int
    series: int
    instance: int


def write(ctx: ExportContext) -> list[Path]:
    """Write the challenge's files for every reader in ``ctx.items``: into ``ctx.out_dir`` for one
    reader, else into one folder per reader named after it."""
    by_reader: dict[ReaderRef, list[ExportItem]] = {}
    for item in ctx.items:
        by_reader.setdefault(item.reader, []).append(item)
    if len(by_reader) <= 1:
        return _write_reader(ctx, list(ctx.items), ctx.out_dir)
    paths: list[Path] = []
    used: set[str] = set()
    for items in by_reader.values():
        name = _folder_name(items[0].reader_label, used)
        paths += _write_reader(ctx, items, ctx.out_dir / name)
    return paths


def _folder_name(label: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "reader"
    name, k = base, 2
    while name.casefold() in used:
        name, k = f"{base}_{k}", k + 1
    used.add(name.casefold())
    return name


def _instance_numbers(images: Sequence[ImageRef]) -> dict[int, int]:
    """image id -> the number its file is named by in the series' folder."""
    numbers = [im.instance_number for im in images]
    if all(n is not None and n > 0 for n in numbers) and len(set(numbers)) == len(numbers):
        return {im.id: int(im.instance_number or 0) for im in images}
    return {im.id: im.slice_index + 1 for im in images}


def _write_reader(ctx: ExportContext, items: Sequence[ExportItem], folder: Path) -> list[Path]:
    scale, ids = ctx.scale, ctx.ids
    _to_rsna(scale)
    folder.mkdir(parents=True, exist_ok=True)
    kept = [it for it in items if it.image.level is not None]
    left_out = [it for it in items if it.image.level is None]
    studies = {it.image.study_instance_uid for it in kept}
    all_images = [im for im in catalog.images(ctx.db) if im.study_instance_uid in studies]
    by_series: dict[int, list[ImageRef]] = {}
    for im in all_images:
        by_series.setdefault(im.series_id, []).append(im)
    numbers: dict[int, int] = {}
    for images in by_series.values():
        numbers.update(_instance_numbers(images))

    def ids_of(im: ImageRef) -> _Ids:
        return _Ids(rsna_id(ids.uid(im.study_instance_uid)), rsna_id(ids.uid(im.series_instance_uid)),
                    numbers[im.id])

    _check_unique(ctx.ids, all_images)
    worst: dict[tuple[int, VertebralLevel], int] = {}
    coords: set[tuple[int, int, int, int, float, float]] = set()
    for it in kept:
        lv = VertebralLevel(it.image.level or "")
        i = ids_of(it.image)
        if it.mark.grade is not None:
            k = _to_rsna(scale)[it.mark.grade]
            worst[(i.study, lv)] = max(k, worst.get((i.study, lv), 0))
        if it.mark.x_px is not None and it.mark.y_px is not None:
            coords.add((i.study, list(VertebralLevel).index(lv), i.series, i.instance, it.mark.x_px, it.mark.y_px))
    study_ids = sorted({rsna_id(ids.uid(s)) for s in studies})
    train = [{"study_id": s, **{f"{CONDITION}_{LEVELS[lv][0]}": CLASSES[worst[(s, lv)]]
                                 for lv in VertebralLevel if (s, lv) in worst}} for s in study_ids]
    level_list = list(VertebralLevel)
    coordinate_rows = [{"study_id": s, "series_id": se, "instance_number": n, "condition": CONDITION_TITLE,
                        "level": LEVELS[level_list[lv]][1], "x": repr(float(x)), "y": repr(float(y))}
                       for s, lv, se, n, x, y in sorted(coords)]
    written = _copy_images(ctx, by_series, ids_of, folder / IMAGES)
    own_description = {s.id: s.description for s in catalog.list_series(ctx.db)}
    series_rows = []
    for sid, images in by_series.items():
        if any(im.id in written for im in images):
            own = own_description.get(sid, "")
            i = ids_of(images[0])
            series_rows.append({"study_id": i.study, "series_id": i.series,
                                "series_description": series_description(images, own)})
    series_rows.sort(key=lambda r: (r["study_id"], r["series_id"]))
    paths = [_write_csv(folder / TRAIN, TRAIN_COLUMNS, train),
             _write_csv(folder / COORDINATES, COORDINATE_COLUMNS, coordinate_rows),
             _write_csv(folder / SERIES_DESCRIPTIONS, SERIES_COLUMNS, series_rows)]
    if left_out:
        rows = [{"reader": it.reader_label, "sop_instance_uid": ids.uid(it.image.sop_instance_uid),
                 "reason": "the slice has no vertebral level"} for it in left_out]
        paths.append(_write_csv(folder / LEFT_OUT, ("reader", "sop_instance_uid", "reason"), rows))
    return paths + sorted(written.values())


def _check_unique(ids: IdentityMap, images: Iterable[ImageRef]) -> None:
    seen: dict[int, str] = {}
    for im in images:
        for uid in (ids.uid(im.study_instance_uid), ids.uid(im.series_instance_uid)):
            other = seen.setdefault(rsna_id(uid), uid)
            if other != uid:
                raise InputError(f"UIDs {other} and {uid} hash to the same RSNA id {rsna_id(uid)}")


def _copy_images(ctx: ExportContext, by_series: dict[int, list[ImageRef]], ids_of: Callable[[ImageRef], _Ids],
                 root: Path) -> dict[int, Path]:
    """Copy every slice of the exported studies into the challenge's layout, as the bundle has it: a
    de-identified bundle never receives an original file (a slice it holds no copy of is left out)."""
    images = [im for series in by_series.values() for im in series]
    out: dict[int, Path] = {}
    for done, im in enumerate(images, start=1):
        if ctx.should_stop():
            raise Cancelled("RSNA export stopped")
        try:
            src = Path(ctx.ids.source(im))
        except (KeyError, NotFound):
            continue
        if ctx.ids.deidentified and src.resolve() == Path(im.path).resolve():
            continue
        i = ids_of(im)
        dest = root / str(i.study) / str(i.series) / f"{i.instance}.dcm"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, dest)
        except OSError as exc:
            raise InputError(f"{src}: cannot copy into the RSNA layout ({exc.strerror or exc})") from exc
        out[im.id] = dest
        ctx.progress(done, len(images), f"RSNA images: {dest.relative_to(root)}")
    return out


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", restval="")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- import


def read(db: Database, path: Path, *, reader: str | None) -> list[ImportedLabel]:
    """Import a challenge-shaped folder (or one of its CSVs): its images through the normal importer, its
    canal coordinates as labels of ``reader`` with the grades of ``train.csv``. Structural problems
    (missing files or columns, unknown classes or levels, coordinates on images that were not imported)
    raise InputError naming the file and line."""
    name = _reader_name(reader)
    folder = path if path.is_dir() else path.parent
    scale = load_scale(people.get_settings(db).scale_code)
    _to_rsna(scale)
    grades = _read_train(folder / TRAIN, scale)
    rows = _read_coordinates(folder / COORDINATES)
    root = folder / IMAGES if (folder / IMAGES).is_dir() else folder
    by_key = _import_images(db, root)
    out: list[ImportedLabel] = []
    first: dict[str, int] = {}
    problems: list[str] = []
    skipped: list[str] = []
    for line, key, level, x, y in rows:
        sop = by_key.get(key)
        if sop is None:
            problems.append(f"{COORDINATES}: line {line}: no image {IMAGES}/{key[0]}/{key[1]}/{key[2]}.dcm "
                            "was imported")
            continue
        if sop in first:
            skipped.append(f"line {line} ({LEVELS[level][1]}; line {first[sop]} holds the slice's label)")
            continue
        first[sop] = line
        out.append(ImportedLabel(where=f"{COORDINATES}: line {line}", sop_uid=sop, reader=name, x_px=x, y_px=y,
                                 grade=grades.get((key[0], level)), level=level.value))
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError("; ".join(problems[:3]) + more)
    if skipped:
        warnings.warn(RsnaImportWarning(
            f"{COORDINATES}: {len(skipped)} rows on a slice that already has this reader's label were not "
            f"imported: {', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}"), stacklevel=2)
    return out


def _reader_name(reader: str | None) -> str:
    text = (reader or "").strip()
    if not text:
        raise InputError("the RSNA files name no reader: name the rater to import them as")
    if ":" not in text and text != "consensus":
        return text
    ref = ReaderRef.parse(text)
    if ref.kind is not ReaderKind.RATER:
        raise InputError(f"reader {ref}: labels are imported as a rater's (models and consensus never are)")
    return ref.key


def _open_csv(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: missing (an RSNA folder holds {TRAIN}, {COORDINATES} and {IMAGES}/)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    rd = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (rd.fieldnames or [])]
    if missing:
        raise InputError(f"{path.name}: line 1: missing columns {', '.join(missing)}")
    return [(i + 2, row) for i, row in enumerate(rd)]


def _int(path: Path, line: int, column: str, text: str | None) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise InputError(f"{path.name}: line {line}: {column} {text!r} is not an integer") from None


def _read_train(path: Path, scale: GradingScale) -> dict[tuple[int, VertebralLevel], int]:
    """(study_id, level) -> grade on ``scale``, for the canal's non-blank cells."""
    out: dict[tuple[int, VertebralLevel], int] = {}
    for line, row in _open_csv(path, ("study_id",)):
        study = _int(path, line, "study_id", row.get("study_id"))
        for lv, (suffix, _) in LEVELS.items():
            text = (row.get(f"{CONDITION}_{suffix}") or "").strip()
            if text:
                try:
                    out[(study, lv)] = grade_from_class(scale, text)
                except InputError as exc:
                    raise InputError(f"{path.name}: line {line}: {CONDITION}_{suffix}: {exc}") from None
    return out


_LEVEL_TEXT = {text.casefold(): lv for lv, (_, text) in LEVELS.items()}


def _read_coordinates(path: Path) -> list[tuple[int, tuple[int, int, int], VertebralLevel, float, float]]:
    """(line, (study, series, instance), level, x, y) of every canal row, in file order."""
    out = []
    for line, row in _open_csv(path, COORDINATE_COLUMNS):
        if re.sub(r"[\s_]+", "_", (row["condition"] or "").strip()).casefold() != CONDITION:
            continue
        level = _LEVEL_TEXT.get((row["level"] or "").strip().casefold())
        if level is None:
            raise InputError(f"{path.name}: line {line}: level {row['level']!r} is not one of "
                             f"{', '.join(t for _, t in LEVELS.values())}")
        key = tuple(_int(path, line, c, row[c]) for c in ("study_id", "series_id", "instance_number"))
        try:
            x, y = float(row["x"]), float(row["y"])
        except (TypeError, ValueError):
            raise InputError(f"{path.name}: line {line}: x {row['x']!r} and y {row['y']!r} must be numbers") from None
        out.append((line, (key[0], key[1], key[2]), level, x, y))
    return out


def _import_images(db: Database, root: Path) -> dict[tuple[int, int, int], str]:
    """Import the folder's images; (study_id, series_id, instance_number) -> SOPInstanceUID of every file
    laid out as ``<study_id>/<series_id>/<instance_number>.dcm`` that is in the project now."""
    base = root.resolve()
    out: dict[tuple[int, int, int], str] = {}
    for r in import_paths(db, [root]):
        if r.status is ImportStatus.REJECTED or not r.sop_instance_uid:
            continue
        try:
            parts = Path(r.path).resolve().relative_to(base).parts
        except ValueError:
            continue
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() and parts[2].lower().endswith(".dcm"):
            stem = parts[2][:-4]
            if stem.isdigit():
                out[(int(parts[0]), int(parts[1]), int(stem))] = r.sop_instance_uid
    return out
