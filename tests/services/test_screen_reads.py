"""Reads the screens make in one go instead of many: the rater's histories of a series, one slice by
id, and the agreement report together with the reader data it was computed from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotator.domain.entities import LabelAction, Role
from annotator.services import agreement
from annotator.services.labelling import LabelService, undo_redo
from annotator.services.worklist import WorklistService
from annotator.storage import catalog, labels, people
from annotator.storage.database import open_database
from tests.factories import instance


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    catalog.import_instances(db, [instance(i % 4, series=i // 4, patient=i // 4) for i in range(12)])
    yield db
    db.close()


def test_histories_of_a_series_equal_each_slice_history(db) -> None:  # type: ignore[no-untyped-def]
    a = people.add_rater(db, "a", Role.ANNOTATOR)
    b = people.add_rater(db, "b", Role.ANNOTATOR)
    ids = [im.id for im in catalog.images(db)][:4]
    mine, theirs = LabelService(db, a), LabelService(db, b)
    mine.set_point(ids[0], 10, 10)
    mine.set_grade(ids[0], 2)
    mine.undo(ids[0])
    mine.set_label(ids[2], 5, 5, 1)
    theirs.set_label(ids[1], 7, 7, 3)  # another rater's: not in a's histories
    got = mine.histories(ids)
    assert got == {i: labels.history(db, i, a.id) for i in ids}
    assert [v.action for v in got[ids[0]]] == [LabelAction.POINT, LabelAction.GRADE, LabelAction.UNDO]
    assert got[ids[1]] == [] and got[ids[3]] == []
    assert {i: undo_redo(h) for i, h in got.items()} == {i: mine.undo_redo_available(i) for i in ids}
    assert undo_redo(got[ids[0]]) == (True, True)


def test_one_slice_by_id(db) -> None:  # type: ignore[no-untyped-def]
    r = people.add_rater(db, "a", Role.ANNOTATOR)
    ims = catalog.images(db)
    service = WorklistService(db, r)
    assert service.image(ims[5].id) == ims[5]
    assert service.image(10**6) is None


def test_the_report_and_its_data_come_from_one_load(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    ims = catalog.images(db)
    for name in ("e1", "e2"):
        r = people.add_rater(db, name, Role.ANNOTATOR)
        labels.add_versions_bulk(db, [(im.id, r.id, 30.0 + rng.normal(), 30.0, int(rng.integers(4))) for im in ims],
                                 scale_code="lee", action="set")
    loads: list[int] = []
    real = agreement.load_reader_data
    monkeypatch.setattr(agreement, "load_reader_data", lambda d, refs: loads.append(1) or real(d, refs))
    report, data = agreement.agreement_report_and_data(db, ["rater:e1", "rater:e2"], n_boot=50, seed=2)
    assert loads == [1]
    assert report == agreement.agreement_report(db, ["rater:e1", "rater:e2"], n_boot=50, seed=2)
    fresh = real(db, report.group.readers)
    assert np.array_equal(data.image_ids, fresh.image_ids) and list(data.patient_keys) == list(fresh.patient_keys)
