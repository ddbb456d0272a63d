"""A reader study's statistics checked against scikit-learn and numpy: inter-rater on first reads (overall
and per level), intra-rater from first vs repeat reads, reading seconds, cannot-grade counts."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score

from annotator.domain.entities import Role
from annotator.domain.errors import PermissionDenied
from annotator.domain.studies import Answer, CannotGrade, Orientation, ReadKind, SelectionRule, StudyDefinition
from annotator.services.reading import ReadingSession
from annotator.services.studies import create_study
from annotator.services.study_stats import study_stats
from annotator.storage import people
from annotator.storage import studies as repo
from tests.study_factories import archive

SPACING = 0.5  # the factory's PixelSpacing, both axes


@pytest.fixture
def read_study(sqlite_db):  # type: ignore[no-untyped-def]
    """60 axial slices at three levels, two readers with 10% repeats; simulated answers."""
    db = sqlite_db
    archive(db, range(6))
    admin = people.add_rater(db, "boss", Role.ADMIN)
    readers = [people.add_rater(db, n, Role.ANNOTATOR) for n in ("ann", "bob")]
    rule = SelectionRule(series_description="^AX", orientation=Orientation.AXIAL)
    study = create_study(db, admin, StudyDefinition("s", rule, ("ann", "bob"), seed=2, repeat_fraction=0.1,
                                                    washout=5))
    truth = {i: random.Random(i).choice([0, 0, 0, 1, 1, 2, 3]) for i, _ in repo.slices(db, study.id,
                                                                                      calibration=False)}
    for r in readers:
        rng = random.Random(r.name)
        session = ReadingSession.open(db, r, "s")
        while (item := session.next()) is not None:
            seconds = rng.uniform(2, 30)
            if rng.random() < 0.05:
                answer = Answer(cannot_grade=rng.choice(list(CannotGrade)), seconds=seconds)
            else:
                g = truth[item.image_id]
                g = min(3, max(0, g + rng.choice([0, 0, 0, 0, 1, -1])))
                answer = Answer(rng.uniform(20, 40), rng.uniform(20, 40), g, seconds=seconds)
            session.answer(item.sop_instance_uid, answer)
    return db, admin, readers, study


def _graded(a: dict, b: dict) -> tuple[list[int], list[int]]:  # type: ignore[type-arg]
    ids = sorted(i for i in set(a) & set(b) if a[i].grade is not None and b[i].grade is not None)
    return [a[i].grade for i in ids], [b[i].grade for i in ids]


def _check(fig: dict, ga: list[int], gb: list[int]) -> None:  # type: ignore[type-arg]
    assert fig["n"] == len(ga) > 0
    assert fig["accuracy"] == pytest.approx(accuracy_score(ga, gb))
    for key, weights in (("kappa", None), ("kappa_linear", "linear"), ("kappa_quadratic", "quadratic")):
        assert fig[key] == pytest.approx(cohen_kappa_score(ga, gb, labels=[0, 1, 2, 3], weights=weights))


def test_study_statistics_equal_scikit_learn(read_study) -> None:  # type: ignore[no-untyped-def]
    db, admin, (ann, bob), study = read_study
    doc = study_stats(db, admin, "s").to_json()
    reads = repo.reads(db, study.id)
    first = {r.rater_id: {x.image_id: x for x in reads if x.rater_id == r.rater_id and x.kind is ReadKind.FIRST}
             for r in reads}
    repeat = {r.rater_id: {x.image_id: x for x in reads if x.rater_id == r.rater_id and x.kind is ReadKind.REPEAT}
              for r in reads}
    [pair] = doc["pairs"]
    assert (pair["a"], pair["b"]) == ("rater:ann", "rater:bob")
    _check(pair, *_graded(first[ann.id], first[bob.id]))
    # intra-rater: each reader's first vs repeat read of the same slice
    for rater, fig in zip((ann, bob), doc["intra"], strict=True):
        assert fig["reader"] == f"rater:{rater.name}"
        _check(fig, *_graded(first[rater.id], repeat[rater.id]))
        clicked = [i for i in repeat[rater.id] if repeat[rater.id][i].x_px is not None
                   and first[rater.id][i].x_px is not None]
        dist = [np.hypot((repeat[rater.id][i].x_px - first[rater.id][i].x_px) * SPACING,  # type: ignore[operator]
                         (repeat[rater.id][i].y_px - first[rater.id][i].y_px) * SPACING)  # type: ignore[operator]
                for i in clicked]
        assert fig["click_distance_median_mm"] == pytest.approx(float(np.median(dist)))
    # reading seconds per reader over every study read (first and repeat)
    for rater, sec in zip((ann, bob), doc["reading_seconds"], strict=True):
        own = [r.seconds for r in reads if r.rater_id == rater.id]
        q1, med, q3 = np.percentile(own, [25, 50, 75])
        assert (sec["n"], sec["median"], sec["q1"], sec["q3"]) == (len(own), pytest.approx(med), pytest.approx(q1),
                                                                  pytest.approx(q3))
        counts = doc["cannot_grade"][f"rater:{rater.name}"]
        assert sum(counts.values()) == sum(r.cannot_grade is not None for r in reads if r.rater_id == rater.id)
        assert set(counts) == {c.value for c in CannotGrade}
    # the per-level breakdown: the same figures on each level's slices
    assert doc["per_level"].keys() == {"L3-L4", "L4-L5", "L5-S1"}
    assert [doc["per_level"][lv]["slices"] for lv in ("L3-L4", "L4-L5", "L5-S1")] == [18, 24, 18]
    by_level = {lv: {i for i, _ in repo.slices(db, study.id, calibration=False)
                     if i in levels_of(db, lv)} for lv in ("L3-L4", "L4-L5", "L5-S1")}
    for lv, ids in by_level.items():
        [fig] = doc["per_level"][lv]["pairs"]
        a = {i: r for i, r in first[ann.id].items() if i in ids}
        b = {i: r for i, r in first[bob.id].items() if i in ids}
        _check(fig, *_graded(a, b))


def levels_of(db, level: str) -> set[int]:  # type: ignore[no-untyped-def]
    from annotator.storage import catalog, levels

    out = set()
    for series in catalog.list_series(db):
        out |= {i for i, lv in levels.series_slices(db, series.series_instance_uid) if lv is not None and lv == level}
    return out


def test_an_annotator_cannot_see_the_study_statistics(read_study) -> None:  # type: ignore[no-untyped-def]
    db, _admin, (ann, _bob), _ = read_study
    with pytest.raises(PermissionDenied, match="cannot see its statistics"):
        study_stats(db, ann, "s")


def test_the_dashboard_rows_and_their_csv(read_study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import csv

    from annotator.services.dashboard import CSV_COLUMNS, study_dashboard, write_csv

    db, admin, (ann, bob), study = read_study
    rows = study_dashboard(db, admin, "s", reference="bob")
    reads = repo.reads(db, study.id)
    first = {r.image_id: r for r in reads if r.rater_id == ann.id and r.kind is ReadKind.FIRST}
    again = {r.image_id: r for r in reads if r.rater_id == ann.id and r.kind is ReadKind.REPEAT}
    other = {r.image_id: r for r in reads if r.rater_id == bob.id and r.kind is ReadKind.FIRST}
    row = rows[0]
    assert (row.reader, row.assigned, row.done, row.repeats_done) == ("ann", 60, 60, 6)
    assert row.intra_kappa == pytest.approx(cohen_kappa_score(*_graded(first, again)))
    assert row.kappa_vs_reference == pytest.approx(cohen_kappa_score(*_graded(first, other)))
    assert rows[1].kappa_vs_reference is None  # the reference against herself
    assert row.seconds_in_order == tuple(r.seconds for r in reads if r.rater_id == ann.id)  # by sequence
    assert row.median_seconds == pytest.approx(float(np.median([r.seconds for r in reads if r.rater_id == ann.id])))
    assert row.calibration is None  # a study without calibration slices
    write_csv(rows, tmp_path / "dash.csv", reference="bob")
    with (tmp_path / "dash.csv").open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(CSV_COLUMNS) and [t["reader"] for t in table] == ["ann", "bob"]
    assert float(table[0]["intra_kappa"]) == pytest.approx(row.intra_kappa)
    with pytest.raises(PermissionDenied):
        study_dashboard(db, ann, "s")


def test_a_reviewer_sees_the_study_by_aliases_when_names_are_hidden(read_study) -> None:  # type: ignore[no-untyped-def]
    import json

    from annotator.services import project
    from annotator.services.dashboard import study_dashboard
    from annotator.services.studies import list_studies, show_study

    db, admin, (ann, bob), _study = read_study
    rev = people.add_rater(db, "rev", Role.REVIEWER)
    project.change_settings(db, admin, hide_reader_names_from_reviewers=True)
    named = study_dashboard(db, admin, "s", reference="bob")
    blind = study_dashboard(db, rev, "s", reference="Reader B")  # she picks the reference by its alias
    assert [r.reader for r in named] == ["ann", "bob"] and [r.reader for r in blind] == ["Reader A", "Reader B"]
    assert [(r.done, r.intra_kappa, r.kappa_vs_reference, r.seconds_in_order) for r in blind] == \
        [(r.done, r.intra_kappa, r.kappa_vs_reference, r.seconds_in_order) for r in named]
    texts = json.dumps([show_study(db, rev, "s").to_json(), study_stats(db, rev, "s").to_json(),
                        [s.definition.to_json() for s in list_studies(db, rev)]])
    assert "Reader A" in texts and "Reader B" in texts
    assert '"ann"' not in texts and "rater:ann" not in texts and "bob" not in texts
    assert show_study(db, admin, "s").to_json()["definition"]["readers"] == ["ann", "bob"]  # stored as named
