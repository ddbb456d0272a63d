"""DICOM SR (TID 1500) export and import: real phantom DICOM, real SQLite, reports parsed back with
pydicom and highdicom, and round trips for raters, the consensus and a model."""

from __future__ import annotations

import copy
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from annotator.domain.entities import ImageRef, ModelKind, Prediction, Role
from annotator.domain.errors import Cancelled, InputError
from annotator.domain.readers import ReaderKind, ReaderRef
from annotator.domain.scales import load_scale
from annotator.domain.studies import Orientation, orientation_of
from annotator.imaging.phantom_dicom import generate_dataset
from annotator.services import readers as reader_service
from annotator.services.formats import ExportContext, ExportItem, sr
from annotator.services.formats import sr_codes as c
from annotator.services.formats.sr_read import read_groups
from annotator.services.formats.sr_write import _Writer
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from annotator.services.labelsets import apply_imported
from annotator.storage import catalog, models_repo, people
from annotator.storage.database import Database, open_database

MODEL_NAME = "fast-consensus"
# OHIF (dcmjs) codes free-text findings as CORNERSTONEFREETEXT, longer than SH allows; pydicom warns.
OHIF_CODE_VALUE = pytest.mark.filterwarnings("ignore:The value length .* maximum length of 16 allowed for VR SH")


@dataclass
class Project:
    db: Database
    dicom: Path
    model_id: int
    axial: list[ImageRef]


def _axial(db: Database) -> list[ImageRef]:
    return [im for im in catalog.images(db)
            if orientation_of(im.geometry.image_orientation, 10.0) is Orientation.AXIAL and im.level]


def _fresh(path: Path, dicom: Path, scale: str = "lee") -> Database:
    db = open_database(f"sqlite:///{path}")
    import_paths(db, [dicom])
    if scale != "lee":
        people.update_settings(db, None, scale_code=scale)
    return db


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sr_phantom")
    generate_dataset(folder / "dicom", 2, seed=7, matrix=64, exam=True)
    return folder / "dicom"


def _build(path: Path, dicom: Path, scale: str = "lee") -> Project:
    """Two raters (one grades some slices without a point, the other points without a grade), the
    consensus where they agree, and a model's predictions with sub-pixel points."""
    db = _fresh(path, dicom, scale)
    axial = _axial(db)
    n_grades = load_scale(people.get_settings(db).scale_code).n_grades
    rng = np.random.default_rng(3)
    e1 = LabelService(db, people.add_rater(db, "expert1", Role.ANNOTATOR))
    e2 = LabelService(db, people.add_rater(db, "Dr Zoë Ng", Role.ANNOTATOR))
    people.update_settings(db, None, required_raters=("expert1", "Dr Zoë Ng"))
    for k, im in enumerate(axial):
        x, y, g = int(rng.integers(10, 54)), int(rng.integers(10, 54)), int(rng.integers(0, n_grades))
        if k % 5 == 4:
            e1.set_label(im.id, x, y, None)  # a point without a grade
        else:
            e1.set_label(im.id, x, y, g)
        if k % 4 == 3:
            e2.set_label(im.id, None, None, (g + 1) % n_grades)  # a grade without a point
        elif k % 3 == 0:
            e2.set_label(im.id, x + 1, y, g)  # agrees: consensus at the mean, x + 0.5
        else:
            e2.set_label(im.id, x + 2, y - 1, (g + 1) % n_grades)
    model = models_repo.register(db, name=MODEL_NAME, preset="fast", target="consensus", kind=ModelKind.TRAIN,
                                 weights_path="/nonexistent/w.safetensors", weights_sha256="0" * 64, card={})
    models_repo.write_predictions(db, model.id, [
        Prediction(model.id, im.id, float(rng.uniform(5, 58)), float(rng.uniform(5, 58)),
                   int(rng.integers(0, n_grades)), None) for im in axial])
    return Project(db, dicom, model.id, axial)


