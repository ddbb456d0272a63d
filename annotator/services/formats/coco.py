"""COCO keypoints with PNG renderings, for ML code: ``annotations.json`` and ``images/<SOPInstanceUID>.png``.

- **Images.** One 8-bit greyscale PNG per slice that has an annotation, rendered with the series' default
  window (the DICOM window, else the viewer's automatic 1-99 % one: what the app shows first); MONOCHROME1
  is inverted so bright is always high. File names and the image records' UIDs and patient id come
  through ``ctx.ids`` (pseudonyms in a de-identified bundle); a PNG carries pixels only.
- **Categories.** One category, ``spinal_canal``, with one keypoint, ``canal_centre``; the grade is an
  attribute (as CVAT writes attributes). A category per grade would make the class list depend on the
  project's scale, give a grade-only label (no point) and a point-only label no consistent home, and
  split one anatomical structure across categories, which keypoint detectors (one skeleton per
  category) do not expect; a grading head reads ``attributes.grade`` instead.
- **Annotations.** One per slice and reader: ``keypoints`` ``[x, y, 2]`` (``[0, 0, 0]`` without a point),
  a nominal ``bbox`` of ``BOX_MM`` around the point (the patch a detector learns; none without a point),
  and ``attributes`` with the reader (``rater:NAME``, ``model:ID``, ``consensus``), its label, the
  grade (the scale's ordinal), its label and scale, the version, when it was labelled, the level, and
  a reader-study read's ``cannot_grade`` and ``study``.
- **Pixels.** Keypoints are the app's coordinates unchanged: x = column, y = row, the centre of the
  top-left pixel at (0, 0): COCO keypoints' pixel-index convention (detectron2 adds 0.5 when it loads
  them). Boxes follow COCO's continuous convention (origin at the top-left corner of the top-left
  pixel), so a box around the point (x, y) is centred on (x + 0.5, y + 0.5). ``info`` says both.

Import reads the keypoints back as labels: each annotation's reader when it is a rater (a model's or the
consensus' only under a rater name the user gives), its point, grade (on the project's scale), level,
version and time. A reader-study "cannot grade" read without a point has no label to become and is
passed over.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from annotator.domain.entities import ImageRef
from annotator.domain.errors import AnnotatorError, Cancelled, InputError, NotFound
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import load_scale
from annotator.domain.studies import VertebralLevel
from annotator.services.formats import ExportContext, ExportItem, ImportedLabel
from annotator.services.viewing import decode_slice
from annotator.storage import people
from annotator.storage.database import Database

ANNOTATIONS = "annotations.json"
IMAGES = "images"
CATEGORY_ID = 1
KEYPOINT = "canal_centre"
CATEGORY = {"id": CATEGORY_ID, "name": "spinal_canal", "supercategory": "spine", "keypoints": [KEYPOINT],
            "skeleton": []}
BOX_MM = 32.0  # about twice a normal dural sac: the patch around the canal a detector is trained on
BOX_PX = 64.0  # the box's side where PixelSpacing is unknown
PIXEL_CONVENTION = (
    "keypoints: x = column, y = row in pixels of the PNG (the DICOM instance's pixel grid), the centre of "
    "the top-left pixel at (0, 0) (COCO keypoints' pixel-index convention; add 0.5 for continuous "
    "coordinates); bbox: COCO's continuous convention, origin at the top-left corner of the top-left "
    "pixel, so the nominal box around a point (x, y) is centred on (x + 0.5, y + 0.5)")
GRADE_ENCODING = (
    "one category 'spinal_canal' with one keypoint 'canal_centre'; the grade is attributes.grade (the "
    "ordinal on info.scale), not a category, so the classes do not depend on the scale and a label "
    "without a point or without a grade keeps its category")


def write(ctx: ExportContext) -> list[Path]:
    """Write ``annotations.json`` and one PNG per annotated slice into ``ctx.out_dir``."""
    ids = ctx.ids
    images: dict[int, ImageRef] = {}
    for item in ctx.items:
        images.setdefault(item.image.id, item.image)
    ordered = sorted(images.values(), key=lambda im: (ids.uid(im.study_instance_uid),
                                                      ids.uid(im.series_instance_uid), im.slice_index))
    coco_id = {im.id: k for k, im in enumerate(ordered, start=1)}
    (ctx.out_dir / IMAGES).mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    records = []
    for done, im in enumerate(ordered, start=1):
        if ctx.should_stop():
            raise Cancelled("COCO export stopped")
        name = f"{IMAGES}/{ids.uid(im.sop_instance_uid)}.png"
        record, png = _render(ctx, im)
        (ctx.out_dir / name).write_bytes(png)
        paths.append(ctx.out_dir / name)
        records.append({"id": coco_id[im.id], "file_name": name, **record})
        ctx.progress(done, len(ordered), f"COCO images: {name}")
    items = sorted(ctx.items, key=lambda it: (coco_id[it.image.id], str(it.reader)))
    annotations = [_annotation(k, coco_id[it.image.id], it, ctx) for k, it in enumerate(items, start=1)]
    data = {"info": _info(ctx), "licenses": [], "images": records, "annotations": annotations,
            "categories": [CATEGORY]}
    out = ctx.out_dir / ANNOTATIONS
    out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return [out, *paths]


def _info(ctx: ExportContext) -> dict[str, Any]:
    scale = ctx.scale
    return {
        "description": "Lumbar spinal canal: centre keypoint and stenosis grade per slice and reader",
        "version": "1.0", "year": datetime.now(UTC).year, "contributor": "annotator",
        "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        "pixel_convention": PIXEL_CONVENTION, "grade_encoding": GRADE_ENCODING,
        "rendering": "8-bit PNG with the series' default window (DICOM window, else 1-99 % percentiles); "
                     "MONOCHROME1 inverted",
        "scale": {"code": scale.code, "name": scale.name,
                  "grades": [{"ordinal": g.ordinal, "label": g.label, "name": g.name} for g in scale.grades]},
        "deidentified": ctx.ids.deidentified,
    }


def _render(ctx: ExportContext, im: ImageRef) -> tuple[dict[str, Any], bytes]:
    """The image record's fields and the PNG of ``im`` (pixels from the bundle's copy where it has one)."""
    try:
        src = str(ctx.ids.source(im))
    except (KeyError, NotFound):
        src = im.path  # the pixels are the same; a PNG carries nothing else
    try:
        decoded = decode_slice(replace(im, path=src))
    except AnnotatorError as exc:
        raise InputError(f"{src}: cannot render slice {ctx.ids.uid(im.sop_instance_uid)} ({exc})") from exc
    lo, hi = decoded.default_window.levels
    grey = np.clip((decoded.pixels - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    if decoded.inverted:
        grey = 1.0 - grey
    g = im.geometry
    record = {
        "width": g.columns, "height": g.rows,
        "sop_instance_uid": ctx.ids.uid(im.sop_instance_uid),
        "series_instance_uid": ctx.ids.uid(im.series_instance_uid),
        "study_instance_uid": ctx.ids.uid(im.study_instance_uid),
        "patient_id": ctx.ids.patient(im.patient_key),
        "instance_number": im.instance_number, "level": im.level,
        "pixel_spacing": list(g.pixel_spacing) if g.pixel_spacing else None,
        "window": {"center": decoded.default_window.center, "width": decoded.default_window.width,
                   "source": decoded.default_source},
    }
    return record, png_grey8(np.rint(grey * 255.0).astype(np.uint8))


def png_grey8(pixels: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of a rows x columns uint8 array (deterministic bytes)."""
    rows, cols = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + np.ascontiguousarray(pixels[r]).tobytes() for r in range(rows))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _box(im: ImageRef, x: float, y: float) -> list[float]:
    """The nominal BOX_MM square centred on the point (COCO's continuous coordinates), clipped to the image."""
    sp = im.geometry.pixel_spacing
    w, h = (BOX_MM / sp[1], BOX_MM / sp[0]) if sp else (BOX_PX, BOX_PX)
    cx, cy = x + 0.5, y + 0.5
    x0, y0 = max(cx - w / 2, 0.0), max(cy - h / 2, 0.0)
    x1, y1 = min(cx + w / 2, float(im.geometry.columns)), min(cy + h / 2, float(im.geometry.rows))
    return [x0, y0, x1 - x0, y1 - y0]


