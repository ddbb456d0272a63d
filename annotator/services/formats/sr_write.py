"""Write DICOM SR measurement reports (TID 1500), one per DICOM study and reader, with highdicom.

Each report: root "Imaging Measurement Report" (DCM 126000); observation context (a rater is a person
observer; a model a device observer, with its algorithm identification in each group; the consensus a
device observer named "consensus"); procedure reported; an Image Library of the study's labelled slices;
"Imaging Measurements" with one measurement group per slice: tracking identifier and UID, an SCOORD
POINT on the slice (TID 1410; a grade without a point: TID 1501 with the slice as its source image),
finding sites spinal canal and the slice's level, the grade or "cannot grade" as a qualitative
evaluation (codes: :mod:`sr_codes`).

Identifiers: the slice's SOP, series and study UIDs go through ``ctx.ids.uid``; everything else the
report takes from a slice (patient and study attributes, frame of reference, geometry) comes from
``ctx.ids.source(image)``, the bundle's (de-identified) copy of the file.

Speed: building each report with highdicom takes tens of milliseconds (73 s for the study's 542 slices
x 3 readers), so highdicom builds every distinct piece once (a reader's document, a measurement group
per shape, the image library's descriptors per value: :mod:`sr_library`) and each report is joined from
those pieces as bytes (:mod:`sr_bytes`) with its slices' identifiers and coordinates; a test proves the
file equals highdicom's own document for the same labels, element by element.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pydicom.errors
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from annotator.domain.errors import Cancelled, InputError
from annotator.domain.readers import ReaderKind
from annotator.domain.scales import GradingScale
from annotator.domain.studies import CannotGrade, VertebralLevel
from annotator.services.formats import ExportContext, ExportItem, sr_bytes
from annotator.services.formats import sr_codes as c
from annotator.services.formats.sr_library import LibraryBuilder, plain
from annotator.storage import models_repo

SR_SERIES_NUMBER = 900  # + the reader's index among the export's readers
_PH_SOP = "1.2.826.0.1.3680043.8.498.999999991"  # placeholders in the cached pieces, replaced per slice
_PH_TRACKING_UID = "1.2.826.0.1.3680043.8.498.999999992"
_PH_TRACKING_ID = "@@tracking@@"
_SEQ_GROUPS = ("126010", "DCM")  # Imaging Measurements
_SEQ_LIBRARY = ("111028", "DCM")  # Image Library
_EQUIPMENT = ("SOPClassUID", "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "DeviceSerialNumber",
              "InstitutionName", "InstitutionalDepartmentName", "InstitutionAddress", "StationName",
              "AcquisitionDateTime")  # what highdicom's item for the scanner depends on (a DA/TM pair only as dates)
_TYPE2_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                "StudyDate", "StudyTime", "ReferringPhysicianName")


_Group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations


@dataclass(frozen=True)
class _Shape:
    """What makes one measurement group's structure differ from another's (its values aside)."""

    sop_class: str
    point: bool
    grade: int | None
    cannot_grade: CannotGrade | None
    level: VertebralLevel | None
    session: str | None


@dataclass
class _Observer:
    label: str
    context: hd.sr.ObservationContext
    algorithm: hd.sr.AlgorithmIdentification | None


def write(ctx: ExportContext) -> list[Path]:
    """Write ``sr/<study UID>/<reader>.dcm`` under ``ctx.out_dir`` for every (DICOM study, reader) with
    items; UIDs through ``ctx.ids``, patient and study attributes from ``ctx.ids.source(image)``."""
    reports: dict[tuple[str, str], list[ExportItem]] = {}
    for it in ctx.items:
        if it.cannot_grade is None and it.mark.grade is None and it.mark.x_px is None:
            continue
        reports.setdefault((it.image.study_instance_uid, it.reader_label), []).append(it)
    writer = _Writer(ctx)
    series_numbers = {label: SR_SERIES_NUMBER + i for i, label in enumerate(sorted({r for _, r in reports}))}
    out: list[Path] = []
    total = len(reports)
    ctx.progress(0, total, "DICOM SR")
    for done, ((study_uid, label), items) in enumerate(sorted(reports.items()), start=1):
        if ctx.should_stop():
            raise Cancelled("DICOM SR export stopped")
        items.sort(key=lambda it: (it.image.series_instance_uid, it.image.slice_index, it.image.id))
        doc = writer.document(label, items, series_numbers[label])
        path = ctx.out_dir / "sr" / _file_part(ctx.ids.uid(study_uid)) / f"{_file_part(label)}.dcm"
        if path in out:
            path = path.with_name(f"{path.stem}-{hashlib.sha1(label.encode()).hexdigest()[:8]}.dcm")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(doc)
        out.append(path)
        ctx.progress(done, total, f"DICOM SR {path.parent.name}/{path.name}")
    return out


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "reader"


class _Writer:
    """Builds reports for one export; caches the pieces highdicom builds (see the module docstring)."""

    def __init__(self, ctx: ExportContext) -> None:
        self.ctx = ctx
        self.scale: GradingScale = ctx.scale
        self.now = dt.datetime.now()
        self._headers: dict[int, Dataset] = {}
        self._observers: dict[str, _Observer] = {}
        self._groups: dict[tuple[str, _Shape], _GroupStamp] = {}
        self._documents: dict[str, _DocStamp] = {}
        self._studies: dict[tuple[str, ...], _StudyPart] = {}
        self._equipment: dict[tuple[str, ...], Dataset | None] = {}
        self._library = LibraryBuilder()

    # -- inputs ---------------------------------------------------------------------------------------

    def header(self, item: ExportItem) -> Dataset:
        """The slice's DICOM header as the bundle has it, with its UIDs as the bundle names them."""
        im = item.image
        if im.id not in self._headers:
            src = self.ctx.ids.source(im)
            try:
                ds = pydicom.dcmread(src, stop_before_pixels=True)
            except (OSError, pydicom.errors.InvalidDicomError) as exc:
                raise InputError(f"{src}: cannot read the slice's DICOM file for the SR ({exc})") from exc
            ids = self.ctx.ids
            ds.SOPInstanceUID = ids.uid(im.sop_instance_uid)
            ds.SeriesInstanceUID = ids.uid(im.series_instance_uid)
            ds.StudyInstanceUID = ids.uid(im.study_instance_uid)
            self._headers[im.id] = ds
        return self._headers[im.id]

    def observer(self, item: ExportItem) -> _Observer:
        label = item.reader_label
        if label in self._observers:
            return self._observers[label]
        kind = item.reader.kind
        algorithm = None
        if kind is ReaderKind.RATER:
            name = label if "^" in label else f"{label}^"  # one-component person name, stated explicitly
            context = hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(
                observer_type=hd.sr.CodedConcept.from_code(c.PERSON),
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=name)))
        else:
            if kind is ReaderKind.MODEL:
                model = models_repo.get(self.ctx.db, int(item.reader.key))
                uid = generate_uid(entropy_srcs=["annotator model", str(model.id), model.weights_sha256])
                model_name = f"{model.preset} preset"
                algorithm = hd.sr.AlgorithmIdentification(name=model.name, version=str(model.id),
                                                          parameters=[f"preset={model.preset}"],
                                                          manufacturer=c.DEVICE_MANUFACTURER)
            else:
                uid = generate_uid(entropy_srcs=["annotator consensus"])
                model_name = "consensus rule"
            context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
                observer_type=hd.sr.CodedConcept.from_code(c.DEVICE),
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                    uid=uid, name=label, manufacturer_name=c.DEVICE_MANUFACTURER, model_name=model_name)))
        self._observers[label] = _Observer(label, context, algorithm)
        return self._observers[label]

    def shape(self, item: ExportItem) -> _Shape:
        cannot = CannotGrade(item.cannot_grade) if item.cannot_grade is not None else None
        level = VertebralLevel(item.image.level) if item.image.level else None
        return _Shape(str(self.header(item).SOPClassUID), item.mark.x_px is not None and item.mark.y_px is not None,
                      None if cannot is not None else item.mark.grade, cannot, level, item.study)

    # -- pieces built by highdicom --------------------------------------------------------------------

    def hd_group(self, observer: _Observer, shape: _Shape, sop_uid: str = _PH_SOP, tracking_uid: str = _PH_TRACKING_UID,
                 tracking_id: str = _PH_TRACKING_ID, point: tuple[float, float] = (0.5, 0.5)) -> _Group:
        """One slice's measurement group, as highdicom builds it."""
        evaluations = []
        if shape.cannot_grade is not None:
            evaluations.append(hd.sr.QualitativeEvaluation(c.CANNOT_GRADE, c.CANNOT_GRADE_REASONS[shape.cannot_grade]))
        elif shape.grade is not None:
            evaluations.append(hd.sr.QualitativeEvaluation(c.grade_concept(self.scale),
                                                           c.grade_value(self.scale, shape.grade)))
        sites = [hd.sr.FindingSite(c.SPINAL_CANAL)]
        if shape.level is not None:
            sites.append(hd.sr.FindingSite(c.LEVEL_CODES[shape.level]))
        common: dict[str, Any] = {
            "tracking_identifier": hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=tracking_id),
            "finding_sites": sites, "qualitative_evaluations": evaluations or None,
            "algorithm_id": observer.algorithm, "session": shape.session}
        if shape.point:
            region = hd.sr.ImageRegion(hd.sr.GraphicTypeValues.POINT, np.array([point]),
                                       hd.sr.SourceImageForRegion(shape.sop_class, sop_uid))
            return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=region, **common)
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            source_images=[hd.sr.SourceImageForMeasurementGroup(shape.sop_class, sop_uid)], **common)

    def hd_document(self, observer: _Observer, headers: Sequence[Dataset], groups: Sequence[_Group],
                    series_uid: str, sop_uid: str, series_number: int) -> hd.sr.Comprehensive3DSR:
        """A whole report as highdicom builds it (the reference the fast path is tested against)."""
        report = hd.sr.MeasurementReport(observation_context=observer.context, procedure_reported=c.PROCEDURE,
                                         imaging_measurements=list(groups), title=c.REPORT_TITLE,
                                         referenced_images=list(headers))
        return hd.sr.Comprehensive3DSR(
            evidence=list(headers), content=report[0], series_instance_uid=series_uid, series_number=series_number,
            sop_instance_uid=sop_uid, instance_number=1, manufacturer=c.DEVICE_MANUFACTURER,
            series_description=f"canal points and stenosis grades: {observer.label}"[:64],
            specific_character_set="ISO_IR 192", content_date=self.now.date(), content_time=self.now.time(),
            coding_schemes=[hd.coding_schemes.CodingSchemeIdentificationItem(
                designator=c.PRIVATE_SCHEME, name=c.PRIVATE_SCHEME_NAME, responsible_organization="annotator")])

    # -- the fast path ----------------------------------------------------------------------------------

    def tracking_uid(self, item: ExportItem) -> str:
        return generate_uid(entropy_srcs=["annotator canal", item.reader_label, self.header(item).SOPInstanceUID])

    def group(self, item: ExportItem, index: int) -> bytes:
        """One slice's measurement group: highdicom's group of its shape with the slice's values."""
        observer = self.observer(item)
        shape = self.shape(item)
        stamp = self._groups.get((observer.label, shape))
        if stamp is None:
            stamp = self._groups[(observer.label, shape)] = _GroupStamp.of(self.hd_group(observer, shape)[0])
        header = self.header(item)
        ref = sr_bytes.sq(_REF_SOP, [sr_bytes.wrap(sr_bytes.ui(_REF_CLASS, str(header.SOPClassUID))
                                                   + sr_bytes.ui(_REF_INSTANCE, str(header.SOPInstanceUID)))])
        children = []
        for kind, piece in stamp.children:
            if isinstance(piece, bytes):
                children.append(piece)
            elif kind == "tracking_id":
                children.append(piece({_TEXT: sr_bytes.ut(_TEXT, f"canal centre {index}")}))
            elif kind == "tracking_uid":
                children.append(piece({_UID: sr_bytes.ui(_UID, self.tracking_uid(item))}))
            elif kind == "image":
                children.append(piece({_REF_SOP: ref}))
            else:  # the SCOORD: origin at the first pixel's corner, so the centre of pixel (c, r) is (c + .5, r + .5)
                assert item.mark.x_px is not None and item.mark.y_px is not None and stamp.selected_from is not None
                children.append(piece({
                    _GRAPHIC: sr_bytes.fl(_GRAPHIC, [item.mark.x_px + 0.5, item.mark.y_px + 0.5]),
                    sr_bytes.CONTENT_SEQUENCE: sr_bytes.sq(sr_bytes.CONTENT_SEQUENCE,
                                                           [stamp.selected_from({_REF_SOP: ref})])}))
        return sr_bytes.container(stamp.head, children)

    def study(self, headers: Sequence[Dataset]) -> _StudyPart:
        """What every reader's report of these slices shares, encoded once."""
        key = tuple(str(h.SOPInstanceUID) for h in headers)
        if key not in self._studies:
            fields = _patient_and_study(headers[0])
            for keyword in _TYPE2_STUDY:
                if keyword not in fields:
                    setattr(fields, keyword, "")
            fields.CurrentRequestedProcedureEvidenceSequence = _evidence(headers)
            scanner = self.equipment(headers[0])
            self._studies[key] = _StudyPart(sr_bytes.by_tag(fields), set(fields.keys()),
                                            None if scanner is None else sr_bytes.wrap(sr_bytes.elements(scanner)),
                                            self._library.groups(headers))
        return self._studies[key]

    def equipment(self, header: Dataset) -> Dataset | None:
        """The scanner as contributing equipment (highdicom's item), built once per scanner."""
        key = tuple(str(header.get(kw, "")) for kw in _EQUIPMENT)
        if key not in self._equipment:
            try:
                self._equipment[key] = plain(hd.ContributingEquipment.for_image_acquisition(header))
            except (ValueError, AttributeError):
                self._equipment[key] = None
        return self._equipment[key]

    def stamp(self, observer: _Observer, item: ExportItem, series_number: int) -> _DocStamp:
        """The reader's document as highdicom builds it for her first slice, cut into encoded pieces."""
        if observer.label not in self._documents:
            header = self.header(item)
            group = self.hd_group(observer, self.shape(item), sop_uid=str(header.SOPInstanceUID))
            doc = self.hd_document(observer, [header], [group], _PH_SOP, _PH_SOP, series_number)
            self._documents[observer.label] = _DocStamp.of(doc, set(self.study([header]).tags))
        return self._documents[observer.label]

    def document(self, label: str, items: Sequence[ExportItem], series_number: int) -> bytes:
        """One report, as the bytes of its file."""
        observer = self.observer(items[0])
        stamp = self.stamp(observer, items[0], series_number)
        headers = list({id(h): h for h in (self.header(it) for it in items)}.values())
        part = self.study(headers)
        series_uid = generate_uid(entropy_srcs=["annotator sr", str(headers[0].StudyInstanceUID), label])
        digest = hashlib.sha256(repr([(str(self.header(it).SOPInstanceUID), it.mark.x_px, it.mark.y_px,
                                       it.mark.grade, it.cannot_grade, it.image.level, it.study)
                                      for it in items]).encode())
        sop_uid = generate_uid(entropy_srcs=[series_uid, digest.hexdigest()])
        meta = sr_bytes.joined({**stamp.meta, _META_INSTANCE: sr_bytes.ui(_META_INSTANCE, sop_uid)})
        equipment = [part.scanner, stamp.highdicom] if part.scanner is not None else [stamp.highdicom]
        top = {**stamp.parts, **part.parts, _SOP_INSTANCE: sr_bytes.ui(_SOP_INSTANCE, sop_uid),
               _SERIES_INSTANCE: sr_bytes.ui(_SERIES_INSTANCE, series_uid), _EQUIPMENT_SEQ: sr_bytes.sq(
                   _EQUIPMENT_SEQ, equipment)}
        groups = [self.group(it, k) for k, it in enumerate(items, start=1)]
        root = [sr_bytes.container(stamp.library_head, part.library) if piece is _LIBRARY
                else sr_bytes.container(stamp.groups_head, groups) if piece is _GROUPS
                else piece for piece in stamp.root]
        return (b"\0" * 128 + b"DICM" + sr_bytes.ul(_META_LENGTH, len(meta)) + meta + sr_bytes.joined(top)
                + sr_bytes.content(root))