@pytest.fixture(scope="module")
def project(phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    p = _build(tmp_path_factory.mktemp("sr_db") / "a.db", phantom)
    yield p
    p.db.close()


def _label(db: Database, ref: ReaderRef) -> str:
    if ref.kind is ReaderKind.MODEL:
        return f"model {models_repo.get(db, int(ref.key)).name} (id {ref.key})"
    return ref.key if ref.kind is ReaderKind.RATER else "consensus"


def _items(db: Database, readers: list[ReaderRef]) -> list[ExportItem]:
    """What the bundle service gathers: one item per slice and reader."""
    images = {im.id: im for im in catalog.images(db)}
    out = []
    for ref in readers:
        for image_id, mark in sorted(reader_service.marks(db, ref).items()):
            if mark.grade is not None or mark.x_px is not None:
                out.append(ExportItem(images[image_id], ref, _label(db, ref), mark))
    return out


def _readers(p: Project) -> list[ReaderRef]:
    return [ReaderRef.parse("rater:expert1"), ReaderRef.parse("rater:Dr Zoë Ng"),
            ReaderRef.parse(f"model:{p.model_id}"), ReaderRef.parse("consensus")]


def _export(db: Database, items: list[ExportItem], out: Path, **kw: object) -> list[Path]:
    scale = load_scale(people.get_settings(db).scale_code)
    return sr.write(ExportContext(db=db, items=items, out_dir=out, scale=scale, **kw))  # type: ignore[arg-type]


def test_one_report_per_study_and_reader_that_highdicom_parses(project: Project, tmp_path: Path) -> None:
    items = _items(project.db, _readers(project))
    paths = _export(project.db, items, tmp_path)
    reports = {(it.image.study_instance_uid, it.reader_label) for it in items}
    assert len({s for s, _ in reports}) == 2 and len({r for _, r in reports}) == 4
    assert len(paths) == len(reports) == len(set(paths))
    assert all(p.is_relative_to(tmp_path / "sr") for p in paths)
    for path in paths:
        doc = hd.sr.srread(path)
        assert isinstance(doc, hd.sr.Comprehensive3DSR)
        meta = pydicom.dcmread(path).file_meta  # a DICOM file: preamble, DICM, meta with its group length
        assert meta.MediaStorageSOPInstanceUID == doc.SOPInstanceUID and meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert meta.FileMetaInformationGroupLength == len(meta_bytes(path))
        report = hd.sr.MeasurementReport.from_sequence(doc.content)
        assert doc.ConceptNameCodeSequence[0].CodeValue == "126000"
        assert report.get_image_measurement_groups() or report.get_planar_roi_measurement_groups()


def meta_bytes(path: Path) -> bytes:
    """The file meta elements after the group length element, as written."""
    blob = path.read_bytes()
    assert blob[128:132] == b"DICM"
    pos = 132 + 12  # the group length element: tag, VR, length (2), value (4)
    end = pos
    while blob[end:end + 2] == b"\x02\x00":  # group 0002
        vr = blob[end + 4:end + 6]
        if vr in (b"OB", b"UN", b"UT", b"SQ"):
            end += 12 + int.from_bytes(blob[end + 8:end + 12], "little")
        else:
            end += 8 + int.from_bytes(blob[end + 6:end + 8], "little")
    return blob[pos:end]


def _by_reader(items: list[ExportItem]) -> dict[str, list[ExportItem]]:
    out: dict[str, list[ExportItem]] = {}
    for it in items:
        out.setdefault(it.reader_label, []).append(it)
    return out


def test_groups_carry_point_grade_site_level_and_observer(project: Project, tmp_path: Path) -> None:
    items = _items(project.db, _readers(project))
    paths = _export(project.db, items, tmp_path)
    expected = {(it.reader_label, it.image.sop_instance_uid): it for it in items}
    seen = 0
    for path in paths:
        doc = hd.sr.srread(path)
        report = hd.sr.MeasurementReport.from_sequence(doc.content)
        [person] = report.get_observer_contexts(observer_type=codes.cid270.Person) or [None]
        [device] = report.get_observer_contexts(observer_type=codes.cid270.Device) or [None]
        if person is not None:
            label = str(person.observer_identifying_attributes[0].value).rstrip("^")
        else:
            assert device is not None
            label = device.observer_identifying_attributes[1].value  # Device Observer Name
        library = [it for it in doc.ContentSequence if it.ConceptNameCodeSequence[0].CodeValue == "111028"]
        assert len(library) == 1  # OHIF reads the image library unguarded
        in_library = {img.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                      for grp in library[0].ContentSequence for img in grp.ContentSequence}
        groups = report.get_planar_roi_measurement_groups() + report.get_image_measurement_groups()
        assert len({g.tracking_uid for g in groups}) == len(groups) and all(g.tracking_identifier for g in groups)
        grouped = set()
        for g in groups:
            if isinstance(g, hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations):
                assert g.roi is not None and g.roi.graphic_type == hd.sr.GraphicTypeValues.POINT
                sop = g.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                it = expected[(label, sop)]
                assert it.mark.x_px is not None and it.mark.y_px is not None
                np.testing.assert_allclose(g.roi.value, [[it.mark.x_px + 0.5, it.mark.y_px + 0.5]], atol=1e-4)
            else:
                sop = g.source_images[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                it = expected[(label, sop)]
                assert it.mark.x_px is None
            seen += 1
            grouped.add(sop)
            source = pydicom.dcmread(it.image.path, stop_before_pixels=True)  # patient and study from the file
            assert (doc.PatientID, doc.PatientName, doc.StudyDate, doc.AccessionNumber) == (
                source.PatientID, source.PatientName, source.StudyDate, source.AccessionNumber)
            assert str(doc.StudyInstanceUID) == it.image.study_instance_uid
            sites = [s.value for s in g.finding_sites]
            assert sites[0] == c.SPINAL_CANAL and sites[1] == c.LEVEL_CODES[it.image.level]  # type: ignore[index]
            evals = g.get_qualitative_evaluations()
            if it.mark.grade is None:
                assert evals == []
            else:
                assert [(e.name, e.value) for e in evals] == [(c.SEVERITY, c.LEE_VALUES[it.mark.grade])]
            algorithm = [i for i in g[0].ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "111001"]
            assert bool(algorithm) == (it.reader.kind is ReaderKind.MODEL)
            if algorithm:
                assert algorithm[0].TextValue == MODEL_NAME
        assert in_library == grouped  # the library lists exactly the report's slices
    assert seen == len(items)


def test_the_fast_path_writes_what_highdicom_writes(project: Project) -> None:
    items = _items(project.db, _readers(project))
    ctx = ExportContext(project.db, items, Path("/nonexistent"), load_scale("lee"))
    for label, mine in _by_reader(items).items():
        study = mine[0].image.study_instance_uid
        mine = [it for it in mine if it.image.study_instance_uid == study]
        mine.sort(key=lambda it: (it.image.series_instance_uid, it.image.slice_index, it.image.id))
        w = _Writer(ctx)
        w.document(label, [it for it in items if it.reader_label == label][-1:], 900)  # another study first
        fast = pydicom.dcmread(io.BytesIO(w.document(label, mine, 900)))
        groups = [w.hd_group(w.observer(it), w.shape(it), sop_uid=w.header(it).SOPInstanceUID,
                             tracking_uid=w.tracking_uid(it), tracking_id=f"canal centre {k}",
                             point=(it.mark.x_px + 0.5, it.mark.y_px + 0.5) if it.mark.x_px is not None
                             and it.mark.y_px is not None else (0.5, 0.5))
                  for k, it in enumerate(mine, start=1)]
        headers = list({id(h): h for h in (w.header(it) for it in mine)}.values())
        ref = w.hd_document(w.observer(mine[0]), headers, groups, fast.SeriesInstanceUID, fast.SOPInstanceUID, 900)
        assert _comparable(fast) == _comparable(ref), label


def _comparable(ds: Dataset) -> dict[str, object]:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    plain = pydicom.dcmread(io.BytesIO(buf.getvalue()))
    for kw in ("InstanceCreationDate", "InstanceCreationTime"):
        del plain[kw]
    for eq in plain.ContributingEquipmentSequence:
        if "ContributionDateTime" in eq:
            del eq.ContributionDateTime
    return plain.to_json_dict()


Groups = dict[tuple[str | None, str], tuple[object, ...]]


def _groups(paths: list[Path], scale: str = "lee") -> Groups:
    out = {}
    for g in read_groups(paths[0].parents[1], load_scale(scale)):
        assert (g.observer, g.sop_uid) not in out
        out[(g.observer, g.sop_uid)] = (g.x_px, g.y_px, g.grade, g.level)
    return out


def _same(a: Groups, b: Groups) -> None:
    assert a.keys() == b.keys()
    for k in a:
        xa, ya, *rest_a = a[k]
        xb, yb, *rest_b = b[k]
        assert rest_a == rest_b, k
        assert (xa is None) == (xb is None) and (ya is None) == (yb is None), k
        if xa is not None:
            assert xa == pytest.approx(xb, abs=1e-4) and ya == pytest.approx(yb, abs=1e-4), k


def test_round_trip_raters_consensus_and_model_into_a_fresh_project(project: Project, tmp_path: Path) -> None:
    items = _items(project.db, _readers(project))
    first = _export(project.db, items, tmp_path / "one")
    fresh = _fresh(tmp_path / "b.db", project.dicom)
    labels = sr.read(fresh, tmp_path / "one" / "sr", reader=None)
    assert len(labels) == len(items)
    study_dirs = {p.name for p in (tmp_path / "one" / "sr").iterdir()}
    assert all(lab.where.split("/")[0] in study_dirs and ".dcm: item " in lab.where for lab in labels)
    report = apply_imported(fresh, labels, source="sr")
    model_label = f"model {MODEL_NAME} (id {project.model_id})"
    assert report.errors == [] and report.applied == len(items)
    assert sorted(report.created_raters) == sorted(["expert1", "Dr Zoë Ng", model_label, "consensus"])
    again = _items(fresh, [ReaderRef(ReaderKind.RATER, n) for n in ("expert1", "Dr Zoë Ng", model_label, "consensus")])
    second = _export(fresh, again, tmp_path / "two")
    assert len(second) == len(first)
    _same(_groups(first), _groups(second))
    # and the labels are the project's own, to float32 precision (the model's sub-pixel points)
    fresh_sop = {im.id: im.sop_instance_uid for im in catalog.images(fresh)}
    orig_sop = {im.id: im.sop_instance_uid for im in catalog.images(project.db)}
    for ref, name in zip(_readers(project), ("expert1", "Dr Zoë Ng", model_label, "consensus"), strict=True):
        want = {orig_sop[i]: (m.x_px, m.y_px, m.grade) for i, m in reader_service.marks(project.db, ref).items()}
        got = {fresh_sop[i]: (m.x_px, m.y_px, m.grade)
               for i, m in reader_service.marks(fresh, ReaderRef(ReaderKind.RATER, name)).items()}
        assert want.keys() == got.keys(), name
        for sop, (x, y, g) in want.items():
            assert got[sop][2] == g
            assert got[sop][0] == (None if x is None else pytest.approx(x, abs=1e-4))
            assert got[sop][1] == (None if y is None else pytest.approx(y, abs=1e-4))
    fresh.close()


def test_cannot_grade_is_written_as_such_never_as_a_grade(project: Project, tmp_path: Path) -> None:
    base = _items(project.db, [ReaderRef.parse("rater:expert1")])[:3]
    with_point = [it for it in base if it.mark.x_px is not None][0]
    without = next(it for it in base if it is not with_point)
    items = [replace(with_point, cannot_grade="motion", mark=replace(with_point.mark, grade=2),
                     study="L4-L5 axial, Zoë"),
             replace(without, cannot_grade="wrong_level", mark=replace(without.mark, x_px=None, y_px=None, grade=None))]
    [path] = _export(project.db, items, tmp_path)
    doc = hd.sr.srread(path)
    report = hd.sr.MeasurementReport.from_sequence(doc.content)
    [planar] = report.get_planar_roi_measurement_groups()
    [plain] = report.get_image_measurement_groups()
    evaluations = [(e.name, e.value) for e in planar.get_qualitative_evaluations()]
    assert evaluations == [(c.CANNOT_GRADE, codes.DCM.PatientMotion)]
    assert planar.get_qualitative_evaluations(name=c.SEVERITY) == []
    assert [e.value for e in plain.get_qualitative_evaluations()] == [c.CANNOT_GRADE_REASONS["wrong_level"]]  # type: ignore[index]
    session = [i for i in planar[0].ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "C67447"]
    assert session[0].TextValue == "L4-L5 axial, Zoë"  # the reader study, as the activity session
    assert any(s.CodingSchemeDesignator == c.PRIVATE_SCHEME for s in doc.CodingSchemeIdentificationSequence)
    groups = read_groups(path, load_scale("lee"))
    assert sorted((g.grade, g.cannot_grade, g.x_px is None) for g in groups) == [(None, True, False),
                                                                                  (None, True, True)]
    labels = sr.read(project.db, path, reader=None)
    assert sorted(((lab.grade, lab.x_px, lab.cannot_grade) for lab in labels), key=lambda t: str(t[2])) == [
        (None, pytest.approx(with_point.mark.x_px), "motion"), (None, None, "wrong_level")]
    # imported: the read with a point becomes a point-only label; the one without is reported, not stored
    report = apply_imported(project.db, sr.read(project.db, path, reader="rater:again"), source="sr")
    assert report.errors == [] and report.applied == 1
    [note] = report.passed_over
    assert note.endswith(": cannot grade (wrong_level) without a point")


def test_schizas_grades_use_the_declared_private_scheme(phantom: Path, tmp_path: Path) -> None:
    p = _build(tmp_path / "s.db", phantom, scale="schizas")
    items = _items(p.db, [ReaderRef.parse("rater:expert1")])
    paths = _export(p.db, items, tmp_path / "out")
    doc = pydicom.dcmread(paths[0])
    [scheme] = doc.CodingSchemeIdentificationSequence
    assert (scheme.CodingSchemeDesignator, scheme.CodingSchemeName) == (c.PRIVATE_SCHEME, c.PRIVATE_SCHEME_NAME)
    report = hd.sr.MeasurementReport.from_sequence(hd.sr.srread(paths[0]).content)
    values = {e.value.value: e.value.meaning for g in report.get_planar_roi_measurement_groups()
              for e in g.get_qualitative_evaluations()}
    assert values and set(values) <= {"SCHIZAS-0", "SCHIZAS-1", "SCHIZAS-2", "SCHIZAS-3"}
    assert {m.split(":")[0] for m in values.values()} <= {"A", "B", "C", "D"}
    got = {(g.sop_uid, g.grade) for g in read_groups(tmp_path / "out", load_scale("schizas"))}
    assert got == {(it.image.sop_instance_uid, it.mark.grade) for it in items}
    with pytest.raises(InputError, match="not the project's scale lee"):
        read_groups(tmp_path / "out", load_scale("lee"))
    p.db.close()


def _ohif_probe_sr(image: Path, col: float, row: float, *, graphic: str = "POINT") -> Dataset:
    """A TID 1500 report shaped like OHIF's (dcmjs) probe measurement, built by hand with pydicom."""
    src = pydicom.dcmread(image, stop_before_pixels=True)

    def code(value: str, scheme: str, meaning: str) -> Dataset:
        d = Dataset()
        d.CodeValue, d.CodingSchemeDesignator, d.CodeMeaning = value, scheme, meaning
        return d

    def item(rel: str | None, vtype: str, name: Dataset | None, **kw: object) -> Dataset:
        d = Dataset()
        if rel:
            d.RelationshipType = rel
        d.ValueType = vtype
        if name is not None:
            d.ConceptNameCodeSequence = [name]
        for k, v in kw.items():
            setattr(d, k, v)
        return d

    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
    image_item = item("SELECTED FROM", "IMAGE", None, ReferencedSOPSequence=[ref])
    scoord = item("INFERRED FROM", "SCOORD", code("111030", "DCM", "Image Region"), GraphicType=graphic,
                  GraphicData=[col, row] if graphic == "POINT" else [col, row, col + 3, row + 3],
                  ContentSequence=[image_item])
    group = item("CONTAINS", "CONTAINER", code("125007", "DCM", "Measurement Group"), ContinuityOfContent="SEPARATE",
                 ContentSequence=[
                     item("HAS OBS CONTEXT", "TEXT", code("112039", "DCM", "Tracking Identifier"),
                          TextValue="cornerstone3DTools@^0.1.0:Probe"),
                     item("HAS OBS CONTEXT", "UIDREF", code("112040", "DCM", "Tracking Unique Identifier"),
                          UID=generate_uid()),
                     item("CONTAINS", "CODE", code("121071", "DCM", "Finding"),
                          ConceptCodeSequence=[code("CORNERSTONEFREETEXT", "CST4", "canal")]),
                     scoord])
    library_entry = item("CONTAINS", "IMAGE", None, ReferencedSOPSequence=[copy.deepcopy(ref)])
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.34"
    ds.SOPInstanceUID = generate_uid()
    for kw in ("PatientID", "PatientName", "StudyInstanceUID"):
        setattr(ds, kw, getattr(src, kw))
    ds.SeriesInstanceUID, ds.Modality = generate_uid(), "SR"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [code("126000", "DCM", "Imaging Measurement Report")]
    tmpl = Dataset()
    tmpl.MappingResource, tmpl.TemplateIdentifier = "DCMR", "1500"
    ds.ContentTemplateSequence = [tmpl]
    ds.ContentSequence = [
        item("HAS CONCEPT MOD", "CODE", code("121049", "DCM", "Language of Content Item and Descendants"),
             ConceptCodeSequence=[code("eng", "RFC5646", "English")]),
        item("HAS OBS CONTEXT", "CODE", code("121005", "DCM", "Observer Type"),
             ConceptCodeSequence=[code("121006", "DCM", "Person")]),
        item("HAS OBS CONTEXT", "PNAME", code("121008", "DCM", "Person Observer Name"), PersonName="Doe^Jane"),
        item("CONTAINS", "CONTAINER", code("111028", "DCM", "Image Library"), ContinuityOfContent="SEPARATE",
             ContentSequence=[item("CONTAINS", "CONTAINER", code("126200", "DCM", "Image Library Group"),
                                   ContinuityOfContent="SEPARATE", ContentSequence=[library_entry])]),
        item("CONTAINS", "CONTAINER", code("126010", "DCM", "Imaging Measurements"), ContinuityOfContent="SEPARATE",
             ContentSequence=[group]),
    ]
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


@OHIF_CODE_VALUE
def test_an_ohif_style_probe_report_imports_at_the_pixel_centre(project: Project, tmp_path: Path) -> None:
    im = project.axial[0]
    path = _save(_ohif_probe_sr(Path(im.path), 31.5, 20.0), tmp_path / "ohif.dcm")
    fresh = _fresh(tmp_path / "c.db", project.dicom)
    [label] = sr.read(fresh, path, reader=None)
    assert (label.sop_uid, label.reader, label.x_px, label.y_px, label.grade) == (im.sop_instance_uid, "Doe^Jane",
                                                                                 31.0, 19.5, None)
    report = apply_imported(fresh, [label], source=str(path))
    assert report.errors == [] and report.created_raters == ["Doe^Jane"]
    [override] = sr.read(fresh, path, reader="rater:radiologist")
    assert override.reader == "radiologist"
    with pytest.raises(InputError, match="as a rater.s only"):
        sr.read(fresh, path, reader="consensus")
    fresh.close()


@OHIF_CODE_VALUE
def test_structural_problems_name_the_file_and_item(project: Project, tmp_path: Path) -> None:
    im = project.axial[0]
    line = _save(_ohif_probe_sr(Path(im.path), 10.0, 10.0, graphic="POLYLINE"), tmp_path / "line.dcm")
    with pytest.raises(InputError, match=r"line.dcm: item 1: .*POLYLINE"):
        sr.read(project.db, line, reader=None)
    with pytest.raises(InputError, match="not a DICOM SR"):
        sr.read(project.db, Path(im.path), reader=None)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with pytest.raises(InputError, match="junk.dcm"):
        sr.read(project.db, junk, reader=None)
    nameless = _ohif_probe_sr(Path(im.path), 10.0, 10.0)
    nameless.ContentSequence = [i for i in nameless.ContentSequence if i.ValueType != "PNAME"]
    with pytest.raises(InputError, match="no observer"):
        sr.read(project.db, _save(nameless, tmp_path / "nameless.dcm"), reader=None)
    outside = _save(_ohif_probe_sr(Path(im.path), 500.0, 10.0), tmp_path / "outside.dcm")
    report = apply_imported(project.db, sr.read(project.db, outside, reader=None), source="x")
    assert report.applied == 0 and "outside.dcm: item 1: point" in report.errors[0]


class _Pseudonyms:
    """A de-identified bundle's identity map: every UID gets a pseudonym."""

    def __init__(self) -> None:
        self.map: dict[str, str] = {}

    @property
    def deidentified(self) -> bool:
        return True

    def uid(self, original: str) -> str:
        return self.map.setdefault(original, generate_uid(entropy_srcs=["pseudo", original]))

    def patient(self, original: str) -> str:
        return "ANON-" + original[-4:]

    def source(self, image: ImageRef) -> Path:
        return Path(image.path)


def test_every_referenced_uid_goes_through_the_identity_map(project: Project, tmp_path: Path) -> None:
    items = _items(project.db, _readers(project)[:1])
    ids = _Pseudonyms()
    paths = _export(project.db, items, tmp_path, ids=ids)
    originals = {u for it in items for u in (it.image.sop_instance_uid, it.image.series_instance_uid,
                                             it.image.study_instance_uid)}
    for path in paths:
        blob = path.read_bytes()
        assert not [u for u in originals if u.encode() in blob]
        assert path.parent.name in set(ids.map.values())
    groups = read_groups(tmp_path / "sr", load_scale("lee"))
    assert {g.sop_uid for g in groups} == {ids.map[it.image.sop_instance_uid] for it in items}


def test_progress_and_stop(project: Project, tmp_path: Path) -> None:
    items = _items(project.db, _readers(project)[:2])
    calls: list[tuple[int, int]] = []
    paths = _export(project.db, items, tmp_path / "a", progress=lambda d, t, m: calls.append((d, t)))
    assert calls[0] == (0, len(paths)) and calls[-1] == (len(paths), len(paths))
    with pytest.raises(Cancelled):
        _export(project.db, items, tmp_path / "b", should_stop=lambda: True)


def test_a_folder_with_images_and_reports_reads_only_the_reports(project: Project, tmp_path: Path) -> None:
    items = _items(project.db, _readers(project)[:1])
    _export(project.db, items, tmp_path)
    shutil.copy(project.axial[0].path, tmp_path / "sr" / "an_image.dcm")
    assert len(sr.read(project.db, tmp_path / "sr", reader=None)) == len(items)


def test_import_sets_the_level_of_slices_that_have_none(project: Project, tmp_path: Path) -> None:
    from annotator.storage import levels as level_repo

    items = _items(project.db, _readers(project)[:1])
    _export(project.db, items, tmp_path)
    fresh = _fresh(tmp_path / "d.db", project.dicom)
    level_repo.set_level(fresh, [im.id for im in catalog.images(fresh)], None, actor_id=None, source="test")
    assert all(im.level is None for im in catalog.images(fresh))
    report = apply_imported(fresh, sr.read(fresh, tmp_path / "sr", reader=None), source="sr")
    assert report.errors == []
    want = {it.image.sop_instance_uid: it.image.level for it in items}
    assert {im.sop_instance_uid: im.level for im in catalog.images(fresh) if im.sop_instance_uid in want} == want
    fresh.close()
