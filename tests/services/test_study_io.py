"""A reader study's reads exported as a label-set file carry study, level, read, calibration, seconds,
cannot_grade and comment; import-labels rebuilds the study in a fresh project, and exporting that again
gives the same file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from annotator.domain.entities import Role
from annotator.domain.errors import PermissionDenied
from annotator.domain.studies import Answer, Calibration, CannotGrade, StudyDefinition
from annotator.services import labelsets, study_io
from annotator.services.labelling import LabelService
from annotator.services.reading import ReadingSession
from annotator.services.studies import create_study, show_study
from annotator.storage import catalog, people
from annotator.storage.database import open_database
from tests.study_factories import RULE, archive


def _project(path: Path):  # type: ignore[no-untyped-def]
    db = open_database(f"sqlite:///{path}")
    archive(db, range(3))
    return db, people.add_rater(db, "boss", Role.ADMIN)


def _run_study(db, admin) -> None:  # type: ignore[no-untyped-def]
    expert = people.add_rater(db, "expert", Role.ANNOTATOR)
    for im in [im for im in catalog.images(db) if im.level == "L4-L5" and im.series_instance_uid.endswith(".2.0")]:
        LabelService(db, expert).set_label(im.id, 30.0, 30.0, 2)
    readers = [people.add_rater(db, n, Role.ANNOTATOR) for n in ("ann", "bob")]
    create_study(db, admin, StudyDefinition("s", RULE, ("ann", "bob"), seed=4, repeat_fraction=0.25, washout=2,
                                            calibration=Calibration("expert", count=2)))
    for r in readers:
        session = ReadingSession.open(db, r, "s")
        while (item := session.next()) is not None:
            if item.number == 4:
                answer = Answer(cannot_grade=CannotGrade.WRONG_LEVEL, seconds=1.5, comment="looks like L3-L4")
            else:
                answer = Answer(10.0 + item.number, 20.0, item.number % 4, seconds=2.25 * item.number,
                                comment="ok, \"quoted\"" if item.number == 5 else "")
            session.answer(item.sop_instance_uid, answer)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_import_export_gives_the_same_file(tmp_path: Path, fmt: str) -> None:
    db, admin = _project(tmp_path / "a.db")
    _run_study(db, admin)
    first = tmp_path / f"reads.{fmt}"
    n = study_io.export(db, admin, "s", first, fmt)
    rows = study_io.export_rows(db, admin, "s")
    assert n == len(rows) == 2 * (2 + 10 + 2)  # calibration, first, repeat (round(2.5)) reads, both readers
    assert {r["read"] for r in rows} == {1, 2} and sum(r["calibration"] for r in rows) == 4
    assert {r["level"] for r in rows} == {"L4-L5"} and {r["study"] for r in rows} == {"s"}
    assert [r["cannot_grade"] for r in rows].count("wrong_level") == 2
    before = show_study(db, admin, "s")

    fresh, boss = _project(tmp_path / "b.db")
    report = labelsets.import_labels(fresh, first, actor=boss)
    assert (report.applied, report.errors, report.created_raters) == (n, [], ["ann", "bob"])
    second = tmp_path / f"again.{fmt}"
    study_io.export(fresh, boss, "s", second, fmt)
    assert second.read_text() == first.read_text()
    after = show_study(fresh, boss, "s")
    assert [(p.reader, p.done, p.repeats_done, p.calibration_done, p.cannot_grade) for p in after.readers] == \
        [(p.reader, p.done, p.repeats_done, p.calibration_done, p.cannot_grade) for p in before.readers]
    assert sorted(after.slice_sops) == sorted(before.slice_sops)  # the same slices (listed in file order)
    db.close()
    fresh.close()


def test_a_bad_file_imports_nothing_and_names_each_line(tmp_path: Path) -> None:
    db, admin = _project(tmp_path / "a.db")
    _run_study(db, admin)
    path = tmp_path / "reads.csv"
    study_io.export(db, admin, "s", path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows[2]["sop_uid"] = "9.9.9"  # file line 4
    rows[4]["cannot_grade"] = "sleepy"  # file line 6
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fresh, boss = _project(tmp_path / "b.db")
    report = labelsets.import_labels(fresh, path, actor=boss)
    assert report.applied == 0
    assert any("line 4: sop_uid 9.9.9 is not an imported slice" in e for e in report.errors)
    assert any("line 6: cannot_grade 'sleepy'" in e for e in report.errors)
    assert people.list_raters(fresh) == [boss]  # nothing stored, no rater created
    again = labelsets.import_labels(db, tmp_path / "reads.csv", actor=admin)
    assert again.applied == 0
    annotator = people.rater_by_name(db, "ann")
    good = tmp_path / "good.csv"
    study_io.export(db, admin, "s", good)
    with pytest.raises(PermissionDenied):
        labelsets.import_labels(fresh, good, actor=people.add_rater(fresh, "ann", Role.ANNOTATOR))
    with pytest.raises(PermissionDenied):
        study_io.export_rows(db, annotator, "s")
    db.close()
    fresh.close()
