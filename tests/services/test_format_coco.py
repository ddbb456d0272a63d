"""COCO keypoints: written from phantom exams, loaded with pycocotools, PNGs in the series' window, read
back as labels, and round trips for raters, the consensus and a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pycocotools.coco import COCO

from annotator.domain.errors import InputError
from annotator.services import readers as reader_service
from annotator.services.formats import coco
from annotator.services.importing import import_paths
from annotator.services.labelsets import apply_imported
from annotator.services.viewing import decode_slice
from annotator.storage import catalog, labels, people
from tests.format_projects import Project, Pseudonyms, build, context, fresh_db

Image = pytest.importorskip("PIL.Image")


def _load(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / coco.ANNOTATIONS).read_text())
    return data


def test_the_file_loads_with_pycocotools_and_states_its_conventions(tmp_path: Path) -> None:
    p = build(tmp_path)
    out = tmp_path / "out"
    readers = ["rater:e1", "rater:e2", f"model:{p.model_id}", "consensus"]
    coco.write(context(p.db, readers, out))
    gt = COCO(str(out / coco.ANNOTATIONS))
    assert gt.getCatIds() == [coco.CATEGORY_ID] and gt.loadCats([1])[0]["keypoints"] == ["canal_centre"]
    assert len(gt.getImgIds()) == len(p.truth)  # one image per annotated slice
    by_sop = p.images()
    e1 = {lab.image_id: lab for lab in labels.current(p.db, rater_ids=[people.rater_by_name(p.db, "e1").id])}
    n_consensus = 0
    for img in gt.loadImgs(gt.getImgIds()):
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[img["id"]], catIds=[1]))
        readers_here = [a["attributes"]["reader"] for a in anns]
        assert set(readers_here) >= {"rater:e1", "rater:e2", f"model:{p.model_id}"}
        n_consensus += "consensus" in readers_here
        im = by_sop[img["sop_instance_uid"]]
        lab = e1[im.id]
        a = next(a for a in anns if a["attributes"]["reader"] == "rater:e1")
        assert a["keypoints"] == [lab.x_px, lab.y_px, 2] and a["num_keypoints"] == 1  # the app's pixel centres
        assert a["attributes"]["grade"] == lab.grade and a["attributes"]["version"] == lab.version
        assert a["attributes"]["level"] == im.level and a["attributes"]["reader_label"] == "e1"
        x0, y0, w, h = a["bbox"]
        assert (x0 + w / 2, y0 + h / 2) == pytest.approx((lab.x_px + 0.5, lab.y_px + 0.5))  # corner origin
        assert w == pytest.approx(coco.BOX_MM / im.geometry.pixel_spacing[1])  # type: ignore[index]
    assert n_consensus == len(reader_service.marks(p.db, "consensus")) == len(p.truth) - 1  # one disagreement
    assert gt.getAnnIds(catIds=[1]) == list(range(1, 3 * len(p.truth) + n_consensus + 1))
    info = gt.dataset["info"]
    assert "(0, 0)" in info["pixel_convention"] and "x + 0.5" in info["pixel_convention"]
    assert "attributes.grade" in info["grade_encoding"] and info["scale"]["code"] == "lee"


def test_png_is_the_slice_in_its_default_window(tmp_path: Path) -> None:
    p = build(tmp_path)
    out = tmp_path / "out"
    coco.write(context(p.db, ["rater:e1"], out))
    data = _load(out)
    img = data["images"][0]
    im = p.images()[img["sop_instance_uid"]]
    ds = pydicom.dcmread(im.path)
    assert img["window"] == {"center": float(ds.WindowCenter), "width": float(ds.WindowWidth), "source": "DICOM"}
    png = np.asarray(Image.open(out / img["file_name"]))
    assert png.shape == (img["height"], img["width"]) == (ds.Rows, ds.Columns) and png.dtype == np.uint8
    lo = float(ds.WindowCenter) - float(ds.WindowWidth) / 2
    want = np.clip((ds.pixel_array.astype(np.float64) - lo) / float(ds.WindowWidth), 0, 1) * 255
    assert np.abs(png.astype(np.float64) - want).max() <= 0.5 + 1e-6
    assert png.min() == 0 and png.max() == 255  # the window clips both ends on the phantom
    assert np.array_equal(png, np.rint(np.clip((decode_slice(im).pixels - lo) / float(ds.WindowWidth), 0, 1) * 255))


def _label_set(data: dict[str, Any], *, with_version: bool) -> set[tuple[Any, ...]]:
    sop = {i["id"]: i["sop_instance_uid"] for i in data["images"]}
    return {(sop[a["image_id"]], *a["keypoints"], a["attributes"]["grade"], a["attributes"]["level"],
             a["attributes"]["version"] if with_version else None) for a in data["annotations"]}


@pytest.mark.parametrize("reader", ["raters", "consensus", "model"])
def test_round_trip_into_a_fresh_project_gives_the_same_labels(tmp_path: Path, reader: str) -> None:
    p = build(tmp_path)
    if reader == "raters":
        refs, name = ["rater:e1", "rater:e2"], None
    else:
        refs, name = [f"model:{p.model_id}" if reader == "model" else reader], "imported"
    first = tmp_path / "first"
    coco.write(context(p.db, refs, first))

    db2 = fresh_db(tmp_path / "fresh.db")
    import_paths(db2, [p.dicom_dir])
    report = apply_imported(db2, coco.read(db2, first, reader=name), source="coco")
    assert report.errors == [] and report.applied == len(_load(first)["annotations"])
    second = tmp_path / "second"
    coco.write(context(db2, ["rater:e1", "rater:e2"] if name is None else ["rater:imported"], second))
    a, b = _load(first), _load(second)
    assert _label_set(b, with_version=name is None) == _label_set(a, with_version=name is None)
    if name is None:  # the raters keep their names and the times of their labels
        assert ({(x["attributes"]["reader"], x["attributes"]["labelled_at"]) for x in b["annotations"]}
                == {(x["attributes"]["reader"], x["attributes"]["labelled_at"]) for x in a["annotations"]})
    assert [i["file_name"] for i in b["images"]] == [i["file_name"] for i in a["images"]]
    assert all((second / i["file_name"]).read_bytes() == (first / i["file_name"]).read_bytes() for i in a["images"])


def test_import_refuses_what_it_cannot_hold(tmp_path: Path) -> None:
    p = build(tmp_path)
    out = tmp_path / "out"
    coco.write(context(p.db, ["rater:e1", f"model:{p.model_id}"], out))
    db2 = fresh_db(tmp_path / "fresh.db")
    import_paths(db2, [p.dicom_dir])
    with pytest.raises(InputError, match=r"annotations.json: item \d+: reader model:\d+: only rater labels"):
        coco.read(db2, out, reader=None)
    with pytest.raises(InputError, match="a slice holds one label per reader"):
        coco.read(db2, out, reader="imported")  # two readers of one slice cannot become one rater
    schizas = fresh_db(tmp_path / "schizas.db", scale="schizas")
    with pytest.raises(InputError, match="scale 'lee' differs"):
        coco.read(schizas, out / coco.ANNOTATIONS, reader="imported")
    empty = fresh_db(tmp_path / "empty.db")  # no images: every row is refused, nothing is written
    data = _load(out)
    data["annotations"] = [a for a in data["annotations"] if a["attributes"]["reader"] == "rater:e1"]
    (out / coco.ANNOTATIONS).write_text(json.dumps(data))
    report = apply_imported(empty, coco.read(empty, out, reader=None), source="coco")
    assert report.applied == 0 and report.errors[0].startswith("annotations.json: item 1: sop_uid")
    assert labels.current(empty) == []
    (out / coco.ANNOTATIONS).write_text("{\"images\": []}")
    with pytest.raises(InputError, match="'images' and 'annotations'"):
        coco.read(db2, out, reader=None)


def test_a_deidentified_export_names_files_by_pseudonym(tmp_path: Path) -> None:
    p = build(tmp_path)
    images = catalog.images(p.db)
    ids = Pseudonyms(tmp_path / "deid", {im.series_instance_uid for im in images})
    out = tmp_path / "out"
    coco.write(context(p.db, ["rater:e1"], out, ids=ids))
    text = (out / coco.ANNOTATIONS).read_text()
    names = " ".join(f.name for f in out.rglob("*"))
    originals = {u for im in images for u in (im.sop_instance_uid, im.series_instance_uid, im.study_instance_uid,
                                                im.patient_key)}
    assert not any(o in text or o in names for o in originals)
    data = _load(out)
    assert data["info"]["deidentified"] is True
    assert all(i["file_name"] == f"images/{i['sop_instance_uid']}.png" for i in data["images"])
    assert {i["patient_id"] for i in data["images"]} == {ids.patient(k) for k in {im.patient_key for im in images}}


def _cannot_grade_export(p: Project, out: Path, n: int, reason: str) -> dict[str, Any]:
    """e1's labels written as COCO, the first ``n`` annotations turned into cannot-grade reads without a
    point; returns the file's content."""
    coco.write(context(p.db, ["rater:e1"], out))
    data = _load(out)
    for ann in data["annotations"][:n]:
        ann["keypoints"], ann["num_keypoints"] = [0, 0, 0], 0
        ann["attributes"].update(grade=None, cannot_grade=reason)
    (out / coco.ANNOTATIONS).write_text(json.dumps(data))
    return data


