"""The study dashboard on a study read by a script: the right counts per reader, kappa against a chosen
reference, one reading-time curve per reader, the CSV export; and only for reviewers and admins."""

from __future__ import annotations

import csv
import re

import pytest

from annotator.domain.errors import PermissionDenied
from annotator.domain.studies import Answer, CannotGrade, ReadItem
from annotator.gui.study_dashboard import COLUMNS, StudyDashboard
from annotator.services.reading import ReadingSession
from tests.gui.study_project import STUDY, StudyProject, build


@pytest.fixture
def sp(tmp_path) -> StudyProject:  # type: ignore[no-untyped-def]
    p = build(tmp_path)
    ann = ReadingSession.open(p.db, p.ann, STUDY)
    ann.read_through(lambda it: Answer(30.0, 30.0, 2 if it.number == 1 else it.image_id % 4,
                                       seconds=float(it.number)))  # the same grade on a repeat

    def bob(it: ReadItem) -> Answer:
        if it.number == 4:
            return Answer(cannot_grade=CannotGrade.ARTEFACT, seconds=1.0)
        return Answer(31.0, 30.0, 2 if it.number % 2 else 1, seconds=10.0)

    ReadingSession.open(p.db, p.bob, STUDY).read_through(bob, limit=6)  # 6 of her 8 items
    yield p
    p.db.close()


def cell(d: StudyDashboard, reader: str, column: str) -> str:
    row = next(i for i in range(d.table.rowCount()) if d.table.item(i, 0).text() == reader)
    return d.table.item(row, COLUMNS.index(column)).text()


def test_the_dashboard_shows_each_readers_figures_and_exports_them(qtbot, sp: StudyProject, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = StudyDashboard(sp.db, sp.rev)
    qtbot.addWidget(d)
    with qtbot.waitSignal(d.loaded, timeout=15000):
        d.load()
    assert d.study == STUDY and [d.reference_box.itemText(i) for i in range(d.reference_box.count())] == [
        "(no reference)", "ann", "bob"]
    assert [cell(d, "ann", c) for c in ("Assigned", "Done", "Repeats done", "Cannot grade")] == ["5", "5", "2/2", "0"]
    assert cell(d, "ann", "Calibration score") == "1/1 (100%)"  # the expert graded 2, so did ann
    assert cell(d, "ann", "Median time (s)") == "5.0"  # items 2..8, calibration left out
    assert cell(d, "ann", "Intra-rater κ") in ("1.00 (n=2)", "– (n=2)")  # – when both pairs share one grade
    assert cell(d, "bob", "Intra-rater κ") == "–"  # bob has read no repeat yet
    rows = {r.reader: r for r in d.rows}
    bob = rows["bob"]
    assert (bob.done + bob.repeats_done, bob.cannot_grade, bob.intra_n) == (5, 1, 0)  # 6 read, 1 calibration
    assert cell(d, "bob", "Cannot grade") == "1" and cell(d, "bob", "κ vs reference") == "–"
    assert len(d.plot.getPlotItem().listDataItems()) == 2  # one reading-time curve per reader
    xs, ys = d.plot.getPlotItem().listDataItems()[0].getData()
    assert list(ys) == [float(n) for n in range(2, 9)]  # ann's times in her reading order
    with qtbot.waitSignal(d.loaded, timeout=15000):
        d.reference_box.setCurrentIndex(d.reference_box.findData("ann"))
    assert cell(d, "ann", "κ vs reference") == "–"  # the reference against herself: no pair
    assert re.fullmatch(r"-?\d\.\d\d", cell(d, "bob", "κ vs reference"))
    out = tmp_path / "dash.csv"
    with qtbot.waitSignal(d.exported, timeout=15000):
        d.export(out)
    table = list(csv.DictReader(out.open()))
    assert [(r["reader"], r["done"], r["repeats_done"], r["cannot_grade"], r["reference"]) for r in table] == [
        ("ann", "5", "2", "0", "ann"), ("bob", str(bob.done), str(bob.repeats_done), "1", "ann")]
    d.close()


def test_an_annotator_gets_no_dashboard(qtbot, sp: StudyProject) -> None:  # type: ignore[no-untyped-def]
    d = StudyDashboard(sp.db, sp.ann)
    qtbot.addWidget(d)
    d.load()
    qtbot.waitUntil(lambda: d.study_box.count() == 1, timeout=10000)  # she sees the study she reads in
    from annotator.services.dashboard import study_dashboard
    with pytest.raises(PermissionDenied):
        study_dashboard(sp.db, sp.ann, STUDY)
    d.close()