_LIBRARY = b"library"  # markers in a document stamp's root items
_GROUPS = b"groups"
_SOP_INSTANCE, _SERIES_INSTANCE = 0x00080018, 0x0020000E
_META_LENGTH, _META_INSTANCE = 0x00020000, 0x00020003
_EQUIPMENT_SEQ = 0x0018A001
_REF_SOP, _REF_CLASS, _REF_INSTANCE = 0x00081199, 0x00081150, 0x00081155
_TEXT, _UID, _GRAPHIC = 0x0040A160, 0x0040A124, 0x00700022


@dataclass
class _GroupStamp:
    """A measurement group: its constant items encoded, and the items that carry a slice's values."""

    head: bytes
    children: list[tuple[str, bytes | sr_bytes.Spliced]]
    selected_from: sr_bytes.Spliced | None  # the SCOORD's image item

    @classmethod
    def of(cls, group: Dataset) -> _GroupStamp:
        [plain_group] = sr_bytes.decode_items(sr_bytes.encode_items([group]))
        children: list[tuple[str, bytes | sr_bytes.Spliced]] = []
        selected_from = None
        for child in plain_group.ContentSequence:
            name = _concept(child)
            kind = {("112039", "DCM"): "tracking_id", ("112040", "DCM"): "tracking_uid"}.get(name or ("", ""))
            if kind is None and child.ValueType in ("SCOORD", "IMAGE"):
                kind = str(child.ValueType).lower()
            if kind == "scoord":
                selected_from = sr_bytes.Spliced(child.ContentSequence[0])
            children.append((kind, sr_bytes.Spliced(child)) if kind else ("const", sr_bytes.item(child)))
        return cls(sr_bytes.head(plain_group), children, selected_from)


