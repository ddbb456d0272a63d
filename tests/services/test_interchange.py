"""The export service's other paths: a reader study's reads as export items, single-file exports unchanged,
format guessing on import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator.domain.errors import InputError
from annotator.services import interchange, study_io
from annotator.services.formats import ExportFormat
from annotator.services.formats.table import StudyReadItem
from tests.services.test_study_io import _project, _run_study


def test_a_study_exports_its_reads_with_cannot_grade(tmp_path: Path) -> None:
    db, admin = _project(tmp_path / "a.db")
    _run_study(db, admin)
    items, scale = study_io.export_items(db, admin, "s")
    assert all(isinstance(i, StudyReadItem) and i.study == "s" for i in items) and scale.code == "lee"
    cannot = [i for i in items if i.cannot_grade]
    assert [i.cannot_grade for i in cannot] == ["wrong_level", "wrong_level"]
    assert all(i.mark.grade is None for i in cannot)
    out = tmp_path / "reads.json"
    summary = interchange.export(db, interchange.ExportRequest("json", out, ("rater:ann",), "s"), actor=admin)
    rows = json.loads(out.read_text())["rows"]
    assert not summary.bundle and summary.readers == ("rater:ann",) and len(rows) == summary.items == 14
    assert rows == [r for r in study_io.export_rows(db, admin, "s") if r["reader"] == "rater:ann"]
    with pytest.raises(InputError, match="needs --as NAME"):
        interchange.export(db, interchange.ExportRequest("json", out, (), "s"))


def test_import_guesses_the_format(tmp_path: Path) -> None:
    coco = tmp_path / "k.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    ours = tmp_path / "labels.json"
    ours.write_text(json.dumps({"columns": [], "rows": []}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.json").write_text(json.dumps({"format": "rsna"}))
    assert interchange.guess_format(coco) is ExportFormat.COCO
    assert interchange.guess_format(ours) is ExportFormat.JSON
    assert interchange.guess_format(tmp_path / "b") is ExportFormat.RSNA
    assert interchange.guess_format(tmp_path / "x.csv") is ExportFormat.CSV
    with pytest.raises(InputError, match="name its --format"):
        interchange.guess_format(tmp_path / "x.txt")
