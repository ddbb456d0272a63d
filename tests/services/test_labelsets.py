"""Export and import of label sets: atomic files, line-by-line errors, all-or-nothing, round trip."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score

from annotator.domain.entities import Role
from annotator.domain.errors import InputError
from annotator.services import labelsets
from annotator.services.labelling import LabelService
from annotator.storage import catalog, labels, people
from annotator.storage.database import open_database
from tests.factories import instance


def _project(path: Path, n: int = 12):  # type: ignore[no-untyped-def]
    db = open_database(f"sqlite:///{path}")
    catalog.import_instances(db, [instance(i % 3, series=i // 3, patient=i // 3) for i in range(n)])
    return db


def _label_two_raters(db, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    for name in ("e1", "e2"):
        svc = LabelService(db, people.add_rater(db, name, Role.ANNOTATOR))
        for im in catalog.images(db):
            svc.set_point(im.id, float(rng.uniform(5, 60)), float(rng.uniform(5, 60)))
            svc.set_grade(im.id, int(rng.choice(4, p=[0.6, 0.2, 0.15, 0.05])))


def test_export_recomputes_agreement_with_sklearn(tmp_path: Path) -> None:
    db = _project(tmp_path / "a.db")
    _label_two_raters(db)
    out = tmp_path / "labels.csv"
    n = labelsets.export(db, ["rater:e1", "rater:e2"], out, "csv")
    rows = list(csv.DictReader(out.open()))
    assert n == len(rows) == 24
    assert list(rows[0]) == list(labelsets.COLUMNS)
    by = {(r["sop_uid"], r["reader"]): int(r["grade"]) for r in rows}
    sops = sorted({r["sop_uid"] for r in rows})
    a = [by[(s, "rater:e1")] for s in sops]
    b = [by[(s, "rater:e2")] for s in sops]
    e1, e2 = (people.rater_by_name(db, n) for n in ("e1", "e2"))
    cur1 = {lab.image_id: lab.grade for lab in labels.current(db, rater_ids=[e1.id])}
    cur2 = {lab.image_id: lab.grade for lab in labels.current(db, rater_ids=[e2.id])}
    ids = sorted(cur1)
    assert accuracy_score(a, b) == accuracy_score([cur1[i] for i in ids], [cur2[i] for i in ids])
    assert cohen_kappa_score(a, b, weights="quadratic") == pytest.approx(
        cohen_kappa_score([cur1[i] for i in ids], [cur2[i] for i in ids], weights="quadratic"), abs=1e-12)
    assert {r["version"] for r in rows} == {"2"}  # point then grade


def test_round_trip_into_a_fresh_project_gives_the_same_rows(tmp_path: Path) -> None:
    db = _project(tmp_path / "a.db")
    _label_two_raters(db)
    first = tmp_path / "one.json"
    labelsets.export(db, ["rater:e1", "rater:e2"], first, "json")
    fresh = _project(tmp_path / "b.db")
    report = labelsets.import_labels(fresh, first)
    assert report.errors == [] and report.applied == 24 and report.created_raters == ["e1", "e2"]
    second = tmp_path / "two.json"
    labelsets.export(fresh, ["rater:e1", "rater:e2"], second, "json")
    assert json.loads(first.read_text())["rows"] == json.loads(second.read_text())["rows"]


def test_bad_rows_are_reported_line_by_line_and_nothing_is_applied(tmp_path: Path) -> None:
    db = _project(tmp_path / "a.db")
    sop = catalog.images(db)[0].sop_instance_uid
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "sop_uid,reader,x_px,y_px,grade\n"
        f"{sop},rater:x,10,10,2\n"          # fine
        "9.9.9,rater:x,10,10,1\n"           # unknown slice
        f"{sop},rater:x,,,7\n"              # out of scale
        f"{sop},rater:x,10,,\n"             # half a point
        f"{sop},model:3,10,10,1\n"          # not a rater
        f"{sop},rater:x,999,10,1\n"         # outside the image
    )
    report = labelsets.import_labels(db, bad)
    assert report.applied == 0
    assert [e.split(":")[1].strip() for e in report.errors] == ["line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "not an imported slice" in report.errors[0] and "not on the lee scale" in report.errors[1]
    assert labels.count_versions(db) == 0 and people.list_raters(db) == []


def test_import_with_reader_option_and_grade_labels(tmp_path: Path) -> None:
    db = _project(tmp_path / "a.db")
    sops = [im.sop_instance_uid for im in catalog.images(db)[:2]]
    f = tmp_path / "other_tool.csv"
    f.write_text(f"sop_uid,grade\n{sops[0]},3\n{sops[1]},0\n")
    report = labelsets.import_labels(db, f, reader="rater:legacy")
    assert report.applied == 2 and report.created_raters == ["legacy"]
    assert sorted(lab.grade for lab in labels.current(db)) == [0, 3]


def test_export_is_atomic_and_names_a_missing_folder(tmp_path: Path) -> None:
    db = _project(tmp_path / "a.db")
    _label_two_raters(db)
    out = tmp_path / "x.csv"
    out.write_text("previous content")
    with pytest.raises(InputError, match="format"):
        labelsets.export(db, ["rater:e1"], out, "xlsx")
    assert out.read_text() == "previous content"
    with pytest.raises(InputError, match="does not exist"):
        labelsets.export(db, ["rater:e1"], tmp_path / "nope" / "x.csv")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".x.csv")] == []


def test_set_many_checks_every_item_and_is_all_or_nothing(tmp_path: Path) -> None:
    db = _project(tmp_path / "a.db", n=3)
    ims = [im.id for im in catalog.images(db)]
    svc = LabelService(db, people.add_rater(db, "sim", Role.ANNOTATOR, simulated=True))
    with pytest.raises(InputError, match="not on the lee scale"):
        svc.set_many([(ims[0], 10.0, 10.0, 1), (ims[1], 10.0, 10.0, 9)])
    with pytest.raises(InputError, match="outside"):
        svc.set_many([(ims[0], 10.0, 10.0, 1), (ims[1], 500.0, 10.0, 1)])
    assert labels.count_versions(db) == 0
    assert svc.set_many([(i, 10.0, 12.0, 2) for i in ims], action="simulated") == 3
    assert all(lab.complete and lab.action == "simulated" for lab in svc.my_labels())


def test_the_consensus_label_set_exports_like_any_reader(tmp_path: Path) -> None:
    from annotator.services.review import ReviewService

    db = _project(tmp_path / "c.db", n=4)
    ims = catalog.images(db)
    e1 = LabelService(db, people.add_rater(db, "e1", Role.ANNOTATOR))
    e2 = LabelService(db, people.add_rater(db, "e2", Role.ANNOTATOR))
    for im, (p1, g1, p2, g2) in zip(ims, [((20, 20), 1, (22, 20), 1),   # agree: mean point, 1 mm apart
                                         ((20, 20), 0, (20, 20), 2),   # differ: decided below
                                         ((20, 20), 3, (20, 20), 1),   # differ, undecided: no consensus
                                         ((20, 20), 2, (40, 20), 2)],  # same grade, 10 mm apart: none
                                    strict=True):
        e1.set_label(im.id, *p1, g1)
        e2.set_label(im.id, *p2, g2)
    ReviewService(db, people.add_rater(db, "rev", Role.REVIEWER)).accept(ims[1].id, "rater:e2", expected_version=0)
    out = tmp_path / "consensus.json"
    assert labelsets.export(db, ["consensus"], out, "json") == 2
    rows = {r["sop_uid"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {ims[0].sop_instance_uid, ims[1].sop_instance_uid}
    first, decided = rows[ims[0].sop_instance_uid], rows[ims[1].sop_instance_uid]
    assert (first["reader"], first["grade"], first["x_px"], first["y_px"]) == ("consensus", 1, 21.0, 20.0)
    assert (decided["grade"], decided["x_px"], decided["version"]) == (2, 20.0, 1)  # the adjudication, version 1