@dataclass
class _DocStamp:
    """A reader's document: its top-level elements encoded (less the study's), and its root items."""

    meta: dict[int, bytes]  # the file meta elements but its group length and the SOP instance
    parts: dict[int, bytes]
    highdicom: bytes  # highdicom's contributing-equipment item
    root: list[bytes]
    library_head: bytes
    groups_head: bytes

    @classmethod
    def of(cls, doc: Dataset, study_tags: set[int]) -> _DocStamp:
        buf = io.BytesIO()
        doc.save_as(buf)
        plain_doc = pydicom.dcmread(io.BytesIO(buf.getvalue()))
        root: list[bytes] = []
        heads = {}
        for child in plain_doc.ContentSequence:
            name = _concept(child)
            if name in (_SEQ_LIBRARY, _SEQ_GROUPS):
                heads[name] = sr_bytes.head(child)
                root.append(_LIBRARY if name == _SEQ_LIBRARY else _GROUPS)
            else:
                root.append(sr_bytes.item(child))
        highdicom = sr_bytes.item(plain_doc.ContributingEquipmentSequence[-1])
        for tag in {sr_bytes.CONTENT_SEQUENCE, _SOP_INSTANCE, _SERIES_INSTANCE, _EQUIPMENT_SEQ} | study_tags:
            if tag in plain_doc:
                del plain_doc[tag]
        if any(tag > sr_bytes.CONTENT_SEQUENCE for tag in plain_doc.keys()):  # noqa: SIM118
            raise ValueError("an SR document with elements after its Content Sequence")
        meta = Dataset({tag: plain_doc.file_meta[tag] for tag in plain_doc.file_meta.keys()  # noqa: SIM118
                        if tag not in (_META_LENGTH, _META_INSTANCE)})
        return cls(sr_bytes.by_tag(meta), sr_bytes.by_tag(plain_doc), highdicom, root, heads[_SEQ_LIBRARY],
                   heads[_SEQ_GROUPS])


