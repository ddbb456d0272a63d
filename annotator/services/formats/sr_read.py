"""Read TID 1500 measurement reports with point regions back into labels: this app's own reports and
other producers' (OHIF's probe measurements, for example), walked as plain pydicom content trees so that
a report needs only the structure TID 1500 prescribes.

Per measurement group: the SCOORD ``POINT`` and the image it is selected from (x_px = column - 0.5,
y_px = row - 0.5: SCOORD's origin is the corner of the first pixel, the app's is the first pixel's
centre), or without a region the group's source image; the grade from a qualitative evaluation on the
project's scale; the level from a finding site. The reader is the group's or the document's observer: a
person observer's name, else a device observer's name (a rater of that name: imports never create models
or a consensus); ``reader`` (``rater:NAME``) overrides both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pydicom.errors
from pydicom.dataset import Dataset

from annotator.domain.errors import InputError
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import GradingScale, load_scale
from annotator.services.formats import ImportedLabel
from annotator.services.formats import sr_codes as c
from annotator.storage import people
from annotator.storage.database import Database

_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
}
_SOURCE_IMAGES = {("260753009", "SCT"), ("121112", "DCM")}  # Source; Source of Measurement


@dataclass(frozen=True)
class SrGroup:
    """One measurement group as read, before it becomes an :class:`ImportedLabel`."""

    where: str
    sop_uid: str
    observer: str | None
    x_px: float | None
    y_px: float | None
    grade: int | None
    cannot_grade: bool
    level: str | None
    cannot_grade_reason: str | None = None  # the CannotGrade value of the report's reason code, if known


def read(db: Database, path: Path, *, reader: str | None = None) -> list[ImportedLabel]:
    """Labels from one SR file or every SR file under a folder (other DICOM files there are left alone).
    InputError names the file of a structural problem; a cannot-grade group comes back with its reason
    (``cannot_grade``), which the import passes over unless it has a point."""
    scale = load_scale(people.get_settings(db).scale_code)
    override = None
    if reader:
        ref = ReaderRef.parse(reader)
        if ref.kind is not ReaderKind.RATER:
            raise InputError(f"--reader {reader}: SR labels can be imported as a rater's only")
        override = ref.key
    out: list[ImportedLabel] = []
    for group in read_groups(path, scale):
        name = override or group.observer
        if name is None:
            raise InputError(f"{group.where}: the report names no observer; pass --reader rater:NAME")
        if group.x_px is None and group.grade is None and not group.cannot_grade:
            continue  # nothing a reader said (the import would refuse it as an empty row)
        cannot = (group.cannot_grade_reason or "unknown reason") if group.cannot_grade else None
        out.append(ImportedLabel(where=group.where, sop_uid=group.sop_uid, reader=name, x_px=group.x_px,
                                 y_px=group.y_px, grade=group.grade, level=group.level, cannot_grade=cannot))
    return out


def read_groups(path: Path, scale: GradingScale) -> list[SrGroup]:
    path = Path(path)
    if path.is_dir():
        files = sorted(Path(root) / f for root, _, names in os.walk(path) for f in names)
        datasets = [(f, ds) for f in files if (ds := _dicom(f, quiet=True)) is not None]
        reports = [(f, ds) for f, ds in datasets if str(ds.get("SOPClassUID", "")) in _SR_CLASSES]
        if not reports:
            raise InputError(f"{path}: no DICOM SR file in this folder")
    else:
        ds = _dicom(path, quiet=False)
        assert ds is not None
        if str(ds.get("SOPClassUID", "")) not in _SR_CLASSES:
            raise InputError(f"{path}: not a DICOM SR document (SOP class {ds.get('SOPClassUID', 'missing')})")
        reports = [(path, ds)]
    root = path if path.is_dir() else path.parent
    return [g for f, ds in reports for g in _report_groups(f, str(f.relative_to(root)), ds, scale)]


def _dicom(path: Path, *, quiet: bool) -> Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError, ValueError) as exc:
        if quiet:
            return None
        raise InputError(f"{path}: not a readable DICOM file ({exc})") from exc


def _code(item: Dataset, keyword: str) -> tuple[str, str] | None:
    seq = item.get(keyword)
    if not seq:
        return None
    code = seq[0]
    return (str(code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue") or ""),
            str(code.get("CodingSchemeDesignator", "")))


def _name(item: Dataset) -> tuple[str, str] | None:
    return _code(item, "ConceptNameCodeSequence")


def _children(item: Dataset) -> list[Dataset]:
    return list(item.get("ContentSequence") or [])


def _walk(item: Dataset) -> Iterator[Dataset]:
    for child in _children(item):
        yield child
        yield from _walk(child)


def _observer(items: list[Dataset], default: str | None) -> str | None:
    """A person observer's name, else a device observer's, among these (context) items."""
    person = device = None
    for it in items:
        if _name(it) == c.PERSON_OBSERVER_NAME and it.get("PersonName"):
            person = str(it.PersonName).rstrip("^").strip() or None
        elif _name(it) == c.DEVICE_OBSERVER_NAME and it.get("TextValue"):
            device = str(it.TextValue).strip() or None
    name = person or device
    if name is None:
        return default
    return name.replace(":", "-").replace(",", " ")  # what a rater's name may not contain


def _report_groups(path: Path, name: str, ds: Dataset, scale: GradingScale) -> list[SrGroup]:
    """``name``: the file as messages name it (its path under the folder read, so that every reader's
    ``expert1.dcm`` of every study is told apart)."""
    if _name(ds) != c.key(c.REPORT_TITLE) and not any(
            str(t.get("TemplateIdentifier", "")) == "1500" for t in ds.get("ContentTemplateSequence") or []):
        raise InputError(f"{path}: not a TID 1500 measurement report (its root concept is {_name(ds)})")
    root_observer = _observer(_children(ds), None)
    containers = [it for it in _children(ds) if _name(it) == c.IMAGING_MEASUREMENTS]
    groups = [g for box in containers for g in _children(box) if _name(g) == c.MEASUREMENT_GROUP]
    out = []
    for k, group in enumerate(groups, start=1):
        where = f"{name}: item {k}"
        try:
            out.append(_group(where, group, scale, root_observer))
        except InputError as exc:
            raise InputError(f"{path}: item {k}: {exc}") from exc
    return out


def _group(where: str, group: Dataset, scale: GradingScale, root_observer: str | None) -> SrGroup:
    observer = _observer(_children(group), root_observer)
    x = y = None
    sop = None
    grade = None
    cannot = False
    reason: str | None = None
    level = None
    for item in _walk(group):
        name = _name(item)
        vtype = str(item.get("ValueType", ""))
        if vtype == "SCOORD":
            graphic = str(item.get("GraphicType", ""))
            if graphic != "POINT":
                raise InputError(f"its region is a {graphic or 'missing'} SCOORD; only a POINT is a canal centre")
            data = [float(v) for v in item.GraphicData]
            if len(data) != 2:
                raise InputError(f"a POINT needs one (column, row) pair, not {len(data) // 2}")
            if x is not None:
                raise InputError("the group has more than one point")
            x, y = data[0] - 0.5, data[1] - 0.5
            sop = _image_uid(item)
        elif vtype == "SCOORD3D":
            raise InputError("its region is a SCOORD3D (patient mm); only 2D image points are read")
        elif vtype == "IMAGE" and name in _SOURCE_IMAGES and sop is None and x is None:
            sop = _referenced_sop(item)
        elif vtype == "CODE":
            value = _code(item, "ConceptCodeSequence")
            if name is None or value is None:
                continue
            if name == c.key(c.CANNOT_GRADE):
                cannot = True
                reason = next((r.value for r, code in c.CANNOT_GRADE_REASONS.items() if c.key(code) == value), None)
            elif c.is_grade_concept(name):
                grade = c.grade_of(scale, name, value)
            elif name in (c.FINDING_SITE, c.TOPOGRAPHICAL_MODIFIER) and (lv := c.level_of(value)) is not None:
                level = lv.value
    if sop is None:
        raise InputError("the group references no image (no SCOORD point and no source image)")
    return SrGroup(where, sop, observer, x, y, None if cannot else grade, cannot, level, reason)


def _image_uid(scoord: Dataset) -> str:
    for child in _children(scoord):
        if str(child.get("ValueType", "")) == "IMAGE":
            return _referenced_sop(child)
    raise InputError("its point is not SELECTED FROM an image")


def _referenced_sop(image_item: Dataset) -> str:
    refs = image_item.get("ReferencedSOPSequence") or []
    if not refs or not refs[0].get("ReferencedSOPInstanceUID"):
        raise InputError("an IMAGE item without a referenced SOP instance")
    return str(refs[0].ReferencedSOPInstanceUID)
