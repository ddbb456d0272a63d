"""A reader study end to end through the command line, on a mixed archive of real DICOM files: rules pick
exactly the axial L4-L5 slices, two readers read with hidden repeats, answers go in through `read answer`,
and a repeat's answer is stored apart from the first read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from annotator.cli import main

AXIAL = [1, 0, 0, 0, 1, 0]
SAGITTAL = [0, 1, 0, 0, 0, -1]
# description, orientation, slices
SERIES = [("LOCALIZER", [1, 0, 0, 0, 0, -1], 1), ("SAG T2", SAGITTAL, 3), ("AX T2 L3-L4", AXIAL, 2),
          ("AX T2 L4-5", AXIAL, 3), ("AX T2 L5/S1", AXIAL, 2), ("SAG T2 L4-L5", SAGITTAL, 2)]


def _archive(folder: Path, patients: int = 2) -> dict[str, list[str]]:
    """Write a mixed lumbar archive (one exam per patient); SOP UIDs by series description."""
    src = get_testdata_file("MR_small.dcm", download=False)
    assert src is not None
    out: dict[str, list[str]] = {}
    for p in range(patients):
        study_uid = generate_uid()
        for n, (desc, iop, count) in enumerate(SERIES, start=1):
            series_uid = generate_uid()
            for i in range(count):
                ds = pydicom.dcmread(src)
                ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = f"PT{p}", study_uid, series_uid
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = desc, n, i + 1
                ds.ImageOrientationPatient = iop
                ds.ImagePositionPatient = [0, 0, 4.0 * i] if iop == AXIAL else [4.0 * i, 0, 0]
                ds.save_as(folder / f"p{p}_s{n}_{i}.dcm")
                out.setdefault(desc, []).append(ds.SOPInstanceUID)
    return out


def cli(db: Path, *args: str, capsys: pytest.CaptureFixture[str], ok: bool = True) -> str:
    code = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    assert (code == 0) is ok, f"{args} exited {code}: {err}"
    return out if ok else err


def test_a_study_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pacs"
    folder.mkdir()
    sops = _archive(folder)
    db = tmp_path / "p.db"
    cli(db, "import", str(folder), capsys=capsys)
    assert json.loads(cli(db, "levels", "list", "--json", capsys=capsys)) == {
        "L3-L4": 4, "L4-L5": 10, "L5-S1": 4, "none": 8}
    assert json.loads(cli(db, "status", "--json", capsys=capsys))["images_per_level"]["L4-L5"] == 10
    for name, role in (("boss", "admin"), ("ann", "annotator"), ("bob", "annotator")):
        cli(db, "raters", "add", name, "--role", role, capsys=capsys)
    create = ["study", "create", "L4-L5 axial", "--series-description", "^AX", "--orientation", "axial",
              "--level", "L4-L5", "--modality", "MR", "--readers", "rater:ann", "rater:bob", "--order", "random",
              "--seed", "3", "--repeat-fraction", "0.34", "--washout", "2"]
    err = cli(db, *create, "--as", "ann", capsys=capsys, ok=False)
    assert "ann is an annotator and cannot create reader studies" in err
    cli(db, *create, "--as", "boss", capsys=capsys)
    show = json.loads(cli(db, "study", "show", "L4-L5 axial", "--json", "--as", "boss", capsys=capsys))
    assert sorted(show["slices"]) == sorted(sops["AX T2 L4-5"])  # exactly the axial L4-L5 slices
    assert [(r["reader"], r["assigned"], r["repeats_planned"]) for r in show["readers"]] == [("ann", 6, 2),
                                                                                             ("bob", 6, 2)]
    assert "cannot see its design" in cli(db, "study", "show", "L4-L5 axial", "--as", "ann", capsys=capsys,
                                          ok=False)

    # the entry point a script would call, once: the next item as JSON
    proc = subprocess.run([sys.executable, "-m", "annotator", "--db", str(db), "read", "next", "--study",
                           "L4-L5 axial", "--as", "ann", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    assert first["number"] == 1 and first["total"] == 8 and first["calibration"] is False

    wrong = next(s for s in sops["AX T2 L4-5"] if s != first["sop_uid"])
    err = cli(db, "read", "answer", "--study", "L4-L5 axial", "--as", "ann", wrong, "--x", "5", "--y", "5",
              "--grade", "1", capsys=capsys, ok=False)
    assert f"{wrong} is not your current slice" in err

    seen: dict[str, dict[str, int]] = {"ann": {}, "bob": {}}
    for reader in ("ann", "bob"):
        while True:
            item = json.loads(cli(db, "read", "next", "--study", "L4-L5 axial", "--as", reader, "--json",
                                  capsys=capsys))
            if item["finished"]:
                break
            assert set(item) == set(first)  # a repeat looks like any other item
            times = seen[reader].get(item["sop_uid"], 0)
            seen[reader][item["sop_uid"]] = times + 1
            answer = ["--grade", str(1 + times), "--x", "10", "--y", "12", "--seconds", str(2 + item["number"])]
            if reader == "bob" and item["number"] == 1:
                answer = ["--cannot-grade", "motion", "--comment", "blurred"]
            out = json.loads(cli(db, "read", "answer", "--study", "L4-L5 axial", "--as", reader, item["sop_uid"],
                                 *answer, "--json", capsys=capsys))
            assert out["number"] == item["number"] and "reference" not in out
    assert all(sorted(v.values()) == [1, 1, 1, 1, 2, 2] for v in seen.values())

    show = json.loads(cli(db, "study", "show", "L4-L5 axial", "--json", "--as", "boss", capsys=capsys))
    assert [(r["reader"], r["done"], r["repeats_done"], r["cannot_grade"]) for r in show["readers"]] == [
        ("ann", 6, 2, 0), ("bob", 6, 2, 1)]
    # the repeat's answer (grade 2) is stored apart; the first read (grade 1) is unchanged
    from annotator.domain.studies import ReadKind
    from annotator.storage import studies as repo
    from annotator.storage.database import open_database

    database = open_database(str(db))
    try:
        reads = repo.reads(database, show["id"])
    finally:
        database.close()
    assert len(reads) == 16
    firsts = [r for r in reads if r.kind is ReadKind.FIRST and r.cannot_grade is None]
    assert {r.grade for r in firsts} == {1} and {r.grade for r in reads if r.kind is ReadKind.REPEAT} == {2}
    assert sum(r.cannot_grade is not None for r in reads) == 1
    assert json.loads(cli(db, "study", "list", "--json", "--as", "ann", capsys=capsys))[0]["name"] == "L4-L5 axial"
    figures = json.loads(cli(db, "agreement", "--study", "L4-L5 axial", "--as", "boss", "--json", capsys=capsys))
    # every repeat was graded 2 against a first read of 1: intra-rater accuracy 0 on 2 pairs per reader
    assert [(f["reader"], f["n"], f["accuracy"]) for f in figures["intra"]] == [("rater:ann", 2, 0.0),
                                                                               ("rater:bob", 2, 0.0)]
    assert [s["n"] for s in figures["reading_seconds"]] == [8, 7]  # bob's cannot-grade read gave no seconds
    assert figures["cannot_grade"]["rater:bob"]["motion"] == 1 and list(figures["per_level"]) == ["L4-L5"]


def test_calibration_from_a_sop_list_with_feedback_through_the_cli(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pacs"
    folder.mkdir()
    sops = _archive(folder, patients=1)
    db = tmp_path / "p.db"
    cli(db, "import", str(folder), capsys=capsys)
    for name, role in (("boss", "admin"), ("ann", "annotator"), ("expert", "annotator")):
        cli(db, "raters", "add", name, "--role", role, capsys=capsys)
    calibration = sops["AX T2 L3-L4"]  # two slices at another level, labelled by the reference
    labels = tmp_path / "expert.csv"
    labels.write_text("sop_uid,reader,x_px,y_px,grade\n" + "".join(
        f"{sop},rater:expert,30,40,2\n" for sop in calibration))
    cli(db, "import-labels", str(labels), capsys=capsys)
    (tmp_path / "cal.txt").write_text("# calibration cases\n" + "\n".join(calibration) + "\n")
    (tmp_path / "study.txt").write_text("\n".join(sops["AX T2 L4-5"]) + "\n")
    err = cli(db, "study", "create", "x", "--sop-list", str(tmp_path / "study.txt"), "--level", "L4-L5", "--readers",
              "rater:ann", "--as", "boss", capsys=capsys, ok=False)
    assert "--sop-list replaces the rules: drop --level" in err
    cli(db, "study", "create", "cal", "--sop-list", str(tmp_path / "study.txt"), "--readers", "rater:ann",
        "--calibration", str(tmp_path / "cal.txt"), "--reference", "rater:expert", "--as", "boss", capsys=capsys)
    outs = []
    for _ in calibration:
        item = json.loads(cli(db, "read", "next", "--study", "cal", "--as", "ann", "--json", capsys=capsys))
        assert item["calibration"] is True and item["sop_uid"] in calibration
        outs.append(json.loads(cli(db, "read", "answer", "--study", "cal", "--as", "ann", item["sop_uid"], "--x",
                                   "33", "--y", "44", "--grade", "2", "--json", capsys=capsys)))
    # MR_small's PixelSpacing is 0.3125 mm: (3, 4) px away is 1.5625 mm
    assert outs[0]["reference"] == {"x_px": 30.0, "y_px": 40.0, "grade": 2, "distance_mm": pytest.approx(1.5625),
                                    "grade_difference": 0}
    assert "calibration_score" not in outs[0]
    assert outs[1]["calibration_score"]["exact"] == 2 and outs[1]["calibration_score"]["accuracy"] == 1.0
    item = json.loads(cli(db, "read", "next", "--study", "cal", "--as", "ann", "--json", capsys=capsys))
    assert item["calibration"] is False and item["sop_uid"] in sops["AX T2 L4-5"]