@dataclass
class _StudyPart:
    parts: dict[int, bytes]  # patient and study attributes, evidence
    tags: set[int]
    scanner: bytes | None  # the scanner as a contributing-equipment item
    library: list[bytes]


def _concept(item: Dataset) -> tuple[str, str] | None:
    names = item.get("ConceptNameCodeSequence")
    return (str(names[0].CodeValue), str(names[0].CodingSchemeDesignator)) if names else None


def _patient_and_study(header: Dataset) -> Dataset:
    """The Patient and Study modules' attributes of a slice, as highdicom copies them into an SR."""
    carrier = hd.SOPClass.__new__(hd.SOPClass)
    Dataset.__init__(carrier)
    hd.SOPClass.copy_patient_and_study_information(carrier, header)
    return Dataset(dict(carrier.items()))


def _evidence(headers: Iterable[Dataset]) -> DicomSequence:
    """Current Requested Procedure Evidence: the study's referenced slices by series."""
    by_series: dict[str, list[Dataset]] = {}
    study = ""
    for h in headers:
        study = str(h.StudyInstanceUID)
        ref = Dataset()
        ref.ReferencedSOPClassUID = h.SOPClassUID
        ref.ReferencedSOPInstanceUID = h.SOPInstanceUID
        by_series.setdefault(str(h.SeriesInstanceUID), []).append(ref)
    series = []
    for uid, refs in by_series.items():
        s = Dataset()
        s.ReferencedSOPSequence = DicomSequence(refs)
        s.SeriesInstanceUID = uid
        series.append(s)
    item = Dataset()
    item.ReferencedSeriesSequence = DicomSequence(series)
    item.StudyInstanceUID = study
    return DicomSequence([item])
