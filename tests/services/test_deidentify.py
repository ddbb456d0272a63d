"""De-identified bundles: no original name, id, birth date or UID anywhere in their bytes; the same
pseudonyms in every export of a project; label files that name the de-identified copies; burned-in
annotation warnings; atomic bundles."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pydicom
import pytest

from annotator.domain.errors import Cancelled, InputError
from annotator.imaging.dicom_io import read_decoded
from annotator.services import interchange
from annotator.services.formats import ExportContext, registry
from annotator.storage import catalog
from annotator.storage import secrets as secret_repo
from tests.deid_factories import DeidProject, build

FORMATS = ["csv", "json"]  # the label tables (labels.csv / labels.json)
ALL_FORMATS = [*FORMATS, "sr", "rsna", "coco"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> DeidProject:
    return build(tmp_path_factory.mktemp("deid"))


def _export(p: DeidProject, out: Path, fmt: str = "csv", **kw: object) -> interchange.ExportSummary:
    return interchange.export(p.db, interchange.ExportRequest(fmt, out, deidentify=True, **kw),  # type: ignore[arg-type]
                              actor=p.reviewer)


def _files(root: Path) -> list[Path]:
    return sorted(f for f in root.rglob("*") if f.is_file())


def _label_rows(bundle: Path, fmt: str) -> list[dict[str, str]]:
    if fmt == "csv":
        return list(csv.DictReader((bundle / "labels.csv").open(encoding="utf-8")))
    return [{k: str(v) for k, v in r.items()} for r in json.loads((bundle / "labels.json").read_text())["rows"]]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_no_original_identifier_is_left_in_any_byte_of_the_bundle(project: DeidProject, tmp_path: Path,
                                                                  fmt: str) -> None:
    out = tmp_path / f"bundle-{fmt}"
    summary = _export(project, out, fmt)
    files = _files(out)
    assert summary.dicom_copies == summary.slices == len(list((out / "dicom").iterdir())) >= 8
    assert {f.suffix for f in files} >= {".dcm", ".json"}
    secrets = {s.lower().encode() for s in project.secrets | {secret_repo.deid_salt(project.db)}}
    assert len(secrets) > 40
    originals = [f.read_bytes().lower() for f in _files(project.dicom)]
    unseen = {s.lower().encode() for s in project.secrets} - {s for s in secrets if any(s in d for d in originals)}
    assert all(s.count(b"-") == 2 and len(s) == 10 for s in unseen), unseen  # only dashed birth dates: the scan bites
    for f in files:
        data = f.read_bytes().lower()
        found = [s for s in secrets if s in data]
        assert not found, f"{f.relative_to(out)} holds {found}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_label_files_name_the_copies_uids_and_patients(project: DeidProject, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "b"
    _export(project, out, fmt)
    copies = [pydicom.dcmread(f) for f in sorted((out / "dicom").iterdir())]
    uids = {str(ds.get(k)) for ds in copies for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")}
    patients = {str(ds.PatientID) for ds in copies}
    rows = _label_rows(out, fmt)
    assert rows
    for r in rows:
        assert {r["sop_uid"], r["series_uid"], r["study_uid"]} <= uids and r["patient_key"] in patients
    assert {r["sop_uid"] for r in rows} == {str(ds.SOPInstanceUID) for ds in copies}


def test_copies_record_the_profile_and_keep_the_pixels(project: DeidProject, tmp_path: Path) -> None:
    out = tmp_path / "b"
    summary = _export(project, out)
    by_new = {}
    originals = {im.sop_instance_uid: im for im in catalog.images(project.db)}
    for f in (out / "dicom").iterdir():
        ds = pydicom.dcmread(f)
        by_new[str(ds.SOPInstanceUID)] = (f, ds)
        assert ds.PatientIdentityRemoved == "YES"
        assert "113100" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
        assert ds.DeidentificationMethod and ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert ds.get("PatientBirthDate", "") == "" and "ImageComments" not in ds
        assert not [e for e in ds if e.tag.is_private]
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == f.stem
    assert len(by_new) == summary.slices
    # every exported slice's copy has the same pixels, whatever its transfer syntax (RLE, JPEG 2000 kept)
    rows = _label_rows(out, "csv")
    deid = interchange.deidentify.Deidentifier(secret_repo.deid_salt(project.db))
    for sop, im in originals.items():
        new = deid.uid(sop)
        if new in by_new:
            f, ds = by_new[new]
            assert read_decoded(f).same_pixels(read_decoded(im.path))
            assert ds.StudyInstanceUID == deid.uid(im.study_instance_uid)
            assert ds.SeriesInstanceUID == deid.uid(im.series_instance_uid)
            assert ds.PatientID == deid.patient_id(im.patient_key)
    assert {r["sop_uid"] for r in rows} <= set(by_new)


def test_repeated_exports_and_formats_give_the_same_pseudonyms(project: DeidProject, tmp_path: Path) -> None:
    a = _export(project, tmp_path / "a", "csv")
    b = _export(project, tmp_path / "b", "json")
    assert [f for f in a.files if f.startswith("dicom/")] == [f for f in b.files if f.startswith("dicom/")]
    ra, rb = _label_rows(tmp_path / "a", "csv"), _label_rows(tmp_path / "b", "json")
    key = ("patient_key", "study_uid", "series_uid", "sop_uid", "reader")
    assert [tuple(r[k] for k in key) for r in ra] == [tuple(r[k] for k in key) for r in rb]
    for f in (tmp_path / "a" / "dicom").iterdir():  # the copies are byte for byte the same
        assert f.read_bytes() == (tmp_path / "b" / "dicom" / f.name).read_bytes()


def test_another_project_gets_other_pseudonyms(project: DeidProject, tmp_path: Path) -> None:
    other = build(tmp_path / "other", patients=1)
    _export(project, tmp_path / "a")
    _export(other, tmp_path / "b")
    assert secret_repo.deid_salt(other.db) != secret_repo.deid_salt(project.db)
    shared = {r["sop_uid"] for r in _label_rows(tmp_path / "a", "csv")} & \
        {r["sop_uid"] for r in _label_rows(tmp_path / "b", "csv")}
    assert not shared  # the same original slices, other pseudonyms
    other.db.close()


def test_slices_without_burned_in_annotation_no_are_warnings(project: DeidProject, tmp_path: Path) -> None:
    out = tmp_path / "b"
    summary = _export(project, out)
    manifest = json.loads((out / "bundle.json").read_text())
    deid = interchange.deidentify.Deidentifier(secret_repo.deid_salt(project.db))
    exported = {r["sop_uid"] for r in _label_rows(out, "csv")}
    yes = deid.uid(project.burned_yes)
    no = {deid.uid(s) for s in project.burned_no} & exported
    assert {w["sop_uid"]: w["reason"] for w in manifest["warnings"]}[yes] == "BurnedInAnnotation 'YES'"
    assert {w["sop_uid"] for w in manifest["warnings"]} == exported - no
    assert summary.warning_counts == manifest["warning_counts"] == {
        "BurnedInAnnotation 'YES'": 1, "BurnedInAnnotation absent (unknown)": len(exported - no) - 1}
    assert manifest["deidentified"] is True and manifest["counts"]["dicom_copies"] == len(exported)


def test_copies_and_bundle_labels_import_into_a_fresh_project(project: DeidProject, tmp_path: Path) -> None:
    """The bundle is usable on its own: its DICOM copies import, and its label file applies to them."""
    from annotator.services import project as project_service
    from annotator.services.importing import import_paths

    out = tmp_path / "b"
    summary = _export(project, out, readers=["rater:ann"])
    fresh = project_service.open_project(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert all(r.status.value == "imported" for r in import_paths(fresh, [out / "dicom"]))
    report = interchange.import_labels(fresh, out)
    assert report.errors == [] and report.applied == summary.items and report.created_raters == ["ann"]
    fresh.close()


def test_a_failing_writer_or_a_cancel_leaves_nothing(project: DeidProject, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ctx: ExportContext) -> list[Path]:
        (ctx.out_dir / "half.csv").write_text("half")
        raise OSError("disk full")

    real = registry.writer
    monkeypatch.setattr(registry, "writer", lambda fmt: broken)
    with pytest.raises(OSError, match="disk full"):
        _export(project, tmp_path / "b")
    monkeypatch.setattr(registry, "writer", real)
    calls: list[int] = []
    with pytest.raises(Cancelled):
        interchange.export(project.db, interchange.ExportRequest("csv", tmp_path / "b", deidentify=True),
                           progress=lambda done, total, msg: calls.append(done), should_stop=lambda: len(calls) > 3)
    assert list(tmp_path.iterdir()) == []  # no bundle, no temporary folder
    _export(project, tmp_path / "b")
    with pytest.raises(InputError, match="exists"):
        _export(project, tmp_path / "b")


def test_a_missing_format_module_is_a_clear_error(project: DeidProject, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "PACKAGE", "annotator.services.no_such_formats")
    with pytest.raises(InputError, match=r"no csv format \(module annotator.services.no_such_formats.csv is missing"):
        _export(project, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="--format 'xlsx': use one of csv, json, sr, rsna, coco"):
        _export(project, tmp_path / "b", "xlsx")


def test_patients_without_an_id_keep_apart(tmp_path: Path) -> None:
    """Two studies without PatientID (catalogued under their study UID) get two pseudonymous ids, and the
    label file names each copy's."""
    from pydicom.data import get_testdata_file

    from annotator.domain.entities import Role
    from annotator.services import project as project_service
    from annotator.services.importing import import_paths
    from annotator.services.labelling import LabelService

    for i in range(2):
        ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
        del ds.PatientID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.2.{i}", f"1.2.826.0.1.3680043.2.{i}.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.2.{i}.1.1"
        (tmp_path / "in").mkdir(exist_ok=True)
        ds.save_as(tmp_path / "in" / f"{i}.dcm")
    db = project_service.open_project(f"sqlite:///{tmp_path / 'p.db'}")
    assert all(r.status.value == "imported" for r in import_paths(db, [tmp_path / "in"]))
    ann = project_service.add_rater(db, "ann", Role.ANNOTATOR)
    for im in catalog.images(db):
        LabelService(db, ann).set_label(im.id, 10.0, 10.0, 1)
    interchange.export(db, interchange.ExportRequest("csv", tmp_path / "b", ("rater:ann",), None, True))
    copies = {str(pydicom.dcmread(f).SOPInstanceUID): str(pydicom.dcmread(f).PatientID)
              for f in (tmp_path / "b" / "dicom").iterdir()}
    rows = _label_rows(tmp_path / "b", "csv")
    assert len(set(copies.values())) == 2 and {r["sop_uid"]: r["patient_key"] for r in rows} == copies
    db.close()
