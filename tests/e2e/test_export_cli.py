"""``annotator export --deidentify`` and ``annotator import-labels`` of a bundle, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator.cli import main
from tests.deid_factories import build


def test_export_a_deidentified_bundle_and_import_it_elsewhere(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    p = build(tmp_path / "p")
    out = tmp_path / "bundle"
    assert main(["--db", p.url, "export", "--format", "json", "--readers", "rater:ann", "--deidentify",
                 "--out", str(out), "--as", "rev"]) == 0
    captured = capsys.readouterr()
    assert f"wrote a json bundle of 8 rows (rater:ann), 8 de-identified DICOM slices to {out}" in captured.out
    assert "warning: 6 slices may carry text burned into their pixels" in captured.err
    assert "BurnedInAnnotation 'YES': 1" in captured.err
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["format"] == "json" and manifest["deidentified"] and manifest["readers"] == ["rater:ann"]

    fresh = tmp_path / "fresh.db"
    assert main(["--db", str(fresh), "import", str(out / "dicom")]) == 0
    assert main(["--db", str(fresh), "import-labels", str(out)]) == 0
    assert "imported 8 labels from" in capsys.readouterr().out
    assert main(["--db", str(fresh), "export", "--out", str(tmp_path / "again.csv")]) == 0
    assert main(["--db", str(tmp_path / "empty.db"), "import-labels", str(out), "--format", "json"]) == 1
    err = capsys.readouterr().err
    assert "labels.json: line 1: sop_uid 2." in err and "nothing was imported" in err


def test_export_refuses_an_annotator_and_an_existing_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = build(tmp_path / "p", patients=1)
    out = tmp_path / "bundle"
    assert main(["--db", p.url, "export", "--deidentify", "--out", str(out), "--as", "ann"]) == 1
    assert "ann is an annotator and cannot export label sets" in capsys.readouterr().err and not out.exists()
    assert main(["--db", p.url, "export", "--deidentify", "--out", str(out)]) == 0
    assert main(["--db", p.url, "export", "--deidentify", "--out", str(out)]) == 1
    assert "exists: a bundle is written to a new folder" in capsys.readouterr().err
    assert sorted(f.name for f in tmp_path.iterdir()) == ["bundle", "p"]
