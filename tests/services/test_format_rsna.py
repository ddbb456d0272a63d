"""RSNA 2024 lumbar format: the challenge's CSVs and image layout written from phantom exams, read back
through the normal importer, and round trips for a rater, the consensus and a model."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pydicom
import pytest

from annotator.domain.entities import ImageRef, Role
from annotator.domain.errors import InputError
from annotator.domain.scales import load_scale
from annotator.domain.studies import VertebralLevel
from annotator.services.formats import ExportContext, rsna
from annotator.services.importing import import_paths
from annotator.services.labelling import LabelService
from annotator.services.labelsets import apply_imported
from annotator.storage import catalog, labels, people
from annotator.storage import levels as level_repo
from tests.format_projects import Pseudonyms, build, context, fresh_db, make_dicom


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _sagittal_mid(images: list[ImageRef]) -> ImageRef:
    sag = [im for im in images if im.geometry.image_orientation == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
           and im.geometry.rows == 192]
    return sorted(sag, key=lambda im: (im.study_instance_uid, im.slice_index))[2]


def test_grade_mapping_is_the_documented_one() -> None:
    lee, schizas, rs = load_scale("lee"), load_scale("schizas"), load_scale("rsna")
    assert [rsna.rsna_class(lee, g) for g in range(4)] == ["Normal/Mild", "Normal/Mild", "Moderate", "Severe"]
    assert [rsna.rsna_class(schizas, g) for g in range(4)] == ["Normal/Mild", "Moderate", "Severe", "Severe"]
    assert [rsna.rsna_class(rs, g) for g in range(3)] == list(rsna.CLASSES)
    assert [rsna.grade_from_class(lee, c) for c in rsna.CLASSES] == [0, 2, 3]
    assert [rsna.grade_from_class(schizas, c) for c in rsna.CLASSES] == [0, 1, 2]
    for scale in (lee, schizas, rs):  # a class survives the way back
        assert all(rsna.rsna_class(scale, rsna.grade_from_class(scale, c)) == c for c in rsna.CLASSES)
    with pytest.raises(InputError, match="Normal"):
        rsna.grade_from_class(lee, "Mild")


def test_ids_are_integers_kept_from_the_uid() -> None:
    assert rsna.rsna_id("4003253") == 4003253  # the challenge's own ids stay what they are
    uid = "2.25.46783030965380041132085119317532446499"
    assert rsna.rsna_id(uid) == rsna.rsna_id(uid) < 10**15
    assert rsna.rsna_id(uid) != rsna.rsna_id(uid + "1")


def test_export_writes_the_challenge_files(tmp_path: Path) -> None:
    p = build(tmp_path)
    by_sop = p.images()
    e1 = LabelService(p.db, people.rater_by_name(p.db, "e1"))
    first = p.truth[0]
    stack = [t for t in p.truth if (t.patient_id, t.level) == (first.patient_id, first.level)]
    for t, grade in zip(stack, (1, 3, 0), strict=True):  # the most severe slice decides the level
        e1.set_grade(by_sop[t.sop_instance_uid].id, grade)
    out = tmp_path / "out"
    paths = rsna.write(context(p.db, ["rater:e1"], out))
    assert {q.name for q in paths} >= {rsna.TRAIN, rsna.COORDINATES, rsna.SERIES_DESCRIPTIONS}
    assert not (out / rsna.LEFT_OUT).exists()

    train = _rows(out / rsna.TRAIN)
    assert tuple(train[0]) == rsna.TRAIN_COLUMNS and len(rsna.TRAIN_COLUMNS) == 26
    study_uid = by_sop[first.sop_instance_uid].study_instance_uid
    row = next(r for r in train if int(r["study_id"]) == rsna.rsna_id(study_uid))
    assert row[f"spinal_canal_stenosis_{first.level.lower().replace('-', '_')}"] == "Severe"
    assert len(train) == 2 and all(r["spinal_canal_stenosis_l1_l2"] == "" for r in train)
    assert all(r[c] == "" for r in train for c in rsna.TRAIN_COLUMNS if "subarticular" in c or "foraminal" in c)
    current = {lab.image_id: lab for lab in labels.current(p.db, rater_ids=[people.rater_by_name(p.db, "e1").id])}
    for t in p.truth:  # every other level: its stage through the Lee mapping
        if (t.patient_id, t.level) != (first.patient_id, first.level):
            sid = rsna.rsna_id(by_sop[t.sop_instance_uid].study_instance_uid)
            r = next(r for r in train if int(r["study_id"]) == sid)
            assert r[f"spinal_canal_stenosis_{t.level.lower().replace('-', '_')}"] == ("Normal/Mild", "Normal/Mild",
                                                                                      "Moderate", "Severe")[t.stage]

    coords = _rows(out / rsna.COORDINATES)
    assert tuple(coords[0]) == rsna.COORDINATE_COLUMNS and len(coords) == len(p.truth)
    files = {}
    for c in coords:
        f = out / rsna.IMAGES / c["study_id"] / c["series_id"] / f"{c['instance_number']}.dcm"
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.InstanceNumber == int(c["instance_number"])
        im = by_sop[ds.SOPInstanceUID]
        lab = current[im.id]
        assert (float(c["x"]), float(c["y"])) == (lab.x_px, lab.y_px)  # the app's pixel centres, exact
        assert c["condition"] == "Spinal Canal Stenosis" and c["level"] == (im.level or "").replace("-", "/")
        assert int(c["series_id"]) == rsna.rsna_id(im.series_instance_uid)
        files[f] = ds
    series = _rows(out / rsna.SERIES_DESCRIPTIONS)
    assert sorted(r["series_description"] for r in series) == sorted(
        ["Axial T2"] * 6 + ["Sagittal T2/STIR"] * 2 + ["LOCALIZER"] * 2)
    assert len(list((out / rsna.IMAGES).rglob("*.dcm"))) == len(by_sop)  # every series of the exported studies

    again = tmp_path / "again"
    rsna.write(context(p.db, ["rater:e1"], again))
    for name in (rsna.TRAIN, rsna.COORDINATES, rsna.SERIES_DESCRIPTIONS):
        assert (again / name).read_bytes() == (out / name).read_bytes()


@pytest.mark.parametrize("reader", ["raters", "consensus", "model"])
def test_round_trip_into_a_fresh_project_gives_the_same_files(tmp_path: Path, reader: str) -> None:
    """Raters: e1 and e2 in one export (a folder each), each folder imported as its rater."""
    p = build(tmp_path)
    refs = {"raters": ["rater:e1", "rater:e2"], "consensus": ["consensus"], "model": [f"model:{p.model_id}"]}[reader]
    sag = _sagittal_mid(catalog.images(p.db))
    LabelService(p.db, people.rater_by_name(p.db, "e1")).set_point(sag.id, 70.25, 101.5)  # a point, no grade
    level_repo.set_level(p.db, [sag.id], VertebralLevel.L4_L5, actor_id=None, source="test")
    first = tmp_path / "first"
    rsna.write(context(p.db, refs, first))
    folders = {"e1": first / "e1", "e2": first / "e2"} if reader == "raters" else {"imported": first}

    db2 = fresh_db(tmp_path / "fresh.db")
    for name, folder in folders.items():
        report = apply_imported(db2, rsna.read(db2, folder, reader=name), source=str(folder))
        assert report.errors == [] and report.created_raters == [name]
    second = tmp_path / "second"
    rsna.write(context(db2, [f"rater:{name}" for name in folders], second))
    for name, folder in folders.items():
        again = second / name if reader == "raters" else second
        for f in (rsna.TRAIN, rsna.COORDINATES, rsna.SERIES_DESCRIPTIONS):
            assert (again / f).read_text() == (folder / f).read_text(), (name, f)
        assert len(_rows(again / rsna.COORDINATES)) >= 10

    got = {im.sop_instance_uid: im for im in catalog.images(db2)}
    now = {(lab.image_id, lab.rater_id): lab for lab in labels.current(db2)}
    if reader == "raters":  # e1's sagittal canal point came back, with its level and the study's grade there
        back = got[sag.sop_instance_uid]
        lab = now[(back.id, people.rater_by_name(db2, "e1").id)]
        assert back.level == "L4-L5" and (lab.x_px, lab.y_px) == (70.25, 101.5) and lab.grade is not None
    assert all(got[im.sop_instance_uid].level is not None for im in got.values()
               if any(k[0] == im.id for k in now))


def _challenge_set(tmp: Path) -> tuple[Path, dict[str, tuple[int, int, int]], dict[tuple[int, int, int], str]]:
    """A small set shaped like the challenge's, made from phantom exams (not by our writer): made-up ids,
    all five conditions, canal points on one sagittal instance and on axial slices."""
    dicom = tmp / "phantom"
    make_dicom(dicom, patients=1, seed=5)
    root = tmp / "rsna"
    key_of: dict[str, tuple[int, int, int]] = {}
    desc: dict[tuple[int, int, int], str] = {}
    for f in sorted(dicom.rglob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        key = (4003253, 700000000 + int(ds.SeriesNumber), int(ds.InstanceNumber))
        dest = root / rsna.IMAGES / str(key[0]) / str(key[1]) / f"{key[2]}.dcm"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
        key_of[str(ds.SOPInstanceUID)] = key
        desc[key] = str(ds.SeriesDescription)
    cells = {c: "" for c in rsna.TRAIN_COLUMNS}
    cells.update(study_id="4003253", spinal_canal_stenosis_l3_l4="Severe", spinal_canal_stenosis_l4_l5="Moderate",
                 spinal_canal_stenosis_l5_s1="Normal/Mild", left_subarticular_stenosis_l4_l5="Severe")
    with (root / rsna.TRAIN).open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rsna.TRAIN_COLUMNS))
        w.writeheader()
        w.writerow(cells)
    sag = 700000002
    ax45 = 700000004
    rows = [
        ("Spinal Canal Stenosis", "L3/L4", sag, 3, 96.5, 80.25),
        ("Spinal Canal Stenosis", "L4/L5", sag, 3, 97.0, 101.0),  # same instance: not imported (warned)
        ("Spinal Canal Stenosis", "L5/S1", sag, 4, 98.0, 120.0),
        ("Left Subarticular Stenosis", "L4/L5", ax45, 2, 20.0, 30.0),  # another condition: ignored
        ("Spinal Canal Stenosis", "L4/L5", ax45, 2, 31.5, 36.75),
    ]
    with (root / rsna.COORDINATES).open("w", newline="") as fh:
        w2 = csv.writer(fh)
        w2.writerow(rsna.COORDINATE_COLUMNS)
        w2.writerows([(4003253, se, n, c, lv, x, y) for c, lv, se, n, x, y in rows])
    return root, key_of, desc


def test_import_of_a_challenge_shaped_set(tmp_path: Path) -> None:
    root, key_of, _ = _challenge_set(tmp_path)
    db = fresh_db(tmp_path / "p.db", scale="schizas")
    with pytest.warns(rsna.RsnaImportWarning, match="line 3"):
        imported = rsna.read(db, root / rsna.COORDINATES, reader="rater:reader1")
    report = apply_imported(db, imported, source="rsna")
    assert report.errors == [] and report.applied == 3
    images = {im.sop_instance_uid: im for im in catalog.images(db)}
    assert len(images) == len(key_of)  # every image of the layout went through the importer
    by_key = {key_of[uid]: im for uid, im in images.items()}
    rater = people.rater_by_name(db, "reader1")
    got = {lab.image_id: lab for lab in labels.current(db, rater_ids=[rater.id])}
    sag3, sag4, ax = by_key[(4003253, 700000002, 3)], by_key[(4003253, 700000002, 4)], by_key[(4003253, 700000004, 2)]
    assert (got[sag3.id].x_px, got[sag3.id].y_px, got[sag3.id].grade) == (96.5, 80.25, 2)  # Severe -> Schizas C
    assert (got[sag4.id].x_px, got[sag4.id].grade) == (98.0, 0)  # Normal/Mild -> A
    assert (got[ax.id].x_px, got[ax.id].y_px, got[ax.id].grade) == (31.5, 36.75, 1)  # Moderate -> B
    levels = {im.id: im.level for im in catalog.images(db)}
    assert (levels[sag3.id], levels[sag4.id], levels[ax.id]) == ("L3-L4", "L5-S1", "L4-L5")
    assert set(got) == {sag3.id, sag4.id, ax.id}


def test_import_errors_name_the_file_and_line(tmp_path: Path) -> None:
    root, _, _ = _challenge_set(tmp_path)
    db = fresh_db(tmp_path / "p.db")
    with pytest.raises(InputError, match="no reader"):
        rsna.read(db, root, reader=None)
    with pytest.raises(InputError, match="consensus"):
        rsna.read(db, root, reader="consensus")
    text = (root / rsna.TRAIN).read_text()
    (root / rsna.TRAIN).write_text(text.replace("Moderate", "Moderately bad"))
    with pytest.raises(InputError, match=r"train.csv: line 2: spinal_canal_stenosis_l4_l5"):
        rsna.read(db, root, reader="r")
    (root / rsna.TRAIN).write_text(text)
    coords = (root / rsna.COORDINATES).read_text()
    (root / rsna.COORDINATES).write_text(coords.replace("L5/S1", "L6/S2"))
    with pytest.raises(InputError, match=r"train_label_coordinates.csv: line 4: level 'L6/S2'"):
        rsna.read(db, root, reader="r")
    (root / rsna.COORDINATES).write_text(coords.replace("700000004,2,", "700000004,9,"))
    with pytest.raises(InputError, match=r"line 6: no image train_images/4003253/700000004/9.dcm"):
        rsna.read(db, root, reader="r")
    (root / rsna.COORDINATES).write_text(coords.replace("31.5,36.75", "310.5,36.75"))
    with pytest.warns(rsna.RsnaImportWarning):
        bad = rsna.read(db, root, reader="r")
    report = apply_imported(db, bad, source="rsna")
    assert report.applied == 0 and report.errors[0].startswith("train_label_coordinates.csv: line 6: point")
    assert labels.current(db) == []  # all or nothing


def test_several_readers_get_one_folder_each_and_unlevelled_slices_are_listed(tmp_path: Path) -> None:
    p = build(tmp_path)
    localizer = next(im for im in catalog.images(p.db) if im.level is None
                     and im.geometry.image_orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    LabelService(p.db, people.rater_by_name(p.db, "e2")).set_label(localizer.id, 40.0, 40.0, 1)
    out = tmp_path / "out"
    rsna.write(context(p.db, ["rater:e1", "rater:e2"], out))
    assert sorted(q.name for q in out.iterdir()) == ["e1", "e2"]
    for name in ("e1", "e2"):
        assert len(_rows(out / name / rsna.COORDINATES)) == len(p.truth)
        assert len(list((out / name / rsna.IMAGES).rglob("*.dcm"))) == len(p.images())
    assert not (out / "e1" / rsna.LEFT_OUT).exists()
    assert [r["sop_instance_uid"] for r in _rows(out / "e2" / rsna.LEFT_OUT)] == [localizer.sop_instance_uid]


def test_a_deidentified_export_leaks_no_original_identifier(tmp_path: Path) -> None:
    p = build(tmp_path)
    images = catalog.images(p.db)
    labelled = {p.images()[t.sop_instance_uid].series_instance_uid for t in p.truth}
    ids = Pseudonyms(tmp_path / "deid", labelled)
    out = tmp_path / "out"
    ctx: ExportContext = context(p.db, ["rater:e1"], out, ids=ids)
    rsna.write(ctx)
    originals = {u for im in images for u in (im.sop_instance_uid, im.series_instance_uid, im.study_instance_uid,
                                                im.patient_key)}
    originals |= {str(rsna.rsna_id(u)) for im in images for u in (im.series_instance_uid, im.study_instance_uid)}
    text = "".join(f.read_text(errors="replace") for f in out.rglob("*") if f.is_file() and f.suffix == ".csv")
    names = " ".join(str(f.relative_to(out)) for f in out.rglob("*"))
    assert not any(o in text or o in names for o in originals)
    written = list((out / rsna.IMAGES).rglob("*.dcm"))
    assert len(written) == sum(im.series_instance_uid in labelled for im in images)  # no original file copied
    for f in written:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.PatientName == "ANON" and f.parent.name == str(rsna.rsna_id(str(ds.SeriesInstanceUID)))
    assert {r["series_description"] for r in _rows(out / rsna.SERIES_DESCRIPTIONS)} == {"Axial T2"}


def test_the_importer_takes_the_layout_even_when_images_are_already_there(tmp_path: Path) -> None:
    """A project that already holds the images (imported from elsewhere) still maps the layout's files."""
    root, key_of, _ = _challenge_set(tmp_path)
    db = fresh_db(tmp_path / "p.db")
    import_paths(db, [tmp_path / "phantom"])
    people.add_rater(db, "reader1", Role.ANNOTATOR)
    with pytest.warns(rsna.RsnaImportWarning):
        imported = rsna.read(db, root, reader="reader1")
    assert {key_of[lab.sop_uid] for lab in imported} == {(4003253, 700000002, 3), (4003253, 700000002, 4),
                                                          (4003253, 700000004, 2)}
    assert apply_imported(db, imported, source="rsna").applied == 3