def test_a_cannot_grade_read_without_a_point_is_passed_over(tmp_path: Path) -> None:
    p = build(tmp_path)
    out = tmp_path / "out"
    data = _cannot_grade_export(p, out, 1, "motion artefact")
    first = data["annotations"][0]
    got = coco.read(p.db, out, reader="again")
    assert len(got) == len(data["annotations"]) and got[0].cannot_grade == "motion artefact"
    report = apply_imported(p.db, got, source="coco")
    assert report.errors == [] and report.applied == len(got) - 1
    assert report.passed_over == ["annotations.json: item 1: cannot grade (motion artefact) without a point"]
    first["attributes"]["cannot_grade"] = None  # an empty annotation that is no such read: refused by the check
    (out / coco.ANNOTATIONS).write_text(json.dumps(data))
    report = apply_imported(p.db, coco.read(p.db, out, reader="again"), source="coco")
    assert report.applied == 0 and report.errors == ["annotations.json: item 1: a row needs a point (x_px, y_px) "
                                                     "and/or a grade"]


def test_the_cli_names_the_reads_it_passed_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from annotator.cli import main

    p = build(tmp_path)
    out = tmp_path / "out"
    data = _cannot_grade_export(p, out, 7, "motion")  # more than the command prints one by one
    url = f"sqlite:///{tmp_path / 'project.db'}"
    assert main(["--db", url, "import-labels", str(out), "--format", "coco", "--reader", "rater:again"]) == 0
    got = capsys.readouterr()
    assert f"imported {len(data['annotations']) - 7} labels from {out}" in got.out
    assert ("note: 7 reads passed over (a label needs a point or a grade; a reader study's 'cannot grade' reads "
            "travel in its table export (export --study)):") in got.err
    assert "note: annotations.json: item 1: cannot grade (motion) without a point" in got.err
    assert "note: … and 2 more" in got.err
    assert len(labels.current(p.db, rater_ids=[people.rater_by_name(p.db, "again").id])) == len(data["annotations"]) - 7
