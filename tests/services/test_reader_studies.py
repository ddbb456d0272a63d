"""Reader studies without Qt: rule selection, design balance, seeded plans that survive a restart,
hidden repeats after a washout, calibration feedback, cannot-grade, and who may see and read what."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from annotator.domain.entities import Role
from annotator.domain.errors import InputError, NotFound, PermissionDenied
from annotator.domain.geometry import ImageGeometry
from annotator.domain.studies import (
    Answer,
    Calibration,
    CannotGrade,
    Orientation,
    ReadKind,
    ReadOrder,
    SelectionRule,
    StudyDefinition,
    StudyDesign,
    VertebralLevel,
    plan_reader,
)
from annotator.services import levels as level_service
from annotator.services.labelling import LabelService
from annotator.services.reading import ReadingSession
from annotator.services.studies import create_study, list_studies, seed_study_definition, show_study
from annotator.storage import catalog, people
from annotator.storage import studies as repo
from annotator.storage.database import open_database
from tests.study_factories import RULE, SAGITTAL, archive


@pytest.fixture
def project(sqlite_db):  # type: ignore[no-untyped-def]
    sops = archive(sqlite_db, range(6))
    admin = people.add_rater(sqlite_db, "boss", Role.ADMIN)
    readers = [people.add_rater(sqlite_db, n, Role.ANNOTATOR) for n in ("ann", "bob", "cid")]
    return sqlite_db, admin, readers, sops


def _define(name: str = "s", **kw) -> StudyDefinition:  # type: ignore[no-untyped-def]
    base = dict(name=name, rule=RULE, readers=("ann", "bob"), seed=7)
    return StudyDefinition(**{**base, **kw})  # type: ignore[arg-type]


def test_rules_select_exactly_the_axial_l4_l5_slices_and_the_study_never_changes(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, _readers, sops = project
    study = create_study(db, admin, _define())
    chosen = [sop for _, sop in repo.slices(db, study.id, calibration=False)]
    assert sorted(chosen) == sorted(sops["AX T2 L4-5"]) and len(chosen) == 6 * 4
    # the mislabelled sagittal series names L4-L5 too: orientation keeps it out; levels came from the rule
    assert level_service.level_counts(db) == {"L3-L4": 18, "L4-L5": 36, "L5-S1": 18, "none": 30}
    archive(db, range(6, 8))  # new files arrive
    assert [sop for _, sop in repo.slices(db, study.id, calibration=False)] == chosen
    again = create_study(db, admin, _define("s2"))
    assert again.n_slices == 8 * 4  # a new study resolves the rule afresh


def test_the_seed_study_design_selects_the_axial_l4_l5_slices(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, _readers, sops = project
    definition = seed_study_definition(("ann", "bob"))
    assert (definition.name, definition.design, definition.repeat_fraction, definition.washout) == (
        "L4-L5 axial", StudyDesign.CROSSED, 0.1, 20)
    study = create_study(db, admin, seed_study_definition(("ann", "bob"), washout=5))
    assert sorted(sop for _, sop in repo.slices(db, study.id, calibration=False)) == sorted(sops["AX T2 L4-5"])


def test_an_explicit_sop_list_and_a_rule_that_selects_nothing(project, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db, admin, _r, sops = project
    study = create_study(db, admin, _define(rule=SelectionRule(sop_uids=tuple(sops["SAG T2"][:3]))))
    assert [sop for _, sop in repo.slices(db, study.id, calibration=False)] == sops["SAG T2"][:3]
    with pytest.raises(InputError, match="not in the catalogue"):
        create_study(db, admin, _define("x", rule=SelectionRule(sop_uids=("1.2.3.999",))))
    with pytest.raises(InputError, match="selects no slice"):
        create_study(db, admin, _define("y", rule=dataclasses.replace(RULE, orientation=Orientation.CORONAL)))
    with pytest.raises(InputError, match="already exists"):
        create_study(db, admin, _define())


def test_split_design_is_balanced_and_crossed_gives_everyone_everything(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, _ = project
    split = create_study(db, admin, _define("split", readers=("ann", "bob", "cid"), design=StudyDesign.SPLIT,
                                            readers_per_slice=2))
    per_slice: Counter[int] = Counter()
    per_reader = {}
    for r in readers:
        items = repo.plan(db, split.id, r.id)
        per_reader[r.name] = len(items)
        per_slice.update(it.image_id for it in items)
    assert set(per_slice.values()) == {2} and len(per_slice) == 24  # each slice read by exactly k readers
    assert sorted(per_reader.values()) == [16, 16, 16]  # 24 * 2 / 3 each
    crossed = create_study(db, admin, _define("crossed", readers=("ann", "bob", "cid")))
    assert all(sorted(it.image_id for it in repo.plan(db, crossed.id, r.id)) ==
               sorted(i for i, _ in repo.slices(db, crossed.id, calibration=False)) for r in readers)


def test_each_reader_has_her_own_seeded_order_which_survives_a_restart(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, _ = project
    study = create_study(db, admin, _define(repeat_fraction=0.25, washout=5))
    ann, bob = readers[0], readers[1]
    plan_ann, plan_bob = repo.plan(db, study.id, ann.id), repo.plan(db, study.id, bob.id)
    assert [it.image_id for it in plan_ann] != [it.image_id for it in plan_bob]
    slices = [i for i, _ in repo.slices(db, study.id, calibration=False)]
    assert plan_ann == plan_reader("ann", slices, [], order=ReadOrder.RANDOM, seed=7, repeat_fraction=0.25,
                                   washout=5)
    url = db.engine.url.render_as_string(hide_password=False)
    db.close()
    reopened = open_database(url)
    try:
        assert repo.plan(reopened, study.id, ann.id) == plan_ann
        assert ReadingSession.open(reopened, ann, "s").next().image_id == plan_ann[0].image_id  # type: ignore[union-attr]
    finally:
        reopened.close()
    sequential = plan_reader("ann", slices, [], order=ReadOrder.SEQUENTIAL, seed=7, repeat_fraction=0, washout=0)
    assert [it.image_id for it in sequential] == slices


def test_repeats_come_back_after_the_washout_and_never_change_the_first_read(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, _ = project
    study = create_study(db, admin, _define(repeat_fraction=0.25, washout=8))
    ann = readers[0]
    plan = repo.plan(db, study.id, ann.id)
    first_at = {it.image_id: it.seq for it in plan if it.kind is ReadKind.FIRST}
    repeats = [it for it in plan if it.kind is ReadKind.REPEAT]
    assert len(repeats) == round(0.25 * 24) and len(first_at) == 24
    assert all(it.seq - first_at[it.image_id] - 1 >= 8 for it in repeats)
    # what the reader is shown: the same fields for a first and a repeat item, nothing of the first read
    session = ReadingSession.open(db, ann, "s")
    shown = []
    while (item := session.next()) is not None:
        shown.append(item)
        grade = 1 if item.number == first_at[item.image_id] else 3  # a changed mind on the repeat
        out = session.answer(item.sop_instance_uid, Answer(10.0, 12.0, grade, seconds=2.0, comment=f"#{item.number}"))
        assert out.feedback is None and not out.calibration
    assert {tuple(sorted(i.to_json())) for i in shown} == {tuple(sorted(shown[0].to_json()))}
    assert not any("repeat" in str(i.to_json()).lower() or "first" in str(i.to_json()).lower() for i in shown)
    reads = repo.reads(db, study.id, [ann.id])
    assert len(reads) == 30
    firsts = {r.image_id: r for r in reads if r.kind is ReadKind.FIRST}
    assert all(r.grade == 1 for r in firsts.values())  # the repeat stored apart, the first read unchanged
    assert sorted(r.image_id for r in reads if r.kind is ReadKind.REPEAT) == sorted(it.image_id for it in repeats)
    assert all(r.grade == 3 for r in reads if r.kind is ReadKind.REPEAT)
    report = show_study(db, admin, "s")
    [p] = [p for p in report.readers if p.reader == "ann"]
    assert (p.assigned, p.done, p.repeats_planned, p.repeats_done) == (24, 24, 6, 6)
    assert report.median_seconds["ann"] == 2.0


def test_a_simulated_reader_works_through_her_sequence(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, _ = project
    study = create_study(db, admin, _define(repeat_fraction=0.25, washout=4))
    session = ReadingSession.open(db, readers[1], "s")
    seen: Counter[int] = Counter()

    def reader(item) -> Answer:  # type: ignore[no-untyped-def]
        seen[item.image_id] += 1  # she knows a repeat only by remembering the slice
        return Answer(30.0, 30.0, 0 if seen[item.image_id] == 1 else 1, seconds=float(item.number))

    assert session.read_through(reader, limit=5) == 5 and session.progress() == (5, 30)
    assert session.read_through(reader) == 25 and session.next() is None
    reads = repo.reads(db, study.id, [readers[1].id])
    assert [r.seconds for r in reads] == [float(n) for n in range(1, 31)]
    assert {r.grade for r in reads if r.kind is ReadKind.REPEAT} == {1} and sum(seen.values()) == 30


def test_too_many_repeats_for_the_washout_is_a_clear_error(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, _, _ = project
    with pytest.raises(InputError, match="--washout 23"):
        create_study(db, admin, _define(repeat_fraction=0.5, washout=23))


def test_calibration_first_with_feedback_after_the_read_and_a_score_at_the_end(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, _ = project
    expert = people.add_rater(db, "expert", Role.ANNOTATOR)
    imgs = {im.sop_instance_uid: im for im in catalog.images(db)}
    study_slices = [im for im in imgs.values() if im.series_instance_uid.endswith(".2.0")]
    for im in study_slices[:5]:
        LabelService(db, expert).set_label(im.id, 20.0, 20.0, 2)
    study = create_study(db, admin, _define(calibration=Calibration("rater:expert", count=3)))
    assert (study.n_calibration, study.n_slices) == (3, 21)  # calibration slices are not read twice
    ann = readers[0]
    session = ReadingSession.open(db, ann, "s")
    plan = repo.plan(db, study.id, ann.id)
    assert [it.kind for it in plan[:3]] == [ReadKind.CALIBRATION] * 3
    item = session.next()
    assert item is not None and item.calibration
    assert session.feedback(item.image_id) is None  # the reference only after her own read
    out = session.answer(item.sop_instance_uid, Answer(23.0, 24.0, 1))
    assert out.feedback is not None and out.calibration_score is None
    assert out.feedback.reference.grade == 2 and out.feedback.grade_difference == -1
    assert out.feedback.distance_mm == pytest.approx(((3 * 0.5) ** 2 + (4 * 0.5) ** 2) ** 0.5)  # 0.5 mm pixels
    item = session.next()
    session.answer(item.sop_instance_uid, Answer(20.0, 20.0, 2))  # type: ignore[union-attr]
    item = session.next()
    last = session.answer(item.sop_instance_uid, Answer(cannot_grade=CannotGrade.MOTION))  # type: ignore[union-attr]
    score = last.calibration_score
    assert score is not None and (score.n, score.graded, score.exact) == (3, 2, 1)
    assert score.accuracy == 0.5 and score.mean_abs_grade_difference == 0.5
    assert score.median_distance_mm == pytest.approx(1.25)
    assert session.next() is not None and not session.next().calibration  # type: ignore[union-attr]
    with pytest.raises(InputError, match="no point and grade"):
        create_study(db, admin, _define("c2", calibration=Calibration("expert", sop_uids=(
            study_slices[6].sop_instance_uid,))))


def test_cannot_grade_is_an_answer_counted_per_reader(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, _ = project
    create_study(db, admin, _define())
    session = ReadingSession.open(db, readers[1], "s")
    item = session.next()
    with pytest.raises(InputError, match="--cannot-grade"):
        session.answer(item.sop_instance_uid, Answer(10.0, 10.0, None))  # type: ignore[union-attr]
    with pytest.raises(InputError, match="outside"):
        session.answer(item.sop_instance_uid, Answer(100.0, 10.0, 1))  # type: ignore[union-attr]
    with pytest.raises(InputError, match="not on the lee scale"):
        session.answer(item.sop_instance_uid, Answer(10.0, 10.0, 7))  # type: ignore[union-attr]
    assert session.progress() == (0, 24)  # nothing stored by refused answers
    session.answer(item.sop_instance_uid, Answer(cannot_grade=CannotGrade.ARTEFACT,  # type: ignore[union-attr]
                                                 comment="ghosting"))
    [read] = repo.reads(db, repo.by_name(db, "s").id, [readers[1].id])
    assert (read.grade, read.cannot_grade, read.comment) == (None, CannotGrade.ARTEFACT, "ghosting")
    [p] = [p for p in show_study(db, admin, "s").readers if p.reader == "bob"]
    assert (p.done, p.cannot_grade) == (1, 1)


def test_answering_another_slice_than_the_current_one_is_refused(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, sops = project
    create_study(db, admin, _define())
    session = ReadingSession.open(db, readers[0], "s")
    item = session.next()
    other = next(s for s in sops["AX T2 L4-5"] if s != item.sop_instance_uid)  # type: ignore[union-attr]
    with pytest.raises(InputError, match=f"{other} is not your current slice"):
        session.answer(other, Answer(10.0, 10.0, 1))
    assert session.progress() == (0, 24)


def test_who_may_create_see_and_read_a_study(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, _ = project
    ann, bob, cid = readers
    with pytest.raises(PermissionDenied, match="ann is an annotator and cannot create reader studies"):
        create_study(db, ann, _define())
    reviewer = people.add_rater(db, "rev", Role.REVIEWER)
    with pytest.raises(PermissionDenied, match="only admins"):
        create_study(db, reviewer, _define())
    create_study(db, admin, _define("ab"))
    create_study(db, admin, _define("bc", readers=("bob", "cid")))
    assert [s.name for s in list_studies(db, ann)] == ["ab"]
    assert [s.name for s in list_studies(db, bob)] == ["ab", "bc"]
    assert [s.name for s in list_studies(db, reviewer)] == ["ab", "bc"]
    with pytest.raises(NotFound):
        ReadingSession.open(db, ann, "bc")  # not hers: as if it did not exist
    with pytest.raises(PermissionDenied, match="not a reader"):
        ReadingSession.open(db, admin, "bc")  # admins see every study but read only where assigned
    with pytest.raises(PermissionDenied, match="cannot see its design"):
        show_study(db, bob, "ab")
    assert {p.reader for p in show_study(db, reviewer, "ab").readers} == {"ann", "bob"}


def test_levels_set_by_hand_are_audited_and_need_an_admin(project) -> None:  # type: ignore[no-untyped-def]
    db, admin, readers, _ = project
    sag = catalog.images(db)[0]
    uid = sag.series_instance_uid
    assert level_service.set_series_levels(db, admin, uid, "2-4", VertebralLevel.L4_L5) == 3
    from annotator.storage import levels as level_repo
    from annotator.storage.audit import entries

    assert [lv for _, lv in level_repo.series_slices(db, uid)] == [None] + [VertebralLevel.L4_L5] * 3 + [None]
    [entry] = [e for e in entries(db) if e.action == "image.level" and e.rater_id == admin.id]
    assert entry.after == {"level": "L4-L5"} and len(entry.before["levels"]) == 3  # type: ignore[index]
    assert level_service.set_series_levels(db, admin, uid, None, None) == 3  # back to none
    with pytest.raises(InputError, match="slices 1 to 5"):
        level_service.set_series_levels(db, admin, uid, "4-9", VertebralLevel.L4_L5)
    with pytest.raises(PermissionDenied):
        level_service.set_series_levels(db, readers[0], uid, "1", VertebralLevel.L4_L5)
    with pytest.raises(NotFound, match="SeriesInstanceUID 9.9"):
        level_service.set_series_levels(db, admin, "9.9", "1", None)
    # the level travels with the slice: the catalogue's records and the label-set export carry it
    l45 = [im for im in catalog.images(db) if im.level == "L4-L5"]
    assert len(l45) == 6 * 6 and all(im.series_instance_uid.endswith((".2.0", ".4.0")) for im in l45)
    from annotator.services import labelsets

    LabelService(db, readers[0]).set_label(l45[0].id, 5.0, 5.0, 1)
    [row] = labelsets.export_rows(db, ["rater:ann"])
    assert (row["sop_uid"], row["level"]) == (l45[0].sop_instance_uid, "L4-L5")


def test_geometry_of_the_factory_is_what_the_orientation_rule_reads() -> None:
    g = ImageGeometry(64, 64, (0.5, 0.5), (0, 0, 0), SAGITTAL)  # type: ignore[arg-type]
    from annotator.domain.studies import orientation_of

    assert orientation_of(g.image_orientation, 10) is Orientation.SAGITTAL