def _annotation(k: int, image_id: int, it: ExportItem, ctx: ExportContext) -> dict[str, Any]:
    m = it.mark
    has_point = m.x_px is not None and m.y_px is not None
    bbox = _box(it.image, float(m.x_px or 0.0), float(m.y_px or 0.0)) if has_point else [0.0, 0.0, 0.0, 0.0]
    return {
        "id": k, "image_id": image_id, "category_id": CATEGORY_ID,
        "keypoints": [m.x_px, m.y_px, 2] if has_point else [0, 0, 0], "num_keypoints": int(has_point),
        "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0,
        "attributes": {
            "reader": str(it.reader), "reader_label": it.reader_label,
            "grade": m.grade, "grade_label": ctx.scale.label(m.grade) if m.grade is not None else None,
            "scale": ctx.scale.code, "version": m.version, "labelled_at": m.labelled_at,
            "level": it.image.level, "cannot_grade": it.cannot_grade, "study": it.study,
        },
    }


# --------------------------------------------------------------------------------------------- import


def read(db: Database, path: Path, *, reader: str | None) -> list[ImportedLabel]:
    """The keypoint annotations of a COCO file (or the folder holding ``annotations.json``) as labels.

    ``reader`` None: each annotation's own reader, which must be a rater; else every annotation becomes
    that rater's. Structural problems raise InputError naming the file and item."""
    file = path / ANNOTATIONS if path.is_dir() else path
    data = _load(file)
    scale_code = people.get_settings(db).scale_code
    load_scale(scale_code)
    override = _rater_name(reader) if reader is not None and reader.strip() else None
    sops = _image_uids(file, data["images"])
    keypoint_at = {c.get("id"): c["keypoints"].index(KEYPOINT) for c in data.get("categories") or []
                   if isinstance(c, dict) and KEYPOINT in (c.get("keypoints") or [])}
    if not keypoint_at:
        raise InputError(f"{file.name}: no category has the keypoint {KEYPOINT!r}")
    out: list[ImportedLabel] = []
    seen: dict[tuple[str, str], int] = {}
    for n, ann in enumerate(data["annotations"], start=1):
        where = f"{file.name}: item {n}"
        if not isinstance(ann, dict) or ann.get("category_id") not in keypoint_at:
            continue
        try:
            label = _label(where, ann, keypoint_at[ann["category_id"]], sops, override, scale_code)
        except (InputError, ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{where}: {exc}") from None
        if label is None:
            continue
        other = seen.setdefault((label.sop_uid, label.reader), n)
        if other != n:
            raise InputError(f"{where}: slice {label.sop_uid} already has a label of {label.reader} (item {other}); "
                             "a slice holds one label per reader")
        out.append(label)
    return out


def _load(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{file}: missing (a COCO export holds {ANNOTATIONS} and {IMAGES}/)") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise InputError(f"{file.name}: a COCO file needs 'images' and 'annotations' lists")
    return data


def _image_uids(file: Path, images: list[Any]) -> dict[Any, str]:
    """COCO image id -> SOPInstanceUID (the record's ``sop_instance_uid``, else its file name's stem)."""
    out = {}
    for n, rec in enumerate(images, start=1):
        if not isinstance(rec, dict) or "id" not in rec:
            raise InputError(f"{file.name}: image {n} has no id")
        uid = rec.get("sop_instance_uid") or Path(str(rec.get("file_name") or "")).stem
        if not uid:
            raise InputError(f"{file.name}: image {n} names no sop_instance_uid")
        out[rec["id"]] = str(uid)
    return out


def _rater_name(text: str) -> str:
    t = text.strip()
    if ":" not in t and t != "consensus":
        return t
    ref = ReaderRef.parse(t)
    if ref.kind is not ReaderKind.RATER:
        raise InputError(f"reader {ref}: only rater labels can be imported; name the rater to import "
                         "a model's or the consensus' labels as")
    return ref.key


def _label(where: str, ann: dict[str, Any], k: int, sops: dict[Any, str], override: str | None,
           scale_code: str) -> ImportedLabel | None:
    """The annotation as a label; None for a reader-study "cannot grade" read without a point (a label
    cannot hold it)."""
    attrs = ann.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise InputError("attributes must be an object")
    name = override if override is not None else _rater_name(str(attrs.get("reader") or ""))
    if not name:
        raise InputError("the annotation names no reader: name the rater to import it as")
    if ann.get("image_id") not in sops:
        raise InputError(f"image_id {ann.get('image_id')!r} is not in the file's images")
    kp = ann.get("keypoints") or []
    x = y = None
    if len(kp) >= 3 * k + 3 and kp[3 * k + 2]:
        x, y = float(kp[3 * k]), float(kp[3 * k + 1])
    grade = attrs.get("grade")
    if grade is not None:
        file_scale = str(attrs.get("scale") or scale_code)
        if file_scale != scale_code:
            raise InputError(f"scale {file_scale!r} differs from the project's {scale_code!r}")
        grade = int(grade)
    cannot = str(attrs["cannot_grade"]) if attrs.get("cannot_grade") else None
    level = attrs.get("level")
    if level:
        VertebralLevel.parse(str(level))
    version = attrs.get("version")
    when = attrs.get("labelled_at")
    return ImportedLabel(where=where, sop_uid=sops[ann["image_id"]], reader=name, x_px=x, y_px=y, grade=grade,
                         level=str(level) if level else None, version=int(version) if version else None,
                         created_at=datetime.fromisoformat(str(when)) if when else None, cannot_grade=cannot)
